"""Verify one captured webhook request from the command line.

For receivers debugging their integration ("is it my code or your signature?") and for us when
a receiver reports a rejection::

    python -m runtime.webhooks.verify --secret-env WEBHOOK_SECRET \\
        --body-file body.json --headers-file headers.txt --now 1717000000

Exit status: 0 and ``valid: <message id>`` on stdout when the request verifies; 1 and
``invalid: <reason>`` on stderr when it does not; 2 for usage errors (argparse's convention),
including an unusable secret or an unreadable file.

``--secret-env`` reads the secret from an environment variable so it stays out of shell
history and process listings; both options may repeat (all secrets are tried, as during a
rotation). ``--now`` replays a captured request against the clock of its capture time, since
the timestamp check would otherwise reject anything older than the tolerance. Only
:mod:`runtime.webhooks.signing` is imported, so this runs without third-party packages.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from runtime.webhooks.signing import (
    DEFAULT_TOLERANCE_SECONDS,
    WebhookVerificationError,
    verify,
    verify_github,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.webhooks.verify",
        description="Verify the signature of one captured webhook request.",
    )
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        help="a signing secret (repeatable); prefer --secret-env to keep it out of shell history",
    )
    parser.add_argument(
        "--secret-env",
        action="append",
        default=[],
        metavar="NAME",
        help="name of an environment variable holding a secret (repeatable)",
    )
    parser.add_argument(
        "--body-file",
        required=True,
        metavar="PATH",
        help="the raw request body, byte for byte; '-' reads standard input",
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'Name: value'",
        help="a request header (repeatable)",
    )
    parser.add_argument(
        "--headers-file",
        metavar="PATH",
        help="a file of 'Name: value' lines (blank lines and lines starting with # are skipped)",
    )
    parser.add_argument(
        "--style",
        choices=("standard", "github"),
        default="standard",
        help="Standard Webhooks (our callbacks; default) or GitHub's X-Hub-Signature-256",
    )
    parser.add_argument(
        "--tolerance",
        type=int,
        default=DEFAULT_TOLERANCE_SECONDS,
        metavar="SECONDS",
        help=f"allowed clock difference (default {DEFAULT_TOLERANCE_SECONDS}; standard only)",
    )
    parser.add_argument(
        "--now",
        type=float,
        metavar="EPOCH",
        help="check the timestamp against this Unix time instead of the current time",
    )
    return parser


def _parse_header_line(parser: argparse.ArgumentParser, line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    if not sep or not name.strip():
        parser.error(f"a header must look like 'Name: value', got {line!r}")
    return name.strip(), value.strip()


def _collect_headers(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    lines: list[str] = []
    if args.headers_file is not None:
        try:
            text = Path(args.headers_file).read_text(encoding="utf-8")
        except OSError as exc:
            parser.error(f"cannot read --headers-file: {exc}")
        lines.extend(
            line
            for line in (raw.strip() for raw in text.splitlines())
            if line and not line.startswith("#")
        )
    lines.extend(args.header)
    # Later lines win, so --header can override one value from a captured headers file.
    return dict(_parse_header_line(parser, line) for line in lines)


def _collect_secrets(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    secrets: list[str] = list(args.secret)
    for name in args.secret_env:
        value = os.environ.get(name)
        if not value:
            parser.error(f"environment variable {name} (from --secret-env) is unset or empty")
        secrets.append(value)
    if not secrets:
        parser.error("give at least one --secret or --secret-env")
    return secrets


def _read_body(parser: argparse.ArgumentParser, path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        parser.error(f"cannot read --body-file: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (argparse exits with 2 itself on usage errors)."""
    parser = _parser()
    args = parser.parse_args(argv)
    secrets = _collect_secrets(parser, args)
    headers = _collect_headers(parser, args)
    body = _read_body(parser, args.body_file)
    try:
        if args.style == "github":
            verify_github(headers, body, secrets)
            # GitHub names each delivery in its own header; show it the way we show message ids.
            lowered = {name.lower(): value for name, value in headers.items()}
            msg_id = lowered.get("x-github-delivery", "-")
        else:
            msg_id = verify(headers, body, secrets, now=args.now, tolerance_seconds=args.tolerance)
    except WebhookVerificationError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        # An unusable secret (not base64, empty) is the operator's mistake, not the request's.
        parser.error(str(exc))
    print(f"valid: {msg_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
