"""``POST /webhook`` and ``GET /tasks/{task_id}`` through the Lambda handler, against moto.

What the ingress promises: a 202 means the task is recorded *and* on the queue; everything it
refuses (bad bodies, unsafe or gone callback URLs, bad signatures, reused Idempotency-Keys) is
refused before anything is written or enqueued; and a retried or replayed request never starts a
second run.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from botocore.exceptions import ClientError

from runtime.handlers import webhook_api
from runtime.tasks.ingress import MAX_IDEMPOTENCY_KEY_CHARS, QUEUE_RETRY_AFTER_SECONDS
from runtime.tasks.queues import SqsQueue, task_message
from runtime.tasks.schema import MAX_METADATA_KEYS, TASK_ID_REGEX
from runtime.webhooks.signing import generate_secret, github_signature, signed_headers
from tests.fakes.sqs_lambda import drain, queue_depth
from tests.runtime.async_env import (
    TASK_TABLE,
    AsyncApp,
    AsyncEnv,
    install_async_app,
    make_async_env,
    uninstall,
)
from tests.runtime.conftest import FakeLambdaContext, ScriptedLLM, api_event, boto_session

PUBLIC_IP = "93.184.215.14"
HOOK_URL = "https://hooks.example.com/x"
MAX_MESSAGE_CHARS = 8000  # what make_async_env sets
MAX_BODY_BYTES = 65536

Response = tuple[int, dict[str, str], dict[str, Any]]


class FakeDNS:
    """A resolver over a dict the test controls; unknown names do not resolve."""

    def __init__(self, records: Mapping[str, Sequence[str]] | None = None) -> None:
        self.records: dict[str, list[str]] = {
            "hooks.example.com": [PUBLIC_IP],
            "example.com": [PUBLIC_IP],
            "internal.example.com": ["10.1.2.3"],
            "mixed.example.com": [PUBLIC_IP, "192.168.7.8"],
            **{name: list(addresses) for name, addresses in (records or {}).items()},
        }
        self.lookups: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.lookups.append(host)
        return list(self.records.get(host, []))


AppFactory = Callable[..., tuple[AsyncEnv, AsyncApp]]


@pytest.fixture
def dns() -> FakeDNS:
    return FakeDNS()


@pytest.fixture
def make_app(
    mocked_aws: None, monkeypatch: pytest.MonkeyPatch, dns: FakeDNS
) -> Iterator[AppFactory]:
    """Build the env (once per test) with environment overrides, and wire the handlers to it.

    The model is a ScriptedLLM with an empty script: the ingress must never call it.
    """

    def build(overrides: Mapping[str, str] | None = None) -> tuple[AsyncEnv, AsyncApp]:
        env = make_async_env(monkeypatch, overrides)
        return env, install_async_app(env, ScriptedLLM(), resolve=dns)

    yield build
    uninstall()


@pytest.fixture
def env_app(make_app: AppFactory) -> tuple[AsyncEnv, AsyncApp]:
    return make_app()


@pytest.fixture
def env(env_app: tuple[AsyncEnv, AsyncApp]) -> AsyncEnv:
    return env_app[0]


@pytest.fixture
def app(env_app: tuple[AsyncEnv, AsyncApp]) -> AsyncApp:
    return env_app[1]


# --- helpers ------------------------------------------------------------------------------------


def post(
    body: Mapping[str, Any] | str | bytes,
    *,
    headers: Mapping[str, str] | None = None,
    api_key_id: str | None = None,
) -> Response:
    """``POST /v1/webhook``, optionally as the API Gateway API key ``api_key_id``."""
    event = api_event("POST", "/webhook", {}, body=body, headers=headers, stage="v1")
    if api_key_id is not None:
        event["requestContext"]["identity"]["apiKeyId"] = api_key_id
    response = webhook_api.lambda_handler(event, FakeLambdaContext())
    headers_out = {
        **{k: str(v[0]) for k, v in (response.get("multiValueHeaders") or {}).items()},
        **(response.get("headers") or {}),
    }
    return response["statusCode"], headers_out, json.loads(response["body"])


def task_messages(env: AsyncEnv) -> list[dict[str, Any]]:
    """The bodies on the task queue (received once and left in flight)."""
    return [json.loads(message["Body"]) for message in drain(env.sqs, env.task_queue_url)]


def table_items(env: AsyncEnv) -> list[dict[str, Any]]:
    return list(env.dynamodb.scan(TableName=TASK_TABLE, ConsistentRead=True)["Items"])


def assert_nothing_recorded(env: AsyncEnv) -> None:
    assert table_items(env) == []
    assert queue_depth(env.sqs, env.task_queue_url) == 0


def assert_error(response: Response, status: int, code: str) -> str:
    """The response is the JSON error ``code`` with ``status``; returns its message."""
    got_status, _, body = response
    assert got_status == status, body
    assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert isinstance(message, str)
    return message


def create_secret(name: str, value: str) -> str:
    client = boto_session().client("secretsmanager")
    return client.create_secret(Name=name, SecretString=value)["ARN"]


# --- accepting a task ---------------------------------------------------------------------------


def test_an_accepted_task_is_recorded_queued_and_enqueued_exactly_once(
    env: AsyncEnv, app: AsyncApp
) -> None:
    """202 + body + Location, and the two writes behind it: the record and one queue message."""
    status, headers, body = app.submit({"input": "summarise this", "metadata": {"ticket": "T-1"}})

    assert status == 202, body
    task_id = body["task_id"]
    assert re.fullmatch(TASK_ID_REGEX, task_id)
    assert body == {"task_id": task_id, "status": "queued"}
    assert headers["Location"] == f"/v1/tasks/{task_id}"
    assert "Idempotent-Replayed" not in headers
    task = env.store().get(task_id, now=int(time.time()))
    assert task is not None
    assert task.status == "queued"
    assert task.input == "summarise this"
    assert task.session_id == task_id  # no session_id given: the task gets its own session
    assert task.enqueued_at is not None
    assert task.callback_url is None
    assert task_messages(env) == [task_message(task_id)]


def test_get_task_returns_status_timestamps_and_metadata_without_echoing_the_input(
    app: AsyncApp,
) -> None:
    """GET shows what a poller needs; no callback block when the task has no callback_url."""
    before = int(time.time())
    task_id = app.submit(
        {"input": "secret prompt", "session_id": "conv-1", "metadata": {"ticket": "T-1"}}
    )[2]["task_id"]

    status, view = app.get_task(task_id)

    assert status == 200, view
    assert view["task_id"] == task_id
    assert view["status"] == "queued"
    assert view["session_id"] == "conv-1"
    assert view["metadata"] == {"ticket": "T-1"}
    assert before <= view["created_at"] == view["updated_at"] <= int(time.time())
    assert view["expires_at"] == view["created_at"] + 86400
    assert view["started_at"] is None
    assert view["finished_at"] is None
    assert view["result"] is None
    assert view["error"] is None
    assert "callback" not in view
    assert "secret prompt" not in json.dumps(view)


def test_get_task_with_a_callback_url_shows_the_callback_block(app: AsyncApp) -> None:
    """The callback's delivery state is part of the status a caller can poll."""
    task_id = app.submit({"input": "x", "callback_url": HOOK_URL})[2]["task_id"]

    status, view = app.get_task(task_id)

    assert status == 200, view
    assert view["callback"] == {
        "url": HOOK_URL,
        "status": "none",
        "attempts": 0,
        "last_error": None,
        "delivered_at": None,
    }


