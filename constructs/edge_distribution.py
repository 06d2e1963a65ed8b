"""CloudFront in front of everything: the web UI from S3, WebSockets to the load balancer, and the
API's token- or signature-authenticated paths, with security headers on every response."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy

from constructs import Construct
from constructs.secure_defaults import (
    ACCESS_LOG_ENCRYPTION,
    EDGE_BUCKET_REMOVAL_POLICY,
    EDGE_CONTENT_SECURITY_POLICY,
    EDGE_FRAME_OPTION,
    EDGE_HSTS_MAX_AGE,
    EDGE_HTTP_VERSION,
    EDGE_PRICE_CLASS,
    EDGE_REFERRER_POLICY,
    EDGE_VIEWER_PROTOCOL,
)


@dataclass(frozen=True)
class EdgeDistributionProps:
    ui_directory: Path
    """The web UI's files, published to the UI bucket on every deployment."""
    service_origin: str
    """The load balancer's DNS name, or the name on its certificate when it has one."""
    service_https: bool
    """True: CloudFront reaches the load balancer over HTTPS (it needs a certificate)."""
    websocket_path: str
    """The service's WebSocket paths (``/agent/*``)."""
    api_origin: str
    """The HTTP API's host (``<id>.execute-api.<region>.amazonaws.com``)."""
    api_paths: Sequence[str]
    """API paths served through CloudFront; SigV4 routes are left out (see the stack)."""
    log_retention: Duration
    """How long the access logs (CloudFront's and the UI bucket's) are kept."""
    publisher_logs: logs.RetentionDays
    """Retention of the UI publisher's (BucketDeployment's) own log group."""
    encryption_key: kms.IKey
    """Encrypts the publisher's log group."""
    removal_policy: RemovalPolicy
    web_acl_arn: str | None = None
    """The CLOUDFRONT-scope web ACL (us-east-1) in front of every behaviour; None: no WAF."""


class EdgeDistribution(Construct):
    """``self.distribution`` over ``self.ui_bucket`` (private, reachable only through OAC).

    Every behaviour is HTTPS for viewers and carries ``self.headers`` (HSTS, nosniff, frame
    deny, referrer policy, the UI's CSP). The UI is cached; WebSockets and API calls are never
    cached and reach their origin with every viewer header, cookie and query string (the API
    without the Host header, which API Gateway needs to be its own). Standard access logs go to
    ``self.log_bucket``, which also keeps the UI bucket's server access logs.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, props: EdgeDistributionProps
    ) -> None:
        super().__init__(scope, construct_id)
        if not props.ui_directory.is_dir():
            raise ValueError(
                f"EdgeDistributionProps.ui_directory {props.ui_directory} is not a directory"
            )
        lifecycle = [
            s3.LifecycleRule(
                id="expire-logs",
                expiration=props.log_retention,
                noncurrent_version_expiration=Duration.days(1),
                abort_incomplete_multipart_upload_after=Duration.days(1),
            )
        ]
        self.log_bucket = s3.Bucket(
            self,
            "Logs",
            encryption=ACCESS_LOG_ENCRYPTION,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            # CloudFront's standard logs are delivered with an ACL grant: the one bucket that
            # needs ACLs on (the owner still owns every object it writes).
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            versioned=True,
            lifecycle_rules=lifecycle,
            removal_policy=EDGE_BUCKET_REMOVAL_POLICY,
        )
        self.ui_bucket = s3.Bucket(
            self,
            "Ui",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="ui-bucket/",
            removal_policy=EDGE_BUCKET_REMOVAL_POLICY,
        )
        self.headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="HSTS, nosniff, frame deny, referrer policy, the chat page's CSP",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=EDGE_HSTS_MAX_AGE, include_subdomains=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=EDGE_FRAME_OPTION, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=EDGE_REFERRER_POLICY, override=True
                ),
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=EDGE_CONTENT_SECURITY_POLICY, override=True
                ),
            ),
        )
        service = origins.HttpOrigin(
            props.service_origin,
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY
            if props.service_https
            else cloudfront.OriginProtocolPolicy.HTTP_ONLY,
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
        )
        api = origins.HttpOrigin(
            props.api_origin,
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
        )
        uncached = {
            "viewer_protocol_policy": cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
            "cache_policy": cloudfront.CachePolicy.CACHING_DISABLED,
            "response_headers_policy": self.headers,
        }
        behaviors: dict[str, cloudfront.BehaviorOptions] = {
            props.websocket_path: cloudfront.BehaviorOptions(
                origin=service,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                # Sec-WebSocket-* (the bearer token travels as a subprotocol) and the query.
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER,
                **uncached,  # type: ignore[arg-type]
            )
        }
        for path in props.api_paths:
            behaviors[path] = cloudfront.BehaviorOptions(
                origin=api,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                **uncached,  # type: ignore[arg-type]
            )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="agent front door: web UI, WebSockets, API",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.ui_bucket),
                viewer_protocol_policy=EDGE_VIEWER_PROTOCOL,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=self.headers,
                compress=True,
            ),
            additional_behaviors=behaviors,
            price_class=EDGE_PRICE_CLASS,
            http_version=EDGE_HTTP_VERSION,
            enable_logging=True,
            log_bucket=self.log_bucket,
            log_file_prefix="cloudfront/",
            web_acl_id=props.web_acl_arn,
        )
        # Publishes the UI on every deployment and invalidates CloudFront's copies.
        self.publisher_logs = logs.LogGroup(
            self,
            "PublisherLogs",
            retention=props.publisher_logs,
            encryption_key=props.encryption_key,
            removal_policy=props.removal_policy,
        )
        self.ui_files = s3deploy.BucketDeployment(
            self,
            "UiFiles",
            sources=[s3deploy.Source.asset(str(props.ui_directory))],
            destination_bucket=self.ui_bucket,
            distribution=self.distribution,
            distribution_paths=["/*"],
            memory_limit=256,
            log_group=self.publisher_logs,
        )
