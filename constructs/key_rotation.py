"""Scheduled rotation of the LLM API key: the rotation Lambda, its schedule and its key source.

Secrets Manager invokes the function (``runtime/rotation``) with the four rotation steps. Where
the new key comes from is the issuer:

* ``OpenAIAdminIssuerProps`` -- OpenAI's Admin API; this construct creates the secret that holds
  the organization admin key (a placeholder until an operator puts the key in);
* ``StagedIssuerProps`` -- an operator stages the next key; this construct creates the staging
  secret, with an empty ``api_key`` so that a rotation before anything is staged fails clearly.

The function's role may touch only the rotated secret (read, put, move stages), read its issuer's
secret, and use the data key only for those secrets (``kms:EncryptionContext:SecretARN``). Only
Secrets Manager, for this account and this secret, may invoke it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager

from config.model import DeploymentConfig, OpenAIAdminIssuerConfig
from constructs import Construct
from constructs.acknowledgements import acknowledge_nag, skip_checkov
from constructs.agent_function import AgentFunction, AgentFunctionProps
from constructs.secure_defaults import ROTATION_HANDLER

# One rotation at a time: two concurrent createSecret calls would issue two keys.
ROTATION_CONCURRENCY = 1
# The staging secret before anything is staged: a JSON object whose api_key is empty, which the
# staged issuer reports as "nothing staged" (not a key, so no credential in the template).
EMPTY_STAGING_TEMPLATE = '{"api_key": ""}'
# Secrets Manager's limits on a rotation schedule.
_MIN_HOURS, _MAX_HOURS = 4, 1000 * 24


@dataclass(frozen=True)
class OpenAIAdminIssuerProps:
    project_id: str
    admin_base_url: str
    admin_key_secret_name: str


@dataclass(frozen=True)
class StagedIssuerProps:
    staging_secret_name: str


@dataclass(frozen=True)
class KeyRotationProps:
    secret: secretsmanager.ISecret
    """The LLM key secret; encrypted with ``encryption_key``."""
    encryption_key: kms.IKey
    """Encrypts the rotated secret, the issuer's secret, the logs and the environment."""
    issuer: OpenAIAdminIssuerProps | StagedIssuerProps
    llm_base_url: str
    """testSecret calls ``GET {llm_base_url}/models`` with the new key."""
    schedule_hours: int
    rotate_immediately: bool
    key_name_prefix: str
    """Names the provider-side accounts: ``<prefix>-<rotation token>``."""
    service_name: str
    memory_mb: int
    timeout: Duration
    log_retention: logs.RetentionDays
    removal_policy: RemovalPolicy
    powertools_layer_version: int
    xray_sdk: bool = False


