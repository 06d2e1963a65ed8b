"""Benchmark: full synth and the test suite, next to ``import aws_cdk``, in one run.

Timings on shared machines are noisy, so this prints medians of several runs and ratios to a
floor measured in the same run; it never passes or fails. Run: ``make bench`` or
``.venv/bin/python bench/synth_and_tests.py --runs 5 --suite-runs 3``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    path = f"{REPO_ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, **extra}


def timed(command: Sequence[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def median_of(runs: int, command: Sequence[str], env: dict[str, str]) -> tuple[float, list[float]]:
    samples = [timed(command, env) for _ in range(runs)]
    return statistics.median(samples), samples


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="runs of each synth measurement")
    parser.add_argument("--suite-runs", type=int, default=3, help="runs of the test suite")
    args = parser.parse_args(argv)

    python = sys.executable
    outdir = tempfile.mkdtemp(prefix="bench-cdk-out-")
    synth_cli = ["npx", "cdk", "synth", "--quiet", "-c", "env=all", "-o", outdir]
    pytest = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    measurements = [
        ("import aws_cdk (floor)", [python, "-c", "import aws_cdk"], _env(), args.runs),
        ("cdk synth, all envs", synth_cli, _env(), args.runs),
        ("cdk synth, all envs, CDK_VALIDATION=false", synth_cli, _env(CDK_VALIDATION="false"),
         args.runs),
        ("test suite (make test's pytest)", pytest, _env(), args.suite_runs),
    ]  # fmt: skip
    # One unmeasured synth first: it bundles the Lambda asset, later runs reuse it by hash.
    timed(synth_cli, _env())
    results = {}
    for label, command, env, runs in measurements:
        results[label] = median_of(runs, command, env)
        print(f"measured {label}: {results[label][0]:.2f}s", file=sys.stderr)

    floor = results["import aws_cdk (floor)"][0]
    synth = results["cdk synth, all envs"][0]
    print("\n| measurement | runs | median s | x import aws_cdk | x full synth |")
    print("|---|---:|---:|---:|---:|")
    for label, (median, samples) in results.items():
        print(
            f"| {label} | {len(samples)} | {median:.2f} | {median / floor:.1f} | "
            f"{median / synth:.2f} |"
        )
    print(
        "\nraw samples (s):",
        json.dumps({k: [round(s, 2) for s in v[1]] for k, v in results.items()}),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
