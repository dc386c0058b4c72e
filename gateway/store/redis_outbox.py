"""The Redis store's archive outbox steps (README "The outbox and hot data").

A mixin of ``RedisStore``: ``claim_outbox`` and ``archived`` are one Lua script each
(``lua/claim_outbox.lua``, ``lua/archived.lua``); the close and rate scripts queue entries with the
helpers of ``lua/includes/outbox.lua``. The memory store does the same in ``memory_outbox.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.store import redis_codec as codec
from gateway.store.base import OutboxEntry, OutboxStats
from gateway.store.keys import Keys
from gateway.store.redis_runner import Arg


class OutboxSteps:
    keys: Keys

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    async def _call_many(self, commands: Sequence[Sequence[Arg]], *, transaction: bool = False) -> list[Any]:
        raise NotImplementedError

    async def claim_outbox(
        self, now: float, limit: int = 100, *, retry_s: float = 10.0, max_retry_s: float = 60.0
    ) -> list[OutboxEntry]:
        k = self.keys
        rows = await self._run("claim_outbox", [k.outbox, k.outbox_retry, k.outbox_tries],
                               [repr(float(now)), str(max(limit, 0)), repr(float(retry_s)), repr(float(max_retry_s))])
        return [OutboxEntry(codec.text(r[0]), int(r[1]), float(r[2]), int(r[3])) for r in rows or ()]

    async def archived(self, conversation: str, version: int, keep_hot_s: float) -> bool:
        res = await self._run("archived", [self.keys.conv(conversation)],
                              [conversation, str(int(version)), str(max(0, round(keep_hot_s * 1000)))])
        return bool(int(res))

    async def outbox_stats(self) -> OutboxStats:
        depth, head = await self._call_many([("ZCARD", self.keys.outbox),
                                             ("ZRANGE", self.keys.outbox, 0, 0, "WITHSCORES")], transaction=True)
        return OutboxStats(int(depth), float(head[1]) if head else None)