def test_get_of_an_unknown_task_is_a_404_json_error(app: AsyncApp) -> None:
    """A well-formed id that names no task is 404, in the API's error shape."""
    status, body = app.get_task(uuid.uuid4().hex)
    assert status == 404
    assert body["error"]["code"] == "not_found"
    assert "does not exist" in body["error"]["message"]


def test_get_of_a_malformed_task_id_is_a_400(app: AsyncApp) -> None:
    """Ids that cannot be a task id are refused before the table is read."""
    for task_id in ("xyz", "A" * 32, "a" * 31, "a" * 33, "g" * 32):
        status, body = app.get_task(task_id)
        assert (status, body["error"]["code"]) == (400, "invalid_task_id"), task_id


# --- validation ---------------------------------------------------------------------------------


# (what is wrong, body, what the message must name). One env for all: each case must also leave
# the table and the queue untouched, which the final check covers for every case at once.
SCHEMA_VIOLATIONS: list[tuple[str, dict[str, Any], str]] = [
    ("missing input", {}, "body.input: is required"),
    ("empty input", {"input": ""}, "body.input: must have at least 1"),
    (
        "input too long",
        {"input": "x" * (MAX_MESSAGE_CHARS + 1)},
        f"body.input: must have at most {MAX_MESSAGE_CHARS}",
    ),
    ("input not a string", {"input": 42}, "body.input: expected string"),
    ("unknown field", {"input": "x", "priority": "high"}, "body.priority: unexpected field"),
    (
        "metadata value not a string",
        {"input": "x", "metadata": {"ticket": 7}},
        "body.metadata.ticket: expected string",
    ),
    (
        "too many metadata keys",
        {"input": "x", "metadata": {f"k{n}": "v" for n in range(MAX_METADATA_KEYS + 1)}},
        f"body.metadata: must have at most {MAX_METADATA_KEYS}",
    ),
    ("session_id pattern", {"input": "x", "session_id": "-dash"}, "body.session_id: must match"),
    ("session_id space", {"input": "x", "session_id": "a b"}, "body.session_id: must match"),
]


