"""The container agent: a Fargate service behind an ALB with Redis sessions, and a queue worker.

clients -> ALB (HTTPS when a certificate is configured, access logs) -> Fargate service (HTTP and
WebSocket sessions in ElastiCache) ; async stack's task queue -> Fargate worker service (scaled
on the backlog per task). All in a VPC of its own with flow logs; the cache sits in subnets with
no route out and admits only the service's security group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import CfnOutput, Duration, Environment, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs

from config.environment import (
    agent_environment,
    memory_environment,
    service_environment,
    task_environment,
    usage_environment,
    worker_environment,
)
from config.model import ECR_IMAGE_URI, ContainerConfig, DeploymentConfig
from constructs import Construct
from constructs.access_log_bucket import AccessLogBucket
from constructs.acknowledgements import acknowledge_nag, skip_checkov
from constructs.agent_service import (
    AgentService,
    AgentServiceProps,
    ScheduledCapacity,
    ServiceRelease,
)
from constructs.agent_vpc import AgentVpc, AgentVpcProps
from constructs.container_task import ContainerTask, ContainerTaskProps
from constructs.dashboards import PatternDashboard
from constructs.data_key import DataKey
from constructs.queue_worker_service import QueueWorkerService, QueueWorkerServiceProps
from constructs.secure_defaults import (
    BEDROCK_INTERFACE_ENDPOINT,
    CONTAINER_INSIGHTS,
    CONTAINER_PORT,
    HEALTHCHECK_COMMAND,
    MEMORY_PORT,
    NAT_LESS_INTERFACE_ENDPOINTS,
    SERVICE_COMMAND,
    SERVICE_TOKEN_LENGTH,
    VPC_CIDR,
    WORKER_COMMAND,
)
from constructs.session_cache import SessionCache, SessionCacheProps
from constructs.web_acl import associate_web_acl
from stacks.shared import (
    deploy_time_azs,
    grant_bedrock_invoke_to_role,
    grant_bedrock_model_to_role,
    llm_usage_metrics,
    log_retention,
    nag_resource,
    removal_policy,
)

# The image's build context: the repository root (``runtime`` is imported as a top-level package),
# filtered by the .dockerignore there.
REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = "Dockerfile"
_PLATFORMS = {
    "arm64": (ecs.CpuArchitecture.ARM64, ecr_assets.Platform.LINUX_ARM64),
    "x86_64": (ecs.CpuArchitecture.X86_64, ecr_assets.Platform.LINUX_AMD64),
}
_ECR_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/"
    r"(?P<name>[^:@]+)(:(?P<tag>[^@]+))?(@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_KMS_DATA_KEY_REASON = (
    "CDK's table and queue grants need the KMS data-key actions of the async stack's "
    "customer-managed key; the statement names that one key, so the wildcard spans actions, "
    "not keys"
)


@dataclass(frozen=True)
class TaskPipeline:
    """What the container worker uses of the async stack; each field is a cross-stack reference.

    The worker consumes the same task queue as the async stack's Lambda worker and keeps their
    contract: tasks, leases and callbacks in the same table and queues, and agent sessions in
    the same session table, so a task's conversation continues whichever worker takes the
    message. Only these are referenced: outputs of the async stack, read with Fn::GetStackOutput
    (cdk.json's weak cross-stack references), so no export pins the async stack's resources.
    """

    task_table: dynamodb.ITable
    session_table: dynamodb.ITable
    task_queue: sqs.IQueue
    callback_queue: sqs.IQueue
    callback_dlq: sqs.IQueue
    signing_secret: secretsmanager.ISecret
    inbound_secret: secretsmanager.ISecret | None


@dataclass(frozen=True)
class MemoryDatabase:
    """The agent memory the tasks use (the memory stack's vector store), when the config has one.

    Each field is a cross-stack reference to the memory stack, which references nothing here:
    this stack admits its tasks to the store (the security group rules live in this stack) and
    lets them read the credentials secret; the store needs to know none of its clients.
    """

    url: str
    """``postgresql://<host>:<port>/<database>[?options]``, without credentials."""
    user: str
    """The database user the tasks connect as (the secret holds its password)."""
    secret: secretsmanager.ISecret
    """The generated credentials (rotated by the memory stack): the tasks read it by ARN."""
    secret_key: kms.IKey
    """The key the secret is encrypted with: the task roles decrypt through Secrets Manager."""
    connections: ec2.IConnectable
    """The store's security group, with its port as the default port."""


def interface_endpoints(config: DeploymentConfig) -> tuple[ec2.InterfaceVpcEndpointAwsService, ...]:
    """The VPC's interface endpoints: none with a NAT gateway; what the tasks call without one."""
    if config.container.nat_gateways:
        return ()
    endpoints: tuple[ec2.InterfaceVpcEndpointAwsService, ...] = NAT_LESS_INTERFACE_ENDPOINTS
    if config.llm.provider == "bedrock" or (
        config.hybrid is not None and config.hybrid.memory.embedder == "bedrock"
    ):
        endpoints = (*endpoints, BEDROCK_INTERFACE_ENDPOINT)
    return endpoints


class ContainerAgentStack(Stack):
    """Everything one container agent needs; its shape depends only on ``config`` values.

    ``llm_secret`` is the LLM key secret the serverless stack owns (required when the config
    names one): ECS injects secrets only by their complete ARN, which an import by name cannot
    give, so this stack references the owner's secret (one stack output) instead of its name.

    ``network`` is a VPC another stack owns (the hybrid architecture's network stack); None: the
    stack builds its own. ``memory`` wires the tasks to the agent memory's vector store.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        tasks: TaskPipeline,
        llm_secret: secretsmanager.ISecret | None = None,
        network: AgentVpc | None = None,
        memory: MemoryDatabase | None = None,
        env: Environment | None = None,
        web_acl_arn: str | None = None,
    ) -> None:
        """``web_acl_arn``: the deployment's regional web ACL (config ``waf``), for the ALB."""
        if memory is not None and config.hybrid is None:
            raise ValueError(
                "ContainerAgentStack: memory needs the config's hybrid section (hybrid.memory), "
                "which holds the embedder the tasks use"
            )
        if config.llm.api_key_secret_name is not None and llm_secret is None:
            raise ValueError(
                "ContainerAgentStack: llm_secret is required when llm.api_key_secret_name is "
                "set: pass the secret the serverless stack creates "
                "(ServerlessAgentStack.llm_secret)"
            )
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"{config.name}: container agent (VPC, ALB, ECS Fargate, ElastiCache)",
        )
        self._max_azs = config.container.max_azs
        container = config.container
        removal = removal_policy(config)
        retention = log_retention(config)
        for owner, reason in (
            (Stack.of(tasks.task_queue), "the worker consumes its task queue and tables"),
            *([(Stack.of(llm_secret), "reads the LLM key secret it owns")] if llm_secret else []),
        ):
            self.add_stack_dependency(owner, reason)

        data_key = DataKey(
            self,
            "DataKey",
            description=f"{config.name}: container agent data at rest",
            removal_policy=removal,
        ).key
        if network is None:
            network = AgentVpc(
                self,
                "Network",
                props=AgentVpcProps(
                    max_azs=container.max_azs,
                    nat_gateways=container.nat_gateways,
                    interface_endpoints=interface_endpoints(config),
                    flow_log_retention=retention,
                    encryption_key=data_key,
                    removal_policy=removal,
                ),
            )
        cluster = ecs.Cluster(
            self, "Cluster", vpc=network.vpc, container_insights_v2=CONTAINER_INSIGHTS
        )
        cache = SessionCache(
            self,
            "SessionCache",
            props=SessionCacheProps(
                vpc=network.vpc,
                subnets=network.data_subnets,
                engine=container.redis.engine,
                node_type=container.redis.node_type,
                num_replicas=container.redis.num_replicas,
                snapshot_retention_days=container.redis.snapshot_retention_days,
                # A restore (docs/restore-runbook.md): CloudFormation replaces the cache.
                snapshot_name=container.redis.restore_from_snapshot,
                encryption_key=data_key,
                removal_policy=removal,
                description=config.name,
            ),
        )

        # --- the two task definitions: one image, one environment contract -----------------
        architecture, _ = _PLATFORMS[container.architecture]
        image = self._image(container)
        llm_key = (
            # Imported by its complete ARN (a reference to the owner's resource): ECS needs it.
            secretsmanager.Secret.from_secret_complete_arn(self, "LlmApiKey", llm_secret.secret_arn)
            if llm_secret is not None
            else None
        )
        # The tasks read the key by ARN (LLM_API_KEY_SECRET_ARN) through the runtime's 5-minute
        # cache, like the Lambdas, not as an ECS secret injected at start: a rotated key
        # (rotation:) reaches running tasks within minutes, and a task older than one rotation
        # period never holds a revoked key.
        llm_key_arn = llm_key.secret_arn if llm_key is not None else None
        # The bearer token every request to the service needs (runtime/service/auth.py): the
        # load balancer is reachable from container.ingress_cidrs, and an open agent endpoint
        # runs up model bills for anyone who finds it. Give it to first-party clients.
        self.service_token = secretsmanager.Secret(
            self,
            "ServiceAuthToken",
            description=f"{config.name}: bearer token for the agent service (HTTP and WebSocket)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=SERVICE_TOKEN_LENGTH, exclude_punctuation=True
            ),
            encryption_key=data_key,
            removal_policy=removal,
        )
        stop_timeout = Duration.seconds(container.stop_timeout_seconds)
        # Imported by its complete ARN, like the LLM key: CDK's grant on the owner's secret would
        # also put this stack's roles into the memory stack's key policy, a reference back.
        memory_secret = (
            secretsmanager.Secret.from_secret_complete_arn(
                self, "MemorySecret", memory.secret.secret_arn
            )
            if memory is not None
            else None
        )
        # The tasks read the database password by ARN (MEMORY_DATABASE_SECRET_ARN), not as an ECS
        # secret injected at start: the memory stack's hosted rotation changes it, and the
        # runtime re-reads the secret on an authentication failure (runtime/memory/credentials.py).
        memory_env = (
            memory_environment(
                config,
                database_url=memory.url,
                database_user=memory.user,
                secret_arn=memory_secret.secret_arn,
            )
            if memory is not None and memory_secret is not None
            else {}
        )

        def task(
            task_id: str, command: tuple[str, ...], cpu: int, memory_mib: int,
            environment: dict[str, str], secrets: dict[str, ecs.Secret], what: str,
            port: int | None = None, health_check: tuple[str, ...] | None = None,
        ) -> ContainerTask:  # fmt: skip
            return ContainerTask(
                self,
                task_id,
                props=ContainerTaskProps(
                    image=image,
                    command=command,
                    cpu=cpu,
                    memory_mib=memory_mib,
                    architecture=architecture,
                    environment=environment,
                    secrets=secrets,
                    stop_timeout=stop_timeout,
                    log_retention=retention,
                    encryption_key=data_key,
                    removal_policy=removal,
                    port=port,
                    health_check_command=health_check,
                    description=f"{config.name}: {what}",
                    log_stream_prefix=what.split()[0],
                ),
            )

        service_task = task(
            "ServiceTask", SERVICE_COMMAND, container.service.cpu, container.service.memory_mib,
            {
                **agent_environment(config, redis_url=cache.url, llm_secret_arn=llm_key_arn),
                **service_environment(
                    config,
                    port=CONTAINER_PORT,
                    stop_timeout_seconds=container.stop_timeout_seconds,
                    # X-Forwarded-* are believed only from inside the VPC: the load balancer.
                    forwarded_allow_ips=VPC_CIDR,
                ),
                **usage_environment(config),
                **memory_env,
            },
            {
                "REDIS_PASSWORD": ecs.Secret.from_secrets_manager(cache.auth_secret),
                "SERVICE_AUTH_TOKEN": ecs.Secret.from_secrets_manager(self.service_token),
            },
            "service (HTTP and WebSocket sessions)",
            port=CONTAINER_PORT, health_check=HEALTHCHECK_COMMAND,
        )  # fmt: skip
        worker_task = task(
            "WorkerTask", WORKER_COMMAND, container.worker.cpu, container.worker.memory_mib,
            {
                # The async pattern's own session table: the Lambda worker consumes the same
                # queue, and a task's session must be the same whichever worker runs it.
                **agent_environment(
                    config,
                    session_table_name=tasks.session_table.table_name,
                    llm_secret_arn=llm_key_arn,
                ),
                **task_environment(
                    config,
                    task_table_name=tasks.task_table.table_name,
                    task_queue_url=tasks.task_queue.queue_url,
                    callback_queue_url=tasks.callback_queue.queue_url,
                    callback_dlq_url=tasks.callback_dlq.queue_url,
                    signing_secret_arn=tasks.signing_secret.secret_arn,
                    inbound_secret_arn=(
                        tasks.inbound_secret.secret_arn if tasks.inbound_secret else None
                    ),
                ),
                **worker_environment(config),
                **usage_environment(config),
                **memory_env,
            },
            {},
            "worker (agent tasks from the task queue)",
        )  # fmt: skip

        # --- services -------------------------------------------------------------------------
        access_logs = AccessLogBucket(
            self, "AccessLogs", retention=Duration.days(config.logs.retention_days)
        )
        self.service = AgentService(
            self,
            "Service",
            props=AgentServiceProps(
                cluster=cluster,
                task=service_task,
                container_port=CONTAINER_PORT,
                vpc=network.vpc,
                task_subnets=network.app_subnets,
                load_balancer_subnets=network.public_subnets,
                certificate_arn=container.certificate_arn,
                ingress_cidrs=container.ingress_cidrs,
                idle_timeout=Duration.seconds(container.alb_idle_timeout_seconds),
                # In-flight requests get the app's drain time at the load balancer, too.
                deregistration_delay=Duration.seconds(container.drain_seconds),
                deletion_protection=config.removal_policy == "retain",
                access_logs=access_logs,
                min_capacity=container.service.min_capacity,
                max_capacity=container.service.max_capacity,
                cpu_target_percent=container.service.cpu_target_percent,
                memory_target_percent=container.service.memory_target_percent,
                requests_per_target=container.service.requests_per_target,
                schedules=[
                    ScheduledCapacity(
                        name=window.name,
                        schedule=window.cron,
                        min_capacity=window.min_capacity,
                        max_capacity=window.max_capacity,
                        time_zone=window.timezone,
                    )
                    for window in container.service.scheduled_scaling
                ],
                # releases.ecs_deployment; the alarms share config.alarms' thresholds.
                release=ServiceRelease(
                    blue_green=config.releases.ecs_deployment == "blue_green",
                    bake_time=Duration.minutes(config.releases.ecs_bake_minutes),
                    errors_per_period=config.alarms.errors_per_period,
                    p99_response_ms=config.alarms.p99_duration_ms,
                    period=Duration.minutes(config.alarms.period_minutes),
                ),
            ),
        )
        self.rollback_alarms = self.service.rollback_alarms
        self.worker = QueueWorkerService(
            self,
            "Worker",
            props=QueueWorkerServiceProps(
                cluster=cluster,
                task=worker_task,
                vpc=network.vpc,
                subnets=network.app_subnets,
                queue=tasks.task_queue,
                min_capacity=container.worker.min_capacity,
                max_capacity=container.worker.max_capacity,
                backlog_per_task=container.worker.backlog_per_task,
            ),
        )

        # --- the stack grants: network paths first, then each role exactly what it uses -------
        for tasks_group in (self.service.security_group, self.worker.security_group):
            # AWS APIs (through the NAT gateway or the VPC endpoints), ECR image layers (S3),
            # and the model API.
            tasks_group.add_egress_rule(
                ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS: AWS APIs and the model API"
            )
            llm_port = config.llm.base_url.port if config.llm.base_url is not None else None
            if llm_port not in (None, 443):
                tasks_group.add_egress_rule(
                    ec2.Peer.any_ipv4(), ec2.Port.tcp(llm_port), "the model API's port"
                )
        cache.allow_from(self.service.security_group, "agent service tasks: session store")
        network.allow_endpoints_from(self.service.security_group, self.worker.security_group)
        if memory is not None and config.hybrid is not None:
            for tasks_group in (self.service.security_group, self.worker.security_group):
                # allow_to from this side: both rules (egress here, ingress on the store's
                # group) land in this stack, so the memory stack references nothing here.
                tasks_group.connections.allow_to(
                    memory.connections, ec2.Port.tcp(MEMORY_PORT), "agent memory (vector store)"
                )
            assert memory_secret is not None  # imported above whenever memory is set
            for memory_client in (service_task, worker_task):
                # The task role: the runtime reads the secret itself (memory_env above). The
                # memory stack's key, through Secrets Manager and for this one secret only.
                memory_secret.grant_read(memory_client.task_role)
                memory_client.task_role.add_to_principal_policy(
                    iam.PolicyStatement(
                        actions=["kms:Decrypt"],
                        resources=[memory.secret_key.key_arn],
                        conditions={
                            "StringEquals": {
                                "kms:ViaService": f"secretsmanager.{self.region}.{self.url_suffix}",
                                "kms:EncryptionContext:SecretARN": memory_secret.secret_arn,
                            }
                        },
                    )
                )
            if config.hybrid.memory.embedder == "bedrock":
                for role in (service_task.task_role, worker_task.task_role):
                    grant_bedrock_model_to_role(role, config.hybrid.memory.embedding_model)

        # The service's own AWS calls: the model only (sessions are in Redis, the key injected).
        if config.llm.provider == "bedrock":
            for role in (service_task.task_role, worker_task.task_role):
                grant_bedrock_invoke_to_role(role, config.llm)
        # The worker: claim and complete tasks, run the agent on the task's session, consume
        # the task queue (including visibility changes: heartbeat and back-off), send callbacks.
        tasks.task_table.grant_read_write_data(worker_task.task_role)
        tasks.session_table.grant_read_write_data(worker_task.task_role)
        tasks.task_queue.grant_consume_messages(worker_task.task_role)
        tasks.callback_queue.grant_send_messages(worker_task.task_role)
        # ECS task scale-in protection: the worker asks its ECS agent to protect the task while
        # it holds a message; the agent calls UpdateTaskProtection with the task role.
        task_arns = (
            f"arn:{self.partition}:ecs:{self.region}:{self.account}:task/{cluster.cluster_name}/*"
        )
        worker_task.task_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["ecs:UpdateTaskProtection"], resources=[task_arns])
        )
        worker_policy = worker_task.task_role.node.find_child("DefaultPolicy")
        acknowledge_nag(
            worker_policy,
            "AwsSolutions-IAM5[Resource::" + self._nag_arn(task_arns, cluster) + "]",
            "a worker protects its own task, whose id exists only at run time; the wildcard "
            "spans the tasks of this stack's cluster and the one action UpdateTaskProtection",
        )
        for action in ("kms:ReEncrypt*", "kms:GenerateDataKey*"):
            acknowledge_nag(
                worker_policy, f"AwsSolutions-IAM5[Action::{action}]", _KMS_DATA_KEY_REASON
            )
        if llm_key is not None:
            for task_definition in (service_task, worker_task):
                llm_key.grant_read(task_definition.task_role)
                self._allow_llm_key_decrypt(task_definition, llm_key)

        self.access_logs = access_logs
        self._acknowledge(config, service_task, worker_task, cache)

        if web_acl_arn is not None:
            # The load balancer is public: the same web ACL as the REST APIs filters it.
            associate_web_acl(
                self,
                "LoadBalancerWebAcl",
                web_acl_arn=web_acl_arn,
                resource_arn=self.service.load_balancer.load_balancer_arn,
                resource=self.service.load_balancer.node.default_child,  # type: ignore[arg-type]
            )
        CfnOutput(self, "ServiceUrl", value=self.service.url, description="the agent service")
        CfnOutput(
            self,
            "ServiceAuthTokenArn",
            value=self.service_token.secret_arn,
            description="the bearer token clients send (Authorization: Bearer, or WebSocket "
            "subprotocols bearer + token)",
        )
        CfnOutput(self, "ClusterName", value=cluster.cluster_name)
        CfnOutput(self, "ServiceName", value=self.service.service.service_name)
        CfnOutput(self, "WorkerServiceName", value=self.worker.service.service_name)
        CfnOutput(self, "AccessLogBucketName", value=access_logs.bucket.bucket_name)
        self.dashboard: PatternDashboard | None = None
        if config.observability.dashboards:
            self.dashboard = PatternDashboard(self, "Dashboard", name=self.stack_name)
            self.dashboard.header(f"{config.name}: container agent")
            self.dashboard.fargate_behind_load_balancer(
                self.service.service,
                "Agent service",
                load_balancer=self.service.load_balancer,
                target_group=self.service.target_group,
            )
            self.dashboard.fargate_service(self.worker.service, "Queue worker")
            # Primary plus replicas: one node each.
            self.dashboard.redis(cache.replication_group, container.redis.num_replicas + 1)
            usage = llm_usage_metrics(config)
            if usage is not None:
                self.dashboard.llm_usage(usage)
        self.cluster = cluster
        self.cache = cache
        self.network = network
        self.service_task = service_task
        self.worker_task = worker_task

    @property
    def availability_zones(self) -> list[str]:
        return deploy_time_azs(self._max_azs)

    def _image(self, container: ContainerConfig) -> ecs.ContainerImage:
        """The repository's Dockerfile as an asset (built by ``cdk deploy``), or ``image_uri``."""
        if container.image_uri is None:
            _, platform = _PLATFORMS[container.architecture]
            # Synth only stages the build context; Docker runs when `cdk deploy` publishes it.
            return ecs.ContainerImage.from_asset(str(REPO_ROOT), file=DOCKERFILE, platform=platform)
        ecr_uri = _ECR_URI.match(container.image_uri)
        if ecr_uri is None:
            return ecs.ContainerImage.from_registry(container.image_uri)
        # A private ECR image: import the repository so the execution role may pull from it.
        repository = ecr.Repository.from_repository_attributes(
            self,
            "ImageRepository",
            repository_arn=(
                f"arn:{self.partition}:ecr:{ecr_uri['region']}:{ecr_uri['account']}:"
                f"repository/{ecr_uri['name']}"
            ),
            repository_name=ecr_uri["name"],
        )
        return ecs.ContainerImage.from_ecr_repository(
            repository, ecr_uri["digest"] or ecr_uri["tag"]
        )

    def _allow_llm_key_decrypt(self, task: ContainerTask, secret: secretsmanager.ISecret) -> None:
        """Let the task role decrypt the LLM key secret, and nothing else with that key."""
        # The secret is encrypted with the serverless stack's key, which this stack does not
        # reference (one more cross-stack value, for nothing): decrypting is allowed only through
        # Secrets Manager and only for that secret (it puts the secret's ARN in the encryption
        # context).
        key_arns = f"arn:{self.partition}:kms:{self.region}:{self.account}:key/*"
        # The task role: the runtime reads the secret itself (see llm_key_arn above).
        role = task.task_role
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[key_arns],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": f"secretsmanager.{self.region}.{self.url_suffix}",
                        "kms:EncryptionContext:SecretARN": secret.secret_arn,
                    }
                },
            )
        )
        acknowledge_nag(
            role.node.find_child("DefaultPolicy"),
            "AwsSolutions-IAM5[Resource::" + nag_resource(self, key_arns) + "]",
            "the LLM key secret is encrypted with the serverless stack's key, unknown here "
            "without an export; kms:ViaService and the SecretARN encryption context limit the "
            "grant to decrypting that one secret through Secrets Manager",
        )

    def _nag_arn(self, arn: str, cluster: ecs.Cluster) -> str:
        """``arn`` as cdk-nag prints it: pseudo parameters and the cluster's Ref in brackets."""
        cluster_ref = self.resolve(cluster.cluster_name)["Ref"]
        return nag_resource(self, arn).replace(cluster.cluster_name, f"<{cluster_ref}>")

    def _acknowledge(
        self,
        config: DeploymentConfig,
        service_task: ContainerTask,
        worker_task: ContainerTask,
        cache: SessionCache,
    ) -> None:
        """The exceptions to security rules this stack needs, each on its resource, with why."""
        container = config.container
        for task in (service_task, worker_task):
            acknowledge_nag(
                task.task_definition,
                "AwsSolutions-ECS2",
                "the environment holds configuration only (limits, queue URLs, secret ARNs); "
                "the LLM key and the cache password arrive as ECS secrets from Secrets Manager, "
                "and the construct refuses secret-like variable names",
            )
            if container.image_uri is None or ECR_IMAGE_URI.match(container.image_uri):
                acknowledge_nag(
                    task.task_definition.obtain_execution_role().node.find_child("DefaultPolicy"),
                    "AwsSolutions-IAM5[Resource::*]",
                    "ecr:GetAuthorizationToken has no resource-level permissions (AWS documents "
                    "Resource * as the only option); the image pull itself is scoped to its "
                    "one repository",
                )
        log_bucket_reason = (
            "this bucket receives the load balancer's access logs; S3 server access logs of it "
            "would need yet another bucket, and the objects here are only written by log "
            "delivery and read by operators"
        )
        acknowledge_nag(self.access_logs.bucket, "AwsSolutions-S1", log_bucket_reason)
        skip_checkov(self.access_logs.bucket, "CKV_AWS_18", log_bucket_reason)
        load_balancer_group = self.service.load_balancer.connections.security_groups[0]
        if "0.0.0.0/0" in container.ingress_cidrs:
            open_reason = (
                "container.ingress_cidrs includes 0.0.0.0/0: an internet-facing load balancer "
                "open to every client on its listener ports only (HTTP 80 redirects when a "
                "certificate is set); narrow ingress_cidrs to restrict who can connect"
            )
            acknowledge_nag(load_balancer_group, "AwsSolutions-EC23", open_reason)
            skip_checkov(load_balancer_group, "CKV_AWS_260", open_reason)
        if container.certificate_arn is None:
            plain_reason = (
                "container.certificate_arn is unset, so there is no certificate to serve HTTPS "
                "with: plain HTTP for development; set it and this port only redirects to HTTPS"
            )
            for check in ("CKV_AWS_2", "CKV_AWS_103"):
                skip_checkov(self.service.listener, check, plain_reason)
        acknowledge_nag(
            self.service_token,
            "AwsSolutions-SMG4",
            "a shared bearer token held by first-party clients: rotating it means handing the "
            "new one to them and redeploying the service; the rotation Lambda with an overlap "
            "window arrives with the operations issue (#7)",
        )
        acknowledge_nag(
            cache.auth_secret,
            "AwsSolutions-SMG4",
            "rotating the ElastiCache AUTH token means modify-replication-group with the ROTATE "
            "strategy and a new deployment of the service; the rotation Lambda arrives with "
            "the operations issue (#7)",
        )
        if container.redis.num_replicas == 0:
            acknowledge_nag(
                cache.replication_group,
                "AwsSolutions-AEC4",
                "container.redis.num_replicas is 0: one node holds sessions that expire by TTL "
                "anyway; losing it ends open conversations, not records; num_replicas >= 1 "
                "turns on Multi-AZ failover",
            )
        if container.redis.engine == "redis":
            acknowledge_nag(
                cache.replication_group,
                "AwsSolutions-AEC5",
                "the port is reachable only from the service's security group, in subnets "
                "without a route out, and needs TLS plus the AUTH token; another port number "
                "would hide nothing from a client already allowed in",
            )
