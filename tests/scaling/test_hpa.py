"""The HPA algorithm against the worked examples of kubernetes.io "Horizontal Pod Autoscaling".

Each test cites the section of
https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/ it reproduces.
"""

from __future__ import annotations

from scaling.hpa import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    HpaSpec,
    HpaState,
    Policy,
    Rules,
    hpa_step,
    raw_recommendation,
    rules_from_manifest,
)

# Scale-down without stabilization, to look at one rule at a time.
NO_WINDOW_DOWN = Rules(0, "Max", DEFAULT_SCALE_DOWN.policies)


def spec(**changes: object) -> HpaSpec:
    base: dict[str, object] = {"min_replicas": 1, "max_replicas": 1000, "target": 0.1}
    base.update(changes)
    return HpaSpec(**base)  # type: ignore[arg-type]


def test_200m_against_100m_doubles() -> None:
    # "Algorithm details": "if the current metric value is 200m, and the desired value is 100m,
    # the number of replicas will be doubled, since 200.0 / 100.0 == 2.0".
    assert raw_recommendation(3, 0.2, 0.1, 0.1) == 6
    desired, _ = hpa_step(3, 0.2, spec(), HpaState(), now=0)
    assert desired == 6


def test_50m_against_100m_halves() -> None:
    # "Algorithm details": "If the current value is instead 50m, you'll halve the number of
    # replicas, since 50.0 / 100.0 == 0.5".
    assert raw_recommendation(6, 0.05, 0.1, 0.1) == 3
    desired, _ = hpa_step(6, 0.05, spec(scale_down=NO_WINDOW_DOWN), HpaState(), now=0)
    assert desired == 3


def test_ratio_within_tolerance_keeps_replicas() -> None:
    # "Algorithm details": "The control plane skips any scaling action if the ratio is
    # sufficiently close to 1.0 (within a globally-configurable tolerance, 0.1 by default)".
    for metric in (0.091, 0.095, 0.105, 0.109):
        assert hpa_step(10, metric, spec(scale_down=NO_WINDOW_DOWN), HpaState(), 0)[0] == 10
    # Outside: 0.12 / 0.1 = 1.2 -> ceil(10 * 1.2) = 12.
    assert hpa_step(10, 0.12, spec(), HpaState(), 0)[0] == 12


def test_configurable_tolerance_blog_example() -> None:
    # kubernetes.io blog "Kubernetes v1.33: HPA configurable tolerance": 50 replicas at 90 %
    # CPU against a 75 % target: 50 * (90 / 75) = 60 (20 % above target, beyond the 10 %).
    assert raw_recommendation(50, 90, 75, 0.1) == 60


def test_default_scale_up_is_4_pods_or_100_percent_per_15_seconds() -> None:
    # "Default Behavior": scaleUp stabilizationWindowSeconds 0, policies Percent 100 / 15 s and
    # Pods 4 / 15 s, selectPolicy Max.
    assert spec().scale_up == DEFAULT_SCALE_UP
    # From 1 replica the Pods policy allows the bigger step (1 + 4 = 5 > 2).
    assert hpa_step(1, 10.0, spec(), HpaState(), 0)[0] == 5
    # From 10 the Percent policy does (20 > 14).
    desired, state = hpa_step(10, 10.0, spec(), HpaState(), 0)
    assert desired == 20
    # Within the same 15 s period no more is allowed; the next period doubles again.
    assert hpa_step(20, 10.0, spec(), state, 10)[0] == 20
    assert hpa_step(20, 10.0, spec(), state, 15)[0] == 40


def test_default_scale_down_waits_300_seconds_then_may_remove_all() -> None:
    # "Default Behavior": scaleDown stabilizationWindowSeconds 300, policy Percent 100 / 15 s.
    # "Stabilization window": the highest recommendation of the window is used, so a lower
    # recommendation only takes effect 300 s after the last higher one.
    state = HpaState()
    replicas = 10
    for now in range(0, 300, 15):
        replicas, state = hpa_step(replicas, 0.01, spec(), state, now)
        assert replicas == 10
    replicas, state = hpa_step(replicas, 0.01, spec(), state, 300)
    assert replicas == 1  # ceil(10 * 0.1) = 1, all at once (100 % per 15 s)


def test_stabilization_uses_the_highest_recommendation_in_the_window() -> None:
    # "Stabilization window": "the algorithm looks into previously computed desired states, and
    # uses the highest value from the specified interval" (stabilizationWindowSeconds: 300).
    history = HpaState(recommendations=((0, 10), (100, 8), (200, 6)))
    # At 250 s all three are in the window: the highest (10) holds the replicas at 10.
    assert hpa_step(10, 0.01, spec(), history, 250)[0] == 10
    # At 350 s the 10 of t=0 has left the window; 8 is the highest left.
    assert hpa_step(10, 0.01, spec(), history, 350)[0] == 8


