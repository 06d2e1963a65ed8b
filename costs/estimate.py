"""The cost model: synthesized CloudFormation templates + the price table -> monthly line items.

Every line item is linear in the load: ``monthly(N) = idle_quantity * price + N_month *
per_request_quantity * price``. Keeping it linear makes the break-even between the serverless
and container patterns a closed form, and lets a reader check any figure by hand from the table.
The assumptions the templates cannot tell us are in ``Assumptions`` and printed by the CLI.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HOURS_PER_MONTH = 730.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
PRICES_FILE = Path(__file__).with_name("prices.yaml")

# Types that are never billed on their own: configuration, wiring, or billed through another
# resource (a task definition through its ECS service, an Aurora instance through its cluster's
# ACUs). Anything neither here nor in PRICED_TYPES is reported as "not priced", never dropped.
FREE_TYPES = frozenset(
    {
        "AWS::CDK::Metadata",
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::Lambda::Permission",
        "AWS::Lambda::Version",
        "AWS::Lambda::Alias",  # provisioned concurrency is priced from the alias, see below
        "AWS::Lambda::EventSourceMapping",
        "AWS::Lambda::LayerVersion",
        "AWS::ApiGateway::Account",
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::Stage",
        "AWS::ApiGateway::Resource",
        "AWS::ApiGateway::Method",
        "AWS::ApiGateway::GatewayResponse",
        "AWS::ApiGateway::RequestValidator",
        "AWS::ApiGateway::Model",
        "AWS::ApiGateway::UsagePlan",
        "AWS::ApiGateway::UsagePlanKey",
        "AWS::ApiGateway::ApiKey",
        "AWS::ApiGatewayV2::Integration",
        "AWS::ApiGatewayV2::Route",
        "AWS::ApiGatewayV2::Stage",
        "AWS::ApiGatewayV2::VpcLink",
        "AWS::SQS::QueuePolicy",
        "AWS::S3::BucketPolicy",
        "AWS::EC2::VPC",
        "AWS::EC2::Subnet",
        "AWS::EC2::RouteTable",
        "AWS::EC2::SubnetRouteTableAssociation",
        "AWS::EC2::Route",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::EC2::SecurityGroup",
        "AWS::EC2::SecurityGroupIngress",
        "AWS::EC2::SecurityGroupEgress",
        "AWS::EC2::FlowLog",  # its records are billed as log ingestion of its log group
        "AWS::ECS::Cluster",
        "AWS::ECS::TaskDefinition",
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::ElastiCache::SubnetGroup",
        "AWS::ElasticLoadBalancingV2::Listener",
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        "AWS::RDS::DBClusterParameterGroup",
        "AWS::RDS::DBSubnetGroup",
        "AWS::RDS::DBInstance",
        "AWS::SecretsManager::SecretTargetAttachment",
        "AWS::CloudFront::ResponseHeadersPolicy",
        "AWS::CloudFront::OriginAccessControl",
        "Custom::CDKBucketDeployment",
        # Cost alerts (the <name>-cost stack): a few SNS publishes and emails a month, inside SNS's
        # free tier; Cost Anomaly Detection has no charge; a budget without actions is not billed
        # as a resource here (AWS Budgets pricing: check it for many budgets per account).
        "AWS::SNS::Topic",
        "AWS::SNS::TopicPolicy",
        "AWS::SNS::Subscription",
        "AWS::CE::AnomalyMonitor",
        "AWS::CE::AnomalySubscription",
        "AWS::Budgets::Budget",
        # AWS Backup (the <name>-backup stack): the vault, plan and selection are not billed;
        # recovery points are billed per GB-month of backup storage, which scales with the data
        # (near zero for the TTL-bounded tables, like dynamodb_storage_gb_per_table), not with
        # anything in the template. The vault's KMS key is priced as a key.
        "AWS::Backup::BackupVault",
        "AWS::Backup::BackupPlan",
        "AWS::Backup::BackupSelection",
        # Releases: CodeDeploy to Lambda and ECS has no charge; a listener rule is part of the ALB.
        "AWS::CodeDeploy::Application",
        "AWS::CodeDeploy::DeploymentGroup",
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        # WAF: the web ACL and its rules are priced below; associations and IP sets are not billed,
        # and WAF logs are billed as ingestion of their log group.
        "AWS::WAFv2::WebACLAssociation",
        "AWS::WAFv2::IPSet",
        "AWS::WAFv2::LoggingConfiguration",
        # Rotation: the schedule is free; its function runs once a period (priced at zero, like
        # every function not in runtime.handlers).
        "AWS::SecretsManager::RotationSchedule",
        # The memory database's hosted rotation: the schedule also puts a resource policy on the
        # secret (deny DeleteSecret), and the transform creates its function at deploy time, so
        # the template has none to price (a few invocations a month: Lambda's free tier).
        "AWS::SecretsManager::ResourcePolicy",
        # Disaster recovery and the edge ACL's hand-off: a regional API domain and its base path,
        # a public ACM certificate, alias records to AWS resources (no query charge), a KMS alias,
        # a standard SSM parameter, the deploy-time reader of it, and the registry's replication
        # rule (the replicated images bill as ECR storage in the other region, not modelled).
        "AWS::ApiGateway::DomainName",
        "AWS::ApiGateway::BasePathMapping",
        "AWS::CertificateManager::Certificate",
        "AWS::Route53::RecordSet",
        "AWS::KMS::Alias",
        "AWS::SSM::Parameter",
        "Custom::AWS",
        "AWS::ECR::ReplicationConfiguration",
    }
)


class PriceError(Exception):
    """The price table is missing a figure a template needs."""


@dataclass(frozen=True)
class Load:
    requests_per_day: float
    mean_duration_seconds: float
    input_tokens: float
    output_tokens: float

    @property
    def requests_per_month(self) -> float:
        return self.requests_per_day * DAYS_PER_MONTH


@dataclass(frozen=True)
class Assumptions:
    """What the templates cannot tell: per-request usage of each billed resource."""

    # Functions other than the agent's (webhook ingress, callback sender) run this long.
    short_invocation_seconds: float = 0.2
    dynamodb_reads_per_table: float = 1.0
    dynamodb_writes_per_table: float = 2.0  # e.g. session save + turn/task update, < 1 KB each
    sqs_requests_per_queue: float = 3.0  # send, receive, delete; dead-letter queues get none
    log_kb_per_log_group: float = 2.0
    bytes_per_token: float = 4.0  # model traffic through a NAT gateway
    response_kb: float = 4.0  # CloudFront bytes out per request
    # ALB LCU: one new connection per request; 25 new connections/s is one LCU.
    alb_lcu_hours_per_request: float = 1 / (25 * 3600)
    aurora_storage_gb: float = 1.0
    dynamodb_storage_gb_per_table: float = 0.0


@dataclass(frozen=True)
class LineItem:
    stack: str
    resource: str
    what: str
    unit: str
    unit_price: float
    idle_quantity: float  # per month, at zero load
    per_request_quantity: float  # added per request

    def quantity(self, requests_per_month: float) -> float:
        return self.idle_quantity + self.per_request_quantity * requests_per_month

    def monthly(self, requests_per_month: float) -> float:
        return self.quantity(requests_per_month) * self.unit_price

    @property
    def idle(self) -> float:
        return self.idle_quantity * self.unit_price

    @property
    def per_request(self) -> float:
        return self.per_request_quantity * self.unit_price


@dataclass
class StackEstimate:
    stack: str
    items: list[LineItem] = field(default_factory=list)
    not_priced: list[tuple[str, str]] = field(default_factory=list)  # (logical id, type)

    @property
    def idle(self) -> float:
        return sum(item.idle for item in self.items)

    @property
    def per_request(self) -> float:
        return sum(item.per_request for item in self.items)

    def monthly(self, requests_per_month: float) -> float:
        return self.idle + self.per_request * requests_per_month


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    prices: Mapping[str, Mapping[str, Any]]
    elasticache: Mapping[str, Any]
    llm: Mapping[str, Mapping[str, Any]]

    def price(self, key: str) -> float:
        if key not in self.prices:
            raise PriceError(f"costs/prices.yaml has no price {key!r}")
        return float(self.prices[key]["value"])

    def node_hour(self, engine: str, node_type: str) -> float:
        table = self.elasticache.get(engine.lower(), {})
        if node_type not in table:
            raise PriceError(f"costs/prices.yaml has no ElastiCache {engine} {node_type} price")
        return float(table[node_type])

    def tokens(self, model_id: str) -> tuple[float, float]:
        if model_id not in self.llm:
            raise PriceError(f"costs/prices.yaml has no token price for model {model_id!r}")
        entry = self.llm[model_id]
        return float(entry["input"]), float(entry["output"])


def load_prices(path: Path = PRICES_FILE) -> PriceTable:
    raw = yaml.safe_load(path.read_text())
    return PriceTable(
        as_of=str(raw["as_of"]),
        prices=raw["prices"],
        elasticache=raw["elasticache_node_hour"],
        llm=raw["llm_per_million_tokens"],
    )


def _refs(value: Any) -> set[str]:
    """Logical ids a property value points at (Ref or Fn::GetAtt), at any depth."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt" and isinstance(inner, list) and inner:
                found.add(str(inner[0]))
            else:
                found |= _refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _refs(inner)
    return found