def test_schema_violations_are_400_naming_the_field_and_record_nothing(
    env: AsyncEnv, app: AsyncApp
) -> None:
    """Each schema rule is enforced by the handler itself, with the field in the message."""
    for case, body, field in SCHEMA_VIOLATIONS:
        response = app.submit(body)
        assert response[0] == 400, (case, response)
        assert response[2]["error"]["code"] == "validation_error", case
        assert field in response[2]["error"]["message"], (case, response[2])
    assert_nothing_recorded(env)


def test_the_longest_allowed_input_and_metadata_are_accepted(app: AsyncApp) -> None:
    """The bounds are inclusive: the limits above reject only what is beyond them."""
    status, _, body = app.submit(
        {
            "input": "x" * MAX_MESSAGE_CHARS,
            "metadata": {f"k{n}": "v" for n in range(MAX_METADATA_KEYS)},
        }
    )
    assert status == 202, body


def test_a_body_that_is_not_a_json_object_is_a_400(env: AsyncEnv, app: AsyncApp) -> None:
    """Non-JSON and non-object JSON are told apart, and neither is recorded."""
    for raw in ("not json", '{"input": "x"'):
        assert_error(app.submit(raw), 400, "invalid_json")
    for raw in ('["input", "x"]', '"just a string"', "null", "42"):
        message = assert_error(app.submit(raw), 400, "validation_error")
        assert "must be a JSON object" in message, raw
    assert_nothing_recorded(env)


def test_a_body_over_max_body_bytes_is_a_413(env: AsyncEnv, app: AsyncApp) -> None:
    """The size limit is checked on the raw bytes, before parsing."""
    body = json.dumps({"input": "x" * MAX_BODY_BYTES})
    message = assert_error(app.submit(body), 413, "payload_too_large")
    assert str(MAX_BODY_BYTES) in message
    assert_nothing_recorded(env)


# --- Idempotency-Key ----------------------------------------------------------------------------


def test_the_same_key_and_body_twice_return_the_same_task_and_enqueue_once(
    env: AsyncEnv, app: AsyncApp
) -> None:
    """A client's retry (even with the JSON re-serialised) is the same task, marked replayed."""
    key = {"Idempotency-Key": "order-42"}
    first = app.submit({"input": "x", "metadata": {"a": "1", "b": "2"}}, headers=key)
    # Same JSON value, different key order and spacing: still the same request.
    second = app.submit('{"metadata": {"b": "2", "a": "1"},   "input": "x"}', headers=key)

    assert first[0] == second[0] == 202
    assert first[2]["task_id"] == second[2]["task_id"]
    assert "Idempotent-Replayed" not in first[1]
    assert second[1]["Idempotent-Replayed"] == "true"
    assert second[1]["Location"] == first[1]["Location"]
    assert task_messages(env) == [task_message(first[2]["task_id"])]


