"""Backoff arithmetic and the total-budget rule, with an injected clock, sleep and random draw."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.llm.retry import RetryPolicy, RetryTimer, backoff_delay, parse_retry_after


class FakeTime:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def upper_bound(low: float, high: float) -> float:
    """A 'random' draw that always returns the top of the range, to expose the cap."""
    return high


def test_jitter_cap_doubles_per_retry_and_stops_at_max_delay() -> None:
    policy = RetryPolicy(base_delay_seconds=0.5, max_delay_seconds=3.0)
    caps = [backoff_delay(policy, i, uniform=upper_bound) for i in range(5)]
    assert caps == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_draws_between_zero_and_the_cap() -> None:
    policy = RetryPolicy(base_delay_seconds=1.0, max_delay_seconds=10.0)
    ranges: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        ranges.append((low, high))
        return (low + high) / 2

    assert backoff_delay(policy, 2, uniform=record) == 2.0
    assert ranges == [(0.0, 4.0)]


def test_huge_retry_index_does_not_overflow() -> None:
    policy = RetryPolicy(base_delay_seconds=0.5, max_delay_seconds=2.0)
    assert backoff_delay(policy, 5000, uniform=upper_bound) == 2.0


def test_retry_after_replaces_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base_delay_seconds=0.1, max_delay_seconds=5.0)

    def never(low: float, high: float) -> float:
        raise AssertionError("the jittered draw must not be used when Retry-After is given")

    assert backoff_delay(policy, 0, retry_after=2.5, uniform=never) == 2.5
    assert backoff_delay(policy, 0, retry_after=60.0, uniform=never) == 5.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 0.25 ", 0.25),
        ("0", 0.0),
        (None, None),
        ("-1", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_timer_sleeps_the_backoff_without_budget() -> None:
    fake = FakeTime()
    timer = RetryTimer(
        RetryPolicy(base_delay_seconds=0.2, request_timeout_seconds=7.0),
        sleep=fake.sleep,
        clock=fake.clock,
        uniform=upper_bound,
    )
    assert timer.remaining() is None
    assert timer.attempt_timeout() == 7.0
    assert timer.sleep_before_retry(0) is True
    assert timer.sleep_before_retry(1, retry_after=1.5) is True
    assert fake.sleeps == [0.2, 1.5]


def test_attempt_timeout_shrinks_to_the_budget_left() -> None:
    fake = FakeTime()
    timer = RetryTimer(
        RetryPolicy(request_timeout_seconds=5.0, total_budget_seconds=8.0),
        sleep=fake.sleep,
        clock=fake.clock,
    )
    assert timer.attempt_timeout() == 5.0
    fake.now += 5.0
    assert timer.attempt_timeout() == pytest.approx(3.0)
    fake.now += 3.0
    assert timer.attempt_timeout() is None


def test_no_sleep_when_the_next_attempt_could_not_start_within_budget() -> None:
    fake = FakeTime()
    timer = RetryTimer(
        RetryPolicy(max_delay_seconds=10.0, total_budget_seconds=2.0),
        sleep=fake.sleep,
        clock=fake.clock,
    )
    fake.now += 1.0
    assert timer.sleep_before_retry(0, retry_after=1.0) is False
    assert timer.sleep_before_retry(0, retry_after=0.5) is True
    assert fake.sleeps == [0.5]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay_seconds": -1.0},
        {"max_delay_seconds": -1.0},
        {"request_timeout_seconds": 0.0},
        {"total_budget_seconds": 0.0},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
