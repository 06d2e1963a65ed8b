"""The local targets a run starts when no ``--host`` is given, all on 127.0.0.1, all stopped after.

``agent_service``: the container service exactly as the image runs it (``python -m
runtime.service serve``: uvicorn, uvloop, bearer auth), its sessions in a real ``redis-server``,
its model the fake of :mod:`loadtest.servers` behind the real OpenAI-compatible client.

``webhook_stack``: the asynchronous pattern end to end. ``POST /webhook`` and ``GET
/tasks/{id}`` through the real ingress Lambda handler (:mod:`loadtest.servers` turns HTTP into
API Gateway events), the task and callback queues as Redis queues, the real container queue
worker (``python -m runtime.service worker``, task and callback consumers) running the agent and
delivering signed callbacks to the receiver in the load process.

Why these backends. The queues are Redis queues (:mod:`runtime.tasks.redis_queue`): a production
backend of the container worker (KEDA scales on them), with SQS's semantics, served by a real
server over a socket. The task table and the callback signing secret have no stand-in but AWS's
APIs, so they are in moto's server mode (``ThreadedMotoServer``) on 127.0.0.1; every AWS client
of the child processes is pointed there by ``AWS_ENDPOINT_URL`` and given fake credentials, so
nothing can reach a real account. moto runs in a thread of this (the CLI) process, which only
waits for locust while a run lasts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
REDIS_INSTALL_HINT = "sudo apt-get install -y redis-server (or: make setup)"
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
FAKE_REGION = "us-east-1"
TASK_TABLE = "loadtest-tasks"


class LocalTargetError(RuntimeError):
    """A local target could not start; the message says which and where its log is."""


@dataclass(frozen=True)
class LocalOptions:
    out_dir: Path
    # Seconds the fake model takes per call: 0 measures our code alone.
    model_latency_seconds: float = 0.0
    # Queue worker processes of the webhook stack (each runs one task at a time).
    workers: int = 2


@dataclass(frozen=True)
class ServiceTarget:
    url: str
    token: str


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    # The receiver's port in the load process, and the URL tasks name for their callback.
    receiver_port: int
    callback_url: str
    callback_secret: str


def free_port() -> int:
    """A port nothing listens on now (the OS picks it; a race with another process is unlikely)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _base_environment() -> dict[str, str]:
    """The children's environment: the bare minimum from ours, nothing AWS or app-specific.

    A developer's own ``AWS_PROFILE`` or ``LLM_*`` variables must not leak into a local target
    and send its traffic anywhere real. The trust store does pass (``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR``, which httpx reads): an https callback is verified as a deployment would.
    """
    keep = (
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TMPDIR",
        "SYSTEMROOT",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    )
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _Processes:
    """Child processes with a log file each, stopped in reverse order of start."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._running: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def log_path(self, name: str) -> Path:
        return self._log_dir / f"{name}.log"

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path(name).open("wb")
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and servers, no shell
            argv, env=dict(env), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        self._running.append((name, process, log))
        return process

    def stop_all(self) -> None:
        for _name, process, _log in reversed(self._running):
            if process.poll() is None:
                process.terminate()
        for _name, process, log in reversed(self._running):
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
        self._running.clear()

    def failed(self, name: str, process: subprocess.Popen[bytes], what: str) -> LocalTargetError:
        status = process.poll()
        state = f"exited with status {status}" if status is not None else "did not get ready"
        return LocalTargetError(f"{what} {state}; see {self.log_path(name)}")


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _wait_http_ok(url: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our loopback URL
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


def _wait_log_line(path: Path, needle: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and needle in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


@dataclass(frozen=True)
class _Redis:
    port: int
    password: str

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"


def _start_redis(processes: _Processes) -> _Redis:
    binary = shutil.which("redis-server")
    if binary is None:
        raise LocalTargetError(f"redis-server is not installed: {REDIS_INSTALL_HINT}")
    redis = _Redis(port=free_port(), password=secrets.token_urlsafe(24))
    # No persistence (nothing written to disk); a password like ElastiCache's AUTH token.
    argv = [binary, "--port", str(redis.port), "--bind", LOOPBACK, "--requirepass", redis.password]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--maxclients", "10000"]
    process = processes.start("redis-server", argv, _base_environment())
    if not _wait_listening(redis.port, process):
        raise processes.failed("redis-server", process, "redis-server")
    return redis


def _start_model(processes: _Processes, latency_seconds: float) -> str:
    port = free_port()
    argv = [sys.executable, "-m", "loadtest.servers", "model", "--port", str(port)]
    argv += ["--latency", repr(latency_seconds)]
    process = processes.start("fake-model", argv, _base_environment())
    if not _wait_listening(port, process):
        raise processes.failed("fake-model", process, "the fake model")
    return f"http://{LOOPBACK}:{port}/v1"


def _agent_environment(redis: _Redis, model_url: str) -> dict[str, str]:
    """The agent's settings (runtime.settings.RuntimeSettings) as a container gets them."""
    return {
        "SESSION_STORE": "redis",
        "REDIS_URL": redis.url,
        "REDIS_PASSWORD": redis.password,
        "SESSION_TTL_SECONDS": "3600",
        "LLM_PROVIDER": "openai-compatible",
        "LLM_MODEL_ID": "loadtest-model",
        "LLM_BASE_URL": model_url,
        "LLM_REQUEST_TIMEOUT_SECONDS": "30",
        # As every config's llm.max_attempts (3): a transport error is retried as in a container.
        "LLM_MAX_ATTEMPTS": "3",
        "AGENT_MAX_ITERATIONS": "4",
        "MAX_MESSAGE_CHARS": "8000",
        "MAX_BODY_BYTES": "65536",
    }


