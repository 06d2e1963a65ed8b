"""``python -m loadtest {http,ws,webhook,all}``: bounded load scenarios, local or against a URL.

Without ``--host`` the run starts its targets on 127.0.0.1 (:mod:`loadtest.local`) and stops them
afterwards; with ``--host`` it sends to that URL and nowhere else (:mod:`loadtest.guard`). Each
scenario runs locust headless in a subprocess (locust gevent-patches whatever imports it, and this
process runs servers and threads that must stay unpatched), then prints one table per scenario
(:mod:`loadtest.report`) and, with ``--json-out``, writes them all as JSON.

Every run is bounded twice: ``--run-time`` and ``--max-requests``, whichever comes first; what is
in flight then gets up to ``--timeout`` to finish. Exit status: 0 without errors, 1 when any
request, step or callback failed (the report says which and why), 2 for bad options, 3 when a run
could not happen (a local target did not start, locust failed).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast, get_args

from loadtest.config import (
    SCENARIOS,
    ApiAuth,
    InboundSignature,
    RunConfig,
    Scenario,
    WebhookConfig,
)
from loadtest.guard import Target, parse_target
from loadtest.local import REPO_ROOT, LocalOptions, LocalTargetError, agent_service, webhook_stack
from loadtest.report import ScenarioReport, build_report, render, write_json

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
USER_CLASSES: dict[Scenario, str] = {
    "http": "HttpStepUser",
    "ws": "WebSocketStepUser",
    "webhook": "WebhookTaskUser",
}
# Names of the variables that hold the secrets, not secrets.
TOKEN_ENV = "LOADTEST_TOKEN"  # noqa: S105
API_KEY_ENV = "LOADTEST_API_KEY"
CALLBACK_SECRET_ENV = "LOADTEST_CALLBACK_SECRET"  # noqa: S105
INBOUND_SECRET_ENV = "LOADTEST_INBOUND_SECRET"  # noqa: S105

MAX_USERS = 5_000
MAX_RUN_SECONDS = 3_600
MAX_REQUESTS = 1_000_000
EXIT_ERRORS = 1
EXIT_NOT_RUN = 3
EXIT_INTERRUPTED = 130
# Past the run's own bounds, how long locust may take to start and write its files.
LOCUST_OVERHEAD_SECONDS = 60
# The locustfile times --run-time from the users' start; locust's own timer, which starts a
# little earlier, is set this much longer and only ends a run whose locustfile did not.
RUN_TIME_BACKSTOP_SECONDS = 30


class RunError(RuntimeError):
    """A scenario could not run; the message says why and where the logs are."""


# --- options ------------------------------------------------------------------------------------


def _int_in(low: int, high: int) -> type[int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return cast("type[int]", parse)


def _number_in(low: float, high: float, *, unit: str = "", allow_zero: bool = False) -> type[float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not (low <= value <= high) or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(
                f"must be between {low:g}{unit} and {high:g}{unit}, got {text}"
            )
        return value

    return cast("type[float]", parse)


def _seconds_in(low: float, high: float, *, allow_zero: bool = False) -> type[float]:
    return _number_in(low, high, unit=" s", allow_zero=allow_zero)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")


def parse_duration(text: str) -> float:
    """``20s``, ``2m``, ``1h`` or plain seconds; at least 1 s, at most an hour."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"must be a duration like 20s, 2m or 1h, got {text!r}")
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
    if not 1 <= seconds <= MAX_RUN_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be between 1s and {MAX_RUN_SECONDS // 60}m (runs are bounded), got {text!r}"
        )
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest",
        description="Bounded load scenarios (locust) against local targets on 127.0.0.1, "
        "started and stopped by the run, or against the one deployed URL given with --host.",
        epilog="Secrets are best given in the environment (a command line is visible in ps): "
        f"{TOKEN_ENV}, {API_KEY_ENV}, {CALLBACK_SECRET_ENV}, {INBOUND_SECRET_ENV}.",
    )
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"], help="all runs the three in turn")
    target = parser.add_argument_group("target")
    target.add_argument(
        "--host",
        metavar="URL",
        help="the deployed service (http, ws) or webhook API (webhook), e.g. "
        "https://agent.example.com or https://<id>.execute-api.<region>.amazonaws.com/v1; "
        "without it, local targets on 127.0.0.1 are started and stopped",
    )
    target.add_argument(
        "--webhook-host",
        metavar="URL",
        help="with 'all' and --host: the webhook API (--host is then the service)",
    )
    target.add_argument(
        "--token",
        help=f"the service's bearer token; required with --host (default ${TOKEN_ENV}); "
        "locally it replaces the generated token, to see how a wrong one is answered",
    )
    load = parser.add_argument_group("load and bounds")
    load.add_argument("--users", type=_int_in(1, MAX_USERS), default=10, help="concurrent users")
    load.add_argument(
        "--spawn-rate",
        type=_number_in(0.01, 10_000),
        default=10.0,
        metavar="R",
        help="users started per second (default 10)",
    )
    load.add_argument(
        "--run-time", type=parse_duration, default=20.0, metavar="T", help="default 20s, max 1h"
    )
    load.add_argument(
        "--max-requests",
        type=_int_in(1, MAX_REQUESTS),
        default=10_000,
        metavar="N",
        help="stop after N requests to the target (HTTP requests, WebSocket handshakes and "
        "messages, status polls); default 10000",
    )
    load.add_argument(
        "--timeout",
        type=_seconds_in(0.1, 300),
        default=30.0,
        metavar="S",
        help="per request, step and callback wait; also what in-flight work gets at the end",
    )
    load.add_argument("--message", default="Reply with the word ok.", help="the user message")
    load.add_argument(
        "--steps-per-session",
        type=_int_in(1, 1000),
        default=10,
        metavar="N",
        help="steps before a user starts a new session (and WebSocket); default 10",
    )
    local = parser.add_argument_group("local targets (without --host)")
    local.add_argument(
        "--model-latency",
        type=_seconds_in(0, 60, allow_zero=True),
        default=None,
        metavar="S",
        help="seconds the fake model takes per call (default 0)",
    )
    local.add_argument(
        "--workers",
        type=_int_in(1, 16),
        default=None,
        help="queue worker processes of the webhook stack (default 2)",
    )
    webhook = parser.add_argument_group("webhook against --host")
    webhook.add_argument(
        "--callback-url",
        metavar="URL",
        help="a public https URL forwarding to 127.0.0.1:--callback-port (an SSH or ngrok "
        "tunnel); without it the run polls GET /tasks/{id} and reports 202 -> done",
    )
    webhook.add_argument(
        "--callback-port",
        type=_int_in(1024, 65535),
        default=8765,
        help="the local callback receiver's port (127.0.0.1 only; default 8765)",
    )
    webhook.add_argument(
        "--callback-secret",
        default=os.environ.get(CALLBACK_SECRET_ENV),
        help="the deployment's callback signing secret, whsec_... "
        f"(default ${CALLBACK_SECRET_ENV})",
    )
    webhook.add_argument(
        "--poll-interval", type=_seconds_in(0.05, 60), default=0.5, metavar="S", help="default 0.5"
    )
    webhook.add_argument(
        "--webhook-auth",
        choices=get_args(ApiAuth),
        default="iam",
        help="the API's auth: iam (SigV4 with your AWS credentials; the stacks' default), "
        "api-key (x-api-key) or none",
    )
    webhook.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        help=f"with --webhook-auth api-key (default ${API_KEY_ENV})",
    )
    webhook.add_argument("--region", help="with --webhook-auth iam when the host names none")
    webhook.add_argument(
        "--inbound-signature",
        choices=get_args(InboundSignature),
        default="none",
        help="sign POST /webhook like a webhook source (the deployment's inbound_signature)",
    )
    webhook.add_argument(
        "--inbound-secret",
        default=os.environ.get(INBOUND_SECRET_ENV),
        help=f"the inbound signature's secret (default ${INBOUND_SECRET_ENV})",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--json-out", type=Path, metavar="PATH", help="write the reports as JSON")
    output.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="locust's CSV/JSON and the local targets' logs (default: a new temporary directory)",
    )
    return parser


