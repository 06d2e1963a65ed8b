"""A hardened Fargate task definition with one container: the unit the service and worker run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs

from constructs import Construct
from constructs.secure_defaults import (
    CONTAINER_INIT_PROCESS,
    CONTAINER_READONLY_ROOT,
    CONTAINER_SCRATCH_PATH,
    CONTAINER_USER,
    DEPLOYMENT_CIRCUIT_BREAKER,
    DEPLOYMENT_MAX_PERCENT,
    DEPLOYMENT_MIN_HEALTHY_PERCENT,
    LOG_DRIVER_BUFFER,
    LOG_DRIVER_MODE,
)

# Fargate waits at most this long between SIGTERM and SIGKILL.
_MAX_STOP_TIMEOUT = Duration.seconds(120)
_SCRATCH_VOLUME = "scratch"
# Environment variable names that would mean a secret travels in plain text.
_SECRET_NAME_HINTS = ("PASSWORD", "SECRET", "TOKEN", "API_KEY")


@dataclass(frozen=True)
class ContainerTaskProps:
    image: ecs.ContainerImage
    command: Sequence[str]
    cpu: int
    memory_mib: int
    architecture: ecs.CpuArchitecture
    environment: Mapping[str, str]
    """Plain configuration only; the construct refuses names that look like secrets."""
    secrets: Mapping[str, ecs.Secret]
    """Injected by ECS at start from Secrets Manager (the execution role reads them)."""
    stop_timeout: Duration
    log_retention: logs.RetentionDays
    encryption_key: kms.IKey
    removal_policy: RemovalPolicy
    port: int | None = None
    health_check_command: Sequence[str] | None = None
    description: str = ""
    log_stream_prefix: str = "app"


class ContainerTask(Construct):
    """``self.task_definition`` running ``self.container`` as a non-root user.

    Read-only root filesystem with an ephemeral volume at /tmp, all Linux capabilities dropped,
    an init process as PID 1, non-blocking logs to a KMS-encrypted log group with
    retention, secrets through ECS ``secrets`` (never ``environment``). ``self.task_role`` starts
    without permissions: the stack grants each task what it uses.
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: ContainerTaskProps) -> None:
        super().__init__(scope, construct_id)
        _check(props)
        self.stop_timeout = props.stop_timeout
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=props.log_retention,
            encryption_key=props.encryption_key,
            removal_policy=props.removal_policy,
        )
        self.task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description=f"{props.description}: the app's own AWS calls",
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=props.cpu,
            memory_limit_mib=props.memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=props.architecture,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
            task_role=self.task_role,
            volumes=[ecs.Volume(name=_SCRATCH_VOLUME)],
        )
        linux = ecs.LinuxParameters(self, "Linux", init_process_enabled=CONTAINER_INIT_PROCESS)
        linux.drop_capabilities(ecs.Capability.ALL)
        health_check = (
            ecs.HealthCheck(
                command=["CMD", *props.health_check_command],
                interval=Duration.seconds(30),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(30),
            )
            if props.health_check_command
            else None
        )
        self.container = self.task_definition.add_container(
            "App",
            container_name="app",
            image=props.image,
            command=list(props.command),
            environment=dict(props.environment),
            secrets=dict(props.secrets),
            user=CONTAINER_USER,
            readonly_root_filesystem=CONTAINER_READONLY_ROOT,
            linux_parameters=linux,
            stop_timeout=props.stop_timeout,
            health_check=health_check,
            port_mappings=(
                [ecs.PortMapping(container_port=props.port, protocol=ecs.Protocol.TCP)]
                if props.port is not None
                else None
            ),
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix=props.log_stream_prefix,
                log_group=self.log_group,
                mode=LOG_DRIVER_MODE,
                max_buffer_size=LOG_DRIVER_BUFFER,
            ),
            essential=True,
        )
        # The only writable path: a volume that lives and dies with the task.
        self.container.add_mount_points(
            ecs.MountPoint(
                container_path=CONTAINER_SCRATCH_PATH,
                source_volume=_SCRATCH_VOLUME,
                read_only=False,
            )
        )

    @property
    def execution_role(self) -> iam.IRole:
        """The role ECS uses to pull the image, write logs and read the secrets at start."""
        return self.task_definition.obtain_execution_role()


def _check(props: ContainerTaskProps) -> None:
    if props.stop_timeout.to_seconds() > _MAX_STOP_TIMEOUT.to_seconds():
        raise ValueError(
            f"ContainerTaskProps.stop_timeout is {props.stop_timeout.to_seconds()} s; Fargate "
            f"allows at most {_MAX_STOP_TIMEOUT.to_seconds()} s between SIGTERM and SIGKILL"
        )
    leaked = sorted(
        name
        for name in props.environment
        if any(hint in name for hint in _SECRET_NAME_HINTS) and not name.endswith("_SECRET_ARN")
    )
    if leaked:
        raise ValueError(
            f"ContainerTaskProps.environment has {', '.join(leaked)}: pass secrets through "
            f"ContainerTaskProps.secrets (ECS reads them from Secrets Manager), never as plain "
            f"environment variables"
        )
    overlap = sorted(set(props.environment) & set(props.secrets))
    if overlap:
        raise ValueError(
            f"ContainerTaskProps: {', '.join(overlap)} is both an environment variable and a secret"
        )


def hardened_fargate_service(
    scope: Construct,
    construct_id: str,
    *,
    cluster: ecs.ICluster,
    task: ContainerTask,
    subnets: ec2.SubnetSelection,
    security_group: ec2.ISecurityGroup,
    health_check_grace_period: Duration | None = None,
    deployment_strategy: ecs.DeploymentStrategy | None = None,
    bake_time: Duration | None = None,
) -> ecs.FargateService:
    """A Fargate service with the deployment defaults every service here shares.

    Private (no public IP, no ECS Exec), rolled out at full capacity with the circuit breaker's
    rollback (secure_defaults), tags propagated to the tasks. ``deployment_strategy`` BLUE_GREEN
    (with ``bake_time``) needs a load balancer target with an alternate target group; the
    circuit breaker stays on either way (ECS applies it to blue/green too).
    """
    return ecs.FargateService(
        scope,
        construct_id,
        cluster=cluster,
        task_definition=task.task_definition,
        vpc_subnets=subnets,
        security_groups=[security_group],
        assign_public_ip=False,
        min_healthy_percent=DEPLOYMENT_MIN_HEALTHY_PERCENT,
        max_healthy_percent=DEPLOYMENT_MAX_PERCENT,
        circuit_breaker=DEPLOYMENT_CIRCUIT_BREAKER,
        deployment_strategy=deployment_strategy,
        bake_time=bake_time,
        health_check_grace_period=health_check_grace_period,
        enable_execute_command=False,
        platform_version=ecs.FargatePlatformVersion.LATEST,
        propagate_tags=ecs.PropagatedTagSource.SERVICE,
    )
