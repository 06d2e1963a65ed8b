"""A clock tests move by hand, for TTLs, caches and backoff."""

from __future__ import annotations


class FakeClock:
    """Seconds (epoch or monotonic, as the caller needs) that only move when told."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
