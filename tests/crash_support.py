"""Crash tests' tools: a store that dies at its k-th awaited call, and an audit of the store's data.

- ``CrashingStore`` forwards every async Store method and, once armed, raises
  at the k-th awaited call: BEFORE forwarding (the step never reached the
  store) or AFTER it (the step happened; the caller died before using the
  result).
- ``Probe`` reads a store's data the same way for both stores (the Store's
  own reads, plus the timer set: the memory store's dict, the Redis zsets).
- ``audit`` checks the invariants every crash must leave intact and counts
  what the issue counts: half-done conversations, unanswered stored customer
  messages, doubled answers or hand-offs, pending turns.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.model import AgentStatus, Conversation, ConvState, Entry
from gateway.store import MemoryStore, Store
from tests.test_store_contract import Bus  # noqa: F401 - the crash tests take it from here

# ------------------------------------------------------------------ dying store


class Crash(BaseException):
    """The instance dies here (a BaseException, so no ``except Exception`` in the service swallows it)."""


STORE_STEPS = frozenset(name for name, f in inspect.getmembers(Store) if inspect.iscoroutinefunction(f))
"""Every async method of the Store interface: each call is one await the instance can die at."""


async def _settle(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


class CrashingStore:
    """Forwards every async method of ``store``; when armed, dies at the ``crash_at``-th awaited call.

    ``mode`` "before": raise instead of forwarding; "after": forward, then raise.
    ``on_step`` (a reference run): called after every forwarded call with its number.
    ``error`` makes the failure something other than ``Crash`` (e.g. ``StoreUnavailable``).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self.armed = False
        self.crash_at = 0
        self.mode = "before"
        self.calls: list[str] = []
        self.crashed: str = ""  # "<n>:<method>:<mode>" once it died
        self.on_step: Callable[[int, str], Awaitable[None]] | None = None
        self.error: Callable[[str], BaseException] = Crash

    def arm(self, crash_at: int = 0, mode: str = "before") -> None:
        assert mode in ("before", "after")
        self.armed, self.crash_at, self.mode, self.calls, self.crashed = True, crash_at, mode, [], ""

    def disarm(self) -> None:
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not (name in STORE_STEPS or inspect.iscoroutinefunction(attr)):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if not self.armed:
                return await _settle(attr(*args, **kwargs))
            self.calls.append(name)
            n = len(self.calls)
            if n == self.crash_at and self.mode == "before":
                self.crashed = f"{n}:{name}:before"
                raise self.error(f"died before store call {n} ({name})")
            result = await _settle(attr(*args, **kwargs))
            if self.on_step is not None:
                await self.on_step(n, name)
            if n == self.crash_at and self.mode == "after":
                self.crashed = f"{n}:{name}:after"
                raise self.error(f"died after store call {n} ({name})")
            return result

        return call


# ------------------------------------------------------------------ bus


# ------------------------------------------------------------------ reading a store's data


class Probe:
    """A store's data, read the same way for both stores."""

    def __init__(self, store: Store, redis_url: str = "") -> None:
        self.store = store
        self.redis_url = redis_url
        self._r: Any = None
        if redis_url:
            from redis.asyncio import Redis

            from gateway.store.keys import Keys

            self._r = Redis.from_url(redis_url, decode_responses=True)
            self.keys = Keys(store.namespace)

    async def close(self) -> None:
        if self._r is not None:
            await self._r.aclose()

    async def timers(self) -> dict[str, float]:
        """Scheduled timers (key -> due)."""
        if self._r is None:
            assert isinstance(self.store, MemoryStore)
            return dict(self.store._timers)
        rows = await self._r.zrange(self.keys.timers, 0, -1, withscores=True)
        return {k: float(d) for k, d in rows}

    async def inflight(self) -> dict[str, list[str]]:
        """Timers an instance claimed and has not finished (Redis only): instance -> keys."""
        if self._r is None:
            return {}
        out: dict[str, list[str]] = {}
        prefix = self.keys.inflight("")
        async for key in self._r.scan_iter(match=prefix.replace("[", "\\[") + "*", count=1000):
            members = await self._r.zrange(key, 0, -1)
            if members:
                out[key[len(prefix):]] = list(members)
        return out

    async def free(self, skill: str) -> set[str] | None:
        """Redis' index of agents that can take ``skill`` now (None on the memory store)."""
        if self._r is None:
            return None
        return {m.split(":", 1)[1] for m in await self._r.zrange(self.keys.free(skill), 0, -1)}

    async def conversation_ids(self) -> list[str]:
        if self._r is None:
            assert isinstance(self.store, MemoryStore)
            return sorted(self.store._convs)
        prefix = self.keys.conv("")
        return sorted([k[len(prefix):] async for k in self._r.scan_iter(match=prefix + "*", count=1000)])


