"""``--host`` runs against real targets: what a user does against a deployment, on 127.0.0.1.

The local targets start here, apart from the CLI, and the CLI is given their URL as a deployed
one: the container service (bearer token) for ``http`` and ``ws``; for ``webhook``, the ingress
behind a gateway that, like API Gateway, refuses what is not authenticated: one gateway checks
``x-api-key``, the other verifies each request's SigV4 signature (service ``execute-api``,
independently of botocore, which signs). Without ``--callback-url`` the runs poll
``GET /tasks/{id}`` until each task is done; with it, the stack's callback worker delivers to an
https "tunnel" (its certificate from a CA made here, trusted through ``SSL_CERT_FILE``) that
forwards to the run's receiver on ``--callback-port``, which verifies every signature.

Under pytest-xdist the module is one ``xdist_group``: its tests share the targets and the runs.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtest.cli import EXIT_ERRORS
from loadtest.local import LocalOptions, ServiceTarget, agent_service, webhook_stack
from tests.fakes.http_server import LoopbackServer, QuietHandler, serving
from tests.fakes.ports import free_port
from tests.loadtest.cli_runs import run_side_by_side

pytestmark = [pytest.mark.xdist_group("loadtest-remote"), pytest.mark.timeout(300)]

API_KEY = "loadtest-remote-api-key-0123456789"
# The caller's credentials for SigV4 (fake: the gateway below is the only one checking them).
ACCESS_KEY_ID = "AKIALOADTESTREMOTE01"
SECRET_ACCESS_KEY = "loadtest-remote-secret-access-key"
REGION = "us-east-1"

Check = Callable[[str, str, dict[str, str], bytes], str | None]


class _Gateway(LoopbackServer):
    """Forwards to ``upstream`` what ``check`` accepts (``None``), answers 403 to the rest."""

    def __init__(self, upstream: str, check: Check) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.check = check
        self.accepted = 0
        self.refused: list[str] = []
        self.lock = threading.Lock()
        super().__init__(_GatewayHandler)


class _GatewayHandler(QuietHandler):
    server: _Gateway

    def do_GET(self) -> None:
        self._forward("GET")

    def do_POST(self) -> None:
        self._forward("POST")

    def _forward(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        reason = self.server.check(method, self.path, headers, body)
        with self.server.lock:
            if reason is None:
                self.server.accepted += 1
            else:
                self.server.refused.append(reason)
        if reason is not None:
            self._answer(403, json.dumps({"message": reason}).encode(), "application/json")
            return
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=30)
        try:
            forwarded = {k: v for k, v in headers.items() if k not in ("host", "connection")}
            upstream.request(method, self.path, body=body, headers=forwarded)
            response = upstream.getresponse()
            payload = response.read()
            content_type = response.getheader("Content-Type") or "application/json"
            self._answer(response.status, payload, content_type)
        finally:
            upstream.close()

    def _answer(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _forward_all(_method: str, _path: str, _headers: dict[str, str], _body: bytes) -> str | None:
    return None


class _Tunnel(_Gateway):
    """An https endpoint forwarding everything to ``127.0.0.1:port`` over http, as an SSH or
    ngrok tunnel forwards a public URL to the machine running the load (``accepted`` counts
    what it forwarded)."""

    def __init__(self, port: int, certificate: Path, key: Path) -> None:
        self.port = port
        super().__init__(f"http://127.0.0.1:{port}", _forward_all)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate for 127.0.0.1, its key), written to ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: Any, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("loadtest test CA", ca_key, "loadtest test CA", ca_key, True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = build("127.0.0.1", server_key, "loadtest test CA", ca_key, False)
    paths = (folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def check_api_key(_method: str, _path: str, headers: dict[str, str], _body: bytes) -> str | None:
    return None if headers.get("x-api-key") == API_KEY else "Forbidden: no valid x-api-key"


_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def check_sigv4(method: str, path: str, headers: dict[str, str], body: bytes) -> str | None:
    """AWS Signature Version 4 verified from its specification, as API Gateway's IAM auth does."""
    match = _AUTHORIZATION.match(headers.get("authorization", ""))
    if match is None:
        return "Forbidden: no SigV4 Authorization header"
    if match["key"] != ACCESS_KEY_ID:
        return f"Forbidden: unknown access key {match['key']}"
    if (match["region"], match["service"]) != (REGION, "execute-api"):
        return f"Forbidden: signed for {match['region']}/{match['service']}"
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return "Forbidden: host and x-amz-date must be signed"
    amz_date = headers.get("x-amz-date", "")
    if not amz_date.startswith(match["date"]):
        return "Forbidden: x-amz-date is not the credential's date"
    uri, _, query = path.partition("?")
    canonical_query = "&".join(sorted(query.split("&"))) if query else ""
    canonical_headers = "".join(
        f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed
    )
    canonical_request = "\n".join(
        [
            method,
            uri,
            canonical_query,
            canonical_headers,
            match["signed"],
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{match['date']}/{REGION}/execute-api/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(("AWS4" + SECRET_ACCESS_KEY).encode(), match["date"])
    for part in (REGION, "execute-api", "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        return "Forbidden: the signature does not match"
    return None


def test_the_sigv4_check_refuses_a_tampered_request() -> None:
    """The gateway's verifier is not a pass-through: botocore's signature passes, changes fail."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url, body = "http://127.0.0.1:8080/webhook", b'{"input": "hi"}'
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "x"})
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "execute-api", REGION).add_auth(
        request
    )
    headers = {name.lower(): str(value) for name, value in request.headers.items()}
    headers["host"] = "127.0.0.1:8080"
    assert check_sigv4("POST", "/webhook", headers, body) is None
    assert check_sigv4("POST", "/webhook", headers, b'{"input": "bye"}') is not None
    assert check_sigv4("POST", "/tasks/x", headers, body) is not None
    assert check_sigv4("GET", "/webhook", headers, body) is not None
    assert check_sigv4("POST", "/webhook", {**headers, "host": "elsewhere:1"}, body) is not None
    wrong_region = headers["authorization"].replace(f"/{REGION}/", "/eu-west-1/")
    assert check_sigv4("POST", "/webhook", {**headers, "authorization": wrong_region}, body)


def _runs(
    base: Path,
    service: ServiceTarget,
    gateways: dict[str, _Gateway],
    tunnel: _Tunnel,
    callback_secret: str,
) -> dict[str, dict[str, Any]]:
    """Every run of this module, side by side."""
    key_gateway, iam_gateway = gateways["key_gateway"], gateways["iam_gateway"]
    token = {"LOADTEST_TOKEN": service.token}
    iam_env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "http": (["http", "--host", service.url, "--users", "2", "--run-time", "2s"], token),
        "ws": (
            ["ws", "--host", service.url, "--users", "2", "--run-time", "2s"],
            token,
        ),
        "webhook-api-key": (
            [
                "webhook", "--host", key_gateway.url, "--webhook-auth", "api-key",
                "--users", "2", "--run-time", "3s", "--poll-interval", "0.2",
            ],
            {"LOADTEST_API_KEY": API_KEY},
        ),
        "webhook-iam": (
            [
                "webhook", "--host", iam_gateway.url, "--webhook-auth", "iam", "--region", REGION,
                "--users", "2", "--run-time", "3s", "--poll-interval", "0.2",
            ],
            iam_env,
        ),
        "webhook-callback": (
            [
                "webhook", "--host", gateways["callback_gateway"].url, "--webhook-auth", "api-key",
                "--callback-url", f"{tunnel.url}/callback", "--callback-port", str(tunnel.port),
                "--users", "2", "--run-time", "3s",
            ],
            {"LOADTEST_API_KEY": API_KEY, "LOADTEST_CALLBACK_SECRET": callback_secret},
        ),
        "webhook-wrong-key": (
            [
                "webhook", "--host", key_gateway.url, "--webhook-auth", "api-key",
                "--api-key", "not-the-key", "--users", "1", "--run-time", "30s",
                "--max-requests", "5",
            ],
            {},
        ),
    }  # fmt: skip
    # Nothing of the caller's AWS or loadtest settings: each run gets only what it is given.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "LOADTEST_"))
    }
    return run_side_by_side(
        base, {name: (argv, {**env, **extra}) for name, (argv, extra) in commands.items()}
    )


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("loadtest-remote")
    ca, certificate, key = _certificates(base)
    with contextlib.ExitStack() as stack:
        service = stack.enter_context(agent_service(LocalOptions(out_dir=base / "service")))
        # The stack's processes get the CA as their trust store (loadtest.local passes it on);
        # this process's environment is set back at once.
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SSL_CERT_FILE", str(ca))
            webhook = stack.enter_context(
                webhook_stack(LocalOptions(out_dir=base / "webhook", workers=1))
            )
        gateways = {
            "key_gateway": _Gateway(webhook.url, check_api_key),
            "iam_gateway": _Gateway(webhook.url, check_sigv4),
            "callback_gateway": _Gateway(webhook.url, check_api_key),
        }
        tunnel = _Tunnel(free_port(), certificate, key)
        stack.enter_context(serving(*gateways.values(), tunnel))
        yield {
            "runs": _runs(base, service, gateways, tunnel, webhook.callback_secret),
            "service_url": service.url,
            "tunnel": tunnel,
            **gateways,
        }


def _scenario(remote: dict[str, Any], name: str, *, returncode: int = 0) -> dict[str, Any]:
    run = remote["runs"][name]
    assert run["returncode"] == returncode, run["output"]
    assert run["document"] is not None, run["output"]
    [scenario] = run["document"]["scenarios"]
    assert scenario["local"] is False
    return dict(scenario)


def _rows(scenario: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in scenario["rows"]}


@pytest.mark.parametrize("name", ["http", "ws"])
def test_a_deployed_service_is_load_tested_with_its_token(
    remote: dict[str, Any], name: str
) -> None:
    scenario = _scenario(remote, name)
    assert scenario["target"] == remote["service_url"]
    assert scenario["errors"] == 0, scenario["failures"]
    assert scenario["requests_sent"] > 0
    assert all(row["failures"] == 0 for row in scenario["rows"])


@pytest.mark.parametrize(
    ("name", "gateway"), [("webhook-api-key", "key_gateway"), ("webhook-iam", "iam_gateway")]
)
def test_a_deployed_webhook_api_is_polled_to_done_through_its_auth(
    remote: dict[str, Any], name: str, gateway: str
) -> None:
    scenario = _scenario(remote, name)
    assert scenario["target"] == remote[gateway].url
    assert scenario["errors"] == 0, scenario["failures"]
    rows = _rows(scenario)
    accepted = rows["POST /webhook"]["requests"]
    assert accepted > 0
    # Every accepted task was polled until done; 202 -> done is timed for each.
    assert rows["202 -> done"]["requests"] == accepted
    assert rows["GET /tasks/{id}"]["requests"] >= accepted
    webhook = scenario["webhook"]
    assert webhook["accepted"] == webhook["tasks_done"] == accepted
    assert webhook["tasks_not_done"] == webhook["tasks_failed"] == 0
    # Every request passed the gateway's check; none was refused.
    assert remote[gateway].accepted == accepted + rows["GET /tasks/{id}"]["requests"]


def test_a_wrong_api_key_is_refused_by_the_gateway_and_counted(remote: dict[str, Any]) -> None:
    scenario = _scenario(remote, "webhook-wrong-key", returncode=EXIT_ERRORS)
    rows = _rows(scenario)
    assert rows["POST /webhook"]["requests"] == rows["POST /webhook"]["failures"] == 5
    assert scenario["errors"] == 5
    [failure] = scenario["failures"]
    assert failure["error"] == "HTTP 403 Forbidden: no valid x-api-key"
    assert remote["key_gateway"].refused.count("Forbidden: no valid x-api-key") == 5


def test_a_deployed_webhook_api_calls_back_through_the_tunnel_and_every_signature_verifies(
    remote: dict[str, Any],
) -> None:
    scenario = _scenario(remote, "webhook-callback")
    assert scenario["errors"] == 0, scenario["failures"]
    rows = _rows(scenario)
    accepted = rows["POST /webhook"]["requests"]
    assert accepted > 0
    assert rows["202 -> callback"]["requests"] == accepted
    assert "GET /tasks/{id}" not in rows  # callbacks, no polling
    webhook = scenario["webhook"]
    assert webhook["accepted"] == webhook["callbacks_verified"] == accepted
    assert webhook["callbacks_missing"] == webhook["callbacks_rejected"] == 0
    # Every callback came over https through the tunnel (the worker verified its certificate).
    assert remote["tunnel"].accepted == accepted
