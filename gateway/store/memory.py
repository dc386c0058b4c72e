"""The embedded store (``memory://``): one process, nothing to install.

Every method runs without an ``await`` between reading and writing state, so on
one event loop each is atomic, as the Redis Lua scripts are.
"""

from __future__ import annotations

import bisect
import heapq
import os
import time
from typing import Any

from gateway.errors import NotAssigned, NotFound
from gateway.model import AgentProfile, AgentState, AgentStatus, Conversation, ConvState, Entry, Priority
from gateway.routing import AgentView, WaitingView, pick_agent, pick_waiting, queue_score
from gateway.store.base import (
    AppendResult,
    BusListener,
    CloseResult,
    Guard,
    Placement,
    Store,
    TransferResult,
    agent_topic,
    conv_topic,
)


class _Log:
    __slots__ = ("by_client", "entries")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.by_client: dict[str, Entry] = {}


class MemoryStore(Store):
    def __init__(self, namespace: str = "default") -> None:
        self.namespace = namespace
        self._listener: BusListener | None = None
        self._secret = os.urandom(32)
        self._convs: dict[str, Conversation] = {}
        self._logs: dict[str, _Log] = {}
        self._customer_conv: dict[str, str] = {}
        self._agents: dict[str, AgentState] = {}
        self._sessions: dict[str, str] = {}  # agent -> session id
        self._queues: dict[str, list[tuple[int, str]]] = {}  # skill -> sorted (score, conv)
        self._waiting: dict[str, tuple[str, tuple[int, str]]] = {}  # conv -> (skill, queue item)
        self._tickets = 0
        self._stamp = 0.0  # last assignment stamp, strictly increasing
        self._timers: dict[str, float] = {}
        self._timer_heap: list[tuple[float, str]] = []
        self._claims: dict[str, tuple[str, float]] = {}  # key -> (value, expires at)
        self._claims_sweep_at = 1024
        self._dead: list[dict[str, Any]] = []  # oldest first

    # lifecycle -------------------------------------------------------
    async def start(self, listener: BusListener) -> None:
        self._listener = listener

    async def close(self) -> None:
        self._listener = None

    async def ping(self) -> bool:
        return True

    async def shared_secret(self) -> bytes:
        return self._secret

    def _emit(self, topic: str, payload: dict[str, Any]) -> None:
        if self._listener is not None:
            self._listener(topic, payload)

    # conversations ---------------------------------------------------
    async def create_conversation(self, conv: Conversation) -> None:
        self._convs[conv.id] = conv
        self._logs[conv.id] = _Log()
        self._customer_conv[conv.customer_id] = conv.id

    async def get_conversation(self, conversation: str) -> Conversation | None:
        c = self._convs.get(conversation)
        return Conversation.from_dict(c.to_dict()) if c is not None else None

    async def update_conversation(self, conversation: str, fields: dict[str, Any]) -> None:
        c = self._convs.get(conversation)
        if c is None:
            raise NotFound(f"no conversation {conversation}")
        for k in ("customer_name", "meta", "rating", "rating_comment", "priority", "skill"):
            if k in fields:
                v = fields[k]
                setattr(c, k, Priority(v) if k == "priority" else v)

    async def customer_conversation(self, customer: str) -> str | None:
        return self._customer_conv.get(customer)

    # log -------------------------------------------------------------
    async def append(
        self,
        conversation: str,
        entry: Entry,
        *,
        client_id: str | None = None,
        guard: Guard | None = None,
        timer: tuple[str, float] | None = None,
    ) -> AppendResult:
        log = self._logs.get(conversation)
        if log is None:
            raise NotFound(f"no conversation {conversation}")
        if client_id is not None:
            first = log.by_client.get(client_id)
            if first is not None:
                return AppendResult(first, duplicate=True)
        if guard is not None and not self._guard_holds(conversation, guard):
            return AppendResult({}, refused=True)
        stored = self._append(conversation, entry)
        if client_id is not None:
            log.by_client[client_id] = stored
        if timer is not None:
            await self.schedule(*timer)
        return AppendResult(stored, state=self._convs[conversation].state)

    def _guard_holds(self, conversation: str, guard: Guard) -> bool:
        c = self._convs[conversation]
        if guard.state is not None and c.state is not guard.state:
            return False
        if guard.agent is not None and (c.state is not ConvState.ASSIGNED or c.agent != guard.agent):
            return False
        return not (guard.open and c.state is ConvState.CLOSED)

    def _append(self, conversation: str, entry: Entry) -> Entry:
        log = self._logs[conversation]
        stored = {**entry, "seq": len(log.entries) + 1, "ts": time.time()}
        log.entries.append(stored)
        self._emit(conv_topic(conversation), stored)
        return stored

    async def read_log(self, conversation: str, after: int = 0) -> list[Entry]:
        log = self._logs.get(conversation)
        if log is None:
            return []
        return log.entries[max(after, 0) :]

    # agents ----------------------------------------------------------
    async def register_agent(self, profile: AgentProfile) -> None:
        a = self._agents.get(profile.id)
        if a is None:
            self._agents[profile.id] = AgentState(profile.id, profile.name, profile.skills, profile.capacity)
        else:
            a.name, a.skills, a.capacity = profile.name, profile.skills, profile.capacity

    async def get_agent(self, agent: str) -> AgentState | None:
        a = self._agents.get(agent)
        if a is None:
            return None
        return AgentState(a.id, a.name, a.skills, a.capacity, a.status, list(a.held), a.last_assigned)

    async def list_agents(self) -> list[AgentState]:
        return [s for s in [await self.get_agent(a) for a in sorted(self._agents)] if s is not None]

    def _agent(self, agent: str) -> AgentState:
        a = self._agents.get(agent)
        if a is None:
            raise NotFound(f"unknown agent {agent}")
        return a

    async def agent_connected(
        self, agent: str, session: str, status: AgentStatus, instance: str
    ) -> tuple[str, list[Placement]]:
        a = self._agent(agent)
        previous = self._sessions.get(agent, "")
        self._sessions[agent] = session
        a.status = status
        return previous, self._pull(a) if status is AgentStatus.ONLINE else []

    async def agent_disconnected(self, agent: str, session: str) -> bool:
        if self._sessions.get(agent) != session:
            return False
        del self._sessions[agent]
        self._agent(agent).status = AgentStatus.OFFLINE
        return True

    async def set_agent_status(self, agent: str, session: str, status: AgentStatus) -> list[Placement]:
        a = self._agent(agent)
        if self._sessions.get(agent) != session:
            return []
        a.status = status
        return self._pull(a) if status is AgentStatus.ONLINE else []

    async def requeue_agent(self, agent: str) -> list[Placement]:
        a = self._agent(agent)
        if a.status is not AgentStatus.OFFLINE:
            return []
        out: list[Placement] = []
        for conv_id in list(a.held):
            a.held.remove(conv_id)
            c = self._convs[conv_id]
            c.state, c.agent = ConvState.QUEUED, ""
            self._emit(agent_topic(agent), {"type": "unassigned", "conversation": conv_id, "reason": "timeout"})
            out.append(self._route(c, exclude=agent))
        return out

    # routing ---------------------------------------------------------
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

    def _route(self, c: Conversation, exclude: str = "") -> Placement:
        """Assign ``c`` to the best agent for its skill, else enqueue it."""
        chosen = pick_agent(self._views(c.skill), c.skill, exclude=exclude)
        if chosen is not None:
            self._hold(self._agents[chosen], c)
            return Placement(c.id, c.skill, agent=chosen)
        c.state, c.agent = ConvState.QUEUED, ""
        q = self._queues.setdefault(c.skill, [])
        item = (queue_score(c.priority, c.ticket), c.id)
        bisect.insort(q, item)
        self._waiting[c.id] = (c.skill, item)
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
            return skill
        return ""

    async def assign_or_enqueue(self, conversation: str, skill: str, priority: Priority) -> Placement | None:
        c = self._convs.get(conversation)
        if c is None:
            raise NotFound(f"no conversation {conversation}")
        if c.state is not ConvState.BOT:
            return None
        self._tickets += 1
        c.skill, c.priority, c.ticket = skill, priority, self._tickets
        return self._route(c)

    async def transfer(
        self, conversation: str, from_agent: str, *, skill: str = "", to_agent: str = ""
    ) -> TransferResult:
        c = self._convs.get(conversation)
        if c is None or c.state is not ConvState.ASSIGNED or c.agent != from_agent:
            raise NotAssigned(f"{from_agent} does not hold {conversation}")
        src = self._agent(from_agent)
        dst: AgentState | None = None
        if to_agent:
            dst = self._agents.get(to_agent)
            if dst is None or to_agent == from_agent:
                raise NotFound(f"unknown agent {to_agent}")
            if dst.status is not AgentStatus.ONLINE or dst.room <= 0:
                raise NotFound(f"agent {to_agent} cannot take it now (offline, away or full)")
        src.held.remove(conversation)
        self._emit(agent_topic(from_agent), {"type": "unassigned", "conversation": conversation, "reason": "transferred"})
        target: dict[str, Any] = {"agent": {"id": dst.id, "name": dst.name}} if dst else {"skill": skill}
        self._append(conversation, {"type": "transferred", "from": {"id": src.id, "name": src.name}, "to": target})
        pulled = self._pull(src)  # before rerouting, so the source cannot take it straight back
        if dst is not None:
            self._hold(dst, c)
            placement = Placement(c.id, c.skill, agent=dst.id)
        else:
            c.skill = skill
            placement = self._route(c, exclude=from_agent)
        return TransferResult(placement, tuple(pulled))

    async def close_conversation(self, conversation: str, reason: str, *, by_agent: str = "") -> CloseResult:
        c = self._convs.get(conversation)
        if c is None:
            raise NotFound(f"no conversation {conversation}")
        if by_agent and (c.state is not ConvState.ASSIGNED or c.agent != by_agent):
            raise NotAssigned(f"{by_agent} does not hold {conversation}")
        if c.state is ConvState.CLOSED:
            return CloseResult(False, Conversation.from_dict(c.to_dict()))
        left = self._dequeue(c) if c.state is ConvState.QUEUED else ""
        holder = c.agent if c.state is ConvState.ASSIGNED else ""
        c.state, c.agent, c.closed_at, c.close_reason = ConvState.CLOSED, "", time.time(), reason
        self._append(conversation, {"type": "closed", "reason": reason})
        pulled: list[Placement] = []
        if holder:
            a = self._agents[holder]
            a.held.remove(conversation)
            self._emit(agent_topic(holder), {"type": "unassigned", "conversation": conversation, "reason": "closed"})
            pulled = self._pull(a)
        return CloseResult(True, Conversation.from_dict(c.to_dict()), holder, tuple(pulled), left)

    async def queue(self, skill: str) -> list[str]:
        return [cid for _, cid in self._queues.get(skill, [])]

    async def queue_lengths(self) -> dict[str, int]:
        return {s: len(q) for s, q in self._queues.items()}

    # timers ----------------------------------------------------------
    async def schedule(self, key: str, due: float) -> None:
        self._timers[key] = due
        heapq.heappush(self._timer_heap, (due, key))
        if len(self._timer_heap) > 2 * len(self._timers) + 1024:
            # Moved timers leave stale heap items (idle timers move on every message): compact.
            self._timer_heap = [(d, k) for k, d in self._timers.items()]
            heapq.heapify(self._timer_heap)

    async def cancel(self, key: str) -> None:
        self._timers.pop(key, None)

    async def claim_due(self, now: float, limit: int = 100) -> list[str]:
        out: list[str] = []
        heap = self._timer_heap
        while heap and heap[0][0] <= now and len(out) < limit:
            due, key = heapq.heappop(heap)
            if self._timers.get(key) == due:  # else cancelled or moved (stale heap item)
                del self._timers[key]
                out.append(key)
        return out

    # bus -------------------------------------------------------------
    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self._emit(topic, payload)

    # claims and dead letters -----------------------------------------
    def _live_claim(self, key: str, now: float) -> str | None:
        item = self._claims.get(key)
        if item is None:
            return None
        if item[1] <= now:
            del self._claims[key]
            return None
        return item[0]

    async def claim_once(self, key: str, ttl_s: float, value: str = "1") -> bool:
        now = time.time()
        if self._live_claim(key, now) is not None:
            return False
        self._claims[key] = (value, now + ttl_s)
        if len(self._claims) >= self._claims_sweep_at:  # drop expired ones now and then
            self._claims = {k: v for k, v in self._claims.items() if v[1] > now}
            self._claims_sweep_at = max(1024, 2 * len(self._claims))
        return True

    async def get_claim(self, key: str) -> str | None:
        return self._live_claim(key, time.time())

    async def release_claim(self, key: str) -> None:
        self._claims.pop(key, None)

    async def add_dead_letter(self, record: dict[str, Any], keep: int) -> None:
        self._dead.append(dict(record))
        if len(self._dead) > keep:
            del self._dead[: len(self._dead) - keep]

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        return [dict(r) for r in reversed(self._dead[-limit:])] if limit > 0 else []
