"""Reading the emitted scaling settings, and bursts small enough to follow by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from scaling.hpa import DEFAULT_SCALE_UP, Policy, Rules
from scaling.simulate import (
    Burst,
    EcsScaler,
    KedaScaler,
    Pool,
    ideal_seconds,
    simulate_ecs,
    simulate_keda,
)
from scaling.sources import (
    EcsWorkerScaling,
    KedaWorkerScaling,
    SourceError,
    read_ecs_template,
    read_keda_manifest,
)

ROOT = Path(__file__).resolve().parents[2]


def ecs_template(min_capacity: int = 0, max_capacity: int = 5) -> dict[str, Any]:
    """The shape ``make synth`` gives the worker's scaling (trimmed to what is read)."""
    backlog = {"Id": "backlog", "MetricStat": {"Period": 60}, "ReturnData": False}
    return {
        "Resources": {
            "WorkerScaling": {
                "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
                "Properties": {"MinCapacity": min_capacity, "MaxCapacity": max_capacity},
            },
            "WorkerBacklogPerTask": {
                "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
                "Properties": {
                    "PolicyType": "TargetTrackingScaling",
                    "ScalingTargetId": {"Ref": "WorkerScaling"},
                    "TargetTrackingScalingPolicyConfiguration": {
                        "CustomizedMetricSpecification": {
                            "Metrics": [
                                {"Id": "backlog"},
                                {"Id": "running"},
                                {"Expression": "backlog / running", "Id": "backlog_per_task"},
                            ]
                        },
                        "ScaleInCooldown": 300,
                        "ScaleOutCooldown": 60,
                        "TargetValue": 2,
                    },
                },
            },
            "WorkerStartFromZero": {
                "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
                "Properties": {
                    "PolicyType": "StepScaling",
                    "ScalingTargetId": {"Ref": "WorkerScaling"},
                    "StepScalingPolicyConfiguration": {
                        "AdjustmentType": "ChangeInCapacity",
                        "Cooldown": 120,
                        "StepAdjustments": [
                            {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}
                        ],
                    },
                },
            },
            "WorkWaiting": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {
                    "AlarmActions": [{"Ref": "WorkerStartFromZero"}],
                    "EvaluationPeriods": 1,
                    "Metrics": [{"Id": "expr", "Expression": "IF(...)"}, backlog],
                    "Threshold": 1,
                },
            },
        }
    }


def write_template(directory: Path, name: str = "agent-x", **kwargs: int) -> Path:
    path = directory / f"{name}-container.template.json"
    path.write_text(json.dumps(ecs_template(**kwargs)))
    return path


def test_reads_the_worker_policies_from_a_template(tmp_path: Path) -> None:
    settings = read_ecs_template(write_template(tmp_path, min_capacity=0, max_capacity=5))
    assert settings == EcsWorkerScaling(
        min_capacity=0,
        max_capacity=5,
        target_backlog_per_task=2.0,
        scale_out_cooldown=60,
        scale_in_cooldown=300,
        step_adjustment=1,
        step_cooldown=120,
        alarm_period=60,
        alarm_evaluation_periods=1,
        alarm_threshold=1.0,
    )


def test_a_template_without_the_worker_policy_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t.template.json"
    path.write_text(json.dumps({"Resources": {}}))
    with pytest.raises(SourceError, match="backlog"):
        read_ecs_template(path)
    path.write_text("{not json")
    with pytest.raises(SourceError, match="not a readable"):
        read_ecs_template(path)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_reads_the_committed_keda_scaled_object(env: str) -> None:
    config = yaml.safe_load((ROOT / "config" / f"{env}.yaml").read_text())
    worker = config["kubernetes"]["worker"]
    manifest = ROOT / "k8s" / "dist" / env / "kubernetes" / "agent-worker.k8s.yaml"
    settings = read_keda_manifest(manifest)
    assert settings is not None
    assert settings.min_replicas == worker["min_replicas"]
    assert settings.max_replicas == worker["max_replicas"]
    assert settings.polling_interval == worker["polling_interval_seconds"]
    assert settings.cooldown_period == worker["cooldown_seconds"]
    assert settings.queue_length == worker["target_queue_length"]
    assert settings.activation_queue_length == worker["activation_queue_length"]
    assert settings.scale_on_in_flight
    # The charts set only scale-down behaviour: scale-up keeps the HPA's defaults.
    assert settings.scale_up == DEFAULT_SCALE_UP
    assert settings.scale_down == Rules(300, "Max", (Policy("Pods", 1, 60),))


def keda(**changes: Any) -> KedaWorkerScaling:
    base: dict[str, Any] = {
        "min_replicas": 0,
        "max_replicas": 2,
        "polling_interval": 5,
        "cooldown_period": 30,
        "queue_length": 1,
        "activation_queue_length": 0,
        "scale_on_in_flight": True,
    }
    base.update(changes)
    return KedaWorkerScaling(**base)


def test_keda_burst_by_hand() -> None:
    # 4 tasks of 10 s, queueLength 1, max 2, pods take tasks 2 s after they are added.
    # t=0: KEDA's poll sees 4 > activation 0 and scales 0 -> 1; the HPA (same second) asks for
    # ceil(1 * 4 / 1) = 4, allowed max(1 + 4, 2 * 1) = 5, capped at max 2. t=2: both pods take a
    # task (until 12), t=12 the other two (until 22). Ideal: ceil(4 / 2) * 10 + 2 = 22.
    burst = Burst(tasks=4, mean_seconds=10, startup_seconds=2)
    result = simulate_keda(keda(), burst)
    assert result.first_new_worker == 2
    assert result.drain_seconds == 22
    assert result.ideal_seconds == 22
    assert result.peak_replicas == 2
    assert result.ratio == 1.0


