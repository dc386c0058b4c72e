"""The memory store's routing moves: the policy (``gateway.routing``) applied to its data.

A mixin of ``MemoryStore``: every method runs without an ``await``, inside one
of the store's steps, so a step stays atomic on one event loop.
"""

from __future__ import annotations

import bisect
import time
from typing import Any

from gateway.model import AgentState, AgentStatus, Conversation, ConvState, Entry
from gateway.routing import AgentView, WaitingView, pick_agent, pick_waiting, queue_score
from gateway.store.base import Placement, agent_topic, queue_topic


class MemoryRouting:
    _agents: dict[str, AgentState]
    _convs: dict[str, Conversation]
    _queues: dict[str, list[tuple[int, str]]]
    _waiting: dict[str, tuple[str, tuple[int, str]]]
    _moved: set[str]
    _stamp: float

    def _emit(self, topic: str, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    def _append(self, conversation: str, entry: Entry) -> Entry:
        raise NotImplementedError

    def _flush_moved(self) -> None:
        """Publish the new order of every queue the step changed (once each, at its end)."""
        for skill in sorted(self._moved):
            self._emit(queue_topic(skill), {"queue": [cid for _, cid in self._queues.get(skill, [])]})
        self._moved.clear()

    def _requeue(self, a: AgentState) -> list[Placement]:
        agent = a.id
        out: list[Placement] = []
        for conv_id in list(a.held):
            a.held.remove(conv_id)
            c = self._convs[conv_id]
            c.state, c.agent = ConvState.QUEUED, ""
            self._emit(agent_topic(agent), {"type": "unassigned", "conversation": conv_id, "reason": "timeout"})
            out.append(self._route(c, exclude=agent))
        return out

    def _views(self, skill: str) -> list[AgentView]:
        # Only agents that could take it: building a view of every agent on every
        # routing decision was the memory store's hot spot in the handoff bench.
        return [
            AgentView(a.id, a.status, frozenset(a.skills), len(a.held), a.capacity, a.last_assigned)
            for a in self._agents.values()
            if a.status is AgentStatus.ONLINE and skill in a.skills and len(a.held) < a.capacity
        ]

    def _hold(self, a: AgentState, c: Conversation) -> None:
        a.held.append(c.id)
        # Strictly increasing, so "idle longest" follows assignment order even
        # when two assignments fall within one float tick (as the Redis store does).
        self._stamp = a.last_assigned = max(time.time(), self._stamp + 1e-6)
        c.state, c.agent, c.had_agent = ConvState.ASSIGNED, a.id, a.id
        self._append(c.id, {"type": "assigned", "agent": {"id": a.id, "name": a.name}})
        self._emit(agent_topic(a.id), {"type": "assigned", "conversation": c.id})

    def _route(self, c: Conversation, exclude: str = "", prefer: str = "") -> Placement:
        """Assign ``c`` to the best agent for its skill, else enqueue it.

        ``prefer`` (a reopen's previous agent) takes it first when online with room, whatever its skills."""
        p = self._agents.get(prefer) if prefer and prefer != exclude else None
        if p is not None and p.status is AgentStatus.ONLINE and p.room > 0:
            self._hold(p, c)
            return Placement(c.id, c.skill, agent=p.id)
        chosen = pick_agent(self._views(c.skill), c.skill, exclude=exclude)
        if chosen is not None:
            self._hold(self._agents[chosen], c)
            return Placement(c.id, c.skill, agent=chosen)
        c.state, c.agent = ConvState.QUEUED, ""
        q = self._queues.setdefault(c.skill, [])
        item = (queue_score(c.priority, c.ticket), c.id)
        bisect.insort(q, item)
        self._waiting[c.id] = (c.skill, item)
        self._moved.add(c.skill)
        return Placement(c.id, c.skill, position=bisect.bisect_left(q, item) + 1)

    def _pull(self, a: AgentState) -> list[Placement]:
        """Fill the agent's free slots with the first waiting conversations among its skills."""
        out: list[Placement] = []
        while a.status is AgentStatus.ONLINE and a.room > 0:
            views = {
                s: [WaitingView(cid, s, score) for score, cid in q[:1]]
                for s, q in self._queues.items()
                if s in a.skills
            }
            head = pick_waiting(views, a.skills)
            if head is None:
                break
            self._queues[head.skill].pop(0)
            self._waiting.pop(head.conversation, None)
            self._moved.add(head.skill)
            c = self._convs[head.conversation]
            self._hold(a, c)
            out.append(Placement(c.id, head.skill, agent=a.id, from_queue=True))
        return out

    def _dequeue(self, c: Conversation) -> str:
        # By where it was queued, not by its current fields: update_conversation
        # may have changed its skill or priority since.
        waiting = self._waiting.pop(c.id, None)
        if waiting is None:
            return ""
        skill, item = waiting
        q = self._queues.get(skill, [])
        i = bisect.bisect_left(q, item)
        if i < len(q) and q[i] == item:
            q.pop(i)
            self._moved.add(skill)
            return skill
        return ""

    async def overflow(self, conversation: str, skill: str, notice: Entry) -> Placement | None:
        c = self._convs.get(conversation)
        waiting = self._waiting.get(conversation)
        if c is None or c.state is not ConvState.QUEUED or waiting is None or waiting[0] == skill:
            return None
        self._dequeue(c)
        self._append(conversation, notice)
        c.skill = skill
        placement = self._route(c)
        self._flush_moved()
        return placement
