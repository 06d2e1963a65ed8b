"""The REST API of the asynchronous pattern: submit a task by webhook, read its status.

Its own API rather than two more routes on the sessions API: webhook sources such as GitHub
cannot sign SigV4 requests or send an API key, so ``POST /webhook`` may have to be open at the
gateway and authenticated by the request's HMAC signature instead, with its own throttling; and
the pattern deploys without the serverless one.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_

from constructs import Construct
from constructs.acknowledgements import acknowledge_nag, skip_checkov
from constructs.rest_api import ApiStageProps, RestApiScaffold, ScaffoldReasons


@dataclass(frozen=True)
class WebhookApiProps:
    handler: lambda_.IFunction
    request_schema: apigw.JsonSchema
    """The body of ``POST /webhook`` (built from the runtime's schema)."""
    signed_webhooks: bool
    """True: ``POST /webhook`` has no gateway auth; the handler verifies the HMAC signature."""
    stage: ApiStageProps


class WebhookApi(RestApiScaffold):
    """``self.api``: ``POST /webhook`` (202 with a task id) and ``GET /tasks/{task_id}``.

    ``GET /tasks/{task_id}`` always has the API's auth. The gateway checks that ``task_id`` is
    present; its format is checked by the handler (request validators test presence only).
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: WebhookApiProps) -> None:
        super().__init__(
            scope, construct_id, description="Agent tasks API (webhooks)", stage=props.stage
        )
        task_model = self.api.add_model(
            "TaskRequest", content_type="application/json", schema=props.request_schema
        )
        integration = apigw.LambdaIntegration(props.handler, proxy=True)
        signed = props.signed_webhooks
        self.post_webhook = self.api.root.add_resource("webhook").add_method(
            "POST",
            integration,
            request_validator=self.validator,
            request_models={"application/json": task_model},
            # A signed webhook authenticates itself: the gateway lets it through; otherwise
            # (None) the API's default auth applies, as on every other method.
            authorization_type=apigw.AuthorizationType.NONE if signed else None,
            api_key_required=False if signed else None,
        )
        self.get_task = (
            self.api.root.add_resource("tasks")
            .add_resource("{task_id}")
            .add_method(
                "GET",
                integration,
                request_parameters={"method.request.path.task_id": True},
                request_validator=self.validator,
            )
        )
        api_auth_methods = [self.get_task]
        if props.signed_webhooks:
            self._acknowledge_signed(self.post_webhook)
        else:
            api_auth_methods.insert(0, self.post_webhook)
        self.finish(
            methods=api_auth_methods,
            reasons=ScaffoldReasons(
                no_waf="config waf is unset, so no web ACL filters this regional API (a config's "
                "waf: section attaches one); the API's auth or the webhook's HMAC signature, and "
                "stage throttling, bound abuse",
                no_cache="POST submits a new task and GET returns its live status; a cache would "
                "drop submissions and serve a stale status",
            ),
        )

    def _acknowledge_signed(self, method: apigw.Method) -> None:
        reason = (
            "webhook.inbound_signature is set: webhook sources cannot sign SigV4 or send API "
            "keys, so the handler authenticates each request by its HMAC signature over the raw "
            "body with the shared secret and rejects unsigned or stale requests"
        )
        acknowledge_nag(method, "AwsSolutions-APIG4", reason)
        acknowledge_nag(method, "AwsSolutions-COG4", reason)
        skip_checkov(method, "CKV_AWS_59", reason)
