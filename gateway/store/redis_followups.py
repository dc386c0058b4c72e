"""The Redis store's follow-up steps: ending a pending case, its timer firing, the agent's list.

A mixin of ``RedisStore`` (it needs ``keys``, ``_run`` and ``_call`` from there); the close step that
starts a pending case is ``close_conversation`` (``redis_steps``). The memory store does the same in
``memory_followups``; the contract suite holds both to one behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.store import redis_codec as codec
from gateway.store.keys import Keys
from gateway.store.redis_runner import Arg


class FollowUpSteps:
    keys: Keys

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    async def _call(self, *args: Arg) -> Any:
        raise NotImplementedError

    async def finish_follow_up(self, conversation: str, agent: str, resolution: str, category: str = "") -> bool:
        k = self.keys
        res = await self._run("finish_follow_up", [k.conv(conversation), k.follow_ups(agent)],
                              [conversation, agent, resolution, category])
        return bool(int(res))

    async def follow_up_due(self, conversation: str) -> str:
        return codec.text(await self._run("follow_up_due", [self.keys.conv(conversation)], [conversation]))

    async def follow_ups(self, agent: str) -> list[str]:
        return [codec.text(c) for c in await self._call("ZRANGE", self.keys.follow_ups(agent), 0, -1)]

    async def follow_ups_due_count(self, now: float) -> int:
        return int(await self._run("follow_ups_due_count", [], [codec.num(now)]))
