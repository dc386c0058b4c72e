"""The memory store's follow-ups: what an agent's close records, pending cases and their timers.

A mixin of ``MemoryStore`` (after ``MemoryTimers`` in its bases, whose ``_schedule`` and ``_cancel``
it uses): every method runs without an ``await``, inside one step (the close step calls
``_record_outcome``), as the Redis scripts do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gateway.model import Conversation, ConvState
from gateway.store.base import CloseOutcome, agent_topic, follow_up_timer


class MemoryFollowUps:
    _convs: dict[str, Conversation]
    _follow_ups: dict[str, dict[str, float]]  # agent -> {pending conversation: follow_up_at}
    _archive_again: Callable[[str], None]  # MemoryOutbox's: a closed conversation changed, a new version

    def _emit(self, topic: str, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    def _schedule(self, key: str, due: float) -> None:  # MemoryTimers' (ahead of this mixin in the MRO)
        raise NotImplementedError

    def _cancel(self, key: str) -> None:
        raise NotImplementedError

    def _record_outcome(self, c: Conversation, holder: str, outcome: CloseOutcome | None) -> None:
        """Inside the close step, after the holder's ``unassigned``: the agent's resolution and category;
        a pending case goes on the holder's follow-ups (not held: no capacity used) with its timer."""
        if outcome is None:
            return
        c.resolution, c.category = outcome.resolution, outcome.category
        if outcome.follow_up_at and holder:
            c.follow_up_at, c.follow_up_note = outcome.follow_up_at, outcome.note
            self._follow_ups.setdefault(holder, {})[c.id] = outcome.follow_up_at
            self._schedule(follow_up_timer(c.id), outcome.follow_up_at)
            self._emit(agent_topic(holder), {"type": "follow_up", "conversation": c.id,
                                             "follow_up_at": outcome.follow_up_at})

    async def finish_follow_up(self, conversation: str, agent: str, resolution: str, category: str = "") -> bool:
        pending = self._follow_ups.get(agent)
        c = self._convs.get(conversation)
        if pending is None or conversation not in pending or c is None or c.state is not ConvState.CLOSED:
            return False
        del pending[conversation]
        if not pending:
            del self._follow_ups[agent]
        c.resolution, c.follow_up_done_at = resolution, time.time()
        if category:
            c.category = category
        self._cancel(follow_up_timer(conversation))
        self._archive_again(conversation)
        self._emit(agent_topic(agent), {"type": "follow_up_done", "conversation": conversation})
        return True

    async def follow_up_due(self, conversation: str) -> str:
        c = self._convs.get(conversation)
        if c is None or conversation not in self._follow_ups.get(c.had_agent, {}):
            return ""
        self._emit(agent_topic(c.had_agent), {"type": "follow_up_due", "conversation": conversation,
                                              "follow_up_at": c.follow_up_at})
        return c.had_agent

    async def follow_ups(self, agent: str) -> list[str]:
        pending = self._follow_ups.get(agent, {})
        return sorted(pending, key=lambda cid: (pending[cid], cid))

    async def follow_ups_due_count(self, now: float) -> int:
        return sum(1 for cases in self._follow_ups.values() for at in cases.values() if at <= now)
