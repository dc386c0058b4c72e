"""The embedded store (``memory://``): one process, nothing to install.

Every method runs without an ``await`` between reading and writing state, so on
one event loop each is atomic, as the Redis Lua scripts are.
"""

from __future__ import annotations

import os
import time
from typing import Any

from gateway.errors import NotAssigned, NotFound
from gateway.model import (
    AgentProfile,
    AgentState,
    AgentStatus,
    Conversation,
    ConvState,
    Entry,
    MetaPatch,
    Priority,
)
from gateway.store.base import (
    AppendResult,
    BusListener,
    CloseOutcome,
    CloseResult,
    FirstResponse,
    Guard,
    HandoffRequest,
    PendingTurn,
    Placement,
    Store,
    TransferResult,
    agent_topic,
    conv_topic,
    grace_timer,
    idle_timer,
    overflow_timer,
    sla_timer,
    turn_timer,
)
from gateway.store.memory_extras import MemoryClaims, MemoryTimers
from gateway.store.memory_followups import MemoryFollowUps
from gateway.store.memory_outbox import MemoryOutbox
from gateway.store.memory_reports import MemoryReports
from gateway.store.memory_routing import MemoryRouting


class _Log:
    __slots__ = ("by_client", "entries", "responded")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.by_client: dict[str, Entry] = {}
        self.responded = False  # an agent message followed the hand-off (the first response is past)


