"""Benchmark: full synth, the cdk8s synth and the test suite, next to ``import aws_cdk``.

All in one run: ``npx cdk synth -c env=all`` (every stack of every profile) with and without
CDK's built-in validation, ``python -m k8s.main`` (every profile's Kubernetes manifests, into a
temporary folder), and the whole test suite as ``make test`` runs it.

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


def make_test_arguments() -> list[str]:
    """pytest's arguments in the Makefile's ``test`` recipe (one place says how the suite runs)."""
    recipe = (REPO_ROOT / "Makefile").read_text().partition("\ntest: ")[2]
    for line in recipe.splitlines()[1:]:
        if not line.startswith("\t"):
            break
        words = line.split()
        if words[1:3] == ["-m", "pytest"]:
            return words[3:]
    raise SystemExit("Makefile: no `$(PY) -m pytest` line in the test recipe")


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
    parser.add_argument("--json-out", type=Path, help="also write the medians here as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.suite_runs < 0:
        parser.error("--runs must be at least 1 and --suite-runs at least 0")

    python = sys.executable
    outdir = tempfile.mkdtemp(prefix="bench-cdk-out-")
    k8s_outdir = tempfile.mkdtemp(prefix="bench-k8s-dist-")
    synth_cli = ["npx", "cdk", "synth", "--quiet", "-c", "env=all", "-o", outdir]
    pytest = [python, "-m", "pytest", *make_test_arguments(), "-q", "-p", "no:cacheprovider"]
    measurements = [
        ("import aws_cdk (floor)", [python, "-c", "import aws_cdk"], _env(), args.runs),
        ("cdk synth, all envs", synth_cli, _env(), args.runs),
        ("cdk synth, all envs, CDK_VALIDATION=false", synth_cli, _env(CDK_VALIDATION="false"),
         args.runs),
        ("cdk8s synth, all envs", [python, "-m", "k8s.main", "--outdir", k8s_outdir], _env(),
         args.runs),
        ("test suite (make test's pytest)", pytest, _env(), args.suite_runs),
    ]  # fmt: skip
    # One unmeasured synth first: it bundles the Lambda asset, later runs reuse it by hash.
    timed(synth_cli, _env())
    results = {}
    for label, command, env, runs in measurements:
        if runs == 0:
            continue
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
    if args.json_out is not None:
        medians = {label: median for label, (median, _) in results.items()}
        args.json_out.write_text(json.dumps({"median_seconds": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
