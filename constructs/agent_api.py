"""The REST API in front of the agent: routes, validation, auth, throttling, logs, X-Ray."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_

from constructs import Construct
from constructs.rest_api import ApiStageProps, RestApiScaffold, ScaffoldReasons

# The same limits the handler enforces; API Gateway rejects obvious garbage before it costs an
# invocation, the handler stays the authority (it also runs behind other front doors).
SESSION_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


@dataclass(frozen=True)
class AgentApiProps:
    handler: lambda_.IFunction
    max_message_chars: int
    stage: ApiStageProps


class AgentApi(RestApiScaffold):
    """``self.api``: ``POST /sessions/{session_id}/messages`` and ``GET /sessions/{session_id}``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: AgentApiProps) -> None:
        super().__init__(scope, construct_id, description="Agent sessions API", stage=props.stage)
        message_model = self.api.add_model(
            "MessageRequest",
            content_type="application/json",
            schema=apigw.JsonSchema(
                schema=apigw.JsonSchemaVersion.DRAFT4,
                type=apigw.JsonSchemaType.OBJECT,
                required=["message"],
                additional_properties=False,
                properties={
                    "message": apigw.JsonSchema(
                        type=apigw.JsonSchemaType.STRING,
                        min_length=1,
                        max_length=props.max_message_chars,
                    ),
                    "expected_version": apigw.JsonSchema(
                        type=apigw.JsonSchemaType.INTEGER, minimum=0
                    ),
                },
            ),
        )
        integration = apigw.LambdaIntegration(props.handler, proxy=True)
        sessions = self.api.root.add_resource("sessions")
        session = sessions.add_resource("{session_id}")
        path_params = {"method.request.path.session_id": True}
        self.get_session = session.add_method(
            "GET", integration, request_parameters=path_params, request_validator=self.validator
        )
        self.post_message = session.add_resource("messages").add_method(
            "POST",
            integration,
            request_parameters=path_params,
            request_validator=self.validator,
            request_models={"application/json": message_model},
        )
        self.finish(
            methods=[self.get_session, self.post_message],
            reasons=ScaffoldReasons(
                no_waf="config waf is unset, so no web ACL filters this regional API (a config's "
                "waf: section attaches one); IAM authorization and stage throttling bound abuse",
                no_cache="responses are per-session agent turns (POST) or live session state; a "
                "cache would serve stale conversations",
            ),
        )