def _props(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    props: Mapping[str, Any] = resource.get("Properties", {})
    return props


def _is_request_function(props: Mapping[str, Any]) -> bool:
    # The project's handlers live in runtime.handlers; CDK's own functions (bucket deployment,
    # custom resources) run at deploy time only and are not invoked by traffic.
    return str(props.get("Handler", "")).startswith("runtime.handlers.")


def estimate_stack(
    stack: str,
    template: Mapping[str, Any],
    prices: PriceTable,
    load: Load,
    assumptions: Assumptions = Assumptions(),
) -> StackEstimate:
    resources: Mapping[str, Mapping[str, Any]] = template.get("Resources", {})
    out = StackEstimate(stack)

    def add(resource: str, what: str, key: str, idle: float, per_request: float = 0.0) -> None:
        entry = prices.prices.get(key, {})
        out.items.append(
            LineItem(
                stack,
                resource,
                what,
                str(entry.get("unit", key)),
                prices.price(key),
                idle,
                per_request,
            )
        )

    functions = {
        lid: _props(r)
        for lid, r in resources.items()
        if r.get("Type") == "AWS::Lambda::Function" and _is_request_function(_props(r))
    }
    # The agent's run is the function allowed to run longest (the only one in the serverless
    # stack, the task worker in the async stack); the others are short hops around it.
    agent_function = max(
        functions, key=lambda lid: float(functions[lid].get("Timeout", 3)), default=None
    )
    dead_letter_queues = {
        ref
        for r in resources.values()
        if r.get("Type") == "AWS::SQS::Queue"
        for ref in _refs(_props(r).get("RedrivePolicy", {}))
    }
    scalable_min = {
        ref: float(_props(r).get("MinCapacity", 0))
        for r in resources.values()
        if r.get("Type") == "AWS::ApplicationAutoScaling::ScalableTarget"
        for ref in _refs(_props(r).get("ResourceId"))
    }
    tokens = load.input_tokens + load.output_tokens

    for lid, resource in resources.items():
        rtype = str(resource.get("Type"))
        props = _props(resource)
        if rtype == "AWS::Lambda::Function":
            if lid not in functions:
                continue  # deploy-time helper: priced at zero, on purpose (see above)
            gb = float(props.get("MemorySize", 128)) / 1024
            arch = "arm64" if "arm64" in props.get("Architectures", ["x86_64"]) else "x86"
            seconds = (
                load.mean_duration_seconds
                if lid == agent_function
                else assumptions.short_invocation_seconds
            )
            add(
                lid,
                f"Lambda {arch} {gb:g} GB x {seconds:g} s",
                f"lambda_{arch}_gb_second",
                0,
                gb * seconds,
            )
            add(lid, "Lambda invocations", "lambda_requests", 0, 1e-6)
        elif rtype == "AWS::Lambda::Alias":
            pc = props.get("ProvisionedConcurrencyConfig") or {}
            count = float(pc.get("ProvisionedConcurrentExecutions", 0))
            if count:
                target = next(iter(_refs(props.get("FunctionVersion"))), "")
                version = _props(resources.get(target, {}))
                fn = _props(resources.get(next(iter(_refs(version.get("FunctionName"))), ""), {}))
                gb = float(fn.get("MemorySize", 128)) / 1024
                arch = "arm64" if "arm64" in fn.get("Architectures", ["x86_64"]) else "x86"
                add(
                    lid,
                    f"provisioned concurrency {count:g} x {gb:g} GB",
                    f"lambda_provisioned_{arch}_gb_second",
                    count * gb * SECONDS_PER_MONTH,
                )
        elif rtype == "AWS::ApiGateway::RestApi":
            add(lid, "REST API requests", "apigateway_rest_requests", 0, 1e-6)
        elif rtype == "AWS::ApiGatewayV2::Api":
            add(lid, "HTTP API requests", "apigateway_http_requests", 0, 1e-6)
        elif rtype in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"):
            # A global table has one replica per region; every replica stores the data and
            # applies every write (replicated write units in the other regions); reads stay in
            # one region.
            replicas = max(1, len(props.get("Replicas", [])))
            add(
                lid,
                "on-demand reads",
                "dynamodb_ondemand_read",
                0,
                assumptions.dynamodb_reads_per_table * 1e-6,
            )
            add(
                lid,
                "on-demand writes",
                "dynamodb_ondemand_write",
                0,
                assumptions.dynamodb_writes_per_table * 1e-6,
            )
            if replicas > 1:
                add(
                    lid,
                    f"replicated writes x {replicas - 1} replica",
                    "dynamodb_replicated_write",
                    0,
                    (replicas - 1) * assumptions.dynamodb_writes_per_table * 1e-6,
                )
            add(
                lid,
                "storage" if replicas == 1 else f"storage x {replicas} replicas",
                "dynamodb_storage",
                replicas * assumptions.dynamodb_storage_gb_per_table,
            )
        elif rtype == "AWS::SQS::Queue":
            per_request = 0.0 if lid in dead_letter_queues else assumptions.sqs_requests_per_queue
            add(lid, "queue requests", "sqs_standard_requests", 0, per_request * 1e-6)
        elif rtype == "AWS::KMS::Key":
            add(lid, "customer managed key", "kms_key", 1)
        elif rtype == "AWS::SecretsManager::Secret":
            add(lid, "secret", "secretsmanager_secret", 1)
        elif rtype == "AWS::EC2::NatGateway":
            add(lid, "NAT gateway hours", "nat_gateway_hour", HOURS_PER_MONTH)
            add(
                lid,
                "NAT data (model traffic)",
                "nat_gateway_gb",
                0,
                tokens * assumptions.bytes_per_token / 1e9,
            )
        elif rtype == "AWS::EC2::EIP":
            add(lid, "public IPv4", "public_ipv4_hour", HOURS_PER_MONTH)
        elif rtype == "AWS::EC2::VPCEndpoint":
            if props.get("VpcEndpointType", "Gateway") == "Interface":
                azs = max(1, len(props.get("SubnetIds", [])))
                add(
                    lid,
                    f"interface endpoint x {azs} AZ",
                    "vpc_interface_endpoint_hour",
                    azs * HOURS_PER_MONTH,
                )
            # Gateway endpoints (S3, DynamoDB) are free: no line.
        elif rtype == "AWS::ElasticLoadBalancingV2::LoadBalancer":
            add(lid, "ALB hours", "alb_hour", HOURS_PER_MONTH)
            add(lid, "ALB LCUs", "alb_lcu_hour", 0, assumptions.alb_lcu_hours_per_request)
            if props.get("Scheme", "internet-facing") == "internet-facing":
                azs = max(1, len(props.get("Subnets", [])))
                add(
                    lid, f"public IPv4 x {azs} ALB nodes", "public_ipv4_hour", azs * HOURS_PER_MONTH
                )
        elif rtype == "AWS::ECS::Service":
            task = _props(resources.get(next(iter(_refs(props.get("TaskDefinition"))), ""), {}))
            tasks = scalable_min.get(lid, float(props.get("DesiredCount", 1)))
            vcpu = float(task.get("Cpu", 256)) / 1024
            gb = float(task.get("Memory", 512)) / 1024
            platform = task.get("RuntimePlatform") or {}
            arch = "arm64" if platform.get("CpuArchitecture") == "ARM64" else "x86"
            # Tasks run at their minimum capacity; scale-out is not modelled (see README).
            add(
                lid,
                f"Fargate {arch} {tasks:g} task x {vcpu:g} vCPU",
                f"fargate_{arch}_vcpu_hour",
                tasks * vcpu * HOURS_PER_MONTH,
            )
            add(
                lid,
                f"Fargate {arch} {tasks:g} task x {gb:g} GB",
                f"fargate_{arch}_gb_hour",
                tasks * gb * HOURS_PER_MONTH,
            )
        elif rtype == "AWS::ElastiCache::ReplicationGroup":
            if "NumCacheClusters" in props:
                nodes = float(props["NumCacheClusters"])
            else:
                groups = float(props.get("NumNodeGroups", 1))
                nodes = groups * (1 + float(props.get("ReplicasPerNodeGroup", 0)))
            node_type = str(props.get("CacheNodeType"))
            engine = str(props.get("Engine", "redis"))
            out.items.append(
                LineItem(
                    stack,
                    lid,
                    f"{engine} {node_type} x {nodes:g} nodes",
                    "node-hour",
                    prices.node_hour(engine, node_type),
                    nodes * HOURS_PER_MONTH,
                    0,
                )
            )
        elif rtype == "AWS::RDS::DBCluster":
            scaling = props.get("ServerlessV2ScalingConfiguration")
            if scaling is None:
                out.not_priced.append((lid, rtype + " (provisioned)"))
                continue
            acu = float(scaling.get("MinCapacity", 0))
            # At MinCapacity 0 the cluster pauses when idle: no compute charge, storage only.
            add(
                lid,
                f"Aurora Serverless v2 at min {acu:g} ACU",
                "aurora_serverless_v2_acu_hour",
                acu * HOURS_PER_MONTH,
            )
            add(lid, "Aurora storage", "aurora_storage", assumptions.aurora_storage_gb)
        elif rtype == "AWS::CloudWatch::Alarm":
            add(lid, "metric alarm", "cloudwatch_alarm", 1)
        elif rtype == "AWS::WAFv2::WebACL":
            rules = len(props.get("Rules", []))
            add(lid, "web ACL", "waf_web_acl", 1)
            add(lid, f"{rules} rules", "waf_rule", rules)
            # Every request through one entry point is inspected by this ACL once.
            add(lid, "WAF requests", "waf_requests", 0, 1e-6)
        elif rtype == "AWS::Route53::HealthCheck":
            config = props.get("HealthCheckConfig", {})
            optional = int(str(config.get("Type", "")).startswith("HTTPS")) + int(
                int(config.get("RequestInterval", 30)) == 10
            )
            add(lid, "health check (AWS endpoint)", "route53_health_check", 1)
            if optional:
                add(lid, f"{optional} optional features", "route53_health_check_feature", optional)
        elif rtype == "AWS::CloudWatch::Dashboard":
            # The account's first three are free; counted as paid: they are usually taken.
            add(lid, "dashboard", "cloudwatch_dashboard", 1)
        elif rtype == "AWS::Logs::LogGroup":
            add(
                lid,
                "log ingestion",
                "cloudwatch_logs_ingestion",
                0,
                assumptions.log_kb_per_log_group / 1e6,
            )
        elif rtype == "AWS::CloudFront::Distribution":
            add(lid, "CloudFront requests", "cloudfront_https_requests", 0, 1e-4)
            add(lid, "CloudFront data out", "cloudfront_data_out", 0, assumptions.response_kb / 1e6)
        elif rtype == "AWS::S3::Bucket":
            # Access-log and static-site buckets: cents a month; not modelled, and said so.
            out.not_priced.append((lid, rtype + " (usage only, assumed ~$0)"))
        elif rtype not in FREE_TYPES:
            out.not_priced.append((lid, rtype))
    return out


PRICED_TYPES = frozenset(
    {
        "AWS::Lambda::Function",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGatewayV2::Api",
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::KMS::Key",
        "AWS::SecretsManager::Secret",
        "AWS::EC2::NatGateway",
        "AWS::EC2::EIP",
        "AWS::EC2::VPCEndpoint",
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "AWS::ECS::Service",
        "AWS::ElastiCache::ReplicationGroup",
        "AWS::RDS::DBCluster",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::DynamoDB::GlobalTable",
        "AWS::WAFv2::WebACL",
        "AWS::Route53::HealthCheck",
        "AWS::Logs::LogGroup",
        "AWS::CloudFront::Distribution",
    }
)


def llm_item(stack: str, model_id: str, prices: PriceTable, load: Load) -> LineItem:
    """One line for the model's tokens; the same on every pattern, so it cancels in break-even."""
    price_in, price_out = prices.tokens(model_id)
    # Blend input and output into one $/request so the line stays linear in requests.
    per_request = (load.input_tokens * price_in + load.output_tokens * price_out) / 1e6
    return LineItem(stack, model_id, "LLM tokens (in+out)", "request", per_request, 0, 1)


@dataclass(frozen=True)
class BreakEven:
    requests_per_day: float | None  # None: the lines never cross at a positive load
    reason: str


def break_even(
    serverless: Iterable[StackEstimate], container: Iterable[StackEstimate]
) -> BreakEven:
    """Requests/day where serverless idle + slope * N equals the container's."""
    s = list(serverless)
    c = list(container)
    fixed_s, slope_s = sum(x.idle for x in s), sum(x.per_request for x in s)
    fixed_c, slope_c = sum(x.idle for x in c), sum(x.per_request for x in c)
    if fixed_s >= fixed_c:
        return BreakEven(None, "serverless costs at least as much even at zero load")
    if slope_s <= slope_c:
        return BreakEven(None, "serverless per-request cost is not higher: it never crosses")
    per_month = (fixed_c - fixed_s) / (slope_s - slope_c)
    return BreakEven(per_month / DAYS_PER_MONTH, "lines cross")


def agent_reserved_concurrency(template: Mapping[str, Any]) -> int | None:
    """ReservedConcurrentExecutions of the agent function (longest timeout), if it has one."""
    functions = [
        _props(r)
        for r in template.get("Resources", {}).values()
        if r.get("Type") == "AWS::Lambda::Function" and _is_request_function(_props(r))
    ]
    if not functions:
        return None
    agent = max(functions, key=lambda props: float(props.get("Timeout", 3)))
    reserved = agent.get("ReservedConcurrentExecutions")
    return None if reserved is None else int(reserved)


def mean_concurrency(requests_per_day: float, mean_duration_seconds: float) -> float:
    """Little's law: runs in flight on average = arrival rate x time in system."""
    return requests_per_day * mean_duration_seconds / 86400


def read_templates(cdk_out: Path) -> dict[str, dict[str, Any]]:
    return {
        path.name.removesuffix(".template.json"): json.loads(path.read_text())
        for path in sorted(cdk_out.glob("*.template.json"))
    }


def fmt_money(value: float) -> str:
    if value != 0 and abs(value) < 0.01:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def fmt_price(value: float) -> str:
    # Six significant figures: Lambda's GB-second price would round to $0.0000 otherwise.
    return f"${value:.6g}"


def fmt_quantity(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or math.isclose(value, round(value)):
        return f"{value:,.0f}" if abs(value) >= 1 else f"{value:.3g}"
    return f"{value:.4g}"
