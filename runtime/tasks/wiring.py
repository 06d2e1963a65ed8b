"""The async pattern's clients, built once per process from :class:`TaskSettings`.

boto3 and httpx are imported here, on first use, so a handler's cold start only pays for them
when a request actually needs them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from runtime.tasks.settings import TaskSettings
from runtime.webhooks.ssrf import Resolver, system_resolver

if TYPE_CHECKING:
    import boto3
    import httpx
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs.client import SQSClient

    from runtime.tasks.callbacks import CallbackWorker
    from runtime.tasks.keys import RotatingSecret
    from runtime.tasks.queues import SqsQueue
    from runtime.tasks.store import TaskStore
    from runtime.tasks.worker import TaskWorker
    from runtime.wiring import Dependencies


@dataclass
class TaskClients:
    settings: TaskSettings
    # DNS for the SSRF guard; tests point names at chosen addresses.
    resolve: Resolver = field(default=system_resolver)
    # Where boto3 clients come from; the default session unless a caller (a test) shares one.
    boto_session: boto3.Session | None = None

    @classmethod
    def from_env(cls) -> TaskClients:
        return cls(TaskSettings.from_env(os.environ))

    @cached_property
    def _session(self) -> boto3.Session:
        import boto3

        # One session for all clients: each new Session loads botocore's data files again.
        return self.boto_session or boto3.Session()

    @cached_property
    def store(self) -> TaskStore:
        from runtime.tasks.store import TaskStore

        return TaskStore(
            self.settings.task_table_name,
            client=self._session.client("dynamodb"),
            ttl_seconds=self.settings.task_ttl_seconds,
        )

    @cached_property
    def _sqs(self) -> SQSClient:
        return self._session.client("sqs")

    def _queue(self, url: str) -> SqsQueue:
        from runtime.tasks.queues import SqsQueue

        return SqsQueue(url, client=self._sqs)

    @cached_property
    def task_queue(self) -> SqsQueue:
        return self._queue(self.settings.task_queue_url)

    @cached_property
    def callback_queue(self) -> SqsQueue:
        return self._queue(self.settings.callback_queue_url)

    @cached_property
    def callback_dlq(self) -> SqsQueue:
        return self._queue(self.settings.callback_dlq_url)

    @cached_property
    def _secrets_client(self) -> SecretsManagerClient:
        return self._session.client("secretsmanager")

    def _secret(self, arn: str) -> RotatingSecret:
        from runtime.tasks.keys import RotatingSecret

        return RotatingSecret(
            arn,
            client=self._secrets_client,
            overlap_seconds=self.settings.callback_rotation_overlap_seconds,
        )

    @cached_property
    def signing_secret(self) -> RotatingSecret:
        return self._secret(self.settings.callback_signing_secret_arn)

    @cached_property
    def inbound_secret(self) -> RotatingSecret | None:
        arn = self.settings.inbound_signature_secret_arn
        return self._secret(arn) if arn else None

    @cached_property
    def http_client(self) -> httpx.Client:
        import httpx

        # One pool per process; each attempt sets its own timeout.
        return httpx.Client()

    def task_worker(self, agent: Dependencies) -> TaskWorker:
        """The task worker every consumer runs (the Lambda, the container worker)."""
        from runtime.tasks.worker import AgentOptions, TaskWorker

        return TaskWorker(
            store=self.store,
            sessions=agent.store,
            tools=agent.tools,
            callback_queue=self.callback_queue,
            settings=self.settings,
            agent=AgentOptions(
                max_iterations=agent.settings.agent_max_iterations,
                system_prompt=agent.settings.agent_system_prompt or None,
            ),
        )

    def callback_worker(self) -> CallbackWorker:
        """The callback worker every consumer runs (the Lambda, the container worker)."""
        from runtime.tasks.callbacks import CallbackWorker

        return CallbackWorker(
            store=self.store,
            callback_queue=self.callback_queue,
            callback_dlq=self.callback_dlq,
            signing_secrets=self.signing_secret.values,
            http_client=self.http_client,
            settings=self.settings,
            resolve=self.resolve,
        )