@dataclass(frozen=True)
class Plan:
    """The validated options: what to run, where, within which bounds."""

    scenarios: tuple[Scenario, ...]
    service: Target | None
    webhook_api: Target | None
    token: str | None
    users: int
    spawn_rate: float
    run_time_seconds: float
    max_requests: int
    timeout_seconds: float
    message: str
    steps_per_session: int
    local: LocalOptions
    webhook: WebhookConfig
    json_out: Path | None


def _remote_target(parser: argparse.ArgumentParser, url: str, option: str) -> Target:
    try:
        target = parse_target(url, option=option)
    except ValueError as exc:
        parser.error(str(exc))
    if target.scheme == "http" and not target.is_loopback:
        parser.error(
            f"{option} must be https:// for a host other than 127.0.0.1/localhost: tokens and "
            "task inputs would cross the network in clear"
        )
    return target


def plan_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Plan:
    """Every check on the options, each failing with the option's name and the fix."""
    scenarios: tuple[Scenario, ...] = (
        SCENARIOS if args.scenario == "all" else (cast("Scenario", args.scenario),)
    )
    remote = args.host is not None
    if args.webhook_host is not None and not (args.scenario == "all" and remote):
        parser.error("--webhook-host is for 'all' with --host; for 'webhook' give --host")
    if args.scenario == "all" and remote and args.webhook_host is None:
        parser.error(
            "'all' with --host needs --webhook-host too: the service and the webhook API are "
            "different URLs (or run the scenarios one at a time)"
        )
    service = webhook_api = None
    if remote:
        if args.scenario == "webhook":
            webhook_api = _remote_target(parser, args.host, "--host")
        else:
            service = _remote_target(parser, args.host, "--host")
            if args.webhook_host is not None:
                webhook_api = _remote_target(parser, args.webhook_host, "--webhook-host")
        for option, value in (("--model-latency", args.model_latency), ("--workers", args.workers)):
            if value is not None:
                parser.error(f"{option} sets up local targets; it does not apply with --host")
    # The variable only stands in for --token with --host: a token exported for a deployment
    # must not turn a local run into a run of 401s.
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) if remote else None
    if service is not None and not token:
        parser.error(
            f"--host needs the service's bearer token: set {TOKEN_ENV} (or pass --token); the "
            "deployed service answers 401 without it"
        )
    if not args.message or len(args.message) > 8000:
        parser.error("--message must be 1 to 8000 characters")
    webhook = _webhook_config(parser, args, webhook_api, "webhook" in scenarios)
    return Plan(
        scenarios=scenarios,
        service=service,
        webhook_api=webhook_api,
        token=token,
        users=args.users,
        spawn_rate=args.spawn_rate,
        run_time_seconds=args.run_time,
        max_requests=args.max_requests,
        timeout_seconds=args.timeout,
        message=args.message,
        steps_per_session=args.steps_per_session,
        local=LocalOptions(
            out_dir=args.out_dir or Path(tempfile.mkdtemp(prefix="loadtest-")),
            model_latency_seconds=args.model_latency or 0.0,
            workers=args.workers or 2,
        ),
        webhook=webhook,
        json_out=args.json_out,
    )


