"""The Kubernetes HorizontalPodAutoscaler algorithm as a pure function.

Follows kubernetes.io "Horizontal Pod Autoscaling", section "Algorithm details" and
"Configurable scaling behavior" (autoscaling/v2), and the controller's order of steps:

1. ``desired = ceil(current * metric / target)``; no change while the ratio is within the
   tolerance (0.1 by default: ``0.9 <= ratio <= 1.1``).
2. Stabilization: the recommendation is stored with its time; the result is bounded below by
   the *lowest* recommendation within the scale-up window and above by the *highest* within the
   scale-down window (so a scale-down waits out the window, a scale-up with window 0 is at once).
3. Rate limits: for each policy the replicas at the start of its period (``current`` minus the
   pods added, or plus the pods removed, in the last ``periodSeconds``) give a limit
   (``Pods``: start +/- value; ``Percent``: scale-up ``ceil(start * (1 + value/100))``,
   scale-down ``floor(start * (1 - value/100))``); ``selectPolicy: Max`` takes the policy
   allowing the biggest change, ``Min`` the smallest, ``Disabled`` no change in that direction.
4. The result is clamped to ``[minReplicas, maxReplicas]``.

Defaults when ``behavior`` (or one of its directions, or a field of it) is absent: scale-up
stabilization 0 s, policies ``Pods 4 / 15 s`` and ``Percent 100 / 15 s``, ``selectPolicy: Max``;
scale-down stabilization 300 s, policy ``Percent 100 / 15 s``. The controller runs every 15 s
(``--horizontal-pod-autoscaler-sync-period``); callers invoke :func:`hpa_step` at that rate.

The function is deterministic and keeps no state of its own: the recommendation and scale-event
histories go in and come out (:class:`HpaState`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

SYNC_PERIOD_SECONDS = 15
DEFAULT_TOLERANCE = 0.1

PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]


@dataclass(frozen=True)
class Policy:
    type: PolicyType
    value: int
    period_seconds: int


@dataclass(frozen=True)
class Rules:
    stabilization_seconds: int
    select: SelectPolicy
    policies: tuple[Policy, ...]


DEFAULT_SCALE_UP = Rules(0, "Max", (Policy("Pods", 4, 15), Policy("Percent", 100, 15)))
DEFAULT_SCALE_DOWN = Rules(300, "Max", (Policy("Percent", 100, 15),))


@dataclass(frozen=True)
class HpaSpec:
    min_replicas: int
    max_replicas: int
    target: float
    scale_up: Rules = DEFAULT_SCALE_UP
    scale_down: Rules = DEFAULT_SCALE_DOWN
    tolerance: float = DEFAULT_TOLERANCE


@dataclass(frozen=True)
class HpaState:
    """Past recommendations ``(time, replicas)`` and scale events ``(time, change)``."""

    recommendations: tuple[tuple[float, int], ...] = ()
    events: tuple[tuple[float, int], ...] = field(default=())


def rules_from_manifest(raw: Mapping[str, Any] | None, default: Rules) -> Rules:
    """``HPAScalingRules`` from a manifest's ``behavior.scaleUp``/``scaleDown``; absent fields
    take the direction's default."""
    if not raw:
        return default
    policies = tuple(
        Policy(p["type"], int(p["value"]), int(p["periodSeconds"]))
        for p in raw.get("policies") or ()
    )
    window = raw.get("stabilizationWindowSeconds")
    return Rules(
        stabilization_seconds=default.stabilization_seconds if window is None else int(window),
        select=raw.get("selectPolicy", "Max"),
        policies=policies or default.policies,
    )


def raw_recommendation(current: int, metric: float, target: float, tolerance: float) -> int:
    """Step 1: ``ceil(current * metric / target)``, or ``current`` within the tolerance."""
    ratio = metric / target
    if abs(ratio - 1.0) <= tolerance:
        return current
    return math.ceil(current * ratio)


def _changed_within(events: Sequence[tuple[float, int]], now: float, period: int, up: bool) -> int:
    return sum(
        (change if up else -change)
        for at, change in events
        if at > now - period and (change > 0) == up
    )


def _limit(
    current: int, rules: Rules, events: Sequence[tuple[float, int]], now: float, up: bool
) -> int:
    if rules.select == "Disabled":
        return current
    limits: list[int] = []
    for policy in rules.policies:
        changed = _changed_within(events, now, policy.period_seconds, up)
        start = current - changed if up else current + changed
        if policy.type == "Pods":
            limits.append(start + policy.value if up else start - policy.value)
        elif up:
            limits.append(math.ceil(start * (1 + policy.value / 100)))
        else:
            limits.append(math.floor(start * (1 - policy.value / 100)))
    biggest_change = (max if up else min)(limits)
    smallest_change = (min if up else max)(limits)
    return biggest_change if rules.select == "Max" else smallest_change


def hpa_step(
    current: int, metric: float, spec: HpaSpec, state: HpaState, now: float
) -> tuple[int, HpaState]:
    """One controller pass at time ``now``: the new replica count and the updated histories.

    ``metric`` is the current value in the target's unit (per-pod average for ``AverageValue``
    or ``Utilization`` targets).
    """
    proposed = raw_recommendation(current, metric, spec.target, spec.tolerance)
    horizon = max(spec.scale_up.stabilization_seconds, spec.scale_down.stabilization_seconds)
    # A new HPA's history starts with the current replicas (the controller seeds it so), so a
    # fresh HPA does not scale down before its scale-down window has passed.
    seed = state.recommendations or ((now, current),)
    history = [(at, r) for at, r in seed if at > now - horizon]
    up_floor = proposed
    down_ceiling = proposed
    for at, replicas in history:
        if at > now - spec.scale_up.stabilization_seconds:
            up_floor = min(up_floor, replicas)
        if at > now - spec.scale_down.stabilization_seconds:
            down_ceiling = max(down_ceiling, replicas)
    stabilized = min(max(current, up_floor), down_ceiling)
    history.append((now, proposed))

    desired = stabilized
    if desired > current:
        limit = max(current, _limit(current, spec.scale_up, state.events, now, up=True))
        desired = min(desired, limit, spec.max_replicas)
    elif desired < current:
        limit = min(current, _limit(current, spec.scale_down, state.events, now, up=False))
        desired = max(desired, limit, spec.min_replicas)
    desired = min(max(desired, spec.min_replicas), spec.max_replicas)

    period = max(
        (p.period_seconds for p in (*spec.scale_up.policies, *spec.scale_down.policies)),
        default=0,
    )
    events = [(at, c) for at, c in state.events if at > now - period]
    if desired != current:
        events.append((now, desired - current))
    return desired, HpaState(tuple(history), tuple(events))
