"""The webhook / async agent: accept a task (202), run it from a queue, call back with the result.

POST /webhook -> ingress Lambda -> task table + task queue -> worker Lambda (agent run, sessions)
-> callback queue -> callback worker Lambda -> signed POST to the caller's callback_url.
GET /tasks/{task_id} reads the task record. Both queues have a dead-letter queue with an alarm.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager

from config.environment import agent_environment, task_environment, usage_environment
from config.model import DeploymentConfig
from constructs import Construct
from constructs.acknowledgements import acknowledge_nag, skip_checkov
from constructs.agent_function import AgentFunction, AgentFunctionProps
from constructs.dashboards import PatternDashboard
from constructs.data_key import DataKey
from constructs.function_alarms import FunctionAlarmProps, FunctionAlarms
from constructs.json_schema import to_api_gateway_schema
from constructs.secure_defaults import (
    CALLBACK_WORKER_HANDLER,
    SIGNING_SECRET_EXCLUDE_PUNCTUATION,
    SIGNING_SECRET_LENGTH,
    TASK_WORKER_HANDLER,
    WEBHOOK_INGRESS_HANDLER,
)
from constructs.session_table import SessionTable
from constructs.task_queue import TaskQueue, TaskQueueProps
from constructs.task_table import TaskTable
from constructs.webhook_api import WebhookApi, WebhookApiProps
from runtime.tasks.schema import task_request_schema
from stacks.dr_placement import DrPlacement
from stacks.shared import (
    api_stage_props,
    grant_bedrock_invoke,
    lambda_releases,
    llm_usage_metrics,
    log_retention,
    nag_resource,
    removal_policy,
)

# Per callback in a batch, on top of the HTTP timeout: signing, the conditional task update and,
# on failure, the retry's enqueue. Per invocation: a cold start and the signing secret's read.
CALLBACK_OVERHEAD_SECONDS = 2
CALLBACK_INVOCATION_OVERHEAD_SECONDS = 5

# What an unconfigured inbound signature would use; the runtime reads the variable regardless.
_QUEUE_DLQ_REASON = (
    "consumes an SQS queue through an event source mapping, never invoked asynchronously; "
    "failed messages go to the queue's redrive dead-letter queue, which has an alarm"
)
_NO_VPC_REASON = (
    "reaches only public endpoints (AWS APIs; the worker also the LLM API, the callback worker "
    "the callers' URLs); a VPC would add NAT gateway cost and cold-start latency, isolating nothing"
)


def callback_function_timeout(config: DeploymentConfig) -> Duration:
    """The callback worker's timeout, derived so that a full batch always fits.

    The worker delivers a batch's callbacks one after another, each bounded by
    ``callback.timeout_seconds``; a timeout shorter than the worst batch would kill the
    invocation mid-batch, and every message in it, delivered or not, would come back and count
    a receive. At most 10 x (60 + 2) + 5 = 625 s with the config's limits, within Lambda's 900 s.
    """
    callback = config.webhook.callback
    return Duration.seconds(
        callback.batch_size * (callback.timeout_seconds + CALLBACK_OVERHEAD_SECONDS)
        + CALLBACK_INVOCATION_OVERHEAD_SECONDS
    )


class AsyncAgentStack(Stack):
    """Everything one webhook/async agent needs; its shape depends only on ``config`` values.

    ``llm_secret_stack`` is the stack that owns the secret named ``llm.api_key_secret_name``
    (the serverless stack); it is required when the config has one. See ``_llm_key``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        llm_secret_stack: Stack | None = None,
        env: Environment | None = None,
        dr: DrPlacement | None = None,
        web_acl_arn: str | None = None,
    ) -> None:
        """``web_acl_arn``: the deployment's regional web ACL (config ``waf``), for the stage."""
        if config.llm.api_key_secret_name is not None and llm_secret_stack is None:
            raise ValueError(
                "AsyncAgentStack: llm_secret_stack is required when llm.api_key_secret_name is "
                "set: pass the stack that creates that secret (the serverless stack)"
            )
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"{config.name}: webhook/async agent (API Gateway, SQS, Lambda, DynamoDB)",
        )
        self._config = config
        webhook = config.webhook
        removal = removal_policy(config)

        data_key = DataKey(
            self,
            "DataKey",
            description=f"{config.name}: async agent data at rest",
            removal_policy=removal,
        ).key
        # With dr: global tables (primary region) or their replicas (standby region).
        tasks = TaskTable(
            self,
            "TaskTable",
            encryption_key=data_key,
            removal_policy=removal,
            global_table=dr.global_table(self, "tasks") if dr else None,
        )
        # The worker's agent sessions: its own table, so the async pattern deploys alone.
        sessions = SessionTable(
            self,
            "Sessions",
            encryption_key=data_key,
            removal_policy=removal,
            global_table=dr.global_table(self, "async-sessions") if dr else None,
        )

        worker_timeout = Duration.seconds(webhook.worker.timeout_seconds)
        worker_window = Duration.seconds(webhook.worker.max_batching_window_seconds)
        callback_timeout = callback_function_timeout(config)
        task_queue = self._queue("TaskQueue", "agent task", worker_timeout, worker_window, data_key)
        # Retries wait as per-message DelaySeconds on this same queue; its DLQ also receives the
        # callbacks that exhausted their attempts, sent by the callback worker with the last error.
        callback_queue = self._queue(
            "CallbackQueue", "result callback", callback_timeout, Duration.seconds(0), data_key
        )
        for dead_letters in (task_queue.dlq, callback_queue.dlq):
            acknowledge_nag(
                dead_letters,
                "Serverless-SQSRedrivePolicy",
                "this queue is the dead-letter queue: its messages wait for a person (its alarm "
                "fires on the first), and a redrive policy would only move them further away",
            )

        # With dr: created (and replicated) in the primary region; a standby reads the replicas,
        # so callbacks are signed with the same secret whichever region sends them.
        signing_secret: secretsmanager.ISecret
        if dr is not None and dr.standby:
            signing_secret = dr.replicated_secret(
                self, "CallbackSigningSecret", config.callback_signing_secret_name
            )
        else:
            signing_secret = secretsmanager.Secret(
                self,
                "CallbackSigningSecret",
                secret_name=config.callback_signing_secret_name,
                description=f"{config.name}: signs result callbacks (Standard Webhooks); give it "
                "to callback receivers",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    exclude_punctuation=SIGNING_SECRET_EXCLUDE_PUNCTUATION,
                    password_length=SIGNING_SECRET_LENGTH,
                ),
                encryption_key=data_key,
                removal_policy=removal,
                replica_regions=dr.secret_replicas(self) if dr else None,
            )
            acknowledge_nag(
                signing_secret,
                "AwsSolutions-SMG4",
                "receivers must learn a new signing secret before it is used; rotation is "
                "put-secret-value plus callback.rotation_overlap_seconds of double signatures, and "
                "the rotation Lambda arrives with the operations issue (#7)",
            )
        inbound_secret: secretsmanager.ISecret | None = None
        if webhook.inbound_signature is not None and dr is not None and dr.standby:
            inbound_secret = dr.replicated_secret(
                self, "InboundSignatureSecret", webhook.inbound_signature.secret_name
            )
        elif webhook.inbound_signature is not None:
            # A random placeholder, like the LLM key: the real value is the webhook source's
            # secret, put in after deploy, so it never appears in code, config or template.
            inbound_secret = secretsmanager.Secret(
                self,
                "InboundSignatureSecret",
                secret_name=webhook.inbound_signature.secret_name,
                description=f"{config.name}: the webhook source's signing secret "
                f"({webhook.inbound_signature.style}); set after deploy",
                encryption_key=data_key,
                removal_policy=removal,
                replica_regions=dr.secret_replicas(self) if dr else None,
            )
            acknowledge_nag(
                inbound_secret,
                "AwsSolutions-SMG4",
                "the webhook source (e.g. GitHub) generates this secret and holds the other "
                "copy; it is rotated there and then put here; callback.rotation_overlap_seconds "
                "keeps the previous value valid meanwhile",
            )
        llm_secret = self._llm_key(llm_secret_stack)

        environment = {
            **agent_environment(
                config,
                session_table_name=sessions.table.table_name,
                llm_secret_arn=llm_secret.secret_arn if llm_secret else None,
            ),
            **task_environment(
                config,
                task_table_name=tasks.table.table_name,
                task_queue_url=task_queue.queue.queue_url,
                callback_queue_url=callback_queue.queue.queue_url,
                callback_dlq_url=callback_queue.dlq.queue_url,
                signing_secret_arn=signing_secret.secret_arn,
                inbound_secret_arn=inbound_secret.secret_arn if inbound_secret else None,
            ),
            **usage_environment(config),
        }

        # All three get the same environment (one contract, runtime/tasks/settings.py); each role
        # gets only the grants below.
        def function(
            function_id: str, handler: str, description: str, memory_mb: int, timeout: Duration,
            reserved_concurrency: int,
        ) -> AgentFunction:  # fmt: skip
            return AgentFunction(
                self,
                function_id,
                props=AgentFunctionProps(
                    handler=handler,
                    description=f"{config.name}: {description}",
                    service_name=config.name,
                    memory_mb=memory_mb,
                    timeout=timeout,
                    reserved_concurrency=reserved_concurrency,
                    provisioned_concurrency=None,
                    environment=environment,
                    log_retention=log_retention(config),
                    encryption_key=data_key,
                    removal_policy=removal,
                    powertools_layer_version=config.lambda_.powertools_layer_version,
                    xray_sdk=config.observability.xray_sdk_subsegments,
                ),
            )

        ingress = function(
            "Ingress", WEBHOOK_INGRESS_HANDLER, "webhook ingress and task status API",
            webhook.ingress.memory_mb, Duration.seconds(webhook.ingress.timeout_seconds),
            webhook.ingress.reserved_concurrency,
        )  # fmt: skip
        worker = function(
            "Worker", TASK_WORKER_HANDLER, "agent task worker (task queue)",
            webhook.worker.memory_mb, worker_timeout, webhook.worker.reserved_concurrency,
        )  # fmt: skip
        callback_worker = function(
            "CallbackWorker", CALLBACK_WORKER_HANDLER, "result callback sender (callback queue)",
            webhook.callback.memory_mb, callback_timeout, webhook.callback.reserved_concurrency,
        )  # fmt: skip
        acknowledge_nag(
            ingress.function,
            "Serverless-LambdaDLQ",
            "invoked synchronously by API Gateway only; a dead-letter queue receives failed "
            "asynchronous invocations, which this function never gets",
        )
        skip_checkov(
            ingress.function,
            "CKV_AWS_116",
            "invoked synchronously by API Gateway only; a dead-letter queue receives failed "
            "asynchronous invocations, which this function never gets",
        )
        for consumer in (worker, callback_worker):
            acknowledge_nag(consumer.function, "Serverless-LambdaDLQ", _QUEUE_DLQ_REASON)
            skip_checkov(consumer.function, "CKV_AWS_116", _QUEUE_DLQ_REASON)
        for fn in (ingress, worker, callback_worker):
            skip_checkov(fn.function, "CKV_AWS_117", _NO_VPC_REASON)

        # Queue consumers: partial batch responses, so one failed message is retried alone. The
        # mappings invoke the live alias, like API Gateway does, never $LATEST.
        task_events = lambda_.EventSourceMapping(
            self,
            "TaskQueueEvents",
            target=worker.alias,
            event_source_arn=task_queue.queue.queue_arn,
            batch_size=webhook.worker.batch_size,
            max_batching_window=worker_window,
            max_concurrency=webhook.worker.max_concurrency,
            report_batch_item_failures=True,
        )
        callback_events = lambda_.EventSourceMapping(
            self,
            "CallbackQueueEvents",
            target=callback_worker.alias,
            event_source_arn=callback_queue.queue.queue_arn,
            batch_size=webhook.callback.batch_size,
            # The poller never scales past what the function may run: a throttled batch would
            # come back and count a receive towards the DLQ without having been tried.
            max_concurrency=webhook.callback.reserved_concurrency,
            report_batch_item_failures=True,
        )
        for mapping in (task_events, callback_events):
            acknowledge_nag(
                mapping,
                "Serverless-LambdaEventSourceMappingDestination",
                "an SQS event source mapping has no on-failure destination (Lambda supports it "
                "for streams and Kafka only); the queue's redrive policy dead-letters instead",
            )

        # The stack grants; constructs never reach into each other. Each role gets only its own.
        # Ingress: store the task and its idempotency key, enqueue it, verify signatures.
        tasks.table.grant_read_write_data(ingress.role)
        task_queue.queue.grant_send_messages(ingress.role)
        if inbound_secret is not None:
            inbound_secret.grant_read(ingress.role)
        # Worker: claim and complete tasks, run the agent on its session, enqueue the callback.
        # The consume grant includes sqs:ChangeMessageVisibility, which the worker uses to back
        # off a failed try (retry_base_seconds doubled per receive) instead of the full timeout.
        tasks.table.grant_read_write_data(worker.role)
        sessions.table.grant_read_write_data(worker.role)
        task_queue.queue.grant_consume_messages(worker.role)
        callback_queue.queue.grant_send_messages(worker.role)
        if llm_secret is not None:
            self._grant_llm_key(worker, llm_secret)
        if config.llm.provider == "bedrock":
            grant_bedrock_invoke(worker, config.llm)
        # Callback worker: claim attempts on the task, re-send retries with a delay, dead-letter
        # exhausted callbacks, sign with the signing secret.
        tasks.table.grant_read_write_data(callback_worker.role)
        callback_queue.queue.grant_consume_messages(callback_worker.role)
        callback_queue.queue.grant_send_messages(callback_worker.role)
        callback_queue.dlq.grant_send_messages(callback_worker.role)
        signing_secret.grant_read(callback_worker.role)
        for fn in (ingress, worker, callback_worker):
            for action in ("kms:ReEncrypt*", "kms:GenerateDataKey*"):
                acknowledge_nag(
                    fn.role_policy,
                    f"AwsSolutions-IAM5[Action::{action}]",
                    "CDK's table and queue grants need the KMS data-key actions of the stack's "
                    "customer-managed key; the statement names that one key, so the wildcard "
                    "spans actions, not keys",
                )

        self.api = WebhookApi(
            self,
            "WebhookApi",
            props=WebhookApiProps(
                handler=ingress.alias,
                # The runtime's schema, so gateway and handler validate the same document.
                request_schema=to_api_gateway_schema(
                    task_request_schema(config.agent.max_message_chars)
                ),
                signed_webhooks=webhook.inbound_signature is not None,
                stage=api_stage_props(config, data_key, web_acl_arn),
            ),
        )
        # The same thresholds as the sessions function (config.alarms): p99 flags slow model or
        # tool calls; the config requires it below the worker's timeout, so it fires before
        # tasks time out, not after.
        self.worker_alarms = FunctionAlarms(
            self,
            "WorkerAlarms",
            props=FunctionAlarmProps(
                function=worker.function,
                errors_per_period=config.alarms.errors_per_period,
                throttles_per_period=config.alarms.throttles_per_period,
                p99_duration_ms=config.alarms.p99_duration_ms,
                period=Duration.minutes(config.alarms.period_minutes),
                evaluation_periods=config.alarms.evaluation_periods,
            ),
        )

        # Safe releases: every function's live alias (API Gateway and both event source
        # mappings invoke it) is released through CodeDeploy.
        self.releases = lambda_releases(
            self,
            config,
            {
                "Ingress": (ingress.alias, "webhook ingress"),
                "Worker": (worker.alias, "agent task worker"),
                "CallbackWorker": (callback_worker.alias, "result callback sender"),
            },
        )
        self.rollback_alarms = self.releases.rollback_alarms

        # With dr (primary region): DynamoDB's replication latency against the RPO, per table.
        self.replication_alarms = [
            alarm
            for alarm in (tasks.replication_alarm, sessions.replication_alarm)
            if alarm is not None
        ]
        self.dashboard: PatternDashboard | None = None
        if config.observability.dashboards:
            self.dashboard = PatternDashboard(self, "Dashboard", name=self.stack_name)
            self.dashboard.header(f"{config.name}: webhook / async agent")
            self.dashboard.rest_api(self.api.api, "Webhook API")
            self.dashboard.lambda_function(ingress.function, "Ingress function")
            self.dashboard.queue(task_queue.queue, task_queue.dlq, "Task queue")
            self.dashboard.lambda_function(worker.function, "Task worker function")
            self.dashboard.queue(callback_queue.queue, callback_queue.dlq, "Callback queue")
            self.dashboard.lambda_function(callback_worker.function, "Callback worker function")
            self.dashboard.table(tasks.table, "Task table")
            usage = llm_usage_metrics(config)
            if usage is not None:
                self.dashboard.llm_usage(usage)
        self.task_table = tasks.table
        self.session_table = sessions.table
        self.task_queue = task_queue
        self.callback_queue = callback_queue
        # The container worker reads these ARNs too (stacks/container_agent_stack.py).
        self.signing_secret = signing_secret
        self.inbound_secret = inbound_secret
        self.ingress, self.worker, self.callback_worker = ingress, worker, callback_worker
        api_url = self.api.api.url
        CfnOutput(self, "WebhookUrl", value=f"{api_url}webhook", description="POST a task here")
        CfnOutput(self, "TasksUrl", value=f"{api_url}tasks/", description="GET <TasksUrl><task_id>")
        CfnOutput(self, "TaskQueueUrl", value=task_queue.queue.queue_url)
        CfnOutput(self, "TaskDlqUrl", value=task_queue.dlq.queue_url)
        CfnOutput(self, "CallbackDlqUrl", value=callback_queue.dlq.queue_url)
        # Redrive (aws sqs start-message-move-task) takes the DLQ's ARN, not its URL.
        CfnOutput(self, "TaskDlqArn", value=task_queue.dlq.queue_arn)
        CfnOutput(self, "CallbackDlqArn", value=callback_queue.dlq.queue_arn)
        CfnOutput(self, "CallbackSigningSecretArn", value=signing_secret.secret_arn)

    def _queue(
        self,
        construct_id: str,
        purpose: str,
        consumer_timeout: Duration,
        max_batching_window: Duration,
        data_key: kms.IKey,
    ) -> TaskQueue:
        """A work queue and its DLQ; both queues share the config's retention and redrive."""
        queue = self._config.webhook.queue
        return TaskQueue(
            self,
            construct_id,
            props=TaskQueueProps(
                purpose=purpose,
                consumer_timeout=consumer_timeout,
                max_batching_window=max_batching_window,
                max_receive_count=queue.max_receive_count,
                retention=Duration.days(queue.retention_days),
                dlq_retention=Duration.days(queue.dlq_retention_days),
                oldest_message_age_alarm=Duration.seconds(queue.oldest_message_age_alarm_seconds),
                encryption_key=data_key,
                removal_policy=removal_policy(self._config),
            ),
        )

    def _llm_key(self, owner: Stack | None) -> secretsmanager.ISecret | None:
        """The LLM key secret, read by name from the stack that owns it.

        Secrets Manager names are unique per account and region, and the serverless stack already
        creates ``llm.api_key_secret_name``; a second secret of that name would fail the deploy,
        and one under another name would make operators put the same key in twice. So this stack
        creates none: it imports the secret by name (no CloudFormation export, so neither stack
        is locked to the other's resources) and depends on the owner, so ``cdk deploy`` of this
        stack deploys the owner first and ``cdk destroy`` of the owner takes this stack too.
        """
        name = self._config.llm.api_key_secret_name
        if name is None or owner is None:
            return None
        self.add_stack_dependency(
            owner, f"reads the LLM key secret {name} that {owner.stack_name} owns"
        )
        return secretsmanager.Secret.from_secret_name_v2(self, "LlmApiKey", name)

    def _grant_llm_key(self, function: AgentFunction, secret: secretsmanager.ISecret) -> None:
        # Imported by name, so the grant ends in "-??????": Secrets Manager appends six random
        # characters to a secret's ARN, and ? matches exactly one, so no other secret matches.
        secret.grant_read(function.role)
        # The secret is encrypted with the owning stack's key, whose id this stack cannot know
        # without an export. Decrypt is allowed only through Secrets Manager, and only for that
        # one secret (Secrets Manager puts the secret's ARN in the encryption context).
        key_arns = f"arn:{self.partition}:kms:{self.region}:{self.account}:key/*"
        function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[key_arns],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": f"secretsmanager.{self.region}.{self.url_suffix}"
                    },
                    "StringLike": {
                        "kms:EncryptionContext:SecretARN": f"{secret.secret_arn}-??????"
                    },
                },
            )
        )
        acknowledge_nag(
            function.role_policy,
            "AwsSolutions-IAM5[Resource::" + nag_resource(self, key_arns) + "]",
            "the LLM key secret is encrypted with the serverless stack's key, unknown here "
            "without an export; kms:ViaService and the SecretARN encryption context limit the "
            "grant to decrypting that one secret through Secrets Manager",
        )
