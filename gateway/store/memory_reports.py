"""The memory store's feedback step and its walk over conversations (for ``gateway faq gaps``).

A mixin of ``MemoryStore``: each method runs without an ``await``, so it is one
step on the event loop, as the Redis scripts are.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Protocol

from gateway.model import Conversation, ConvState, Entry
from gateway.store.base import conv_topic


class _Log(Protocol):
    entries: list[Entry]


class MemoryReports:
    _convs: dict[str, Conversation]
    _logs: Mapping[str, _Log]

    def _emit(self, topic: str, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    async def feedback(self, conversation: str, seq: int, helpful: bool) -> bool:
        c = self._convs.get(conversation)
        log = self._logs.get(conversation)
        if c is None or log is None or not 1 <= seq <= len(log.entries):
            return False
        entry = log.entries[seq - 1]
        if entry.get("type") != "message" or entry.get("from") != "bot":
            return False
        c.feedback[seq] = bool(helpful)
        self._emit(conv_topic(conversation), {"type": "feedback", "conversation": conversation, "entry_seq": seq,
                                              "helpful": bool(helpful), "to": "agent"})
        return True

    async def scan_conversations(
        self, cursor: str = "", count: int = 200, *, since: float = 0.0
    ) -> tuple[list[Conversation], str]:
        # The cursor is a position in creation order (dicts keep it). A conversation forgotten
        # during the walk (``discard_unused``: nobody wrote in it) moves the later ones up by one,
        # so the walk may pass over one of them: this walk feeds reports, not routing.
        start = int(cursor) if cursor.isdigit() else 0
        count = max(count, 1)
        page = list(itertools.islice(self._convs.values(), start, start + count))
        out = [Conversation.from_dict(c.to_dict()) for c in page
               if c.state is not ConvState.CLOSED or c.created_at >= since or c.closed_at >= since]
        return out, str(start + count) if len(page) == count else ""
