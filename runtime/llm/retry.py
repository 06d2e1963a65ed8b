"""Retry timing for LLM calls: full-jitter exponential backoff inside an optional time budget.

Full jitter (a uniform draw between zero and the exponential cap) spreads the retries of many
concurrent Lambdas instead of sending them back to a rate-limited provider in lockstep. The
total budget exists because the caller gives up at a fixed time (the Lambda timeout, API
Gateway's 29 s): sleeping past it only burns billed time, so the loop stops early and the client
reports its last failure instead.

Sleep, clock and the random draw are parameters so tests run instantly and deterministically.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

Sleep = Callable[[float], None]
Clock = Callable[[], float]
Uniform = Callable[[float, float], float]

# 2**62 already dwarfs any sane max delay; the cap keeps int -> float conversion from overflowing.
_MAX_EXPONENT = 62


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one ``complete`` call tries.

    ``max_attempts`` counts every request, the first included. ``request_timeout_seconds`` bounds
    one attempt; ``total_budget_seconds`` (when set) bounds the whole call, backoff included.
    """

    max_attempts: int = 3
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 8.0
    request_timeout_seconds: float = 30.0
    total_budget_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_seconds < 0 or self.max_delay_seconds < 0:
            raise ValueError("backoff delays must not be negative")
        if self.request_timeout_seconds <= 0:
            raise ValueError("request_timeout_seconds must be positive")
        if self.total_budget_seconds is not None and self.total_budget_seconds <= 0:
            raise ValueError("total_budget_seconds must be positive when set")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header, or None when absent or not a number of seconds.

    The HTTP-date form is ignored on purpose: LLM providers send seconds, and a wrong clock on
    either side would turn a date into a nonsense delay; jittered backoff covers that case.
    """
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def backoff_delay(
    policy: RetryPolicy,
    retry_index: int,
    *,
    retry_after: float | None = None,
    uniform: Uniform = random.uniform,
) -> float:
    """Seconds to wait before retry number ``retry_index`` (0 for the first retry).

    A provider's ``Retry-After`` wins over the jittered draw because it knows its own rate window,
    but it is still capped at ``max_delay_seconds`` so a huge value cannot stall a request.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), policy.max_delay_seconds)
    exponent = min(max(retry_index, 0), _MAX_EXPONENT)
    cap = min(policy.max_delay_seconds, policy.base_delay_seconds * 2**exponent)
    return uniform(0.0, cap)


class RetryTimer:
    """The timing of one call: per-attempt timeouts and the sleeps between attempts.

    Create one per ``complete`` call; the budget starts counting at construction.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        uniform: Uniform = random.uniform,
    ) -> None:
        self._policy = policy
        self._sleep = sleep
        self._clock = clock
        self._uniform = uniform
        self._started = clock()

    def remaining(self) -> float | None:
        """Seconds left in the total budget, or None when the policy sets no budget."""
        if self._policy.total_budget_seconds is None:
            return None
        return self._policy.total_budget_seconds - (self._clock() - self._started)

    def attempt_timeout(self) -> float | None:
        """Timeout for the next attempt, shortened to the budget left; None when none is left."""
        remaining = self.remaining()
        if remaining is None:
            return self._policy.request_timeout_seconds
        if remaining <= 0:
            return None
        return min(self._policy.request_timeout_seconds, remaining)

    def sleep_before_retry(self, retry_index: int, *, retry_after: float | None = None) -> bool:
        """Sleep the backoff before a retry and return True, or return False without sleeping.

        False means the next attempt could not start within the total budget: the caller stops
        and raises its last failure rather than sleeping into a timeout it cannot survive.
        """
        delay = backoff_delay(
            self._policy, retry_index, retry_after=retry_after, uniform=self._uniform
        )
        remaining = self.remaining()
        if remaining is not None and delay >= remaining:
            return False
        self._sleep(delay)
        return True
