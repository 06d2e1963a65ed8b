"""Benchmark: the Lambda handlers' cold import and the zipped code package, next to floors.

Each import runs in a fresh interpreter (what a cold start pays before the first event), several
times, and the table gives medians and ratios to floors measured in the same run: a bare handler,
``import boto3``, and a boto3 client plus the Powertools logger (issue 8's bar for the init).
The handlers build their AWS clients on first use, so each is measured twice: the import (the
init) and the import plus one boto3 client (the whole cold start up to its first AWS call). The
package is each distinct Lambda asset in ``cdk.out`` (``make synth``) zipped with deflate, as
``cdk deploy`` uploads it. It never passes or fails. Run:
``.venv/bin/python bench/lambda_cold_start.py --runs 7``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from constructs.secure_defaults import LAMBDA_HANDLERS  # noqa: E402

# Every handler module the stacks deploy.
HANDLERS = tuple(handler.rpartition(".")[0] for handler in LAMBDA_HANDLERS)
FLOORS = {
    "bare handler (floor)": "def handler(event, context):\n    return event",
    "import boto3": "import boto3",
    "boto3 client + Powertools Logger (bar)": (
        "import boto3\nfrom aws_lambda_powertools import Logger\n"
        "boto3.client('dynamodb', region_name='us-east-1')\nLogger(service='bench')"
    ),
}
_FIRST_CLIENT = "import boto3\nboto3.client('dynamodb', region_name='us-east-1')"
FIRST_CLIENT_SUFFIX = " + first boto3 client"
# What the Lambda environment gives every function at import time (no AWS call is made).
_LAMBDA_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "bench",
    "POWERTOOLS_METRICS_NAMESPACE": "bench",
}


def cold_import(code: str, runs: int) -> list[float]:
    """Wall seconds of ``python -c code`` in a fresh interpreter, ``runs`` times."""
    env = {**os.environ, **_LAMBDA_ENV, "PYTHONPATH": str(REPO_ROOT)}
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=True)
        samples.append(time.perf_counter() - start)
    return samples


def lambda_assets(cdk_out: Path) -> dict[str, Path]:
    """Each distinct Lambda code asset in the templates (by hash) -> its staged directory."""
    found: dict[str, Path] = {}
    for template_file in sorted(cdk_out.glob("*.template.json")):
        resources = json.loads(template_file.read_text()).get("Resources", {})
        for resource in resources.values():
            if resource.get("Type") != "AWS::Lambda::Function":
                continue
            props = resource.get("Properties", {})
            key = props.get("Code", {}).get("S3Key")
            handler = str(props.get("Handler", ""))
            if isinstance(key, str) and handler.startswith("runtime."):
                asset = cdk_out / f"asset.{key.removesuffix('.zip')}"
                if asset.is_dir():
                    found[key] = asset
    return found


def zipped_size(directory: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return len(buffer.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per measurement")
    parser.add_argument("--cdk-out", type=Path, default=REPO_ROOT / "cdk.out")
    parser.add_argument("--json-out", type=Path, help="also write the medians here as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1:
        print("--runs must be at least 1", file=sys.stderr)
        return 2

    results: dict[str, list[float]] = {}
    for label, code in FLOORS.items():
        results[label] = cold_import(code, args.runs)
    for module in HANDLERS:
        results[f"import {module}"] = cold_import(f"import {module}", args.runs)
    # The handlers build their AWS clients on first use, so the first event also pays for one:
    # this row is the whole cold start up to the first AWS call, against the same bar.
    for module in HANDLERS:
        results[f"import {module}{FIRST_CLIENT_SUFFIX}"] = cold_import(
            f"import {module}\n{_FIRST_CLIENT}", args.runs
        )
    medians = {label: statistics.median(samples) for label, samples in results.items()}
    floor = medians["bare handler (floor)"]
    bar = medians["boto3 client + Powertools Logger (bar)"]
    print(
        f"Lambda cold import, {args.runs} fresh interpreters each, Python {sys.version.split()[0]}"
    )
    print("\n| measurement | median s | x bare handler | x boto3 client + Logger |")
    print("|---|---:|---:|---:|")
    for label, median in medians.items():
        print(f"| {label} | {median:.3f} | {median / floor:.1f} | {median / bar:.2f} |")

    assets = lambda_assets(args.cdk_out)
    sizes = {key: zipped_size(directory) for key, directory in sorted(assets.items())}
    if not assets:
        print(f"\nno Lambda assets in {args.cdk_out}: run `make synth` for the package size")
    else:
        print("\n| Lambda asset | files | zipped MB (target <= 2) |")
        print("|---|---:|---:|")
        for key, directory in sorted(assets.items()):
            files = sum(1 for p in directory.rglob("*") if p.is_file())
            print(f"| {key[:16]}... | {files} | {sizes[key] / 1e6:.2f} |")
    print(
        "\nraw samples (s):", json.dumps({k: [round(s, 3) for s in v] for k, v in results.items()})
    )
    if args.json_out is not None:
        args.json_out.write_text(
            json.dumps(
                {
                    "runs": args.runs,
                    "median_seconds": medians,
                    "bar_seconds": bar,
                    # The handlers' rows by module, for bench/run_all.py's targets.
                    "handler_import_seconds": {m: medians[f"import {m}"] for m in HANDLERS},
                    "handler_first_client_seconds": {
                        m: medians[f"import {m}{FIRST_CLIENT_SUFFIX}"] for m in HANDLERS
                    },
                    "zipped_bytes": sizes,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