def test_the_same_key_with_a_different_body_is_a_422(env: AsyncEnv, app: AsyncApp) -> None:
    """A reused key must not silently return a task for a different request."""
    key = {"Idempotency-Key": "order-42"}
    task_id = app.submit({"input": "first"}, headers=key)[2]["task_id"]

    message = assert_error(
        app.submit({"input": "second"}, headers=key), 422, "idempotency_key_reused"
    )

    assert task_id in message
    assert len(task_messages(env)) == 1


def test_keys_are_scoped_per_caller(env: AsyncEnv, app: AsyncApp) -> None:
    """Two API keys choosing the same Idempotency-Key get their own tasks; each still dedupes."""
    key = {"Idempotency-Key": "shared-key"}
    alice = post({"input": "x"}, headers=key, api_key_id="key-alice")
    bob = post({"input": "x"}, headers=key, api_key_id="key-bob")
    alice_again = post({"input": "x"}, headers=key, api_key_id="key-alice")

    assert alice[0] == bob[0] == alice_again[0] == 202
    assert alice[2]["task_id"] != bob[2]["task_id"]
    assert alice_again[2]["task_id"] == alice[2]["task_id"]
    assert alice_again[1]["Idempotent-Replayed"] == "true"
    assert sorted(m["task_id"] for m in task_messages(env)) == sorted(
        [alice[2]["task_id"], bob[2]["task_id"]]
    )


def test_idempotency_keys_are_bounded_and_printable(env: AsyncEnv, app: AsyncApp) -> None:
    """A bad key is refused (not truncated) before anything is written; the bound is inclusive."""
    for key in ("k" * (MAX_IDEMPOTENCY_KEY_CHARS + 1), "tab\there"):
        response = app.submit({"input": "x"}, headers={"Idempotency-Key": key})
        assert_error(response, 400, "invalid_idempotency_key")
    assert_nothing_recorded(env)

    status, _, body = app.submit(
        {"input": "x"}, headers={"Idempotency-Key": "k" * MAX_IDEMPOTENCY_KEY_CHARS}
    )
    assert status == 202, body


def _refuse_sends(monkeypatch: pytest.MonkeyPatch, queue: SqsQueue) -> list[dict[str, Any]]:
    attempts: list[dict[str, Any]] = []

    def refuse(body: Mapping[str, Any], *, delay_seconds: int = 0) -> None:
        attempts.append(dict(body))
        raise ClientError(
            {"Error": {"Code": "ServiceUnavailable", "Message": "try later"}}, "SendMessage"
        )

    monkeypatch.setattr(queue, "send", refuse)
    return attempts


