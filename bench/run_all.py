"""Every benchmark in one run (``make bench``), then one table of issue 8's targets.

Runs, one after another so they do not compete for the CPU:

1. ``bench/synth_and_tests.py``: ``import aws_cdk``, the full CDK synth with and without CDK's
   validation, the cdk8s synth, and the whole test suite;
2. ``bench/lambda_cold_start.py``: each Lambda handler's cold import next to a bare handler,
   ``import boto3`` and a boto3 client plus the Powertools logger; the zipped package;
3. ``bench/service.py``: the agent endpoint next to FastAPI hello-world and a bare ASGI app,
   WebSocket frames/s, memory with 1,000 idle WebSockets;
4. ``bench/service_floor.py``: the agent endpoint with its parts switched off one by one (worker
   thread, usage metric line, log lines, the step), next to hello-world: where its time goes.

Each prints its own table with medians and raw samples; this script adds the ratios the targets
are about, all from this run. It never passes or fails: a missed target is a line in the table.
``--quick`` runs fewer repetitions (a smoke run, not figures to quote).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent


@dataclass(frozen=True)
class Target:
    what: str
    value: float
    limit: float
    at_least: bool = False  # True: the value must reach the limit; False: stay at or below it
    unit: str = "x"

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def row(self) -> str:
        sign = ">=" if self.at_least else "<="
        verdict = "met" if self.met else "**missed**"
        return (
            f"| {self.what} | {self.value:.2f}{self.unit} | {sign} {self.limit:g}{self.unit} "
            f"| {verdict} |"
        )


def _run(script: str, arguments: Sequence[str], json_out: Path) -> dict[str, Any]:
    command = [sys.executable, str(BENCH / script), *arguments, "--json-out", str(json_out)]
    print(f"\n## {script}\n\n$ {' '.join(command[1:])}\n", flush=True)
    subprocess.run(command, cwd=REPO_ROOT, check=True)
    result: dict[str, Any] = json.loads(json_out.read_text())
    return result


def synth_targets(result: dict[str, Any]) -> list[Target]:
    medians = result["median_seconds"]
    floor = medians["import aws_cdk (floor)"]
    synth = medians["cdk synth, all envs"]
    targets = [
        Target(
            "full CDK synth, CDK_VALIDATION=false / import aws_cdk",
            medians["cdk synth, all envs, CDK_VALIDATION=false"] / floor,
            8,
        )
    ]
    suite = medians.get("test suite (make test's pytest)")
    if suite is not None:
        full = synth + medians["cdk8s synth, all envs"]
        targets.append(Target("test suite / one full synth (CDK + cdk8s)", suite / full, 3))
        targets.append(Target("test suite / CDK synth alone", suite / synth, 3))
    return targets


def lambda_targets(result: dict[str, Any]) -> list[Target]:
    bar = result["bar_seconds"]
    # Both rows are held to the same bar. The handlers import boto3 and build their clients on
    # first use, so the import alone leaves out what the bar includes (boto3 and one client):
    # the second row is the like-for-like one, what a cold start pays before its first AWS call.
    targets = []
    for key, what in (
        ("handler_import_seconds", "import"),
        ("handler_first_client_seconds", "import + first boto3 client"),
    ):
        seconds: dict[str, float] = result[key]
        module = max(seconds, key=seconds.__getitem__)
        label = f"heaviest Lambda {what} ({module}) / boto3 client + Logger"
        targets.append(Target(label, seconds[module] / bar, 1))
    targets += [
        Target(f"Lambda package {key[:12]}... zipped", size / 1e6, 2, unit=" MB")
        for key, size in result["zipped_bytes"].items()
    ]
    return targets


def service_targets(result: dict[str, Any]) -> list[Target]:
    agent = result["http"]["agent"]
    return [
        Target("agent endpoint req/s / FastAPI hello-world", agent["requests_per_second_vs_hello"],
               0.8, at_least=True),
        Target("agent endpoint p99 / FastAPI hello-world p99", agent["p99_vs_hello"], 1.5),
        Target("agent service RSS with 1,000 idle WebSockets",
               result["memory"]["with_idle_websockets_mb"], 200, unit=" MB"),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs: a smoke run")
    parser.add_argument("--skip-suite", action="store_true", help="leave out the test suite")
    args = parser.parse_args(argv)

    runs, suite_runs, cold_runs, service_runs = (1, 1, 2, 1) if args.quick else (5, 3, 7, 3)
    if args.skip_suite:
        suite_runs = 0
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        out = Path(scratch)
        synth = _run(
            "synth_and_tests.py",
            ["--runs", str(runs), "--suite-runs", str(suite_runs)],
            out / "synth.json",
        )
        cold = _run("lambda_cold_start.py", ["--runs", str(cold_runs)], out / "lambda.json")
        service = _run("service.py", ["--runs", str(service_runs)], out / "service.json")
        _run("service_floor.py", ["--runs", str(service_runs)], out / "service_floor.json")

    targets = synth_targets(synth) + lambda_targets(cold) + service_targets(service)
    print(
        f"\n## Targets (issue 8), this run: {platform.node()}, {platform.machine()}, "
        f"Python {platform.python_version()}\n"
    )
    print("| ratio or size | measured (medians) | target | |")
    print("|---|---:|---:|---|")
    for target in targets:
        print(target.row())
    frames = service.get("websocket_frames_per_second")
    if frames is not None:
        print(f"\nWebSocket frames/s (no target; the floor is in service.py's table): {frames:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