def is_customer(e: Entry) -> bool:
    return e.get("type") == "message" and e.get("from") == "customer"


def is_bot(e: Entry) -> bool:
    return e.get("type") == "message" and e.get("from") == "bot"


@dataclass
class ConvView:
    conv: Conversation
    log: list[Entry]
    pending: list[int]  # seqs of customer messages whose bot turn is pending
    queues: list[str]  # skill queues it is in
    held_by: list[str]  # agents whose held list has it
    timers: list[str]  # timer kinds ("idle", "sla", "turn:<seq>") scheduled or in flight


@dataclass
class State:
    """Everything the checks look at, read in one go."""

    convs: dict[str, ConvView]
    queues: dict[str, list[str]]
    agents: dict[str, tuple[AgentStatus, tuple[str, ...], int, list[str]]]  # status, skills, capacity, held
    timers: dict[str, float]
    inflight: dict[str, list[str]]
    free: dict[str, set[str] | None]


async def read_state(probe: Probe, conv_ids: list[str], skills: list[str]) -> State:
    store = probe.store
    agents = {a.id: (a.status, tuple(a.skills), a.capacity, list(a.held)) for a in await store.list_agents()}
    all_skills = sorted(set(skills) | {s for a in agents.values() for s in a[1]})
    queues = {s: await store.queue(s) for s in all_skills}
    timers = await probe.timers()
    inflight = await probe.inflight()
    timer_keys = [*timers, *(k for keys in inflight.values() for k in keys)]
    convs: dict[str, ConvView] = {}
    for cid in conv_ids:
        conv = await store.get_conversation(cid)
        if conv is None:
            continue
        log = await store.read_log(cid)
        pending = [e["seq"] for e in log if is_customer(e) and await store.pending_turn(cid, e["seq"]) is not None]
        mine: list[str] = []
        for k in timer_keys:
            kind, _, rest = k.partition(":")
            if kind in ("idle", "sla") and rest == cid:
                mine.append(kind)
            elif kind == "turn" and rest.rpartition(":")[0] == cid:
                mine.append(f"turn:{rest.rpartition(':')[2]}")
        convs[cid] = ConvView(conv, log, pending, [s for s, q in queues.items() if cid in q],
                              [a for a, v in agents.items() if cid in v[3]], sorted(mine))
    free = {s: await probe.free(s) for s in all_skills}
    return State(convs, queues, agents, timers, inflight, free)


# ------------------------------------------------------------------ the audit


@dataclass
class Audit:
    half: list[str] = field(default_factory=list)  # a conversation or agent left half-moved / inconsistent
    unanswered: list[str] = field(default_factory=list)  # a stored customer message nobody will ever answer
    doubled: list[str] = field(default_factory=list)  # two answers or two hand-offs for one message
    pending: list[str] = field(default_factory=list)  # pending turns (fine until a survivor has swept)
    dropped: list[str] = field(default_factory=list)  # turns a close finished without an answer (by design)

    def counts(self) -> dict[str, int]:
        return {"half": len(self.half), "unanswered": len(self.unanswered), "doubled": len(self.doubled),
                "pending": len(self.pending)}

    def violations(self, *, pending_ok: bool) -> list[str]:
        return [*self.half, *self.unanswered, *self.doubled, *([] if pending_ok else self.pending)]


