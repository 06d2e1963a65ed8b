"""Safe Lambda releases: each ``live`` alias shifts to a new version through CodeDeploy.

CloudFormation hands an alias update to CodeDeploy (the alias's ``CodeDeployLambdaAliasUpdate``
update policy). CodeDeploy moves traffic as the deployment configuration says (for example 10%
for 5 minutes, then all) and rolls the alias back to the previous version when the deployment
fails or one of the alias's alarms fires while traffic moves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from constructs import Construct

# The config's names (config/model.py LAMBDA_DEPLOYMENTS) -> CodeDeploy's predefined configs.
LAMBDA_DEPLOYMENT_CONFIGS: dict[str, codedeploy.ILambdaDeploymentConfig] = {
    "all_at_once": codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE,
    "canary_10_percent_5_minutes": codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES,
    "canary_10_percent_10_minutes": codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_10_MINUTES,
    "canary_10_percent_15_minutes": codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_15_MINUTES,
    "canary_10_percent_30_minutes": codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_30_MINUTES,
    "linear_10_percent_every_1_minute": (
        codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_1_MINUTE
    ),
    "linear_10_percent_every_2_minutes": (
        codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_2_MINUTES
    ),
    "linear_10_percent_every_3_minutes": (
        codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_3_MINUTES
    ),
    "linear_10_percent_every_10_minutes": (
        codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_10_MINUTES
    ),
}


@dataclass(frozen=True)
class LambdaReleaseProps:
    deployment: str
    """A key of ``LAMBDA_DEPLOYMENT_CONFIGS`` (``releases.lambda_deployment``)."""
    errors_per_period: int
    p99_duration_ms: int
    period: Duration


@dataclass(frozen=True)
class LambdaRelease:
    """One alias's deployment group and the two alarms that roll it back."""

    deployment_group: codedeploy.LambdaDeploymentGroup
    errors: cloudwatch.Alarm
    p99_duration: cloudwatch.Alarm


class LambdaReleases(Construct):
    """One CodeDeploy application and service role per stack; ``add`` puts an alias behind it.

    The rollback alarms watch the alias (dimensions FunctionName and Resource ``<fn>:live``),
    which is what callers invoke, so the new version's share of traffic counts from the first
    canary request. Errors are a Sum: healthy traffic on the old version does not dilute the
    canary's errors. They evaluate one period (not ``alarms.evaluation_periods``): a rollback has
    to decide inside the canary window, while paging alarms wait longer to avoid noise.

    ``self.rollback_alarms`` lists every alarm, for notification wiring (SNS).
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: LambdaReleaseProps) -> None:
        super().__init__(scope, construct_id)
        if props.deployment not in LAMBDA_DEPLOYMENT_CONFIGS:
            known = ", ".join(LAMBDA_DEPLOYMENT_CONFIGS)
            raise ValueError(
                f"LambdaReleaseProps.deployment {props.deployment!r} is not one of: {known}"
            )
        self._props = props
        self.deployment_config = LAMBDA_DEPLOYMENT_CONFIGS[props.deployment]
        self.application = codedeploy.LambdaApplication(self, "Application")
        # CDK's default role carries AWSCodeDeployRoleForLambdaLimited, which may update any
        # alias in the account; this one may touch only the aliases and alarms added here.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("codedeploy.amazonaws.com"),
            description="CodeDeploy: shifts this stack's live aliases and reads their alarms",
        )
        self.releases: dict[str, LambdaRelease] = {}
        self.rollback_alarms: list[cloudwatch.Alarm] = []
        self._aliases: set[str] = set()

    def add_every_live_alias(self, scope: Construct) -> None:
        """Adds each ``live`` alias under ``scope`` that is not added yet.

        Called last in a stack, so a function another construct brings (a rotation Lambda, say)
        is released the same way as the ones the stack names; none is left on all-at-once
        updates without alarms.
        """
        for node in scope.node.find_all():
            if (
                isinstance(node, lambda_.Alias)
                and node.alias_name == "live"
                and node.node.path not in self._aliases
            ):
                owner = node.node.scopes[-2]
                # The owner's path below the stack, letters and digits only (construct ids).
                release_id = re.sub(r"[^A-Za-z0-9]", "", "/".join(owner.node.path.split("/")[1:]))
                self.add(release_id, node, owner.node.path)

    def add(self, release_id: str, alias: lambda_.Alias, what: str) -> LambdaRelease:
        """A deployment group for ``alias`` with error and p99 alarms that roll it back."""
        if release_id in self.releases or alias.node.path in self._aliases:
            raise ValueError(f"LambdaReleases.add: {release_id!r} was added already")
        self._aliases.add(alias.node.path)
        props = self._props
        errors = self._rollback_alarm(
            f"{release_id}Errors",
            alias.metric_errors(period=props.period, statistic="Sum"),
            props.errors_per_period,
            f"{what}: errors on the live alias; rolls a deployment back",
        )
        p99 = self._rollback_alarm(
            f"{release_id}P99Duration",
            alias.metric_duration(period=props.period, statistic="p99"),
            props.p99_duration_ms,
            f"{what}: p99 duration on the live alias; rolls a deployment back",
        )
        group = codedeploy.LambdaDeploymentGroup(
            self,
            f"{release_id}Deployment",
            application=self.application,
            alias=alias,
            deployment_config=self.deployment_config,
            alarms=[errors, p99],
            # Immutable to the group: CDK would attach AWSCodeDeployRoleForLambdaLimited (any
            # alias in the account); the scoped statements below are all the role needs.
            role=self.role.without_policy_updates(),
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, deployment_in_alarm=True
            ),
        )
        # What CodeDeploy does with the role: read and move this alias, check its alarms. The
        # alias's ARN is spelt from the function's: a Ref to the alias would loop (its update
        # policy names the group, which waits for this policy).
        function_arn = alias.version.lambda_.function_arn
        alias_arn = f"{function_arn}:{alias.alias_name}"
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "lambda:GetAlias",
                    "lambda:UpdateAlias",
                    "lambda:GetProvisionedConcurrencyConfig",
                ],
                resources=[function_arn, alias_arn],
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:DescribeAlarms"],
                resources=[errors.alarm_arn, p99.alarm_arn],
            )
        )
        # The first shift must not race the policy that lets CodeDeploy make it.
        policy = self.role.node.find_child("DefaultPolicy")
        group.node.add_dependency(policy)
        release = LambdaRelease(deployment_group=group, errors=errors, p99_duration=p99)
        self.releases[release_id] = release
        self.rollback_alarms += [errors, p99]
        return release

    def _rollback_alarm(
        self, alarm_id: str, metric: cloudwatch.Metric, threshold: float, description: str
    ) -> cloudwatch.Alarm:
        # One period: a canary decides inside its window (see LambdaReleaseProps).
        return metric.create_alarm(
            self,
            alarm_id,
            threshold=threshold,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            alarm_description=description,
        )
