"""Secure and reliable defaults, in one place. README.md ("Defaults") lists the same items.

Constructs read these instead of choosing their own values, so one file tells a reviewer the
security posture of everything this repository deploys. Each value says why it is the default.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
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

# Generated signing secrets: 48 letters and digits are 285 bits of entropy and valid base64, the
# form Standard Webhooks expects a secret in; no punctuation to mangle in shells and headers.
SIGNING_SECRET_LENGTH = 48
SIGNING_SECRET_EXCLUDE_PUNCTUATION = True

# Regional REST API: CloudFront in front is the hybrid profile's choice, not a default.
API_ENDPOINT_TYPE = apigw.EndpointType.REGIONAL
# IAM (SigV4) authorization on every method unless config asks for API keys.
API_DEFAULT_AUTHORIZATION = apigw.AuthorizationType.IAM
# INFO execution logs without data trace: data trace would log full request and response bodies.
API_LOGGING_LEVEL = apigw.MethodLoggingLevel.INFO
API_DATA_TRACE = False
# The stage name appears in the URL; "v1" leaves room for a later incompatible API.
API_STAGE_NAME = "v1"
