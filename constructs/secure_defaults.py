"""Secure and reliable defaults, in one place. README.md ("Defaults") lists the same items.

Constructs read these instead of choosing their own values, so one file tells a reviewer the
security posture of everything this repository deploys. Each value says why it is the default.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_

# The newest Python runtime CDK offers: longest support window; cdk-nag's AwsSolutions-L1 asks.
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
# Graviton: about 20% cheaper per GB-second than x86 for the same (I/O-bound) agent workload.
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
# Active X-Ray tracing: the LLM call dominates latency; traces show it next to DynamoDB.
LAMBDA_TRACING = lambda_.Tracing.ACTIVE
# The function's code and the Powertools layer are written for this handler path.
SERVERLESS_HANDLER = "runtime.handlers.serverless_api.lambda_handler"
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

# Regional REST API: CloudFront in front is the hybrid profile's choice, not a default.
API_ENDPOINT_TYPE = apigw.EndpointType.REGIONAL
# IAM (SigV4) authorization on every method unless config asks for API keys.
API_DEFAULT_AUTHORIZATION = apigw.AuthorizationType.IAM
# INFO execution logs without data trace: data trace would log full request and response bodies.
API_LOGGING_LEVEL = apigw.MethodLoggingLevel.INFO
API_DATA_TRACE = False
# The stage name appears in the URL; "v1" leaves room for a later incompatible API.
API_STAGE_NAME = "v1"
