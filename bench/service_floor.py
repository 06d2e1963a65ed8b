"""Benchmark: where the agent endpoint's time goes, next to FastAPI hello-world, in one run.

``bench/service.py`` measures the agent endpoint as production runs it. This script serves the
same agent with parts of its work switched off, one more each row (``service_apps.py agent PORT
--off ...``, see its ``PARTS``), so the table shows what each part costs and how close to
hello-world the endpoint could get without it:

1. the agent as production runs it;
2. its step on the event loop instead of a worker thread (what an asyncio model client and store
   could at best give);
3. no usage metric line either;
4. no log lines either;
5. no agent step at all: what is left is the HTTP layer (middlewares, auth, body parsing, the
   JSON answer).

Same load as ``bench/service.py`` (``POST /sessions/{id}/messages``, keep-alive connections,
servers interleaved run by run), medians over ``--runs``. A what-if, never a way to serve: the
switched-off rows replace module attributes in their own server process. It never passes or
fails. Run: ``.venv/bin/python bench/service_floor.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.service import HttpResult, http_load, load_parser, parse_load_args, server  # noqa: E402

# (label, service_apps.py arguments after the port); each agent row switches off one more part.
ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("FastAPI hello-world", ()),
    ("agent, as production runs it", ()),
    ("agent, step on the event loop", ("--off", "thread")),
    ("  + no usage metric line", ("--off", "thread,metrics")),
    ("  + no log lines", ("--off", "thread,metrics,logs")),
    ("  + no agent step (HTTP layer only)", ("--off", "thread,metrics,logs,step")),
)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_load_args(load_parser(__doc__), argv)

    results: dict[str, list[HttpResult]] = {label: [] for label, _ in ROWS}
    for _ in range(args.runs):
        for label, options in ROWS:
            which = "hello" if label == ROWS[0][0] else "agent"
            with server(which, *options) as (port, _pid):
                asyncio.run(http_load(port, connections=args.connections, seconds=0.5))  # warm
                results[label].append(
                    asyncio.run(http_load(port, connections=args.connections, seconds=args.seconds))
                )

    def med(label: str, field: str) -> float:
        return float(statistics.median(getattr(result, field) for result in results[label]))

    hello = ROWS[0][0]
    hello_rps, hello_p99 = med(hello, "requests_per_second"), med(hello, "p99_ms")
    print(
        f"POST /sessions/{{id}}/messages, {args.connections} connections, "
        f"{args.seconds:g} s x {args.runs} runs (medians)\n"
    )
    print("| server | req/s | p99 ms | errors | req/s vs hello | p99 vs hello |")
    print("|---|---:|---:|---:|---:|---:|")
    figures: dict[str, object] = {}
    for label, _ in ROWS:
        rps, p99 = med(label, "requests_per_second"), med(label, "p99_ms")
        errors = sum(result.errors for result in results[label])
        figures[label] = {
            "requests_per_second": round(rps, 1),
            "p99_ms": round(p99, 2),
            "errors": errors,
            "requests_per_second_vs_hello": round(rps / hello_rps, 3),
            "p99_vs_hello": round(p99 / hello_p99, 3),
            "runs": [asdict(result) for result in results[label]],
        }
        print(
            f"| {label} | {rps:.0f} | {p99:.2f} | {errors} | {rps / hello_rps:.2f} "
            f"| {p99 / hello_p99:.2f} |"
        )
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.chdir(REPO_ROOT)
    raise SystemExit(main())