class MemoryStore(MemoryRouting, MemoryReports, MemoryTimers, MemoryFollowUps, MemoryOutbox, MemoryClaims, Store):
    def __init__(self, namespace: str = "default") -> None:
        MemoryTimers.__init__(self)
        MemoryClaims.__init__(self)
        MemoryOutbox.__init__(self)
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
        self._turns: dict[str, dict[int, bool]] = {}  # conv -> pending turns: seq -> vip
        self._moved: set[str] = set()  # skill queues changed by the current step
        self._follow_ups: dict[str, dict[str, float]] = {}  # agent -> {pending case: follow_up_at}

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
    async def create_conversation(
        self, conv: Conversation, *, greeting: Entry | None = None, timer: tuple[str, float] | None = None
    ) -> list[Entry]:
        self._convs[conv.id] = Conversation.from_dict(conv.to_dict())
        self._logs[conv.id] = _Log()
        self._customer_conv[conv.customer_id] = conv.id
        if timer is not None:
            self._schedule(*timer)
        return [self._append(conv.id, greeting)] if greeting is not None else []

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

    async def patch_meta(self, conversation: str, patch: MetaPatch) -> bool:
        c = self._convs.get(conversation)
        if c is None:
            return False
        patch.apply(c.meta)
        return True

    async def rate(self, conversation: str, score: int, comment: str) -> str | None:
        c = self._convs.get(conversation)
        if c is None or not (c.had_agent or c.state is ConvState.CLOSED):
            return None
        c.rating, c.rating_comment = score, comment
        if c.state is ConvState.CLOSED:
            self._archive_again(conversation)  # the archive gets the rating: a new version
        return c.had_agent

    async def discard_unused(self, conversation: str) -> bool:
        return self._discard_if_unused(conversation)

    def _discard_if_unused(self, conversation: str) -> bool:
        c = self._convs.get(conversation)
        if c is None or c.state is not ConvState.BOT:
            return False
        if any(e.get("from") != "system" for e in self._logs[conversation].entries):
            return False
        del self._convs[conversation], self._logs[conversation]
        if self._customer_conv.get(c.customer_id) == conversation:  # back to the one it reopened, if any
            if c.reopened_from:
                self._customer_conv[c.customer_id] = c.reopened_from
            else:
                del self._customer_conv[c.customer_id]
        self._cancel(idle_timer(conversation))
        return True

    async def raise_priority(self, conversation: str, priority: Priority) -> bool:
        c = self._convs.get(conversation)
        if c is None or c.state is not ConvState.BOT or Priority(priority).rank >= c.priority.rank:
            return False
        c.priority = Priority(priority)
        return True

    # log -------------------------------------------------------------
    async def append(
        self,
        conversation: str,
        entry: Entry,
        *,
        client_id: str | None = None,
        guard: Guard | None = None,
        timer: tuple[str, float] | None = None,
        cancel: tuple[str, ...] = (),
        turn_due: float | None = None,
        vip: bool = False,
        turn: int = 0,
        meta: MetaPatch | None = None,
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
        pending = self._turns.get(conversation)
        if turn and (pending is None or turn not in pending):
            return AppendResult({}, refused=True)
        c = self._convs[conversation]
        if meta:
            meta.apply(c.meta)
        stored = self._append(conversation, entry)
        if client_id is not None:
            log.by_client[client_id] = stored
        if turn and pending is not None:
            del pending[turn]
            if not pending:  # keep no empty record per conversation
                del self._turns[conversation]
            self._cancel(turn_timer(conversation, turn))
        if turn_due is not None and c.state is ConvState.BOT:
            self._turns.setdefault(conversation, {})[stored["seq"]] = vip
            self._schedule(turn_timer(conversation, stored["seq"]), turn_due)
        if timer is not None:
            self._schedule(*timer)
        for key in cancel:
            self._cancel(key)
        fr = None
        if guard is not None and guard.agent is not None and not log.responded:
            queued = c.meta.get("queued_at")
            if isinstance(queued, int | float):
                log.responded = True
                fr = FirstResponse(stored["ts"] - queued, c.channel, c.skill)
        return AppendResult(stored, state=c.state, first_response=fr)

    async def pending_turn(self, conversation: str, seq: int) -> PendingTurn | None:
        pending = self._turns.get(conversation)
        c = self._convs.get(conversation)
        if pending is None or seq not in pending or c is None:
            return None
        return PendingTurn(conversation, seq, c.state, c.channel, self._logs[conversation].entries[seq - 1],
                           pending[seq], bool(c.reopened_from))

    def _clear_turns(self, conversation: str) -> None:
        for seq in self._turns.pop(conversation, {}):
            self._cancel(turn_timer(conversation, seq))

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
        self._cancel(grace_timer(agent))
        self._emit(agent_topic(agent), {"type": "_replaced", "session": session})
        pulled = self._pull(a) if status is AgentStatus.ONLINE else []
        self._flush_moved()
        return previous, pulled

    async def agent_disconnected(
        self, agent: str, session: str, *, grace: tuple[str, float] | None = None, requeue: bool = False
    ) -> bool:
        if self._sessions.get(agent) != session:
            return False
        del self._sessions[agent]
        a = self._agent(agent)
        a.status = AgentStatus.OFFLINE
        if requeue:
            self._requeue(a)
            self._flush_moved()
        elif grace is not None:
            self._schedule(*grace)
        return True

    async def set_agent_status(self, agent: str, session: str, status: AgentStatus) -> list[Placement]:
        a = self._agent(agent)
        if self._sessions.get(agent) != session:
            return []
        a.status = status
        pulled = self._pull(a) if status is AgentStatus.ONLINE else []
        self._flush_moved()
        return pulled

    async def requeue_agent(self, agent: str) -> list[Placement]:
        a = self._agent(agent)
        if a.status is not AgentStatus.OFFLINE:
            return []
        out = self._requeue(a)
        self._flush_moved()
        return out

    # routing (decisions in MemoryRouting) ----------------------------
    async def assign_or_enqueue(self, conversation: str, skill: str, priority: Priority) -> Placement | None:
        c = self._convs.get(conversation)
        if c is None:
            raise NotFound(f"no conversation {conversation}")
        if c.state is not ConvState.BOT:
            return None
        self._tickets += 1
        c.skill, c.priority, c.ticket = skill, priority, self._tickets
        placement = self._route(c)
        self._flush_moved()
        return placement

    async def handoff(self, conversation: str, req: HandoffRequest) -> Placement | None:
        c = self._convs.get(conversation)
        if c is None:
            raise NotFound(f"no conversation {conversation}")
        if c.state is not ConvState.BOT:
            return None
        if req.turn and req.turn not in self._turns.get(conversation, {}):
            return None
        self._clear_turns(conversation)
        skill = (req.skill or str(c.meta.get("default_skill") or "") or req.channel_skills.get(c.channel, "")
                 or req.default_skill)
        if req.note is not None:
            self._append(conversation, req.note)
        self._append(conversation, req.notice)
        req.meta.apply(c.meta)
        self._tickets += 1
        c.skill, c.priority, c.ticket = skill, Priority(req.priority), self._tickets
        placement = self._route(c, prefer=c.prefer_agent)
        if req.sla is not None:
            self._schedule(*req.sla)
        if req.overflow is not None and not placement.agent:
            self._schedule(*req.overflow)
        self._flush_moved()
        return placement

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
        self._flush_moved()
        return TransferResult(placement, tuple(pulled))

    async def close_conversation(
        self,
        conversation: str,
        reason: str,
        *,
        by_agent: str = "",
        notice: Entry | None = None,
        idle_retry: tuple[str, float] | None = None,
        survey: bool = False,
        discard_unused: bool = False,
        outcome: CloseOutcome | None = None,
    ) -> CloseResult:
        c = self._convs.get(conversation)
        if c is None:
            raise NotFound(f"no conversation {conversation}")
        if by_agent and (c.state is not ConvState.ASSIGNED or c.agent != by_agent):
            raise NotAssigned(f"{by_agent} does not hold {conversation}")
        if c.state is ConvState.CLOSED:
            return CloseResult(False, Conversation.from_dict(c.to_dict()))
        if discard_unused and self._discard_if_unused(conversation):
            return CloseResult(False, None, discarded=True)
        if idle_retry is not None and c.state is ConvState.QUEUED:  # we keep them waiting, not the other way
            self._schedule(*idle_retry)
            return CloseResult(False, Conversation.from_dict(c.to_dict()))
        if notice is not None:
            self._append(conversation, notice)
        self._clear_turns(conversation)
        for key in (idle_timer(conversation), sla_timer(conversation), overflow_timer(conversation)):
            self._cancel(key)
        left = self._dequeue(c) if c.state is ConvState.QUEUED else ""
        holder = c.agent if c.state is ConvState.ASSIGNED else ""
        c.state, c.agent, c.closed_at, c.close_reason = ConvState.CLOSED, "", time.time(), reason
        self._append(conversation, {"type": "closed", "reason": reason})
        self._outbox_add(conversation)  # queued for the archive, in this step
        pulled: list[Placement] = []
        if holder:
            a = self._agents[holder]
            a.held.remove(conversation)
            self._emit(agent_topic(holder), {"type": "unassigned", "conversation": conversation, "reason": "closed"})
            self._record_outcome(c, holder, outcome)
            pulled = self._pull(a)
        if survey:  # after every close; "bot_only" when no agent ever held it
            self._emit(conv_topic(conversation), {"type": "survey", "conversation": conversation,
                                                  **({} if c.had_agent else {"bot_only": True})})
        self._flush_moved()
        return CloseResult(True, Conversation.from_dict(c.to_dict()), holder, tuple(pulled), left)

    async def queue(self, skill: str) -> list[str]:
        return [cid for _, cid in self._queues.get(skill, [])]

    async def queue_lengths(self) -> dict[str, int]:
        return {s: len(q) for s, q in self._queues.items()}

    # bus -------------------------------------------------------------
    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self._emit(topic, payload)
