"""The async pattern's clients, built once per process from :class:`TaskSettings`.

boto3 and httpx are imported here, on first use, so a handler's cold start only pays for them
when a request actually needs them.

Each queue URL picks its client (:meth:`TaskClients.queue_client`): SQS for its ``https://``
URLs, :class:`~runtime.tasks.redis_queue.RedisQueueClient` for ``redis://`` and ``rediss://``
ones, so the task queue can live in Redis while the callbacks stay on SQS, or the other way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, cast

from runtime.tasks.settings import TaskSettings
from runtime.webhooks.ssrf import Resolver, system_resolver

if TYPE_CHECKING:
    import boto3
    import httpx
    from botocore.config import Config
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs.client import SQSClient

    from runtime.tasks.callbacks import CallbackWorker
    from runtime.tasks.keys import RotatingSecret
    from runtime.tasks.queues import SqsQueue
    from runtime.tasks.redis_queue import RedisQueueClient
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
    # The SQS client's botocore config; the queue worker's timeouts outlast its long polls.
    sqs_config: Config | None = None

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
        return self._session.client("sqs", config=self.sqs_config)

    @cached_property
    def redis_queues(self) -> RedisQueueClient:
        """The client of every Redis queue of this process (one connection pool per server)."""
        from runtime.tasks.redis_queue import RedisQueueClient

        password = self.settings.redis_password
        return RedisQueueClient(
            password=password.get_secret_value() if password is not None else None,
            # The task worker treats this receive as the last try; the queue must agree.
            max_receive_count=self.settings.max_receive_count,
        )

    def queue_client(self, url: str) -> SQSClient:
        """The client serving ``url``: Redis for ``redis://`` and ``rediss://``, else SQS."""
        from runtime.tasks.redis_queue import is_redis_queue_url

        if is_redis_queue_url(url):
            # It answers the SQS calls SqsQueue and the queue worker make, with SQS's parameters,
            # replies and errors; the cast keeps their SQSClient annotations.
            return cast("SQSClient", self.redis_queues)
        return self._sqs

    def _queue(self, url: str) -> SqsQueue:
        from runtime.tasks.queues import SqsQueue

        return SqsQueue(url, client=self.queue_client(url))

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