def _webhook_config(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    api: Target | None,
    runs_webhook: bool,
) -> WebhookConfig:
    remote_only = (
        ("--callback-url", args.callback_url),
        ("--inbound-signature", None if args.inbound_signature == "none" else "set"),
    )
    if api is None:
        for option, value in remote_only:
            if value is not None:
                parser.error(
                    f"{option} is for a deployed webhook API (--host); locally the run "
                    "receives and verifies its own callbacks"
                )
        return WebhookConfig()
    if not runs_webhook:
        return WebhookConfig()
    callback_url = args.callback_url
    if callback_url is not None:
        try:
            callback = parse_target(callback_url, option="--callback-url")
        except ValueError as exc:
            parser.error(str(exc))
        if callback.scheme != "https":
            parser.error(
                "--callback-url must be https://: the deployed API refuses other callbacks"
            )
        if not args.callback_secret:
            parser.error(
                f"--callback-url needs the callback signing secret to verify callbacks: set "
                f"{CALLBACK_SECRET_ENV} (or pass --callback-secret)"
            )
    auth = cast("ApiAuth", args.webhook_auth)
    region = args.region
    if auth == "api-key" and not args.api_key:
        parser.error(f"--webhook-auth api-key needs the key: set {API_KEY_ENV} (or pass --api-key)")
    if auth == "iam":
        region = region or api.aws_region()
        if not region:
            parser.error("--webhook-auth iam needs --region: the host names no AWS region")
        if not _have_aws_credentials():
            parser.error(
                "--webhook-auth iam found no AWS credentials (environment, profile or SSO); "
                "sign in first, or use --webhook-auth api-key"
            )
    signature = cast("InboundSignature", args.inbound_signature)
    if signature != "none" and not args.inbound_secret:
        parser.error(
            f"--inbound-signature {signature} needs the source's secret: set "
            f"{INBOUND_SECRET_ENV} (or pass --inbound-secret)"
        )
    return WebhookConfig(
        mode="callback" if callback_url is not None else "poll",
        callback_url=callback_url,
        receiver_port=args.callback_port,
        callback_secret=args.callback_secret,
        poll_interval_seconds=args.poll_interval,
        api_auth=auth,
        api_key=args.api_key,
        aws_region=region,
        inbound_signature=signature,
        inbound_secret=args.inbound_secret,
    )


def _have_aws_credentials() -> bool:
    import botocore.session

    return botocore.session.get_session().get_credentials() is not None


# --- running ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedTarget:
    url: str
    local: bool
    token: str | None
    webhook: WebhookConfig


