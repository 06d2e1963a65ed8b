"""Read the worker autoscalers' settings from what the project emits.

- ECS: ``cdk.out/<name>-container.template.json`` (``make synth``): the worker service's
  ``AWS::ApplicationAutoScaling::ScalableTarget``, its ``TargetTrackingScaling`` policy (backlog
  per task) and its ``StepScaling`` policy ("start from zero") with the CloudWatch alarm whose
  ``AlarmActions`` name it.
- Kubernetes: ``k8s/dist/<env>/kubernetes/agent-worker.k8s.yaml``: the worker's KEDA
  ``ScaledObject`` (its ``aws-sqs-queue`` or ``redis`` trigger and the HPA ``behavior`` KEDA
  hands to the HPA it creates).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scaling.hpa import DEFAULT_SCALE_DOWN, DEFAULT_SCALE_UP, Rules, rules_from_manifest


class SourceError(Exception):
    """The emitted files are missing or do not hold what the simulation needs."""


@dataclass(frozen=True)
class EcsWorkerScaling:
    min_capacity: int
    max_capacity: int
    target_backlog_per_task: float
    scale_out_cooldown: int
    scale_in_cooldown: int
    # The step policy that starts a worker while none runs (absent: None).
    step_adjustment: int | None = None
    step_cooldown: int = 0
    alarm_period: int = 60
    alarm_evaluation_periods: int = 1
    alarm_threshold: float = 1.0


@dataclass(frozen=True)
class KedaWorkerScaling:
    min_replicas: int
    max_replicas: int
    polling_interval: int
    cooldown_period: int
    queue_length: float
    activation_queue_length: float
    scale_on_in_flight: bool
    scale_up: Rules = DEFAULT_SCALE_UP
    scale_down: Rules = DEFAULT_SCALE_DOWN


def _period_of(alarm: dict[str, Any]) -> int:
    if "Period" in alarm:
        return int(alarm["Period"])
    periods = [
        int(query["MetricStat"]["Period"])
        for query in alarm.get("Metrics", ())
        if "MetricStat" in query
    ]
    return max(periods, default=60)


def read_ecs_template(path: Path) -> EcsWorkerScaling:
    """The queue worker's scaling from a synthesized container stack template."""
    try:
        resources: dict[str, Any] = json.loads(path.read_text())["Resources"]
    except (OSError, ValueError, KeyError) as error:
        raise SourceError(f"{path}: not a readable CloudFormation template ({error})") from error
    policies = {
        name: r["Properties"]
        for name, r in resources.items()
        if r.get("Type") == "AWS::ApplicationAutoScaling::ScalingPolicy"
    }
    tracking = None
    target_id = None
    for props in policies.values():
        config = props.get("TargetTrackingScalingPolicyConfiguration") or {}
        metrics = (config.get("CustomizedMetricSpecification") or {}).get("Metrics") or ()
        if any("backlog" in str(q.get("Id", "")) for q in metrics):
            tracking = config
            target_id = props["ScalingTargetId"].get("Ref")
    if tracking is None or target_id not in resources:
        raise SourceError(f"{path}: no worker target tracking policy on queue backlog per task")
    target = resources[target_id]["Properties"]
    step = None
    step_name = None
    for name, props in policies.items():
        if props.get("PolicyType") == "StepScaling" and props["ScalingTargetId"].get("Ref") == (
            target_id
        ):
            step, step_name = props["StepScalingPolicyConfiguration"], name
    alarm: dict[str, Any] = {}
    if step_name is not None:
        for r in resources.values():
            if r.get("Type") == "AWS::CloudWatch::Alarm" and {"Ref": step_name} in r[
                "Properties"
            ].get("AlarmActions", ()):
                alarm = r["Properties"]
    return EcsWorkerScaling(
        min_capacity=int(target["MinCapacity"]),
        max_capacity=int(target["MaxCapacity"]),
        target_backlog_per_task=float(tracking["TargetValue"]),
        scale_out_cooldown=int(tracking.get("ScaleOutCooldown", 300)),
        scale_in_cooldown=int(tracking.get("ScaleInCooldown", 300)),
        step_adjustment=(
            int(step["StepAdjustments"][0]["ScalingAdjustment"]) if step is not None else None
        ),
        step_cooldown=int(step.get("Cooldown", 0)) if step is not None else 0,
        alarm_period=_period_of(alarm) if alarm else 60,
        alarm_evaluation_periods=int(alarm.get("EvaluationPeriods", 1)),
        alarm_threshold=float(alarm.get("Threshold", 1)),
    )


def read_keda_manifest(path: Path) -> KedaWorkerScaling | None:
    """The worker's ScaledObject, or None when the worker is a ScaledJob (not simulated)."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as error:
        raise SourceError(f"{path}: not a readable manifest ({error})") from error
    scaled = [d for d in documents if d.get("kind") == "ScaledObject"]
    if not scaled:
        return None
    spec = scaled[0]["spec"]
    queue = [t for t in spec.get("triggers", ()) if t.get("type") in ("aws-sqs-queue", "redis")]
    if not queue:
        raise SourceError(f"{path}: the ScaledObject has no queue trigger")
    meta = queue[0]["metadata"]
    length_key = "queueLength" if queue[0]["type"] == "aws-sqs-queue" else "listLength"
    activation_key = "activation" + length_key[0].upper() + length_key[1:]
    behavior = ((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}).get(
        "behavior"
    ) or {}
    return KedaWorkerScaling(
        # KEDA's documented defaults: min 0, max 100, polling 30 s, cooldown 300 s.
        min_replicas=int(spec.get("minReplicaCount", 0)),
        max_replicas=int(spec.get("maxReplicaCount", 100)),
        polling_interval=int(spec.get("pollingInterval", 30)),
        cooldown_period=int(spec.get("cooldownPeriod", 300)),
        queue_length=float(meta.get(length_key, 5)),
        activation_queue_length=float(meta.get(activation_key, 0)),
        scale_on_in_flight=str(meta.get("scaleOnInFlight", "true")).lower() == "true",
        scale_up=rules_from_manifest(behavior.get("scaleUp"), DEFAULT_SCALE_UP),
        scale_down=rules_from_manifest(behavior.get("scaleDown"), DEFAULT_SCALE_DOWN),
    )
