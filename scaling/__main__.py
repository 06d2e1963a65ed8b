"""``python -m scaling``: simulate a burst against every worker autoscaler the project emits.

Reads ``cdk.out/<name>-container.template.json`` (ECS worker) and
``k8s/dist/<env>/kubernetes/agent-worker.k8s.yaml`` (KEDA worker) for each profile
(``config/<env>.yaml``) and prints, per (profile, autoscaler): time to the first new worker, the
drain time, the ideal drain time, their ratio and the peak replicas. Errors exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from scaling.simulate import Burst, Result, simulate_ecs, simulate_keda
from scaling.sources import (
    EcsWorkerScaling,
    KedaWorkerScaling,
    SourceError,
    read_ecs_template,
    read_keda_manifest,
)

# --override keys: config-style names mapped to the simulated settings' fields.
ECS_KEYS = {
    "container.backlog_per_task": "target_backlog_per_task",
    "container.max_capacity": "max_capacity",
    "container.min_capacity": "min_capacity",
    "container.scale_out_cooldown": "scale_out_cooldown",
    "container.scale_in_cooldown": "scale_in_cooldown",
}
KEDA_KEYS = {
    "kubernetes.target_queue_length": "queue_length",
    "kubernetes.activation_queue_length": "activation_queue_length",
    "kubernetes.max_replicas": "max_replicas",
    "kubernetes.min_replicas": "min_replicas",
    "kubernetes.polling_interval_seconds": "polling_interval",
    "kubernetes.cooldown_seconds": "cooldown_period",
}


# Keys that may be 0 (the others divide or bound).
ZERO_ALLOWED = {
    "container.min_capacity",
    "container.scale_out_cooldown",
    "container.scale_in_cooldown",
    "kubernetes.min_replicas",
    "kubernetes.activation_queue_length",
    "kubernetes.cooldown_seconds",
}

_Settings = TypeVar("_Settings", EcsWorkerScaling, KedaWorkerScaling)


class UsageError(Exception):
    pass


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def _positive(text: str) -> float:
    value = _non_negative(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scaling", description="Simulate a task burst against the workers' scaling."
    )
    parser.add_argument("--tasks", type=_positive_int, default=10_000)
    parser.add_argument("--mean-seconds", type=_positive, default=60.0)
    parser.add_argument("--distribution", choices=["fixed", "exponential"], default="fixed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--arrival-seconds", type=_non_negative, default=0.0, help="spread arrivals (0: at once)"
    )
    parser.add_argument("--concurrency", type=_positive_int, default=1, help="tasks per worker")
    parser.add_argument("--fargate-startup", type=_non_negative, default=30.0)
    parser.add_argument("--pod-startup", type=_non_negative, default=10.0)
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    parser.add_argument("--k8s-dist", type=Path, default=Path("k8s/dist"))
    parser.add_argument("--config-dir", type=Path, default=Path("config"))
    parser.add_argument("--profile", action="append", help="config name (repeatable; default all)")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="simulate another setting: " + ", ".join([*ECS_KEYS, *KEDA_KEYS]),
    )
    return parser


def _overrides(items: Sequence[str]) -> dict[str, float]:
    parsed: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in {**ECS_KEYS, **KEDA_KEYS}:
            raise UsageError(
                f"unknown override {item!r}; keys: {', '.join([*ECS_KEYS, *KEDA_KEYS])}"
            )
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"override {key}: not a number: {value!r}") from None
        if not math.isfinite(number) or number < 0 or (number == 0 and key not in ZERO_ALLOWED):
            raise UsageError(
                f"override {key}: must be > 0 (>= 0 for minimums, cooldowns and "
                f"activation): {value}"
            )
        parsed[key] = number
    return parsed


def _apply(settings: _Settings, keys: dict[str, str], values: dict[str, float]) -> _Settings:
    changes: dict[str, Any] = {}
    for key, number in values.items():
        if key in keys:
            field = keys[key]
            current = getattr(settings, field)
            changes[field] = int(number) if isinstance(current, int) else number
    return dataclasses.replace(settings, **changes)


def _profiles(config_dir: Path, wanted: Sequence[str] | None) -> dict[str, str]:
    """``{env: stack name}`` from ``config/<env>.yaml``."""
    known: dict[str, str] = {}
    for path in sorted(config_dir.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise UsageError(f"{path}: unreadable ({error})") from error
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            known[path.stem] = data["name"]
    if not known:
        raise UsageError(f"no profiles in {config_dir}/ (run from the repository root)")
    if wanted:
        unknown = [p for p in wanted if p not in known]
        if unknown:
            raise UsageError(f"unknown profile {', '.join(unknown)}; known: {', '.join(known)}")
        return {p: known[p] for p in wanted}
    return known


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{whole} s ({hours}:{minutes:02d}:{secs:02d})"


def _row(profile: str, scaler: str, result: Result) -> list[str]:
    ratio = result.ratio
    return [
        profile,
        scaler,
        _fmt(result.first_new_worker),
        _fmt(result.drain_seconds) if result.drain_seconds is not None else "not drained",
        _fmt(result.ideal_seconds),
        f"{ratio:.2f}" if ratio is not None else "-",
        str(result.peak_replicas),
    ]


def run(argv: Sequence[str] | None = None) -> list[list[str]]:
    args = build_parser().parse_args(argv)
    overrides = _overrides(args.override)
    profiles = _profiles(args.config_dir, args.profile)
    if not args.cdk_out.is_dir():
        raise UsageError(f"{args.cdk_out}/ does not exist: run make synth")
    rows: list[list[str]] = []
    for env, name in profiles.items():
        template = args.cdk_out / f"{name}-container.template.json"
        if template.is_file():
            ecs = _apply(read_ecs_template(template), ECS_KEYS, overrides)
            burst = _burst(args, args.fargate_startup)
            rows.append(_row(env, "ECS target tracking", simulate_ecs(ecs, burst)))
        manifest = args.k8s_dist / env / "kubernetes" / "agent-worker.k8s.yaml"
        if manifest.is_file():
            keda = read_keda_manifest(manifest)
            if keda is not None:
                keda = _apply(keda, KEDA_KEYS, overrides)
                burst = _burst(args, args.pod_startup)
                rows.append(_row(env, "KEDA ScaledObject", simulate_keda(keda, burst)))
    if not rows:
        raise UsageError(
            f"no worker autoscaler found for {', '.join(profiles)} in {args.cdk_out}/ or "
            f"{args.k8s_dist}/: run make synth"
        )
    return rows


def _burst(args: argparse.Namespace, startup: float) -> Burst:
    return Burst(
        tasks=args.tasks,
        mean_seconds=args.mean_seconds,
        startup_seconds=startup,
        concurrency=args.concurrency,
        arrival_seconds=args.arrival_seconds,
        distribution=args.distribution,
        seed=args.seed,
    )


HEADER = ["profile", "autoscaler", "first new worker", "drain", "ideal", "ratio", "peak"]


def render(rows: Sequence[Sequence[str]]) -> str:
    table = [HEADER, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table]
    return "\n".join(line.rstrip() for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        rows = run(argv)
    except (UsageError, SourceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
