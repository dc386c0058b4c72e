"""The memory store's archive outbox and its hot data (README "The outbox and hot data").

A mixin of ``MemoryStore``: every method runs without an ``await``, so each is one step on the
event loop, as the Redis scripts (``claim_outbox.lua``, ``archived.lua``, ``includes/outbox.lua``) are.

The close step queues a conversation (``_outbox_add``); a change to a closed one queues a new
version (``_archive_again``). Once the archive has a version (``archived``) the entry goes and the
conversation is dropped ``keep_hot_s`` later, with its log, client ids and its customer's pointer
(while it points there): after that the store holds nothing of it, so memory stays flat however
many conversations pass through.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Any

from gateway.model import Conversation, ConvState
from gateway.store.base import OutboxEntry, OutboxStats


class MemoryOutbox:
    _convs: dict[str, Conversation]
    _logs: dict[str, Any]
    _customer_conv: dict[str, str]
    clock: Callable[[], float]  # the hot copies' clock (``MemoryClaims``; tests move it)

    def __init__(self) -> None:
        self._outbox: dict[str, float] = {}  # conversation -> queued at; insertion order is queue order
        self._outbox_retry: dict[str, float] = {}  # claimed: not claimed again before this
        self._outbox_tries: dict[str, int] = {}  # claims of its current version
        self._arch_v: dict[str, int] = {}  # versions past 1 (changed after the close), while the store has it
        self._hot: dict[str, float] = {}  # archived: dropped at this time (``clock``)
        self._hot_heap: list[tuple[float, str]] = []  # (drop at, conversation); stale items skipped

    def _outbox_add(self, conversation: str) -> None:
        """Queue for the archive (the close step); one already waiting keeps its place."""
        self._outbox.setdefault(conversation, time.time())

    def _archive_again(self, conversation: str) -> None:
        """A closed conversation changed: a new version, due at once, kept hot until it is archived."""
        self._arch_v[conversation] = self._arch_v.get(conversation, 1) + 1
        self._outbox_retry.pop(conversation, None)
        self._outbox_tries.pop(conversation, None)
        self._hot.pop(conversation, None)
        self._outbox_add(conversation)

    async def claim_outbox(
        self, now: float, limit: int = 100, *, retry_s: float = 10.0, max_retry_s: float = 60.0
    ) -> list[OutboxEntry]:
        self._drop_cold()
        out: list[OutboxEntry] = []
        for conv, queued in self._outbox.items():
            if len(out) >= limit or queued > now:  # queued times only grow along the dict
                break
            if self._outbox_retry.get(conv, now) > now:
                continue
            tries = self._outbox_tries[conv] = self._outbox_tries.get(conv, 0) + 1
            self._outbox_retry[conv] = now + min(max_retry_s, retry_s * 2.0 ** (tries - 1))
            out.append(OutboxEntry(conv, self._arch_v.get(conv, 1), queued, tries))
        return out

    async def archived(self, conversation: str, version: int, keep_hot_s: float) -> bool:
        if conversation not in self._outbox:
            return False
        c = self._convs.get(conversation)
        if c is not None and self._arch_v.get(conversation, 1) != version:
            return False  # changed since: the newer version stays queued
        del self._outbox[conversation]
        self._outbox_retry.pop(conversation, None)
        self._outbox_tries.pop(conversation, None)
        waiting = c is not None and getattr(c, "resolution", "") == "pending" and not getattr(c, "follow_up_done_at", 0)
        if c is not None and c.state is ConvState.CLOSED and not waiting:
            if keep_hot_s <= 0:
                self._drop(conversation)
            else:
                at = self.clock() + keep_hot_s
                self._hot[conversation] = at
                heapq.heappush(self._hot_heap, (at, conversation))
        self._drop_cold()
        return True

    async def outbox_stats(self) -> OutboxStats:
        oldest = next(iter(self._outbox.values()), None)
        return OutboxStats(len(self._outbox), oldest)

    def _drop_cold(self) -> None:
        """Forget the archived conversations whose hot time is over (Redis expires their keys)."""
        now, heap = self.clock(), self._hot_heap
        while heap and heap[0][0] <= now:
            at, conv = heapq.heappop(heap)
            if self._hot.get(conv) == at:  # else kept hot again (changed, queued again)
                del self._hot[conv]
                self._drop(conv)

    def _drop(self, conversation: str) -> None:
        c = self._convs.pop(conversation, None)
        self._logs.pop(conversation, None)
        self._arch_v.pop(conversation, None)
        if c is not None and self._customer_conv.get(c.customer_id) == conversation:
            del self._customer_conv[c.customer_id]
