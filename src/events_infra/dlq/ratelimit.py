"""A steady rate limit for replays: at most `rate` messages per second, no bursts, so a replay
cannot flood a consumer that has only just recovered."""

from __future__ import annotations

import time


class RateLimiter:
    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = time.monotonic()

    def acquire(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
            now = self._next
        self._next = max(self._next, now) + self.interval