def test_scaling_policies_80_replicas_down_to_10() -> None:
    # "Scaling policies": scaleDown policies Pods 4 / 60 s and Percent 10 / 60 s (selectPolicy
    # default Max). "if there are 80 replicas and the target has to be scaled down to 10
    # replicas then during the first step 8 replicas will be reduced. In the next iteration when
    # the number of replicas is 72, 10% of the pods is 7.2 but the number is rounded up to 8 ...
    # When the number of replicas falls below 40 the first policy (Pods) is applied and 4
    # replicas will be reduced at a time." (No stabilization window here, to see the policies.)
    rules = Rules(0, "Max", (Policy("Pods", 4, 60), Policy("Percent", 10, 60)))
    hpa = spec(scale_down=rules, target=1.0)
    state = HpaState()
    replicas = 80
    steps = []
    for period in range(12):
        metric = 10 / replicas  # always asks for 10 replicas
        replicas, state = hpa_step(replicas, metric, hpa, state, period * 60)
        steps.append(replicas)
    assert steps[:2] == [72, 64]  # 8 removed, then 72 * 0.9 = 64.8 -> 64 (8 removed)
    assert steps == [72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16]
    # Within a period nothing more is removed: 72 after the first step, 15 s later still 72.
    _, state = hpa_step(80, 10 / 80, hpa, HpaState(), 0)
    assert hpa_step(72, 10 / 72, hpa, state, 15)[0] == 72


def test_limit_scale_down_rate_to_10_percent_per_minute() -> None:
    # "Example: limit scale down rate": "To limit the rate at which pods are removed by the HPA
    # to 10% per minute": scaleDown policies Percent 10 / 60 s.
    rules = Rules(0, "Max", (Policy("Percent", 10, 60),))
    assert hpa_step(100, 0.01, spec(scale_down=rules), HpaState(), 0)[0] == 90


def test_no_more_than_5_pods_per_minute_with_select_min() -> None:
    # "Example: limit scale down rate": adding "a second scale-down policy with a fixed size of
    # 5, and set selectPolicy to minimum" ensures "no more than 5 Pods are removed per minute".
    rules = Rules(0, "Min", (Policy("Percent", 10, 60), Policy("Pods", 5, 60)))
    assert hpa_step(80, 0.01, spec(scale_down=rules), HpaState(), 0)[0] == 75
    # With 30 replicas 10 % (3) is the smaller change.
    assert hpa_step(30, 0.01, spec(scale_down=rules), HpaState(), 0)[0] == 27


def test_disable_scale_down() -> None:
    # "Example: disable scale down": selectPolicy Disabled prevents scale-down.
    rules = Rules(0, "Disabled", DEFAULT_SCALE_DOWN.policies)
    assert hpa_step(10, 0.01, spec(scale_down=rules), HpaState(), 0)[0] == 10


def test_pods_4_and_percent_100_per_60_seconds_select_max() -> None:
    # "Scaling policies" / "Configurable scaling behavior": scaleUp policies Pods 4 / 60 s and
    # Percent 100 / 60 s with selectPolicy Max (the project's service HPA emits exactly these):
    # the larger of +4 pods and doubling, once per minute.
    rules = Rules(0, "Max", (Policy("Percent", 100, 60), Policy("Pods", 4, 60)))
    hpa = spec(scale_up=rules)
    replicas, state = hpa_step(3, 10.0, hpa, HpaState(), 0)
    assert replicas == 7  # 3 + 4 > 3 * 2
    assert hpa_step(replicas, 10.0, hpa, state, 30)[0] == 7  # same minute
    replicas, state = hpa_step(replicas, 10.0, hpa, state, 60)
    assert replicas == 14  # 7 * 2 > 7 + 4


def test_min_and_max_replicas_bound_the_result() -> None:
    assert hpa_step(10, 10.0, spec(max_replicas=12), HpaState(), 0)[0] == 12
    assert (
        hpa_step(10, 0.001, spec(min_replicas=4, scale_down=NO_WINDOW_DOWN), HpaState(), 0)[0] == 4
    )


def test_rules_from_manifest_fills_the_defaults() -> None:
    # "Default Behavior": fields left out take the defaults of their direction.
    assert rules_from_manifest(None, DEFAULT_SCALE_UP) == DEFAULT_SCALE_UP
    partial = rules_from_manifest({"stabilizationWindowSeconds": 60}, DEFAULT_SCALE_DOWN)
    assert partial == Rules(60, "Max", DEFAULT_SCALE_DOWN.policies)
    full = rules_from_manifest(
        {
            "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
        },
        DEFAULT_SCALE_DOWN,
    )
    assert full == Rules(300, "Max", (Policy("Pods", 1, 60),))
