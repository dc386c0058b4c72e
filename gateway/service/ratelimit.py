"""A token bucket per connection (pure: the caller passes the clock)."""

from __future__ import annotations


class TokenBucket:
    """``limit`` actions per ``window`` seconds, refilled continuously."""

    __slots__ = ("_last", "_rate", "_tokens", "limit")

    def __init__(self, limit: int, window: float, now: float) -> None:
        self.limit = limit
        self._rate = limit / window
        self._tokens = float(limit)
        self._last = now

    def allow(self, now: float) -> bool:
        self._tokens = min(self.limit, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
