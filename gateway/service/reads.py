"""What handlers may read through the service: conversations, logs, queues, agents.

A mixin of ``ConversationService``: reads only, so the service stays the one
way into conversations and the server never touches the store.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.config import Config
from gateway.model import AgentState, Conversation, ConvState, Entry
from gateway.service.botholder import BotHolder
from gateway.service.gaps import GapLimits, gaps_report
from gateway.store import Store


class ConversationReads:
    config: Config
    store: Store
    bot: BotHolder

    async def conversation(self, conversation: str) -> Conversation | None:
        return await self.store.get_conversation(conversation)

    async def current_conversation(self, customer: str) -> Conversation | None:
        """The customer's most recent conversation (open or closed)."""
        conv_id = await self.store.customer_conversation(customer)
        return await self.store.get_conversation(conv_id) if conv_id else None

    async def read_log(self, conversation: str, after: int = 0) -> list[Entry]:
        return await self.store.read_log(conversation, after)

    async def queue_position(self, conv: Conversation) -> int:
        """1-based position of a waiting conversation in its skill queue, 0 if it is not waiting."""
        if conv.state is not ConvState.QUEUED:
            return 0
        queue = await self.store.queue(conv.skill)
        return queue.index(conv.id) + 1 if conv.id in queue else 0

    async def agent_state(self, agent: str) -> AgentState | None:
        return await self.store.get_agent(agent)

    async def agents(self) -> list[AgentState]:
        return await self.store.list_agents()

    async def queue_lengths(self) -> dict[str, int]:
        return await self.store.queue_lengths()

    async def ready(self) -> bool:
        return await self.store.ping()

    async def archive_outbox(self, now: float | None = None) -> tuple[int, float]:
        """The archive outbox's depth, and how long its oldest entry has waited (0 when none): metrics."""
        stats = await self.store.outbox_stats()
        lag = 0.0 if stats.oldest_at is None else max(0.0, (now or time.time()) - stats.oldest_at)
        return stats.depth, lag

    async def follow_ups_due(self, now: float | None = None) -> int:
        """Pending cases whose promised follow-up time has come (metrics)."""
        return await self.store.follow_ups_due_count(now or time.time())

    async def unserved_queues(self, lengths: dict[str, int] | None = None) -> dict[str, int]:
        """Waiting conversations per skill that no configured agent has (they need a person's attention).

        ``lengths``: the queue lengths when the caller has read them already.
        """
        served = {s for a in self.config.agents for s in a.profile.skills}
        if lengths is None:
            lengths = await self.store.queue_lengths()
        return {s: n for s, n in lengths.items() if n and s not in served}

    async def faq_gaps(self, since_days: float, limits: GapLimits | None = None) -> dict[str, Any]:
        """What the FAQ did not serve in the last ``since_days`` days, clustered (``gateway.service.gaps``)."""
        return await gaps_report(self.store, self.bot, since_days, limits=limits)