class KeyRotation(Construct):
    """``self.function`` (an AgentFunction), ``self.schedule``, ``self.issuer_secret``,
    ``self.failure_alarm`` (any failed step; Secrets Manager retries, but someone should look).
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: KeyRotationProps) -> None:
        super().__init__(scope, construct_id)
        _check(props)
        stack = Stack.of(self)
        self.issuer_secret = self._issuer_secret(props)
        environment = {
            "LLM_BASE_URL": props.llm_base_url,
            "ROTATION_KEY_NAME_PREFIX": props.key_name_prefix,
        }
        if isinstance(props.issuer, OpenAIAdminIssuerProps):
            environment |= {
                "ROTATION_ISSUER": "openai_admin",
                "OPENAI_PROJECT_ID": props.issuer.project_id,
                "OPENAI_ADMIN_BASE_URL": props.issuer.admin_base_url,
                "OPENAI_ADMIN_KEY_SECRET_ARN": self.issuer_secret.secret_arn,
            }
        else:
            environment |= {
                "ROTATION_ISSUER": "staged",
                "STAGING_SECRET_ARN": self.issuer_secret.secret_arn,
            }
        self.function = AgentFunction(
            self,
            "Function",
            props=AgentFunctionProps(
                handler=ROTATION_HANDLER,
                description=f"{props.service_name}: rotates the LLM API key (Secrets Manager)",
                service_name=props.service_name,
                memory_mb=props.memory_mb,
                timeout=props.timeout,
                reserved_concurrency=ROTATION_CONCURRENCY,
                provisioned_concurrency=None,
                environment=environment,
                log_retention=props.log_retention,
                encryption_key=props.encryption_key,
                removal_policy=props.removal_policy,
                powertools_layer_version=props.powertools_layer_version,
                xray_sdk=props.xray_sdk,
            ),
        )
        role = self.function.role
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="RotateTheLlmKey",
                actions=[
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue",
                    "secretsmanager:UpdateSecretVersionStage",
                ],
                resources=[props.secret.secret_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadTheIssuerSecret",
                actions=["secretsmanager:GetSecretValue"],
                resources=[self.issuer_secret.secret_arn],
            )
        )
        # The data key only as Secrets Manager uses it, and only for these two secrets.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DataKeyForTheseSecrets",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[props.encryption_key.key_arn],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": f"secretsmanager.{stack.region}.{stack.url_suffix}",
                        # Secrets Manager's encryption context names the secret; a list is an OR.
                        "kms:EncryptionContext:SecretARN": [
                            props.secret.secret_arn,
                            self.issuer_secret.secret_arn,
                        ],
                    },
                },
            )
        )
        # Secrets Manager only, for this account and this one secret (confused deputy).
        self.function.alias.add_permission(
            "SecretsManagerInvoke",
            principal=iam.ServicePrincipal("secretsmanager.amazonaws.com"),
            action="lambda:InvokeFunction",
            source_account=stack.account,
            source_arn=props.secret.secret_arn,
        )
        self.schedule = secretsmanager.CfnRotationSchedule(
            self,
            "Schedule",
            secret_id=props.secret.secret_arn,
            rotation_lambda_arn=self.function.alias.function_arn,
            rotation_rules=secretsmanager.CfnRotationSchedule.RotationRulesProperty(
                schedule_expression=rate_expression(props.schedule_hours)
            ),
            rotate_immediately_on_update=props.rotate_immediately,
        )
        # RotateImmediately invokes the function during deployment: its permission and its
        # role's policy must exist by then.
        invoke_permission = self.function.alias.node.try_find_child("SecretsManagerInvoke")
        if invoke_permission is not None:
            self.schedule.node.add_dependency(invoke_permission)
        self.schedule.node.add_dependency(self.function.role_policy)
        self.failure_alarm = cloudwatch.Alarm(
            self,
            "FailedRotation",
            alarm_description=(
                f"{props.service_name}: a step of the LLM key rotation failed; the old key is "
                "still current (docs/key-rotation.md)"
            ),
            metric=self.function.function.metric_errors(
                period=Duration.minutes(5), statistic="Sum"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self._acknowledge()

    def _issuer_secret(self, props: KeyRotationProps) -> secretsmanager.Secret:
        if isinstance(props.issuer, OpenAIAdminIssuerProps):
            secret = secretsmanager.Secret(
                self,
                "AdminKey",
                secret_name=props.issuer.admin_key_secret_name,
                description=f"{props.service_name}: OpenAI organization admin key used to "
                "issue and revoke LLM keys; set after deploy",
                encryption_key=props.encryption_key,
                removal_policy=props.removal_policy,
            )
            acknowledge_nag(
                secret,
                "AwsSolutions-SMG4",
                "an OpenAI admin key can only be created and revoked in the OpenAI dashboard by "
                "an organization owner; docs/key-rotation.md describes rotating it by hand",
            )
            return secret
        secret = secretsmanager.Secret(
            self,
            "Staging",
            secret_name=props.issuer.staging_secret_name,
            description=f"{props.service_name}: the next LLM API key, staged by an operator for "
            "the rotation to take",
            # An empty api_key: nothing staged yet (the generated field only fills the template).
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=EMPTY_STAGING_TEMPLATE,
                generate_string_key="unused",
                password_length=16,
            ),
            encryption_key=props.encryption_key,
            removal_policy=props.removal_policy,
        )
        acknowledge_nag(
            secret,
            "AwsSolutions-SMG4",
            "a staging area an operator fills by hand: the LLM key secret it feeds is the one "
            "that rotates, and the staged value becomes that secret's current key",
        )
        return secret

    def _acknowledge(self) -> None:
        function = self.function.function
        reason = (
            "invoked synchronously by Secrets Manager, which records a failed step and retries "
            "the rotation; a dead-letter queue only receives asynchronous invocations"
        )
        acknowledge_nag(function, "Serverless-LambdaDLQ", reason)
        skip_checkov(function, "CKV_AWS_116", reason)
        skip_checkov(
            function,
            "CKV_AWS_117",
            "calls only the Secrets Manager API and the LLM provider's public HTTPS API; a VPC "
            "would add a NAT gateway and cold-start latency without isolating anything",
        )


def key_rotation_props(
    config: DeploymentConfig,
    *,
    secret: secretsmanager.ISecret,
    encryption_key: kms.IKey,
    log_retention: logs.RetentionDays,
    removal_policy: RemovalPolicy,
) -> KeyRotationProps:
    """The props for ``config.rotation.llm_key`` (which must be set) of ``secret``."""
    rotation = config.rotation.llm_key
    if rotation is None or config.llm.base_url is None:
        raise ValueError("key_rotation_props: the config has no rotation.llm_key to build")
    issuer: OpenAIAdminIssuerProps | StagedIssuerProps
    if isinstance(rotation.issuer, OpenAIAdminIssuerConfig):
        issuer = OpenAIAdminIssuerProps(
            project_id=rotation.issuer.project_id,
            admin_base_url=str(rotation.issuer.admin_base_url),
            admin_key_secret_name=rotation.issuer.admin_key_secret_name,
        )
    else:
        staging = config.llm_staging_secret_name
        if staging is None:  # pragma: no cover - set whenever the issuer is staged
            raise ValueError("key_rotation_props: the staged issuer has no staging secret name")
        issuer = StagedIssuerProps(staging_secret_name=staging)
    return KeyRotationProps(
        secret=secret,
        encryption_key=encryption_key,
        issuer=issuer,
        llm_base_url=str(config.llm.base_url),
        schedule_hours=rotation.schedule_hours,
        rotate_immediately=rotation.rotate_immediately,
        key_name_prefix=f"{config.name}-llm",
        service_name=config.name,
        memory_mb=rotation.memory_mb,
        timeout=Duration.seconds(rotation.timeout_seconds),
        log_retention=log_retention,
        removal_policy=removal_policy,
        powertools_layer_version=config.lambda_.powertools_layer_version,
        xray_sdk=config.observability.xray_sdk_subsegments,
    )


def rate_expression(hours: int) -> str:
    """``rate(30 days)`` or ``rate(12 hours)``: whole days when the period is whole days."""
    if hours % 24 == 0:
        days = hours // 24
        return f"rate({days} day{'s' if days != 1 else ''})"
    return f"rate({hours} hour{'s' if hours != 1 else ''})"


def _check(props: KeyRotationProps) -> None:
    if not _MIN_HOURS <= props.schedule_hours <= _MAX_HOURS:
        raise ValueError(
            f"KeyRotationProps.schedule_hours must be {_MIN_HOURS}-{_MAX_HOURS} (Secrets "
            f"Manager's limits: 4 hours to 1000 days); got {props.schedule_hours}"
        )
    if not props.llm_base_url.startswith("https://"):
        raise ValueError(
            "KeyRotationProps.llm_base_url must use https: testSecret sends the new key to it"
        )