def test_a_queue_refusal_without_a_key_is_a_503_and_leaves_no_orphan_task(
    env: AsyncEnv, app: AsyncApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a key nobody can find the task again, so the record is removed."""
    attempts = _refuse_sends(monkeypatch, app.clients.task_queue)

    response = app.submit({"input": "x"})

    assert_error(response, 503, "queue_unavailable")
    assert response[1]["Retry-After"] == str(QUEUE_RETRY_AFTER_SECONDS)
    assert len(attempts) == 1  # the send really was tried
    assert_nothing_recorded(env)


def test_a_queue_refusal_with_a_key_is_a_503_and_the_retry_enqueues_once(
    env: AsyncEnv, app: AsyncApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a key the record stays; the retry with the same key finds it and enqueues it."""
    key = {"Idempotency-Key": "retry-me"}
    with monkeypatch.context() as patch:
        _refuse_sends(patch, app.clients.task_queue)
        response = app.submit({"input": "x"}, headers=key)
    message = assert_error(response, 503, "queue_unavailable")
    assert response[1]["Retry-After"] == str(QUEUE_RETRY_AFTER_SECONDS)
    assert "same Idempotency-Key" in message
    assert queue_depth(env.sqs, env.task_queue_url) == 0
    [kept] = [item for item in table_items(env) if item["pk"]["S"].startswith("task#")]
    assert "enqueued_at" not in kept

    status, retry_headers, body = app.submit({"input": "x"}, headers=key)
    again = app.submit({"input": "x"}, headers=key)

    assert status == 202, body
    # The retry is the first acceptance this caller sees; the third request repeats it.
    assert "Idempotent-Replayed" not in retry_headers
    assert again[1]["Idempotent-Replayed"] == "true"
    assert body["task_id"] == kept["task_id"]["S"]
    assert again[2]["task_id"] == body["task_id"]
    task = env.store().get(body["task_id"], now=int(time.time()))
    assert task is not None
    assert task.enqueued_at is not None
    # Enqueued by the first successful retry only, not again by the third request.
    assert task_messages(env) == [task_message(body["task_id"])]


# --- callback URLs: the SSRF guard at submit ----------------------------------------------------


# (callback_url, what the message must say)
UNSAFE_CALLBACK_URLS = [
    ("https://10.0.0.1/x", "10.0.0.1 is a private address"),
    ("https://169.254.169.254/latest/meta-data", "the instance metadata address"),
    ("https://[fd00:ec2::254]/", "the instance metadata address"),
    ("https://internal.example.com/hook", "resolves to 10.1.2.3, a private address"),
    # One public and one private address: the client could connect to either.
    ("https://mixed.example.com/hook", "resolves to 192.168.7.8, a private address"),
    ("https://unknown.example.com/hook", "does not resolve"),
    ("ftp://hooks.example.com/x", "must use https"),
]


def test_unsafe_callback_urls_are_refused_with_the_reason(env: AsyncEnv, app: AsyncApp) -> None:
    """Private, metadata, unresolvable and mixed public/private targets are refused, saying why,
    before anything is written or enqueued."""
    for url, why in UNSAFE_CALLBACK_URLS:
        message = assert_error(
            app.submit({"input": "x", "callback_url": url}), 400, "invalid_callback_url"
        )
        assert why in message, (url, message)
    assert_nothing_recorded(env)


@pytest.mark.parametrize("allow_http_loopback", ["true", "false"])
def test_plain_http_to_a_public_host_is_refused_either_way(
    make_app: AppFactory, dns: FakeDNS, allow_http_loopback: str
) -> None:
    """The loopback allowance for development never opens plain http to public hosts."""
    env, app = make_app({"CALLBACK_ALLOW_HTTP_LOOPBACK": allow_http_loopback})

    response = app.submit({"input": "x", "callback_url": "http://example.com/hook"})

    message = assert_error(response, 400, "invalid_callback_url")
    assert "must use https" in message
    assert_nothing_recorded(env)


def test_a_public_https_callback_url_is_accepted(
    env: AsyncEnv, app: AsyncApp, dns: FakeDNS
) -> None:
    """The guard resolves the name and lets a public address through."""
    status, _, body = app.submit({"input": "x", "callback_url": HOOK_URL})

    assert status == 202, body
    assert "hooks.example.com" in dns.lookups
    task = env.store().get(body["task_id"], now=int(time.time()))
    assert task is not None
    assert task.callback_url == HOOK_URL
    assert len(task_messages(env)) == 1


def test_a_callback_url_marked_gone_is_refused(env: AsyncEnv, app: AsyncApp) -> None:
    """An endpoint that answered 410 gets no new tasks; other URLs are unaffected."""
    env.store().mark_endpoint_gone(HOOK_URL, now=int(time.time()), ttl_seconds=3600)

    message = assert_error(
        app.submit({"input": "x", "callback_url": HOOK_URL}), 400, "callback_url_gone"
    )

    assert "410 Gone" in message
    assert queue_depth(env.sqs, env.task_queue_url) == 0
    other = app.submit({"input": "x", "callback_url": "https://hooks.example.com/other"})
    assert other[0] == 202, other


# --- inbound signatures: GitHub style -----------------------------------------------------------

GITHUB_SECRET = "github-webhook-secret-value"


def github_app(make_app: AppFactory, **overrides: str) -> tuple[AsyncEnv, AsyncApp]:
    arn = create_secret("agent/github-inbound", GITHUB_SECRET)
    return make_app(
        {"INBOUND_SIGNATURE_STYLE": "github", "INBOUND_SIGNATURE_SECRET_ARN": arn, **overrides}
    )


def test_github_only_a_valid_signature_over_the_exact_body_is_accepted(
    make_app: AppFactory,
) -> None:
    """Forged, unsigned or altered requests are 401 and cost no write and no message; the
    X-Hub-Signature-256 over the raw body with the secret from Secrets Manager is accepted."""
    env, app = github_app(make_app)
    body = json.dumps({"input": "triage issue 7"}).encode()
    valid = {"X-Hub-Signature-256": github_signature(body, GITHUB_SECRET)}
    refused: list[tuple[str, bytes, dict[str, str]]] = [
        ("wrong secret", body, {"X-Hub-Signature-256": github_signature(body, "other-secret")}),
        ("missing header", body, {}),
        ("tampered body", json.dumps({"input": "delete everything"}).encode(), valid),
        # Unsigned garbage: the signature is checked before JSON parsing, so 401, not 400.
        ("unsigned non-JSON", b"not json", {}),
    ]
    for case, sent, headers in refused:
        response = app.submit(sent, headers=headers)
        message = assert_error(response, 401, "invalid_signature")
        assert "X-Hub-Signature-256" in message, case
        assert GITHUB_SECRET not in message
    assert_nothing_recorded(env)

    status, _, accepted = app.submit(body, headers=valid)

    assert status == 202, accepted
    assert task_messages(env) == [task_message(accepted["task_id"])]


def test_github_a_custom_signature_header_is_used(make_app: AppFactory) -> None:
    """INBOUND_SIGNATURE_HEADER names the header; the default name is then not enough."""
    env, app = github_app(make_app, INBOUND_SIGNATURE_HEADER="X-Signature")
    body = json.dumps({"input": "x"}).encode()
    signature = github_signature(body, GITHUB_SECRET)

    default_header = app.submit(body, headers={"X-Hub-Signature-256": signature})
    custom_header = app.submit(body, headers={"X-Signature": signature})

    assert "X-Signature" in assert_error(default_header, 401, "invalid_signature")
    assert custom_header[0] == 202, custom_header
    assert len(task_messages(env)) == 1


def test_github_a_redelivery_with_the_same_delivery_id_is_the_same_task(
    make_app: AppFactory,
) -> None:
    """X-GitHub-Delivery doubles as the Idempotency-Key: a redelivery does not run twice."""
    env, app = github_app(make_app)
    body = json.dumps({"input": "x"}).encode()
    signature = github_signature(body, GITHUB_SECRET)

    def deliver(delivery_id: str) -> Response:
        return app.submit(
            body, headers={"X-Hub-Signature-256": signature, "X-GitHub-Delivery": delivery_id}
        )

    first, redelivered, other = deliver("d-1"), deliver("d-1"), deliver("d-2")

    assert first[0] == redelivered[0] == other[0] == 202
    assert redelivered[2]["task_id"] == first[2]["task_id"]
    assert redelivered[1]["Idempotent-Replayed"] == "true"
    assert other[2]["task_id"] != first[2]["task_id"]
    assert len(task_messages(env)) == 2


def test_an_unreadable_inbound_secret_is_a_503_and_records_nothing(make_app: AppFactory) -> None:
    """When the secret cannot be read, no request is accepted unverified."""
    env, app = make_app(
        {
            "INBOUND_SIGNATURE_STYLE": "github",
            "INBOUND_SIGNATURE_SECRET_ARN": (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf"
            ),
        }
    )
    body = json.dumps({"input": "x"}).encode()

    response = app.submit(body, headers={"X-Hub-Signature-256": github_signature(body, "x")})

    assert_error(response, 503, "signature_secret_unavailable")
    assert_nothing_recorded(env)


# --- inbound signatures: Standard Webhooks ------------------------------------------------------


def standard_app(
    make_app: AppFactory, secret: str, **overrides: str
) -> tuple[AsyncEnv, AsyncApp, str]:
    arn = create_secret("agent/standard-inbound", secret)
    env, app = make_app(
        {"INBOUND_SIGNATURE_STYLE": "standard", "INBOUND_SIGNATURE_SECRET_ARN": arn, **overrides}
    )
    return env, app, arn


def standard_request(
    secret: str, msg_id: str, *, age_seconds: int = 0, text: str = "x"
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"input": text}).encode()
    return body, signed_headers(msg_id, int(time.time()) - age_seconds, body, [secret])


