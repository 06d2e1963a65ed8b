"""The container's entry points: ``python -m runtime.service serve | worker | healthcheck``.

* ``serve`` -- the HTTP / WebSocket service on ``SERVICE_HOST:SERVICE_PORT``; drains on SIGTERM
  within ``SERVICE_DRAIN_SECONDS`` and exits 0 (:mod:`runtime.service.server`).
* ``worker [args...]`` -- the queue worker, :func:`runtime.queue_worker.main`: the same image in
  its other role.
* ``healthcheck`` -- ``GET /healthz`` on this container with the standard library, exit 0 when
  it answers 200, else 1: the Dockerfile's ``HEALTHCHECK`` (the slim image has no curl).

Each command imports only what it runs, so a health check every few seconds costs little.
"""

from __future__ import annotations

import argparse
import logging
import logging.config
import math
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from runtime.service.settings import ServiceSettings
from runtime.settings import RuntimeSettings, SettingsError

logger = logging.getLogger("runtime.service")
SettingsT = TypeVar("SettingsT")

# The process could not start with this environment (EX_CONFIG in sysexits.h).
EXIT_CONFIG_ERROR = 78
HEALTHCHECK_TIMEOUT_SECONDS = 3.0
# Addresses that mean "every interface": the check then goes to the loopback one.
_ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - compared against, not bound


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.service",
        description="The agent container: serve the API, run the queue worker, or check health.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP / WebSocket service")
    commands.add_parser(
        "worker", help="run the queue worker; the arguments after it are the worker's own"
    )
    healthcheck = commands.add_parser("healthcheck", help="exit 0 when /healthz answers 200")
    healthcheck.add_argument("--timeout", type=float, default=HEALTHCHECK_TIMEOUT_SECONDS)
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["worker"]:
        # Everything after "worker", options included, is the worker's command line (argparse
        # would claim the options). Imported here: the worker's dependencies are not the
        # service's.
        from runtime.queue_worker import main as worker_main

        return worker_main(arguments[1:])
    args = parser.parse_args(arguments)
    env = os.environ if environ is None else environ
    if args.command == "serve":
        return serve(env)
    return check_health(env, timeout_seconds=args.timeout)


def serve(environ: Mapping[str, str]) -> int:
    from runtime.service.server import log_config

    # JSON from the first line, so even a configuration error is one parseable record.
    logging.config.dictConfig(log_config(environ.get("SERVICE_LOG_LEVEL", "INFO").upper()))
    problems: list[str] = []
    runtime_settings = _parse(RuntimeSettings.from_env, environ, problems)
    service_settings = _parse(ServiceSettings.from_env, environ, problems)
    if runtime_settings is None or service_settings is None:
        # Both halves are checked first, so one deployment attempt shows every problem.
        logger.error("invalid configuration", extra={"reason": "; ".join(problems)})
        return EXIT_CONFIG_ERROR

    from runtime.service.app import create_app
    from runtime.service.server import production_server, uvicorn_config
    from runtime.wiring import build_dependencies

    app = create_app(deps=build_dependencies(runtime_settings), settings=service_settings)
    server = production_server(uvicorn_config(app, service_settings))
    server.run()

    # Steps whose clients left still run in their threads (they save when done); give them
    # what is left of the drain, then exit: the platform's kill comes soon after anyway.
    state = server.state
    remaining = state.drain.remaining_seconds()
    if math.isfinite(remaining) and not state.steps.wait_idle(remaining):
        logger.warning(
            "exiting with steps still running; each saves whole or not at all",
            extra={"steps": state.steps.running},
        )
    logger.info("service stopped")
    return 0


def _parse(
    parse: Callable[[Mapping[str, str]], SettingsT], environ: Mapping[str, str], problems: list[str]
) -> SettingsT | None:
    try:
        return parse(environ)
    except SettingsError as exc:
        problems.append(str(exc))
        return None


def check_health(environ: Mapping[str, str], *, timeout_seconds: float) -> int:
    try:
        settings = ServiceSettings.from_env(environ)
    except SettingsError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    host = "127.0.0.1" if settings.host in _ANY_ADDRESS else settings.host
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{settings.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
