"""An AWS WAF web ACL: AWS managed rule groups, a per-IP rate limit, and logs without credentials.

One :class:`WebAcl` protects several entry points: :func:`associate_web_acl` attaches it to a
regional resource (a REST API stage, a load balancer) from the resource's own stack; a CloudFront
distribution takes the ARN as its ``web_acl_id`` instead (CloudFront has no association resource).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from aws_cdk import ArnFormat, CfnResource, RemovalPolicy, Stack, Token
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2

from constructs import Construct
from constructs.secure_defaults import WAF_DEFAULT_ACTION, WAF_REDACTED_HEADERS

# AWS WAF delivers logs only to log groups whose name starts with this.
WAF_LOG_GROUP_PREFIX = "aws-waf-logs-"
# Credential headers WAF writes "REDACTED" in place of: the logs never hold a usable secret.
REDACTED_HEADERS = WAF_REDACTED_HEADERS
# The rate rule's name (and metric); a blocked request's log names it as terminatingRuleId.
RATE_RULE_NAME = "RateLimitPerIp"
# The window the rate limit counts over; config's limit is per 5 minutes.
RATE_WINDOW_SECONDS = 300
# With log_allowed_requests false: the actions whose requests are logged.
LOGGED_ACTIONS = ("BLOCK", "COUNT", "EXCLUDED_AS_COUNT")


@dataclass(frozen=True)
class WebAclProps:
    name: str
    """Prefixes the metrics and names the log group (``aws-waf-logs-<name>``)."""
    scope: Literal["REGIONAL", "CLOUDFRONT"]
    """CLOUDFRONT only in us-east-1 (AWS WAF's rule for CloudFront web ACLs)."""
    rate_limit_per_5_minutes: int
    managed_rule_groups: Sequence[str]
    """AWS managed rule groups, evaluated in this order before the rate rule."""
    count_only_rules: Mapping[str, Sequence[str]]
    """Per group: rules whose match is counted and logged instead of blocked."""
    log_allowed_requests: bool
    log_retention: logs.RetentionDays
    encryption_key: kms.IKey
    """Encrypts the log group (its policy must let CloudWatch Logs use it: DataKey does)."""
    removal_policy: RemovalPolicy
    rate_exempt_cidrs: Sequence[str] = ()
    """IPv4 networks the rate rule does not count (the managed rules still inspect them): the
    private addresses a VPC link or other in-VPC proxy sends from, which would otherwise put
    every client behind it into one per-IP budget."""


class WebAcl(Construct):
    """``self.web_acl`` (allow by default), ``self.arn``, ``self.log_group``, ``self.logging``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: WebAclProps) -> None:
        super().__init__(scope, construct_id)
        _check(props)
        stack = Stack.of(self)
        # An environment-agnostic stack's region is a token; only a literal can be wrong.
        region = stack.region
        if props.scope == "CLOUDFRONT" and (Token.is_unresolved(region) or region != "us-east-1"):
            raise ValueError(
                f"WebAcl {props.name}: a CLOUDFRONT web ACL must be created in a stack pinned "
                f"to us-east-1; this stack's region is {region}"
            )
        rules = [
            _managed_rule(props.name, group, priority, props.count_only_rules.get(group, ()))
            for priority, group in enumerate(props.managed_rule_groups)
        ]
        scope_down = None
        if props.rate_exempt_cidrs:
            self.rate_exempt = wafv2.CfnIPSet(
                self,
                "RateExempt",
                scope=props.scope,
                ip_address_version="IPV4",
                addresses=list(props.rate_exempt_cidrs),
                description=f"{props.name}: proxies inside the VPC, not counted per IP",
            )
            scope_down = wafv2.CfnWebACL.StatementProperty(
                not_statement=wafv2.CfnWebACL.NotStatementProperty(
                    statement=wafv2.CfnWebACL.StatementProperty(
                        ip_set_reference_statement=wafv2.CfnWebACL.IPSetReferenceStatementProperty(
                            arn=self.rate_exempt.attr_arn
                        )
                    )
                )
            )
        rules.append(
            wafv2.CfnWebACL.RuleProperty(
                name=RATE_RULE_NAME,
                priority=len(rules),
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        limit=props.rate_limit_per_5_minutes,
                        aggregate_key_type="IP",
                        evaluation_window_sec=RATE_WINDOW_SECONDS,
                        scope_down_statement=scope_down,
                    )
                ),
                visibility_config=_visibility(f"{props.name}-{RATE_RULE_NAME}"),
            )
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "Resource",
            scope=props.scope,
            description=f"{props.name}: AWS managed rules and a per-IP rate limit",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(**{WAF_DEFAULT_ACTION: {}}),
            rules=rules,
            visibility_config=_visibility(props.name),
        )
        self.arn = self.web_acl.attr_arn
        log_group_name = f"{WAF_LOG_GROUP_PREFIX}{props.name}"
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            # WAF refuses any other name; one deployment name per account and region keeps it
            # unique.
            log_group_name=log_group_name,
            retention=props.log_retention,
            encryption_key=props.encryption_key,
            removal_policy=props.removal_policy,
        )
        self.logging = wafv2.CfnLoggingConfiguration(
            self,
            "Logging",
            resource_arn=self.arn,
            # The log group's ARN without the ":*" suffix CDK's log_group_arn carries.
            log_destination_configs=[
                stack.format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=log_group_name,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            redacted_fields=[
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": name})
                for name in REDACTED_HEADERS
            ],
            logging_filter=None
            if props.log_allowed_requests
            else {
                "DefaultBehavior": "DROP",
                "Filters": [
                    {
                        "Behavior": "KEEP",
                        "Requirement": "MEETS_ANY",
                        "Conditions": [
                            {"ActionCondition": {"Action": action}} for action in LOGGED_ACTIONS
                        ],
                    }
                ],
            },
        )
        self.logging.node.add_dependency(self.log_group)


def associate_web_acl(
    scope: Construct,
    construct_id: str,
    *,
    web_acl_arn: str,
    resource_arn: str,
    resource: CfnResource,
) -> wafv2.CfnWebACLAssociation:
    """Attach the web ACL to one regional resource, from ``scope`` in the resource's stack.

    ``resource`` is the CloudFormation resource ``resource_arn`` names: a stage's ARN is built
    from its name, not a reference, so without the explicit dependency CloudFormation could try
    the association before the stage exists.
    """
    association = wafv2.CfnWebACLAssociation(
        scope, construct_id, resource_arn=resource_arn, web_acl_arn=web_acl_arn
    )
    association.add_resource_dependency(resource)
    return association


def _managed_rule(
    acl_name: str, group: str, priority: int, count_only: Sequence[str]
) -> wafv2.CfnWebACL.RuleProperty:
    return wafv2.CfnWebACL.RuleProperty(
        name=group,
        priority=priority,
        # none: the group's own actions apply (block); count would only observe.
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                vendor_name="AWS",
                name=group,
                rule_action_overrides=[
                    wafv2.CfnWebACL.RuleActionOverrideProperty(
                        name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                    )
                    for rule in count_only
                ]
                or None,
            )
        ),
        visibility_config=_visibility(f"{acl_name}-{group}"),
    )


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    # A CloudWatch metric per rule (allowed, blocked, counted) and the console's sampled requests.
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True,
        metric_name=metric_name,
        sampled_requests_enabled=True,
    )


def _check(props: WebAclProps) -> None:
    if not props.managed_rule_groups:
        raise ValueError(f"WebAcl {props.name}: managed_rule_groups must name at least one group")
    unknown = sorted(set(props.count_only_rules) - set(props.managed_rule_groups))
    if unknown:
        raise ValueError(
            f"WebAcl {props.name}: count_only_rules names {', '.join(unknown)}, which is not "
            f"in managed_rule_groups"
        )
    if props.rate_limit_per_5_minutes < 10:
        raise ValueError(
            f"WebAcl {props.name}: rate_limit_per_5_minutes must be at least 10 (AWS WAF's "
            f"minimum); got {props.rate_limit_per_5_minutes}"
        )
