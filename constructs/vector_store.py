"""The agent memory's vector store: Aurora Serverless v2 PostgreSQL (pgvector), private, closed."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager

from constructs import Construct
from constructs.secure_defaults import (
    MEMORY_ADMIN_USER,
    MEMORY_CLUSTER_PARAMETERS,
    MEMORY_COPY_TAGS_TO_SNAPSHOT,
    MEMORY_ENGINE_VERSION,
    MEMORY_IAM_AUTHENTICATION,
    MEMORY_LOG_EXPORTS,
    MEMORY_PORT,
)

# Aurora Serverless v2's capacity range and its auto-pause delay (RDS API limits).
_MAX_ACU = 256
_AUTO_PAUSE_RANGE = (300, 86_400)


@dataclass(frozen=True)
class VectorStoreProps:
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    """Where the instances go: subnets without a route out (the VPC's data tier)."""
    cluster_identifier: str
    """The cluster's name; also names its log group, which must exist before RDS writes to it."""
    database_name: str
    min_acu: float
    """0: the writer pauses after ``auto_pause`` without connections (storage is still billed)."""
    max_acu: float
    auto_pause: Duration | None
    """Only with ``min_acu`` 0; None otherwise."""
    backup_retention: Duration
    deletion_protection: bool
    encryption_key: kms.IKey
    """Encrypts the storage, the credentials secret and the exported logs."""
    log_retention: logs.RetentionDays
    removal_policy: RemovalPolicy
    description: str


class VectorStore(Construct):
    """``self.cluster`` (one Serverless v2 writer) reachable only by what the stack admits.

    ``self.security_group`` starts closed: no inbound, no outbound; the stack admits its clients
    with ``client.connections.allow_to(store, ...)``. ``self.credentials`` holds the generated
    master credentials (JSON with ``username``, ``password``, ``host``, ``port``, ``dbname``);
    ``self.secret`` is that secret as attached to the cluster; ``self.url`` is
    ``postgresql://<writer endpoint>:<port>/<database>?sslmode=require``, without credentials
    (``self.user`` is the user).
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: VectorStoreProps) -> None:
        super().__init__(scope, construct_id)
        _check(props)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=props.vpc,
            description=f"{props.description}: vector store, reachable only from the agent tasks",
            # A database never opens connections; the only rules are the ingress the stack adds.
            allow_all_outbound=False,
        )
        self.connections = ec2.Connections(
            security_groups=[self.security_group], default_port=ec2.Port.tcp(MEMORY_PORT)
        )
        # The log group RDS exports to, created first so it has a retention and the key (RDS
        # would otherwise create it itself, unencrypted and kept forever).
        self.log_group = logs.LogGroup(
            self,
            "PostgresqlLogs",
            log_group_name=f"/aws/rds/cluster/{props.cluster_identifier}/postgresql",
            retention=props.log_retention,
            encryption_key=props.encryption_key,
            removal_policy=props.removal_policy,
        )
        self.credentials = rds.DatabaseSecret(
            self,
            "Credentials",
            username=MEMORY_ADMIN_USER,
            encryption_key=props.encryption_key,
        )
        self.credentials.apply_removal_policy(props.removal_policy)
        engine = rds.DatabaseClusterEngine.aurora_postgres(version=MEMORY_ENGINE_VERSION)
        self.cluster = rds.DatabaseCluster(
            self,
            "Cluster",
            engine=engine,
            parameter_group=rds.ParameterGroup(
                self, "Parameters", engine=engine, parameters=dict(MEMORY_CLUSTER_PARAMETERS)
            ),
            cluster_identifier=props.cluster_identifier,
            writer=rds.ClusterInstance.serverless_v2(
                "Writer", publicly_accessible=False, auto_minor_version_upgrade=True
            ),
            serverless_v2_min_capacity=props.min_acu,
            serverless_v2_max_capacity=props.max_acu,
            serverless_v2_auto_pause_duration=props.auto_pause,
            vpc=props.vpc,
            vpc_subnets=props.subnets,
            security_groups=[self.security_group],
            port=MEMORY_PORT,
            credentials=rds.Credentials.from_secret(self.credentials),
            default_database_name=props.database_name,
            storage_encrypted=True,
            storage_encryption_key=props.encryption_key,
            iam_authentication=MEMORY_IAM_AUTHENTICATION,
            backup=rds.BackupProps(retention=props.backup_retention),
            deletion_protection=props.deletion_protection,
            removal_policy=props.removal_policy,
            cloudwatch_logs_exports=list(MEMORY_LOG_EXPORTS),
            copy_tags_to_snapshot=MEMORY_COPY_TAGS_TO_SNAPSHOT,
        )
        self.cluster.node.add_dependency(self.log_group)
        # The attached secret: its ARN is the credentials', but it resolves only once RDS has
        # written the endpoint into the JSON, so consumers that read it wait for the cluster.
        attached = self.cluster.secret
        if attached is None:  # pragma: no cover - credentials from a secret always attach it
            raise RuntimeError("VectorStore: the cluster has no credentials secret")
        self.secret = attached
        self.endpoint = self.cluster.cluster_endpoint.hostname
        self.port = MEMORY_PORT
        self.database_name = props.database_name
        # sslmode=require: the client refuses plain text too (the server already does).
        self.url = (
            f"postgresql://{self.endpoint}:{MEMORY_PORT}/{props.database_name}?sslmode=require"
        )
        self.user = MEMORY_ADMIN_USER
        self.rotation: secretsmanager.RotationSchedule | None = None
        self.rotation_security_group: ec2.SecurityGroup | None = None
        self.rotation_alarm: cloudwatch.Alarm | None = None

    def rotate_credentials(
        self, *, every: Duration, subnets: ec2.SubnetSelection, function_name: str
    ) -> ec2.SecurityGroup:
        """Rotate the master password every ``every`` with Secrets Manager's hosted rotation.

        Single user (``PostgreSQLSingleUser``): the function changes the master user's own
        password (``ALTER USER``) and stores it. The multi-user scheme alternates two users,
        cloning the first with a second secret as the superuser; here the runtime connects as the
        master user itself (it creates the extension, table and indexes), and there is no other
        superuser to clone it with, so single user it is. Its one window (the password changes
        in setSecret, the secret's AWSCURRENT label moves in finishSecret) is closed by the
        runtime, which on an authentication failure re-reads the secret and also tries the
        AWSPENDING version (runtime/memory/credentials.py).

        The function (created at deploy time by the ``AWS::SecretsManager-2024-09-16`` transform)
        runs in ``subnets``, which need a route to Secrets Manager (a NAT gateway, or the VPC's
        interface endpoint: the caller admits the returned group to it). Its security group may
        reach only the store (5432) and HTTPS (Secrets Manager); nothing may reach it. It is
        named ``function_name`` so that ``self.rotation_alarm`` can watch its errors: a failed
        step fails the invocation, and Secrets Manager keeps the current password.
        """
        if self.rotation is not None:
            raise ValueError("VectorStore.rotate_credentials: the credentials already rotate")
        security_group = ec2.SecurityGroup(
            self,
            "RotationSecurityGroup",
            vpc=self.cluster.vpc,
            description="Vector store password rotation: to the store and Secrets Manager only",
            allow_all_outbound=False,
        )
        # The function's calls to Secrets Manager (through the NAT gateway or an endpoint).
        security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS: the Secrets Manager API"
        )
        security_group.connections.allow_to(
            self.connections, ec2.Port.tcp(MEMORY_PORT), "password rotation: ALTER USER"
        )
        # On the attached secret: its JSON carries the endpoint the function connects to, and
        # its reference makes the schedule wait for the attachment (that is, for the cluster).
        self.rotation = self.secret.add_rotation_schedule(
            "Rotation",
            hosted_rotation=secretsmanager.HostedRotation.postgre_sql_single_user(
                function_name=function_name,
                vpc=self.cluster.vpc,
                vpc_subnets=subnets,
                security_groups=[security_group],
            ),
            automatically_after=every,
            # The first rotation waits for the schedule: a deploy never changes the password
            # under tasks that are starting at the same moment.
            rotate_immediately_on_update=False,
        )
        self.rotation_security_group = security_group
        self.rotation_alarm = cloudwatch.Alarm(
            self,
            "FailedRotation",
            alarm_description=(
                f"{function_name}: a step of the memory database's password rotation failed; "
                "the current password stays in use (docs/key-rotation.md)"
            ),
            metric=cloudwatch.Metric(
                namespace="AWS/Lambda",
                metric_name="Errors",
                dimensions_map={"FunctionName": function_name},
                period=Duration.minutes(5),
                statistic="Sum",
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        return security_group


def _check(props: VectorStoreProps) -> None:
    if not 0 <= props.min_acu <= props.max_acu <= _MAX_ACU:
        raise ValueError(
            f"VectorStoreProps: need 0 <= min_acu <= max_acu <= {_MAX_ACU} (got "
            f"{props.min_acu:g}, {props.max_acu:g})"
        )
    if (props.auto_pause is not None) != (props.min_acu == 0):
        raise ValueError(
            "VectorStoreProps.auto_pause must be set exactly when min_acu is 0: only an "
            "instance that scales to 0 ACU pauses"
        )
    if props.auto_pause is not None and not (
        _AUTO_PAUSE_RANGE[0] <= props.auto_pause.to_seconds() <= _AUTO_PAUSE_RANGE[1]
    ):
        raise ValueError(
            f"VectorStoreProps.auto_pause must be {_AUTO_PAUSE_RANGE[0]}-{_AUTO_PAUSE_RANGE[1]} "
            f"seconds (got {props.auto_pause.to_seconds()})"
        )