def step(pool: Pool, scaler: KedaScaler | EcsScaler, until: int, start: int = 0) -> None:
    for t in range(start, until):
        pool.arrive(t)
        pool.finish(t)
        scaler(t)
        pool.start(t)


def test_keda_does_not_activate_at_or_below_activation_queue_length() -> None:
    # activationQueueLength 3: 3 messages do not wake the worker, 4 would.
    burst = Burst(tasks=3, mean_seconds=10, startup_seconds=2, limit_seconds=600)
    result = simulate_keda(keda(activation_queue_length=3), burst)
    assert result.drain_seconds is None
    assert result.peak_replicas == 0
    assert simulate_keda(keda(activation_queue_length=2), burst).drain_seconds is not None


def test_keda_scales_to_zero_after_the_cooldown() -> None:
    # One 10 s task: active at polls 0 and 5 (the task is in flight; scaleOnInFlight), inactive
    # from the poll at 15 (the task ended at 12); the last active poll was at 10, so with a 30 s
    # cooldown the poll at 40 scales to zero. The HPA's default 300 s scale-down window would
    # hold 1 replica anyway: minReplicas of the HPA is 1.
    burst = Burst(tasks=1, mean_seconds=10, startup_seconds=2)
    pool = Pool(burst, 0)
    scaler = KedaScaler(pool, keda())
    step(pool, scaler, 40)
    assert len(pool.workers) == 1
    step(pool, scaler, 41, start=40)
    assert pool.workers == []


def test_keda_with_min_one_never_scales_to_zero() -> None:
    burst = Burst(tasks=1, mean_seconds=10, startup_seconds=2)
    pool = Pool(burst, 1)
    scaler = KedaScaler(pool, keda(min_replicas=1))
    step(pool, scaler, 1000)
    assert len(pool.workers) == 1


def ecs(**changes: Any) -> EcsWorkerScaling:
    base: dict[str, Any] = {
        "min_capacity": 1,
        "max_capacity": 3,
        "target_backlog_per_task": 2.0,
        "scale_out_cooldown": 60,
        "scale_in_cooldown": 300,
    }
    base.update(changes)
    return EcsWorkerScaling(**base)


def test_ecs_burst_by_hand() -> None:
    # 10 tasks of 1000 s, one worker already running, max 3, 30 s Fargate start-up.
    # Minute 0: backlog per task = (10 + 59 * 9) / 60 / 1 = 9.02, minutes 1 and 2: 9 > 2.
    # After the third datapoint (t=179) target tracking sets ceil(1 * 9 / 2) = 5 -> max 3;
    # the two new tasks take work at 209. Worker A: 0, 1000, 2000, 3000 -> 4000; B and C:
    # 209, 1209, 2209 -> 3209. Ideal: ceil(10 / 3) * 1000 + 30 = 4030 (the running worker
    # needs no start-up, hence below the ideal).
    burst = Burst(tasks=10, mean_seconds=1000, startup_seconds=30)
    result = simulate_ecs(ecs(), burst)
    assert result.first_new_worker == 209
    assert result.drain_seconds == 4000
    assert result.ideal_seconds == 4030
    assert result.peak_replicas == 3


def test_ecs_starts_from_zero_with_the_step_policy() -> None:
    # Min 0: target tracking has no datapoint (no task runs: backlog / 0), so the step alarm
    # (IF(running == 0, backlog, 0) >= 1, one 60 s period) adds one task at t=59, which takes
    # work at 89. Then target tracking sees 3 > 2 datapoints (minutes 1..3) at t=239 and scales
    # to ceil(1 * backlog / 2).
    burst = Burst(tasks=10, mean_seconds=1000, startup_seconds=30)
    settings = ecs(min_capacity=0, step_adjustment=1, step_cooldown=120)
    pool = Pool(burst, 0)
    scaler = EcsScaler(pool, settings)
    step(pool, scaler, 60)
    assert len(pool.workers) == 1
    step(pool, scaler, 240, start=60)
    assert len(pool.workers) == 3
    result = simulate_ecs(settings, burst)
    assert result.first_new_worker == 89


def test_ideal_definition() -> None:
    assert ideal_seconds(Burst(tasks=10_000, mean_seconds=60, startup_seconds=30), 20) == 30_030
    # Two tasks per worker halve the batches.
    burst = Burst(tasks=10_000, mean_seconds=60, startup_seconds=10, concurrency=2)
    assert ideal_seconds(burst, 20) == 15_010
    # Spread arrivals: the last task cannot finish before it arrives.
    spread = Burst(tasks=10, mean_seconds=60, startup_seconds=10, arrival_seconds=600)
    assert ideal_seconds(spread, 20) == 670


def test_exponential_durations_are_seeded() -> None:
    burst = Burst(tasks=200, mean_seconds=60, startup_seconds=10, distribution="exponential")
    first = simulate_keda(keda(max_replicas=20, queue_length=2), burst)
    again = simulate_keda(keda(max_replicas=20, queue_length=2), burst)
    assert first == again
    assert first.drain_seconds is not None