def audit(state: State, handoff_text: str, names: dict[str, str] | None = None) -> Audit:
    """Check every invariant a crash must not break; ``names`` labels conversation ids in messages."""
    names = names or {}
    out = Audit()

    def n(cid: str) -> str:
        return names.get(cid, cid)

    for cid, v in state.convs.items():
        c, log = v.conv, v.log
        label = n(cid)
        if [e["seq"] for e in log] != list(range(1, len(log) + 1)):
            out.half.append(f"{label}: log seqs not 1..n: {[e['seq'] for e in log]}")
        notices = [i for i, e in enumerate(log)
                   if e.get("type") == "message" and e.get("from") == "system" and e.get("text") == handoff_text]
        if len(notices) > 1:
            out.doubled.append(f"{label}: {len(notices)} hand-off notices")
        handed = bool(notices)
        if handed and c.state is ConvState.BOT:
            out.half.append(f"{label}: hand-off notice in the log but state bot")
        if c.state in (ConvState.QUEUED, ConvState.ASSIGNED) and not handed:
            out.half.append(f"{label}: {c.state.value} without a hand-off notice")
        if handed and c.ticket <= 0:
            out.half.append(f"{label}: handed off without a ticket")
        if c.state is ConvState.QUEUED:
            if v.queues != [c.skill] or v.held_by:
                out.half.append(f"{label}: queued for {c.skill!r} but in queues {v.queues}, held by {v.held_by}")
        elif c.state is ConvState.ASSIGNED:
            if not c.agent or v.held_by != [c.agent] or v.queues:
                out.half.append(f"{label}: assigned to {c.agent!r} but held by {v.held_by}, in queues {v.queues}")
            routed = [e for e in log if e.get("type") in ("assigned", "transferred")]
            last = routed[-1] if routed else {}
            if last.get("type") != "assigned" or last.get("agent", {}).get("id") != c.agent:
                out.half.append(f"{label}: assigned to {c.agent!r} but the log's last routing entry is {last}")
        else:
            if v.queues or v.held_by or c.agent:
                out.half.append(f"{label}: {c.state.value} but agent {c.agent!r}, queues {v.queues}, "
                                f"held by {v.held_by}")
        if c.state is ConvState.CLOSED:
            closed = [e for e in log if e.get("type") == "closed"]
            if len(closed) != 1 or log[-1].get("type") != "closed":
                out.half.append(f"{label}: closed but {len(closed)} closed entries, last {log[-1] if log else None}")
            if {"idle", "sla"} & set(v.timers):
                out.half.append(f"{label}: closed with timers {v.timers}")
        elif "idle" not in v.timers:
            out.half.append(f"{label}: {c.state.value} without its idle timer")
        if v.pending and c.state is not ConvState.BOT:
            out.half.append(f"{label}: pending turns {v.pending} while {c.state.value}")
        # a pending turn without its timer is never answered (a timer without its turn fires as a no-op:
        # a reaped instance's claimed timers come back whether it fired them or not)
        turn_timers = {int(t.split(":")[1]) for t in v.timers if t.startswith("turn:")}
        if set(v.pending) - turn_timers:
            out.half.append(f"{label}: pending turns {v.pending} but turn timers {sorted(turn_timers)}")
        # the bot's turns: before the hand-off, never more bot answers than customer messages so far;
        # after it, the bot is silent
        end = notices[0] if notices else len(log)
        asked = answered = 0
        for e in log[:end]:
            if is_customer(e):
                asked += 1
            elif is_bot(e):
                answered += 1
                if answered > asked:
                    out.doubled.append(f"{label}: bot answer seq {e['seq']} answers no message (doubled)")
        if any(is_bot(e) for e in log[end:]):
            out.doubled.append(f"{label}: the bot spoke after the hand-off")
        if not handed:
            missing = asked - answered - len(v.pending)
            if missing > 0:
                if c.state is ConvState.CLOSED:
                    out.dropped.append(f"{label}: {missing} turns finished by the close")
                else:
                    out.unanswered.append(f"{label}: {missing} stored customer message(s) never answered "
                                          f"({asked} asked, {answered} answered, pending {v.pending})")
        for seq in v.pending:
            out.pending.append(f"{label}: turn {seq} pending")
    for aid, (status, skills, cap, held) in state.agents.items():
        if len(held) > cap:
            out.half.append(f"agent {aid}: holds {len(held)} > capacity {cap}")
        if len(set(held)) != len(held):
            out.half.append(f"agent {aid}: holds a conversation twice: {held}")
        for cid in held:
            v = state.convs.get(cid)
            if v is not None and (v.conv.state is not ConvState.ASSIGNED or v.conv.agent != aid):
                out.half.append(f"agent {aid}: holds {n(cid)} which is {v.conv.state.value} "
                                f"with agent {v.conv.agent!r}")
        room = status is AgentStatus.ONLINE and len(held) < cap
        for s in skills:
            if room and state.queues.get(s):
                out.half.append(f"agent {aid}: online with room while {s} has waiting {state.queues[s]}")
            free = state.free.get(s)
            if free is not None and (aid in free) != room:
                out.half.append(f"agent {aid}: free:{s} index says {aid in free}, the agent says {room}")
    for s, q in state.queues.items():
        for cid in q:
            v = state.convs.get(cid)
            if v is not None and v.conv.state is not ConvState.QUEUED:
                out.half.append(f"queue {s}: has {n(cid)} which is {v.conv.state.value}")
    return out
