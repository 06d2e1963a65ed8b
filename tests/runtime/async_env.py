"""The async (webhook) pattern's AWS side in moto, shaped like the stack builds it.

One task table (``pk`` + TTL), a session table, the task queue and the callback queue each with
a DLQ after ``maxReceiveCount`` 5, a generated signing secret, and the function environment the
stack sets (``TASK_*``, ``CALLBACK_*`` and the agent's variables), so handlers build themselves
from ``os.environ`` exactly as in Lambda.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from runtime.dynamodb_store import DynamoDBSessionStore
from runtime.handlers import callback_worker, task_worker, webhook_api
from runtime.llm.types import LLMClient
from runtime.settings import RuntimeSettings
from runtime.tasks.settings import TaskSettings
from runtime.tasks.store import TaskStore
from runtime.tasks.wiring import TaskClients
from runtime.tools import default_registry
from runtime.webhooks.signing import generate_secret
from runtime.webhooks.ssrf import Resolver, system_resolver
from runtime.wiring import Dependencies
from tests.fakes.sqs_lambda import EventSource, queue_depth
from tests.runtime.conftest import (
    TABLE_NAME,
    TTL_SECONDS,
    FakeLambdaContext,
    api_event,
    boto_session,
    create_session_table,
    create_ttl_table,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs.client import SQSClient

TASK_TABLE = "agent-tasks-test"
MAX_RECEIVE_COUNT = 5
QUEUE_VISIBILITY_SECONDS = 30


def create_task_table(client: DynamoDBClient, name: str = TASK_TABLE) -> str:
    return create_ttl_table(client, name, "pk")


def create_queue_with_dlq(sqs: SQSClient, name: str) -> tuple[str, str]:
    dlq_url = sqs.create_queue(
        QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"}
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(QUEUE_VISIBILITY_SECONDS),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
            ),
        },
    )["QueueUrl"]
    return url, dlq_url


@dataclass
class AsyncEnv:
    dynamodb: DynamoDBClient
    sqs: SQSClient
    secrets: SecretsManagerClient
    task_queue_url: str
    task_dlq_url: str
    callback_queue_url: str
    callback_dlq_url: str
    signing_secret_arn: str
    signing_secret: str
    environ: dict[str, str]

    def settings(self) -> TaskSettings:
        return TaskSettings.from_env(self.environ)

    def store(self) -> TaskStore:
        settings = self.settings()
        return TaskStore(
            settings.task_table_name, client=self.dynamodb, ttl_seconds=settings.task_ttl_seconds
        )

    def clients(self, *, resolve: Resolver = system_resolver) -> TaskClients:
        return TaskClients(self.settings(), resolve=resolve, boto_session=boto_session())


def make_async_env(
    monkeypatch: pytest.MonkeyPatch, overrides: Mapping[str, str] | None = None
) -> AsyncEnv:
    """Create the resources (moto must be active) and export the functions' environment."""
    session = boto_session()
    dynamodb = session.client("dynamodb")
    sqs = session.client("sqs")
    secrets = session.client("secretsmanager")
    create_task_table(dynamodb)
    create_session_table(dynamodb)
    task_queue, task_dlq = create_queue_with_dlq(sqs, "agent-tasks")
    callback_queue, callback_dlq = create_queue_with_dlq(sqs, "agent-callbacks")
    signing_secret = generate_secret()
    signing_arn = secrets.create_secret(
        Name="agent/webhook-signing-secret", SecretString=signing_secret
    )["ARN"]
    environ = {
        "TASK_TABLE_NAME": TASK_TABLE,
        "TASK_QUEUE_URL": task_queue,
        "CALLBACK_QUEUE_URL": callback_queue,
        "CALLBACK_DLQ_URL": callback_dlq,
        "TASK_TTL_SECONDS": "86400",
        "IDEMPOTENCY_WINDOW_SECONDS": "3600",
        "TASK_MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
        "TASK_LEASE_SECONDS": "60",
        # Back-offs of 0: a test cannot wait minutes; the delays are asserted separately.
        "TASK_RETRY_BASE_SECONDS": "0",
        "TASK_RETRY_MAX_SECONDS": "0",
        "MAX_BODY_BYTES": "65536",
        "MAX_MESSAGE_CHARS": "8000",
        "INBOUND_SIGNATURE_STYLE": "none",
        "CALLBACK_SIGNING_SECRET_ARN": signing_arn,
        "CALLBACK_TIMEOUT_SECONDS": "2",
        "CALLBACK_MAX_ATTEMPTS": "4",
        "CALLBACK_BASE_DELAY_SECONDS": "0",
        "CALLBACK_MAX_DELAY_SECONDS": "0",
        "CALLBACK_ROTATION_OVERLAP_SECONDS": "86400",
        "CALLBACK_ALLOW_HTTP_LOOPBACK": "true",
        "CALLBACK_GONE_TTL_SECONDS": "3600",
        # The agent (RuntimeSettings), as the serverless stack sets it.
        "SESSION_TABLE_NAME": TABLE_NAME,
        "SESSION_TTL_SECONDS": str(TTL_SECONDS),
        "LLM_PROVIDER": "openai-compatible",
        "LLM_MODEL_ID": "fake-model",
        "LLM_BASE_URL": "https://llm.invalid/v1",
        "LLM_REQUEST_TIMEOUT_SECONDS": "5",
        "LLM_MAX_ATTEMPTS": "1",
        "AGENT_MAX_ITERATIONS": "4",
        "AGENT_SYSTEM_PROMPT": "You are a test agent.",
        **(overrides or {}),
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return AsyncEnv(
        dynamodb=dynamodb,
        sqs=sqs,
        secrets=secrets,
        task_queue_url=task_queue,
        task_dlq_url=task_dlq,
        callback_queue_url=callback_queue,
        callback_dlq_url=callback_dlq,
        signing_secret_arn=signing_arn,
        signing_secret=signing_secret,
        environ=environ,
    )


# --- the three functions wired to the env, with a fake model -----------------------------------


@dataclass
class AsyncApp:
    """Ingress, task worker and callback worker handlers over one :class:`AsyncEnv`."""

    env: AsyncEnv
    clients: TaskClients
    task_source: EventSource
    callback_source: EventSource

    def submit(
        self,
        body: Mapping[str, Any] | str | bytes,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        event = api_event("POST", "/webhook", {}, body=body, headers=headers, stage="v1")
        response = webhook_api.lambda_handler(event, FakeLambdaContext())
        headers_out = {
            **{k: str(v[0]) for k, v in (response.get("multiValueHeaders") or {}).items()},
            **(response.get("headers") or {}),
        }
        return response["statusCode"], headers_out, json.loads(response["body"])

    def get_task(self, task_id: str) -> tuple[int, dict[str, Any]]:
        event = api_event("GET", "/tasks/{task_id}", {"task_id": task_id}, stage="v1")
        response = webhook_api.lambda_handler(event, FakeLambdaContext())
        return response["statusCode"], json.loads(response["body"])

    def run_until_idle(self, *, max_rounds: int = 500) -> int:
        """Poll both queues until they hold nothing; returns the rounds it took."""
        for round_number in range(1, max_rounds + 1):
            polled = self.task_source.poll().received + self.callback_source.poll().received
            if not polled and (
                queue_depth(self.env.sqs, self.env.task_queue_url) == 0
                and queue_depth(self.env.sqs, self.env.callback_queue_url) == 0
            ):
                return round_number
        raise AssertionError(f"the queues did not drain in {max_rounds} rounds")


def install_async_app(
    env: AsyncEnv,
    llm: LLMClient,
    *,
    resolve: Resolver = system_resolver,
    batch_size: int = 10,
) -> AsyncApp:
    """Point the three handler modules at ``env`` and ``llm``; undo with :func:`uninstall`."""
    clients = env.clients(resolve=resolve)
    runtime_settings = RuntimeSettings.from_env(env.environ)
    assert runtime_settings.session_table_name is not None  # the env sets SESSION_STORE=dynamodb
    sessions = DynamoDBSessionStore(
        runtime_settings.session_table_name,
        ttl_seconds=runtime_settings.session_ttl_seconds,
        client=env.dynamodb,
    )
    agent = Dependencies(
        settings=runtime_settings,
        store=sessions,
        llm_factory=lambda _budget: llm,
        tools=default_registry(),
    )
    webhook_api.set_clients(clients)
    task_worker.set_dependencies(
        task_worker.WorkerDependencies(
            agent=agent,
            tasks=clients,
            worker=clients.task_worker(agent),
        )
    )
    callback_worker.set_worker((clients.callback_worker(), clients))
    return AsyncApp(
        env=env,
        clients=clients,
        task_source=EventSource(
            env.sqs,
            env.task_queue_url,
            task_worker.lambda_handler,
            lambda: FakeLambdaContext(remaining_millis=300_000),
            batch_size=batch_size,
        ),
        callback_source=EventSource(
            env.sqs,
            env.callback_queue_url,
            callback_worker.lambda_handler,
            lambda: FakeLambdaContext(remaining_millis=60_000),
            batch_size=batch_size,
        ),
    )


def uninstall() -> None:
    webhook_api.set_clients(None)
    task_worker.set_dependencies(None)
    callback_worker.set_worker(None)