@contextlib.contextmanager
def agent_service(options: LocalOptions) -> Iterator[ServiceTarget]:
    """The container service on 127.0.0.1 with a generated token, until the block ends."""
    processes = _Processes(options.out_dir / "logs")
    try:
        redis = _start_redis(processes)
        model_url = _start_model(processes, options.model_latency_seconds)
        port = free_port()
        token = secrets.token_urlsafe(32)
        env = {
            **_base_environment(),
            **_agent_environment(redis, model_url),
            "SERVICE_HOST": LOOPBACK,
            "SERVICE_PORT": str(port),
            "SERVICE_AUTH_TOKEN": token,
            # The load decides the concurrency; the service's own cap (100) must not cut it.
            "SERVICE_MAX_CONCURRENT_SESSIONS": "10000",
            "SERVICE_LOG_LEVEL": "WARNING",
            "SERVICE_UI": "false",
        }
        argv = [sys.executable, "-m", "runtime.service", "serve"]
        process = processes.start("agent-service", argv, env)
        url = f"http://{LOOPBACK}:{port}"
        if not _wait_http_ok(f"{url}/readyz", process):
            raise processes.failed("agent-service", process, "the agent service")
        yield ServiceTarget(url=url, token=token)
    finally:
        processes.stop_all()


def _aws_environment(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "loadtest",
        "AWS_SECRET_ACCESS_KEY": "loadtest",  # moto's fake credentials
        "AWS_DEFAULT_REGION": FAKE_REGION,
        "AWS_REGION": FAKE_REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _create_aws_resources(endpoint: str, signing_secret: str) -> str:
    """The task table and the signing secret in moto; returns the secret's ARN."""
    import boto3

    session = boto3.Session(
        aws_access_key_id="loadtest",
        aws_secret_access_key="loadtest",  # noqa: S106 - moto's fake credentials
        region_name=FAKE_REGION,
    )
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    dynamodb.create_table(
        TableName=TASK_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    dynamodb.update_time_to_live(
        TableName=TASK_TABLE,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )
    secrets_client = session.client("secretsmanager", endpoint_url=endpoint)
    return secrets_client.create_secret(
        Name="loadtest/callback-signing-secret", SecretString=signing_secret
    )["ARN"]


def _task_environment(redis: _Redis, signing_arn: str) -> dict[str, str]:
    """runtime.tasks.settings.TaskSettings, with short back-offs so a failure shows in the run."""
    queue = f"{redis.url}#loadtest"
    return {
        "TASK_TABLE_NAME": TASK_TABLE,
        "TASK_QUEUE_URL": f"{queue}-tasks",
        "CALLBACK_QUEUE_URL": f"{queue}-callbacks",
        "CALLBACK_DLQ_URL": f"{queue}-callbacks-dead",
        "TASK_TTL_SECONDS": "86400",
        "IDEMPOTENCY_WINDOW_SECONDS": "3600",
        "TASK_MAX_RECEIVE_COUNT": "3",
        "TASK_LEASE_SECONDS": "120",
        "TASK_RETRY_BASE_SECONDS": "1",
        "TASK_RETRY_MAX_SECONDS": "5",
        "INBOUND_SIGNATURE_STYLE": "none",
        "CALLBACK_SIGNING_SECRET_ARN": signing_arn,
        "CALLBACK_TIMEOUT_SECONDS": "5",
        "CALLBACK_MAX_ATTEMPTS": "3",
        "CALLBACK_BASE_DELAY_SECONDS": "1",
        "CALLBACK_MAX_DELAY_SECONDS": "5",
        "CALLBACK_ROTATION_OVERLAP_SECONDS": "0",
        # The receiver is on 127.0.0.1 over plain http: allowed for loopback only, locally.
        "CALLBACK_ALLOW_HTTP_LOOPBACK": "true",
        "CALLBACK_GONE_TTL_SECONDS": "3600",
    }


@contextlib.contextmanager
def webhook_stack(options: LocalOptions) -> Iterator[WebhookTarget]:
    """Ingress, queues, workers and stores on 127.0.0.1, until the block ends."""
    from moto.server import ThreadedMotoServer

    from runtime.webhooks.signing import generate_secret

    processes = _Processes(options.out_dir / "logs")
    # werkzeug (under moto) logs every request to stderr: noise on the report, and CPU taken
    # from the run.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address=LOOPBACK, port=moto_port, verbose=False)
    moto.start()
    try:
        endpoint = f"http://{LOOPBACK}:{moto_port}"
        signing_secret = generate_secret()
        signing_arn = _create_aws_resources(endpoint, signing_secret)
        redis = _start_redis(processes)
        model_url = _start_model(processes, options.model_latency_seconds)
        env = {
            **_base_environment(),
            **_aws_environment(endpoint),
            **_agent_environment(redis, model_url),
            **_task_environment(redis, signing_arn),
        }
        api_port = free_port()
        ingress_env = {
            **env,
            "POWERTOOLS_SERVICE_NAME": "loadtest-webhook-ingress",
            "POWERTOOLS_METRICS_NAMESPACE": "Loadtest",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        argv = [sys.executable, "-m", "loadtest.servers", "webhook-api", "--port", str(api_port)]
        ingress = processes.start("webhook-api", argv, ingress_env)
        worker_env = {
            **env,
            "WORKER_QUEUES": "both",
            # Short polls and drain: the run's end is not held up by an idle worker.
            "WORKER_RECEIVE_WAIT_SECONDS": "1",
            "WORKER_DRAIN_SECONDS": "5",
            "WORKER_VISIBILITY_SECONDS": "60",
        }
        workers = [
            (
                f"queue-worker-{number}",
                processes.start(
                    f"queue-worker-{number}",
                    [sys.executable, "-m", "runtime.service", "worker"],
                    worker_env,
                ),
            )
            for number in range(1, options.workers + 1)
        ]
        if not _wait_listening(api_port, ingress):
            raise processes.failed("webhook-api", ingress, "the webhook API")
        for name, worker in workers:
            # Ready once it logs its start: tasks sent before would wait for its imports.
            if not _wait_log_line(processes.log_path(name), "worker starting", worker):
                raise processes.failed(name, worker, "the queue worker")
        receiver_port = free_port()
        yield WebhookTarget(
            url=f"http://{LOOPBACK}:{api_port}",
            receiver_port=receiver_port,
            callback_url=f"http://{LOOPBACK}:{receiver_port}/callback",
            callback_secret=signing_secret,
        )
    finally:
        processes.stop_all()
        moto.stop()
