"""Secure and reliable defaults, in one place. README.md ("Defaults") lists the same items.

Constructs read these instead of choosing their own values, so one file tells a reviewer the
security posture of everything this repository deploys. Each value says why it is the default.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Size
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs

# The newest Python runtime CDK offers: longest support window; cdk-nag's AwsSolutions-L1 asks.
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
# Graviton: about 20% cheaper per GB-second than x86 for the same (I/O-bound) agent workload.
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
# Active X-Ray tracing: the LLM call dominates latency; traces show it next to DynamoDB.
LAMBDA_TRACING = lambda_.Tracing.ACTIVE
# The function's code and the Powertools layer are written for this handler path.
SERVERLESS_HANDLER = "runtime.handlers.serverless_api.lambda_handler"
# The asynchronous pattern's three functions, all from the same runtime asset: the webhook ingress
# and task-status API, the task queue's worker, the callback queue's worker.
WEBHOOK_INGRESS_HANDLER = "runtime.handlers.webhook_api.lambda_handler"
TASK_WORKER_HANDLER = "runtime.handlers.task_worker.lambda_handler"
CALLBACK_WORKER_HANDLER = "runtime.handlers.callback_worker.lambda_handler"
# The LLM key's rotation function (constructs/key_rotation.py).
ROTATION_HANDLER = "runtime.rotation.handler.lambda_handler"
# Every Lambda handler the stacks deploy (the cold-start benchmark and tests import each).
LAMBDA_HANDLERS = (
    SERVERLESS_HANDLER,
    WEBHOOK_INGRESS_HANDLER,
    TASK_WORKER_HANDLER,
    CALLBACK_WORKER_HANDLER,
    ROTATION_HANDLER,
)
# Powertools' public layer account (AWS-owned) and name for the runtime above on ARM64.
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
POWERTOOLS_LAYER_NAME = "AWSLambdaPowertoolsPythonV3-python314-arm64"
# Powertools log level; DEBUG would log request bodies, which hold user messages.
LOG_LEVEL = "INFO"

# Customer-managed KMS keys rotate yearly; CloudWatch Logs, DynamoDB and Secrets Manager use them.
KMS_KEY_ROTATION = True
# Keys scheduled for deletion can be recovered for this long; the maximum AWS allows.
KMS_PENDING_WINDOW = Duration.days(30)

# On-demand capacity: no idle cost, no throttling from a wrong provisioned guess.
TABLE_BILLING_MODE = dynamodb.BillingMode.PAY_PER_REQUEST
# Point-in-time recovery: restore any second of the last 35 days after a bad deploy or bug.
TABLE_POINT_IN_TIME_RECOVERY = True
# Disaster recovery: global tables bill on demand like single-region ones; their replication
# latency alarm looks at one-minute maxima, so one slow batch of writes is seen.
GLOBAL_TABLE_BILLING = dynamodb.Billing.on_demand()
REPLICATION_LATENCY_PERIOD = Duration.minutes(1)
# Name of the TTL attribute (epoch seconds) DynamoDB uses to expire sessions.
SESSION_TTL_ATTRIBUTE = "expires_at"
SESSION_PARTITION_KEY = "session_id"
# Task records, idempotency keys and gone callback endpoints share one table, keyed by a prefixed
# string; the same TTL attribute expires all three.
TASK_PARTITION_KEY = "pk"
TASK_TTL_ATTRIBUTE = SESSION_TTL_ATTRIBUTE

# SQS: encrypted with the stack's customer-managed key (not SSE-SQS), so reading a message needs
# a grant on that key as well as on the queue.
QUEUE_ENCRYPTION = sqs.QueueEncryption.KMS
# How long SQS reuses a data key before asking KMS again: five minutes (the default, made
# explicit) keeps KMS requests and their cost low without a long-lived key in SQS's hands.
QUEUE_DATA_KEY_REUSE = Duration.minutes(5)
# A queue policy denies every request that does not use TLS (aws:SecureTransport = false).
QUEUE_ENFORCE_SSL = True
# AWS's guidance for SQS event sources: visibility timeout >= 6 x the function timeout (+ the
# batching window), so a batch that Lambda retries after a throttle is not handed out again while
# an earlier invocation may still run it.
QUEUE_VISIBILITY_TIMEOUT_FACTOR = 6
# A dead-letter queue alarms on its first message (Maximum >= 1 over one minute): every message
# there is a task or callback that failed for good and needs a person.
DLQ_ALARM_THRESHOLD = 1
DLQ_ALARM_PERIOD = Duration.minutes(1)

# The container service's bearer token: 48 letters and digits (285 bits), usable as a WebSocket
# subprotocol value, which browsers use to send it (runtime/service/auth.py).
SERVICE_TOKEN_LENGTH = 48
# Generated signing secrets: 48 letters and digits are 285 bits of entropy and valid base64, the
# form Standard Webhooks expects a secret in; no punctuation to mangle in shells and headers.
SIGNING_SECRET_LENGTH = 48
SIGNING_SECRET_EXCLUDE_PUNCTUATION = True

# Regional REST API: CloudFront in front is the hybrid profile's choice, not a default.
API_ENDPOINT_TYPE = apigw.EndpointType.REGIONAL
# Disaster recovery's custom API domain (Route 53 failover): TLS 1.2 at least, never 1.0.
API_DOMAIN_SECURITY_POLICY = apigw.SecurityPolicy.TLS_1_2
# The unauthenticated mock route Route 53's health checkers call (GET /healthz, fixed 200).
HEALTH_PATH = "healthz"
# IAM (SigV4) authorization on every method unless config asks for API keys.
API_DEFAULT_AUTHORIZATION = apigw.AuthorizationType.IAM
# INFO execution logs without data trace: data trace would log full request and response bodies.
API_LOGGING_LEVEL = apigw.MethodLoggingLevel.INFO
API_DATA_TRACE = False
# The stage name appears in the URL; "v1" leaves room for a later incompatible API.
API_STAGE_NAME = "v1"

# --- container pattern ----------------------------------------------------------------------------

# The VPC's address range; SERVICE_FORWARDED_ALLOW_IPS trusts X-Forwarded-* only from inside it
# (the load balancer's nodes). /16 leaves room for every subnet tier in up to three AZs.
VPC_CIDR = "10.0.0.0/16"
# Subnet tiers: public (load balancer, NAT gateways), app (tasks; routed to a NAT gateway, or
# isolated when there is none), data (ElastiCache; never a route out, whatever the NAT setting).
PUBLIC_SUBNET_MASK = 24
APP_SUBNET_MASK = 20
DATA_SUBNET_MASK = 24
# Every ENI here gets its own security group, so the default group has no members. Closing it
# would take CDK's custom-resource Lambda (Node.js, an AWS-managed policy), whose own security
# exceptions would outweigh closing a group that nothing joins.
RESTRICT_DEFAULT_SECURITY_GROUP = False
# VPC flow logs: all traffic (accepted and rejected) to a KMS-encrypted log group.
FLOW_LOG_TRAFFIC = "ALL"
# Gateway endpoints cost nothing and keep DynamoDB and S3 (ECR image layers) traffic off the NAT
# gateway's per-GB charge; every VPC gets them.
GATEWAY_ENDPOINTS = (ec2.GatewayVpcEndpointAwsService.DYNAMODB, ec2.GatewayVpcEndpointAwsService.S3)
# Without a NAT gateway, the AWS APIs the tasks (and Fargate, for them) call: image pulls, logs,
# secrets at start, the task queue. Bedrock's runtime is added when it is the model provider.
NAT_LESS_INTERFACE_ENDPOINTS = (
    ec2.InterfaceVpcEndpointAwsService.ECR,
    ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    ec2.InterfaceVpcEndpointAwsService.SQS,
)
BEDROCK_INTERFACE_ENDPOINT = ec2.InterfaceVpcEndpointAwsService.BEDROCK_RUNTIME

# Container Insights: per-task CPU and memory, and the RunningTaskCount the worker scales on.
CONTAINER_INSIGHTS = ecs.ContainerInsights.ENABLED
# The image's non-root user (Dockerfile: USER 10001); the task definition repeats it, so an
# image built elsewhere cannot run as root either.
CONTAINER_USER = "10001"
# Root filesystem read-only; the one writable path is an ephemeral volume at /tmp.
CONTAINER_READONLY_ROOT = True
CONTAINER_SCRATCH_PATH = "/tmp"  # noqa: S108 - a per-task volume, not a shared host directory
# A minimal init as PID 1: forwards SIGTERM to the app and reaps zombies.
CONTAINER_INIT_PROCESS = True
# The service listens here (Dockerfile EXPOSE, ServiceSettings' default).
CONTAINER_PORT = 8080
# One command line for the image, the task definitions and the tests (tests/infra checks the
# Dockerfile's CMD against SERVICE_COMMAND).
SERVICE_COMMAND = ("python", "-m", "runtime.service", "serve")
WORKER_COMMAND = ("python", "-m", "runtime.service", "worker")
HEALTHCHECK_COMMAND = ("python", "-m", "runtime.service", "healthcheck")
# Logs never block the app: when CloudWatch is slow, up to this much is buffered, then dropped.
LOG_DRIVER_MODE = ecs.AwsLogDriverMode.NON_BLOCKING
LOG_DRIVER_BUFFER = Size.mebibytes(25)
# Deployments: never below the running count, new tasks first; a deployment whose tasks keep
# failing stops and rolls back to the last one that worked.
DEPLOYMENT_MIN_HEALTHY_PERCENT = 100
DEPLOYMENT_MAX_PERCENT = 200
DEPLOYMENT_CIRCUIT_BREAKER = ecs.DeploymentCircuitBreaker(enable=True, rollback=True)
# Time for a new task to start before the load balancer's health checks count.
HEALTH_CHECK_GRACE_PERIOD = Duration.seconds(60)
# The load balancer's target health check: liveness only (readiness would take every task out
# when Redis blips, and nothing could serve the 503 that explains it).
TARGET_HEALTH_CHECK_PATH = "/healthz"
TARGET_HEALTH_CHECK_INTERVAL = Duration.seconds(15)
TARGET_HEALTH_CHECK_TIMEOUT = Duration.seconds(5)
# Target tracking cooldowns: scale out fast, scale in slowly (a scale-in drains WebSockets).
SCALE_OUT_COOLDOWN = Duration.seconds(60)
SCALE_IN_COOLDOWN = Duration.seconds(300)
# HTTPS listener policy: TLS 1.3 and 1.2 with forward-secret ciphers only, plus post-quantum key
# exchange for clients that offer it.
ALB_SSL_POLICY = elbv2.SslPolicy.TLS13_12_RES_PQ
# Requests with header fields the load balancer cannot parse are dropped, not passed on.
ALB_DROP_INVALID_HEADERS = True
# ALB access logs land in S3 with S3-managed keys: the only encryption ALB log delivery supports.
ACCESS_LOG_ENCRYPTION = s3.BucketEncryption.S3_MANAGED
# Access logs are audit evidence, and the load balancer writes until it is gone: the bucket is
# always retained; its lifecycle rule expires logs, so a bucket left behind empties itself.
ACCESS_LOG_REMOVAL_POLICY = RemovalPolicy.RETAIN

# ElastiCache: the newest major version of each engine.
CACHE_ENGINE_VERSIONS = {"valkey": "8.0", "redis": "7.1"}
CACHE_PORT = 6379
# The AUTH token: 64 letters and digits (ElastiCache refuses /, " and @; punctuation also breaks
# URLs and shells), generated by Secrets Manager and never in the template.
CACHE_AUTH_TOKEN_LENGTH = 64
CACHE_AUTH_TOKEN_EXCLUDE_PUNCTUATION = True

# Agent memory (vector store): Aurora PostgreSQL 16, whose Serverless v2 instances may scale to
# 0 ACU and pause (16.3 and later); pgvector ships with it (the runtime runs CREATE EXTENSION).
MEMORY_ENGINE_VERSION = rds.AuroraPostgresEngineVersion.VER_16_9
MEMORY_PORT = 5432
# The master user the runtime connects as: CREATE EXTENSION vector needs rds_superuser.
MEMORY_ADMIN_USER = "memory_admin"
# PostgreSQL's log (errors, slow statements) to CloudWatch Logs, kept like every other log.
MEMORY_LOG_EXPORTS = ("postgresql",)
# Connections without TLS are refused: the password and the memories never cross in clear.
MEMORY_CLUSTER_PARAMETERS = (("rds.force_ssl", "1"),)
# IAM database authentication on (AwsSolutions-RDS6): operators connect with short-lived tokens.
MEMORY_IAM_AUTHENTICATION = True
# Tags copied to snapshots: cost allocation and ownership survive a restore.
MEMORY_COPY_TAGS_TO_SNAPSHOT = True

# CloudFront (hybrid front door): HTTPS only for viewers (HTTP redirects), the cheapest price
# class (North America and Europe edges), HTTP/2 and HTTP/3.
EDGE_VIEWER_PROTOCOL = cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS
EDGE_PRICE_CLASS = cloudfront.PriceClass.PRICE_CLASS_100
EDGE_HTTP_VERSION = cloudfront.HttpVersion.HTTP2_AND_3
# Browsers remember HTTPS-only for a year, and the page may not be framed (clickjacking).
EDGE_HSTS_MAX_AGE = Duration.days(365)
EDGE_FRAME_OPTION = cloudfront.HeadersFrameOption.DENY
EDGE_REFERRER_POLICY = cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN
# The chat page loads its own script and style and talks to its own origin only (the WebSocket
# to /agent/ included: CSP 3 matches wss: of the same host with 'self').
EDGE_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# The UI bucket and the edge log bucket outlive the stack: versioned objects would make a
# DESTROY fail anyway, and logs are audit evidence (as ACCESS_LOG_REMOVAL_POLICY).
EDGE_BUCKET_REMOVAL_POLICY = RemovalPolicy.RETAIN

# --- backup and recovery --------------------------------------------------------------------------

# The backup vault and its KMS key are kept whatever the deployment's removal policy: a vault
# holding recovery points cannot be deleted (a DESTROY fails the teardown), and without its key
# every recovery point is unreadable. A kept vault empties itself as its recovery points expire.
BACKUP_VAULT_REMOVAL_POLICY = RemovalPolicy.RETAIN
# The role AWS Backup assumes: AWS's service-role policies for backup and for restore, which AWS
# keeps current per service; the backup selection names the resources explicitly.
BACKUP_ROLE_MANAGED_POLICIES = (
    "service-role/AWSBackupServiceRolePolicyForBackup",
    "service-role/AWSBackupServiceRolePolicyForRestores",
)

# --- cost alerts ----------------------------------------------------------------------------------

# Budget notifications: a warning when the month's forecast passes 80% of the budget (time left to
# act), and an alert when actual spend passes it.
BUDGET_FORECAST_PERCENT = 80
BUDGET_ACTUAL_PERCENT = 100
# The only principals that may publish to the deployment's alert topic (and use its KMS key), and
# only for this account (aws:SourceAccount): Budgets, Cost Anomaly Detection, CloudWatch alarms.
ALERT_TOPIC_PUBLISHERS = (
    "budgets.amazonaws.com",
    "costalerts.amazonaws.com",
    "cloudwatch.amazonaws.com",
)
# The alert topic's policy denies publishing without TLS (aws:SecureTransport = false).
TOPIC_ENFORCE_SSL = True

# --- AWS WAF --------------------------------------------------------------------------------------

# Headers that carry credentials, redacted from WAF logs ("REDACTED" in their place): SigV4 and
# the service's bearer token (Authorization), usage-plan keys (x-api-key), and the WebSocket bearer
# token, which browsers send as a subprotocol (Sec-WebSocket-Protocol).
WAF_REDACTED_HEADERS = ("authorization", "x-api-key", "sec-websocket-protocol")
# Web ACLs allow by default and block only on a rule's match: the managed groups and the rate rule
# decide, so a new route is reachable without a WAF change.
WAF_DEFAULT_ACTION = "allow"
