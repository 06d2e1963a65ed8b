"""What one scenario run needs, handed from the CLI to the locust process in one variable.

The CLI (never gevent-patched) and the locust process (always patched) share nothing but this:
a frozen dataclass serialised as JSON into :data:`ENV_VAR`. The environment rather than locust's
command line, because tokens and secrets on a command line are visible to every user of the
machine (``ps``), and the environment is not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

ENV_VAR = "LOADTEST_RUN"

Scenario = Literal["http", "ws", "webhook"]
SCENARIOS: tuple[Scenario, ...] = ("http", "ws", "webhook")
WebhookMode = Literal["callback", "poll"]
ApiAuth = Literal["none", "api-key", "iam"]
InboundSignature = Literal["none", "standard", "github"]


@dataclass(frozen=True)
class WebhookConfig:
    """How the webhook scenario submits tasks and learns that they are done."""

    # callback: the API calls ``callback_url`` and the receiver on 127.0.0.1:``receiver_port``
    # times it; poll: GET /tasks/{id} every ``poll_interval_seconds`` until it is finished.
    mode: WebhookMode = "callback"
    callback_url: str | None = None
    receiver_port: int = 0
    # The callback signing secret (whsec_...): a callback that does not verify is an error.
    callback_secret: str | None = None
    poll_interval_seconds: float = 0.5
    # The webhook API's own auth (the deployed API: IAM by default, or API keys).
    api_auth: ApiAuth = "none"
    api_key: str | None = None
    aws_region: str | None = None
    # A webhook source's signature on POST /webhook (the API then has no gateway auth on it).
    inbound_signature: InboundSignature = "none"
    inbound_secret: str | None = None


@dataclass(frozen=True)
class RunConfig:
    scenario: Scenario
    host: str
    # The run sends for this long from its start, or until max_requests, whichever is first.
    run_time_seconds: float
    max_requests: int
    # One request (or step, or the wait for one callback) gives up after this long.
    timeout_seconds: float
    message: str
    # Where the locust process writes what locust's own stats do not hold (see locustfile).
    extras_path: str
    token: str | None = None
    steps_per_session: int = 10
    webhook: WebhookConfig = field(default_factory=WebhookConfig)

    def to_env(self) -> dict[str, str]:
        return {ENV_VAR: json.dumps(asdict(self))}

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RunConfig:
        raw = environ.get(ENV_VAR)
        if raw is None:
            raise RuntimeError(
                f"{ENV_VAR} is not set: run the scenarios with `python -m loadtest`, which "
                "starts locust with it"
            )
        data = json.loads(raw)
        webhook = WebhookConfig(**data.pop("webhook"))
        return cls(**data, webhook=webhook)