def submit_signed(app: AsyncApp, request: tuple[bytes, dict[str, str]]) -> Response:
    body, headers = request
    return app.submit(body, headers=headers)


def test_standard_only_fresh_valid_signatures_are_accepted(make_app: AppFactory) -> None:
    """A 6-minute-old timestamp (tolerance 300 s), a foreign secret or an altered body is 401
    and records nothing; headers from our own signer, fresh, are accepted."""
    secret = generate_secret()
    env, app, _ = standard_app(make_app, secret)
    tampered_headers = standard_request(secret, "msg_tampered")[1]
    refused: list[tuple[tuple[bytes, dict[str, str]], str]] = [
        (
            standard_request(secret, "msg_old", age_seconds=360),
            "s in the past; the tolerance is 300 s",
        ),
        (standard_request(generate_secret(), "msg_forged"), "no v1 signature"),
        ((json.dumps({"input": "something else"}).encode(), tampered_headers), "no v1 signature"),
        ((b'{"input": "x"}', {}), "header is missing"),
    ]
    for request, expected in refused:
        message = assert_error(submit_signed(app, request), 401, "invalid_signature")
        assert expected in message, message
    assert_nothing_recorded(env)

    status, _, accepted = submit_signed(app, standard_request(secret, "msg_1"))

    assert status == 202, accepted
    assert task_messages(env) == [task_message(accepted["task_id"])]


