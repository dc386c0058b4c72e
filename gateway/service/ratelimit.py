"""Token buckets (pure: the caller passes the clock), one per connection or kept by key in a bounded map."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from gateway.config import Limits


class TokenBucket:
    """``limit`` actions per ``window`` seconds, refilled continuously."""

    __slots__ = ("_last", "_rate", "_tokens", "limit")

    def __init__(self, limit: int, window: float, now: float) -> None:
        self.limit = limit
        self._rate = limit / window
        self._tokens = float(limit)
        self._last = now

    def _refill(self, now: float) -> None:
        self._tokens = min(self.limit, self._tokens + max(0.0, now - self._last) * self._rate)
        self._last = max(self._last, now)

    def allow(self, now: float) -> bool:
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def full_at(self) -> float:
        """When, left alone, this bucket is full again (no different from a new one)."""
        return self._last + (self.limit - self._tokens) / self._rate


def allow_all(now: float, *buckets: TokenBucket) -> bool:
    """Take one token from every bucket, or from none if any is empty (a refusal costs nothing)."""
    for b in buckets:
        b._refill(now)
    if any(b._tokens < 1.0 for b in buckets):
        return False
    for b in buckets:
        b._tokens -= 1.0
    return True


class BucketMap:
    """A token bucket per key (a conversation, a client address), in process, bounded.

    A bucket that has refilled completely is the same as a new one, so it is dropped: the map
    holds only keys active within about one window, and never more than ``max_keys`` (past that
    the least recently used go first). Kept per instance: with several instances behind a
    balancer each limits on its own.
    """

    __slots__ = ("_buckets", "limit", "max_keys", "window")

    def __init__(self, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        return len(self._buckets)

    def get(self, key: Hashable, now: float) -> TokenBucket:
        """The key's bucket (made full if it has none), marked as just used; idle buckets are dropped."""
        self.evict(now)
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = TokenBucket(self.limit, self.window, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return b

    def allow(self, key: Hashable, now: float) -> bool:
        return self.get(key, now).allow(now)

    def evict(self, now: float) -> None:
        """Drop buckets from the least recently used end while they are full again."""
        buckets = self._buckets
        while buckets:
            key, b = next(iter(buckets.items()))
            # In order of last use: any bucket behind this one was used no earlier, so is full within a window.
            if b.full_at() > now:
                return
            del buckets[key]


class CustomerLimits:
    """The rate limits that outlive a connection: per conversation (a reconnect-and-resume does not
    start afresh) and per client address (messages and hellos). In this process's memory, bounded,
    idle entries dropped; with several instances each instance limits on its own."""

    __slots__ = ("addresses", "conversations", "hellos")

    def __init__(self, lim: Limits) -> None:
        self.conversations = BucketMap(lim.customer_messages, lim.customer_window_s)
        self.addresses = BucketMap(lim.address_messages, lim.address_window_s)
        self.hellos = BucketMap(lim.address_hellos, lim.address_hello_window_s)