@contextlib.contextmanager
def resolve_target(plan: Plan, scenario: Scenario) -> Iterator[ResolvedTarget]:
    """The URL a scenario sends to: the one given, or local targets started for the run."""
    remote = plan.webhook_api if scenario == "webhook" else plan.service
    if remote is not None:
        yield ResolvedTarget(remote.base_url, False, plan.token, plan.webhook)
        return
    if scenario == "webhook":
        with webhook_stack(plan.local) as stack:
            webhook = WebhookConfig(
                mode="callback",
                callback_url=stack.callback_url,
                receiver_port=stack.receiver_port,
                callback_secret=stack.callback_secret,
                api_auth="none",
            )
            yield ResolvedTarget(stack.url, True, None, webhook)
        return
    with agent_service(plan.local) as service:
        # A --token given locally replaces the real one: how a wrong token is answered.
        yield ResolvedTarget(service.url, True, plan.token or service.token, plan.webhook)


def _locust_environment(config: RunConfig) -> dict[str, str]:
    # LOCUST_* variables would change the run behind the command line's back.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    pythonpath = [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(pythonpath)
    env.update(config.to_env())
    return env


def run_locust(plan: Plan, scenario: Scenario, target: ResolvedTarget, prefix: str) -> None:
    out_dir = plan.local.out_dir
    config = RunConfig(
        scenario=scenario,
        host=target.url,
        run_time_seconds=plan.run_time_seconds,
        max_requests=plan.max_requests,
        timeout_seconds=plan.timeout_seconds,
        message=plan.message,
        extras_path=str(out_dir / f"{prefix}_extras.json"),
        token=target.token,
        steps_per_session=plan.steps_per_session,
        webhook=target.webhook,
    )
    # In-flight work finishes within --timeout; then the locustfile waits as long again for
    # callbacks of users it had to stop.
    stop_timeout = plan.timeout_seconds + 5
    # --json-file gets ".json" appended by locust.
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--users", str(plan.users), "--spawn-rate", f"{plan.spawn_rate:g}",
        "--run-time", f"{plan.run_time_seconds + RUN_TIME_BACKSTOP_SECONDS:g}s",
        "--stop-timeout", f"{stop_timeout:g}",
        "--host", target.url,
        "--csv", str(out_dir / prefix), "--json-file", str(out_dir / f"{prefix}_stats"),
        "--only-summary", "--loglevel", "WARNING",
        "--logfile", str(out_dir / f"{prefix}_locust.log"),
        USER_CLASSES[scenario],
    ]  # fmt: skip
    limit = (
        plan.run_time_seconds
        + RUN_TIME_BACKSTOP_SECONDS
        + 2 * plan.timeout_seconds
        + 5
        + LOCUST_OVERHEAD_SECONDS
    )
    log_path = out_dir / f"{prefix}_locust.out"
    with log_path.open("wb") as log:
        try:
            run = subprocess.run(  # noqa: S603 - our interpreter running locust, no shell
                argv,
                env=_locust_environment(config),
                cwd=out_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=limit,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RunError(f"locust did not finish within {limit:g} s; see {log_path}") from None
    # 1 is locust's "there were failures": the report shows them.
    if run.returncode not in (0, 1) or not (out_dir / f"{prefix}_extras.json").exists():
        raise RunError(
            f"locust exited with status {run.returncode} before writing its results; see "
            f"{log_path} and {out_dir / f'{prefix}_locust.log'}"
        )


def run_scenario(plan: Plan, scenario: Scenario) -> ScenarioReport:
    prefix = scenario
    with resolve_target(plan, scenario) as target:
        run_locust(plan, scenario, target, prefix)
    return build_report(
        scenario=scenario,
        target=target.url,
        local=target.local,
        users=plan.users,
        run_time_seconds=plan.run_time_seconds,
        out_dir=plan.local.out_dir,
        prefix=prefix,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    plan = plan_from_args(parser, args)
    plan.local.out_dir.mkdir(parents=True, exist_ok=True)
    reports: list[ScenarioReport] = []
    status = 0
    for scenario in plan.scenarios:
        try:
            report = run_scenario(plan, scenario)
        except (RunError, LocalTargetError) as exc:
            print(f"{scenario}: not run: {exc}", file=sys.stderr)
            status = EXIT_NOT_RUN
            continue
        except KeyboardInterrupt:
            # The local targets are already stopped (their context managers ran).
            print(
                f"{scenario}: interrupted; partial files in {plan.local.out_dir}", file=sys.stderr
            )
            return EXIT_INTERRUPTED
        reports.append(report)
        print(render(report) + "\n", flush=True)
        if report.errors and status == 0:
            status = EXIT_ERRORS
    if plan.json_out is not None:
        write_json(plan.json_out, reports)
    return status
