"""The memory store's timers, claims and dead letters (plain bookkeeping, no routing)."""

from __future__ import annotations

import heapq
import time
from typing import Any


class MemoryTimers:
    """Timers in a dict plus a lazy heap: moved and cancelled timers leave stale heap items."""

    def __init__(self) -> None:
        self._timers: dict[str, float] = {}
        self._timer_heap: list[tuple[float, str]] = []
        self._inflight: dict[str, float] = {}  # claimed, not reported done: key -> when claimed

    def _schedule(self, key: str, due: float) -> None:
        self._timers[key] = due
        heapq.heappush(self._timer_heap, (due, key))
        if len(self._timer_heap) > 2 * len(self._timers) + 1024:
            # Moved timers leave stale heap items (idle timers move on every message): compact.
            self._timer_heap = [(d, k) for k, d in self._timers.items()]
            heapq.heapify(self._timer_heap)

    def _cancel(self, key: str) -> None:
        self._timers.pop(key, None)

    async def schedule(self, key: str, due: float) -> None:
        self._schedule(key, due)

    async def cancel(self, key: str) -> None:
        self._cancel(key)

    async def claim_due(
        self, now: float, limit: int = 100, *, done: tuple[str, ...] = (), retry_after: float | None = None
    ) -> list[str]:
        out: list[str] = []
        if retry_after is None:
            self._inflight.clear()
        else:
            for key in done:
                self._inflight.pop(key, None)
            for key, claimed in list(self._inflight.items()):
                if claimed <= now - retry_after and len(out) < limit:
                    self._inflight[key] = now
                    out.append(key)
        heap = self._timer_heap
        while heap and heap[0][0] <= now and len(out) < limit:
            due, key = heapq.heappop(heap)
            if self._timers.get(key) == due:  # else cancelled or moved (stale heap item)
                del self._timers[key]
                self._inflight[key] = now
                out.append(key)
        return out


class MemoryClaims:
    """``claim_once`` keys with expiry, and the dead-letter list."""

    def __init__(self) -> None:
        self.clock = time.time  # the claims' clock (tests move it)
        self._claims: dict[str, tuple[str, float]] = {}  # key -> (value, expires at)
        self._claims_sweep_at = 1024
        self._dead: list[dict[str, Any]] = []  # oldest first

    def _live_claim(self, key: str, now: float) -> str | None:
        item = self._claims.get(key)
        if item is None:
            return None
        if item[1] <= now:
            del self._claims[key]
            return None
        return item[0]

    async def claim_once(self, key: str, ttl_s: float, value: str = "1") -> bool:
        now = self.clock()
        if self._live_claim(key, now) is not None:
            return False
        self._claims[key] = (value, now + ttl_s)
        if len(self._claims) >= self._claims_sweep_at:  # drop expired ones now and then
            self._claims = {k: v for k, v in self._claims.items() if v[1] > now}
            self._claims_sweep_at = max(1024, 2 * len(self._claims))
        return True

    async def set_claim(self, key: str, ttl_s: float, value: str = "1") -> None:
        self._claims[key] = (value, self.clock() + ttl_s)

    async def get_claim(self, key: str) -> str | None:
        return self._live_claim(key, self.clock())

    async def release_claim(self, key: str) -> None:
        self._claims.pop(key, None)

    async def add_dead_letter(self, record: dict[str, Any], keep: int) -> None:
        self._dead.append(dict(record))
        if len(self._dead) > keep:
            del self._dead[: len(self._dead) - keep]

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        return [dict(r) for r in reversed(self._dead[-limit:])] if limit > 0 else []