def test_standard_a_replayed_request_returns_the_first_task(make_app: AppFactory) -> None:
    """The same signed request twice (same webhook-id) is one task: the id is the key."""
    secret = generate_secret()
    env, app, _ = standard_app(make_app, secret)
    body, headers = standard_request(secret, "msg_replayed")

    first = app.submit(body, headers=headers)
    replay = app.submit(body, headers=headers)

    assert first[0] == replay[0] == 202
    assert replay[2]["task_id"] == first[2]["task_id"]
    assert "Idempotent-Replayed" not in first[1]
    assert replay[1]["Idempotent-Replayed"] == "true"
    assert task_messages(env) == [task_message(first[2]["task_id"])]


def test_standard_rotation_accepts_old_and_new_secret_during_the_overlap(
    make_app: AppFactory, dns: FakeDNS
) -> None:
    """After put_secret_value, senders on either secret keep working during the overlap."""
    old, new = generate_secret(), generate_secret()
    env, app, arn = standard_app(make_app, old)
    assert submit_signed(app, standard_request(old, "msg_before"))[0] == 202

    env.secrets.put_secret_value(SecretId=arn, SecretString=new)
    # The warm app's RotatingSecret caches the secret for 5 minutes, so it does not see the new
    # value yet (that is how a rotation spreads: within the cache TTL). A fresh app stands for a
    # container started (or whose cache expired) after the rotation.
    assert submit_signed(app, standard_request(new, "msg_too_early"))[0] == 401
    install_async_app(env, ScriptedLLM(), resolve=dns)

    by_old = submit_signed(app, standard_request(old, "msg_old_secret"))
    by_new = submit_signed(app, standard_request(new, "msg_new_secret"))
    by_neither = submit_signed(app, standard_request(generate_secret(), "msg_forged"))

    assert by_old[0] == 202, by_old
    assert by_new[0] == 202, by_new
    assert_error(by_neither, 401, "invalid_signature")
    assert len(task_messages(env)) == 3


def test_standard_rotation_without_overlap_rejects_the_old_secret(
    make_app: AppFactory, dns: FakeDNS
) -> None:
    """With CALLBACK_ROTATION_OVERLAP_SECONDS=0 only the current secret verifies."""
    old, new = generate_secret(), generate_secret()
    env, app, arn = standard_app(make_app, old, CALLBACK_ROTATION_OVERLAP_SECONDS="0")
    env.secrets.put_secret_value(SecretId=arn, SecretString=new)
    # A fresh app: the one built before the rotation would serve the cached old secret.
    install_async_app(env, ScriptedLLM(), resolve=dns)

    by_old = submit_signed(app, standard_request(old, "msg_old_secret"))
    by_new = submit_signed(app, standard_request(new, "msg_new_secret"))

    assert_error(by_old, 401, "invalid_signature")
    assert by_new[0] == 202, by_new
    assert len(task_messages(env)) == 1
