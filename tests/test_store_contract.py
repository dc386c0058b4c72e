"""The store contract: one suite, both stores, the same outcomes.

This is the definition of the store's semantics (gateway/store/base.py says
them in words). Every test runs on the memory store, on the Redis store (a
real redis-server, a fresh namespace per test) and on the Redis store over a
3-master Redis Cluster. ``test_random_sequences_agree``
runs the same random operations on both and compares every result.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.errors import NotAssigned, NotFound
from gateway.model import AgentProfile, AgentStatus, Conversation, ConvState, Priority
from gateway.store import Guard, MemoryStore, Placement, Store
from tests.support import until

ONLINE, AWAY, OFFLINE = AgentStatus.ONLINE, AgentStatus.AWAY, AgentStatus.OFFLINE
NORMAL, HIGH, URGENT = Priority.NORMAL, Priority.HIGH, Priority.URGENT

Event = tuple[str, dict[str, Any]]


class Bus:
    """Records what a store's listener got. ``sync`` waits until every earlier ring has arrived."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._seen = 0
        self._new = asyncio.Event()

    def on(self, topic: str, payload: dict[str, Any]) -> None:
        self.events.append((topic, payload))
        self._new.set()

    async def sync(self, store: Store) -> None:
        # Redis runs commands one at a time and a subscriber gets messages in
        # publish order, so once our marker is back every earlier ring is too.
        mark = uuid.uuid4().hex
        await store.publish("_mark", {"m": mark})
        end = time.monotonic() + 5
        while not any(t == "_mark" and p["m"] == mark for t, p in self.events):
            assert time.monotonic() < end, "bus marker never arrived"
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), 0.2)

    async def take(self, store: Store, *, queues: bool = False) -> list[Event]:
        """Events since the last take, in order, without markers and ``ts`` (and ``q:`` queue orders unless asked)."""
        await self.sync(store)
        out = [(t, _no_ts(p)) for t, p in self.events[self._seen :]
               if t != "_mark" and (queues or not t.startswith("q:"))]
        self._seen = len(self.events)
        return out


def _no_ts(p: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in p.items() if k != "ts"}


@dataclass
class Env:
    kind: str
    store: Store
    bus: Bus
    make: Callable[[], Store]  # another store on the same data (Redis: another instance)
    extra: list[Store] = field(default_factory=list)

    async def twin(self) -> Store:
        if self.kind == "memory":
            return self.store
        s = self.make()
        await s.start(lambda t, p: None)
        self.extra.append(s)
        return s


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("cluster", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    """memory, one redis-server, or a 3-master Redis Cluster (``redis+cluster://``; the Redis store either way)."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_server").url)
    if request.param == "cluster":
        return str(request.getfixturevalue("redis_cluster").url)
    return "memory://"


def _make_store(url: str, namespace: str) -> Store:
    if url.startswith("memory"):
        return MemoryStore(namespace)
    from gateway.store.redis import RedisStore

    return RedisStore(url, namespace, instance=f"t-{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def env(backend: str) -> AsyncIterator[Env]:
    ns = f"c{uuid.uuid4().hex[:12]}"
    store = _make_store(backend, ns)
    bus = Bus()
    await store.start(bus.on)
    e = Env("memory" if backend.startswith("memory") else "redis", store, bus, lambda: _make_store(backend, ns))
    yield e
    for s in e.extra:
        await s.close()
    await store.close()


# ------------------------------------------------------------------ helpers

async def conv(s: Store, cid: str, customer: str = "", **kw: Any) -> Conversation:
    c = Conversation(cid, customer or f"u-{cid}", created_at=1700000000.5, **kw)
    await s.create_conversation(c)
    return c


async def agent(s: Store, aid: str, skills: tuple[str, ...] = ("presale",), cap: int = 2,
                status: AgentStatus | None = ONLINE) -> None:
    await s.register_agent(AgentProfile(aid, f"客服{aid}", skills, cap))
    if status is not None:
        await s.agent_connected(aid, f"s-{aid}", status, "i1")


async def handoff(s: Store, cid: str, skill: str = "presale", priority: Priority = NORMAL) -> Placement:
    await conv(s, cid)
    p = await s.assign_or_enqueue(cid, skill, priority)
    assert p is not None
    return p


async def held(s: Store, aid: str) -> list[str]:
    a = await s.get_agent(aid)
    assert a is not None
    return a.held


def msg(text: str, sender: str = "customer") -> dict[str, Any]:
    return {"type": "message", "from": sender, "text": text}


def assigned_entry(aid: str) -> dict[str, Any]:
    return {"type": "assigned", "agent": {"id": aid, "name": f"客服{aid}"}}


# ------------------------------------------------------------------ lifecycle, secret, bus


async def test_ping_secret_and_publish(env: Env) -> None:
    s = env.store
    assert await s.ping() is True
    secret = await s.shared_secret()
    assert isinstance(secret, bytes) and len(secret) >= 16
    assert await s.shared_secret() == secret
    assert await (await env.twin()).shared_secret() == secret  # every instance on the store shares it
    await s.publish("c:x", {"type": "typing", "to": "agent"})
    await s.publish("q:presale", {"queue": ["c1"]})
    assert await env.bus.take(s, queues=True) == [("c:x", {"type": "typing", "to": "agent"}),
                                                  ("q:presale", {"queue": ["c1"]})]


# ------------------------------------------------------------------ conversations


async def test_create_get_update_and_customer_pointer(env: Env) -> None:
    s = env.store
    assert await s.get_conversation("nope") is None
    assert await s.customer_conversation("u1") is None
    c1 = await conv(s, "c1", "u1", customer_name="张三", channel="douyin", meta={"orders": ["123"], "n": 1})
    got = await s.get_conversation("c1")
    assert got is not None and got.to_dict() == c1.to_dict()
    assert await s.customer_conversation("u1") == "c1"
    await conv(s, "c2", "u1")
    assert await s.customer_conversation("u1") == "c2"  # the most recent one
    await s.update_conversation("c1", {"meta": {"orders": ["9"], "vip": True}, "rating": 5, "rating_comment": "好",
                                       "customer_name": "李四", "priority": "high", "skill": "aftersale",
                                       "state": "closed", "agent": "a1"})
    got = await s.get_conversation("c1")
    assert got is not None
    assert (got.meta, got.rating, got.rating_comment, got.customer_name) == ({"orders": ["9"], "vip": True}, 5, "好", "李四")
    assert (got.priority, got.skill) == (HIGH, "aftersale")
    assert (got.state, got.agent) == (ConvState.BOT, "")  # never routing state
    with pytest.raises(NotFound):
        await s.update_conversation("nope", {"rating": 1})
    assert await s.get_conversation("nope") is None


async def test_get_conversation_returns_a_copy(env: Env) -> None:
    s = env.store
    await conv(s, "c1", meta={"a": 1})
    got = await s.get_conversation("c1")
    assert got is not None
    got.meta["a"] = 2
    got.state = ConvState.CLOSED
    again = await s.get_conversation("c1")
    assert again is not None and again.meta == {"a": 1} and again.state is ConvState.BOT


# ------------------------------------------------------------------ log


async def test_seq_is_gap_free_under_concurrent_appends(env: Env) -> None:
    s = env.store
    await conv(s, "c1")
    other = await env.twin()
    results = await asyncio.gather(*[(s if i % 2 else other).append("c1", msg(f"m{i}")) for i in range(40)])
    assert sorted(r.entry["seq"] for r in results) == list(range(1, 41))
    log = await s.read_log("c1")
    assert [e["seq"] for e in log] == list(range(1, 41))
    assert all(isinstance(e["ts"], float) for e in log)
    assert [e["ts"] for e in log] == sorted(e["ts"] for e in log)
    assert [e["seq"] for e in await s.read_log("c1", after=37)] == [38, 39, 40]
    assert await s.read_log("c1", after=40) == []
    assert [e["seq"] for e in await s.read_log("c1", after=-5)] == list(range(1, 41))
    assert await s.read_log("nope") == []


async def test_append_returns_and_publishes_the_stored_entry(env: Env) -> None:
    s = env.store
    await conv(s, "c1")
    await env.bus.take(s)
    before = time.time()
    entry = {"type": "message", "from": "bot", "text": "您好", "faq": "ship", "suggestions": [{"faq": "a", "question": "问"}],
             "seq": 99, "ts": 1.0}  # seq and ts are the store's
    r = await s.append("c1", entry)
    assert not r.duplicate and not r.refused
    assert r.entry["seq"] == 1 and before - 1 <= r.entry["ts"] <= time.time() + 1
    assert _no_ts(r.entry) == {"type": "message", "from": "bot", "text": "您好", "faq": "ship",
                               "suggestions": [{"faq": "a", "question": "问"}], "seq": 1}
    assert await s.read_log("c1") == [r.entry]
    assert await env.bus.take(s) == [("c:c1", _no_ts(r.entry))]
    with pytest.raises(NotFound):
        await s.append("nope", msg("x"))


async def test_append_reports_the_state_and_moves_a_timer_in_the_same_step(env: Env) -> None:
    s = env.store
    await conv(s, "c1")
    r = await s.append("c1", msg("一"), timer=("idle:c1", 100.0))
    assert r.state is ConvState.BOT
    assert await s.claim_due(99.0) == []
    await s.append("c1", msg("二"), timer=("idle:c1", 200.0))  # moved, not added
    assert await s.claim_due(150.0) == []
    assert await s.claim_due(200.0) == ["idle:c1"]
    # nothing stored, nothing scheduled: a refused guard and a duplicate
    await s.append("c1", msg("三"), client_id="m1")
    refused = await s.append("c1", msg("四"), guard=Guard(state=ConvState.ASSIGNED), timer=("idle:c1", 300.0))
    dup = await s.append("c1", msg("三"), client_id="m1", timer=("idle:c1", 300.0))
    assert refused.refused and dup.duplicate
    assert await s.claim_due(400.0) == []
    await agent(s, "a1")
    await s.assign_or_enqueue("c1", "presale", NORMAL)
    assert (await s.append("c1", msg("五"))).state is ConvState.ASSIGNED


async def test_dedupe_by_client_id(env: Env) -> None:
    s = env.store
    await conv(s, "c1")
    await conv(s, "c2")
    first = await s.append("c1", msg("一"), client_id="m1")
    await env.bus.take(s)
    again = await s.append("c1", msg("changed text"), client_id="m1")
    assert again.duplicate and again.entry == first.entry
    assert await env.bus.take(s) == []  # nothing stored, nothing rung
    assert len(await s.read_log("c1")) == 1
    other = await s.append("c2", msg("二"), client_id="m1")  # per conversation
    assert not other.duplicate and other.entry["seq"] == 1
    no_id = [await s.append("c1", msg("x")) for _ in range(2)]  # no client id: never deduped
    assert [r.entry["seq"] for r in no_id] == [2, 3]
    empty_id = await s.append("c1", msg("y"), client_id="")
    assert (await s.append("c1", msg("y"), client_id="")).entry == empty_id.entry
    # concurrent retries of one client id store it once
    twin = await env.twin()
    rs = await asyncio.gather(*[(s if i % 2 else twin).append("c1", msg("z"), client_id="m9") for i in range(10)])
    assert len({r.entry["seq"] for r in rs}) == 1 and sum(not r.duplicate for r in rs) == 1


async def test_guards(env: Env) -> None:
    s = env.store
    await agent(s, "a1")
    await conv(s, "c1")
    assert (await s.append("c1", msg("bot?", "bot"), guard=Guard(state=ConvState.BOT))).entry["seq"] == 1
    refused = await s.append("c1", msg("q?"), guard=Guard(state=ConvState.QUEUED), client_id="k")
    assert refused.refused and refused.entry == {} and not refused.duplicate
    assert (await s.append("c1", msg("x"), guard=Guard(agent="a1"))).refused
    await s.assign_or_enqueue("c1", "presale", NORMAL)  # -> a1
    r = await s.append("c1", msg("k now"), guard=Guard(state=ConvState.QUEUED), client_id="k")
    assert r.refused  # a refused client id was not remembered: it is checked again
    assert not (await s.append("c1", msg("hi", "agent"), guard=Guard(agent="a1"), client_id="k")).refused
    assert (await s.append("c1", msg("hi", "agent"), guard=Guard(agent="a2"))).refused
    assert (await s.append("c1", msg("bot", "bot"), guard=Guard(state=ConvState.BOT))).refused
    assert not (await s.append("c1", msg("open"), guard=Guard(open=True))).refused
    await s.close_conversation("c1", "resolved")
    assert (await s.append("c1", msg("late"), guard=Guard(open=True))).refused
    assert (await s.append("c1", msg("late"), guard=Guard(agent="a1"))).refused
    # a seen client id wins over the guard
    dup = await s.append("c1", msg("again"), guard=Guard(open=True), client_id="k")
    assert dup.duplicate and not dup.refused
    assert [e["seq"] for e in await s.read_log("c1")] == [1, 2, 3, 4, 5]


async def test_the_first_agent_message_after_the_handoff_reports_its_wait(env: Env) -> None:
    """What ``gateway_first_response_seconds`` observes, from the append step itself (no read)."""
    s = env.store
    await agent(s, "a1")
    await conv(s, "c1", channel="douyin", meta={"queued_at": time.time() - 12.0})
    await s.assign_or_enqueue("c1", "presale", NORMAL)
    assert (await s.append("c1", msg("在吗"), guard=Guard(open=True))).first_response is None
    first = (await s.append("c1", msg("您好", "agent"), guard=Guard(agent="a1"), client_id="x1")).first_response
    assert first is not None and (first.channel, first.skill) == ("douyin", "presale")
    assert 12.0 <= first.seconds < 30.0
    again = await s.append("c1", msg("您好", "agent"), guard=Guard(agent="a1"), client_id="x1")
    assert again.duplicate and again.first_response is None
    assert (await s.append("c1", msg("还在吗", "agent"), guard=Guard(agent="a1"))).first_response is None
    await conv(s, "c2")  # no hand-off time (assigned without a hand-off step): nothing to measure
    await s.assign_or_enqueue("c2", "presale", NORMAL)
    assert (await s.append("c2", msg("hi", "agent"), guard=Guard(agent="a1"))).first_response is None


# ------------------------------------------------------------------ agents


async def test_register_and_list_agents(env: Env) -> None:
    s = env.store
    assert await s.get_agent("a1") is None
    assert await s.list_agents() == []
    await s.register_agent(AgentProfile("b", "小李", ("aftersale", "logistics"), 3))
    await s.register_agent(AgentProfile("a", "小王", ("presale",), 2))
    agents = await s.list_agents()
    assert [(a.id, a.name, a.skills, a.capacity, a.status, a.held) for a in agents] == [
        ("a", "小王", ("presale",), 2, OFFLINE, []),
        ("b", "小李", ("aftersale", "logistics"), 3, OFFLINE, []),
    ]
    await s.agent_connected("a", "s1", ONLINE, "i1")
    await handoff(s, "c1")
    await s.register_agent(AgentProfile("a", "王小二", ("presale", "aftersale"), 4))  # profile changes, state stays
    a = await s.get_agent("a")
    assert a is not None
    assert (a.name, a.skills, a.capacity, a.status, a.held) == ("王小二", ("presale", "aftersale"), 4, ONLINE, ["c1"])
    assert a.last_assigned > 0
    # the new skill and capacity route at once
    assert (await handoff(s, "c2", "aftersale")).agent == "a"
    await s.register_agent(AgentProfile("a", "王小二", ("presale",), 4))
    assert (await handoff(s, "c3", "aftersale")).agent == ""  # the dropped skill does not


async def test_sessions_and_replacement(env: Env) -> None:
    s = env.store
    await agent(s, "a1", status=None)
    with pytest.raises(NotFound):
        await s.agent_connected("ghost", "s", ONLINE, "i1")
    with pytest.raises(NotFound):
        await s.set_agent_status("ghost", "s", ONLINE)
    assert await s.agent_disconnected("ghost", "s") is False
    assert await s.agent_connected("a1", "s1", AWAY, "i1") == ("", [])
    assert (await s.get_agent("a1")).status is AWAY  # type: ignore[union-attr]
    assert (await s.agent_connected("a1", "s2", ONLINE, "i2"))[0] == "s1"  # replaced
    assert await s.agent_disconnected("a1", "s1") is False  # the old session cannot take it offline
    assert await s.set_agent_status("a1", "s1", AWAY) == []  # nor change its status
    assert (await s.get_agent("a1")).status is ONLINE  # type: ignore[union-attr]
    assert await s.set_agent_status("a1", "s2", AWAY) == []
    assert (await s.get_agent("a1")).status is AWAY  # type: ignore[union-attr]
    assert await s.agent_disconnected("a1", "s2") is True
    assert (await s.get_agent("a1")).status is OFFLINE  # type: ignore[union-attr]
    assert await s.agent_disconnected("a1", "s2") is False
    assert await s.set_agent_status("a1", "s2", ONLINE) == []  # no session: nothing changes
    assert (await s.get_agent("a1")).status is OFFLINE  # type: ignore[union-attr]
    assert await s.agent_connected("a1", "s3", ONLINE, "i1") == ("", [])


# ------------------------------------------------------------------ routing


async def test_least_loaded_then_longest_idle_then_smallest_id(env: Env) -> None:
    s = env.store
    await agent(s, "b", cap=2)
    await agent(s, "a", cap=2)
    await agent(s, "c", cap=4)
    # all at 0 and never assigned: smallest id
    assert (await handoff(s, "c1")).agent == "a"
    # b and c at 0: b is the smaller id (both never assigned)
    assert (await handoff(s, "c2")).agent == "b"
    assert (await handoff(s, "c3")).agent == "c"  # 0/4 < 1/2
    assert (await handoff(s, "c4")).agent == "c"  # 1/4 < 1/2
    # a, b at 1/2 and c at 2/4: all tie; a was assigned longest ago
    assert (await handoff(s, "c5")).agent == "a"
    assert (await handoff(s, "c6")).agent == "b"
    assert (await handoff(s, "c7")).agent == "c"  # only c has room: 2/2, 2/2, 3/4
    assert (await handoff(s, "c8")).agent == "c"
    p = await handoff(s, "c9")
    assert (p.agent, p.position, p.skill) == ("", 1, "presale")
    assert [(await held(s, x)) for x in "abc"] == [["c1", "c5"], ["c2", "c6"], ["c3", "c4", "c7", "c8"]]


async def test_idle_tie_break_follows_assignment_order(env: Env) -> None:
    s = env.store
    for x in ("z", "y", "x"):
        await agent(s, x, cap=3)
    order = [(await handoff(s, f"c{i}")).agent for i in range(9)]
    # round robin: each round the longest idle of the equally loaded goes first
    assert order == ["x", "y", "z"] * 3


async def test_skills_status_and_capacity(env: Env) -> None:
    s = env.store
    await agent(s, "pre", ("presale",), cap=1)
    await agent(s, "aft", ("aftersale",), cap=1, status=AWAY)
    await agent(s, "off", ("aftersale",), cap=1, status=None)
    assert (await handoff(s, "c1")).agent == "pre"
    assert (await handoff(s, "c2")).agent == ""  # pre is full
    assert (await handoff(s, "c3", "aftersale")).agent == ""  # away and offline take nothing
    assert (await handoff(s, "c4", "unknown-skill")).position == 1
    assert await s.queue("presale") == ["c2"]
    assert await s.queue("aftersale") == ["c3"]
    assert await s.queue("nobody") == []
    assert await s.queue_lengths() == {"presale": 1, "aftersale": 1, "unknown-skill": 1}


async def test_assign_or_enqueue_only_from_bot(env: Env) -> None:
    s = env.store
    with pytest.raises(NotFound):
        await s.assign_or_enqueue("nope", "presale", NORMAL)
    await handoff(s, "c1")
    assert await s.assign_or_enqueue("c1", "presale", URGENT) is None  # already queued
    assert await s.queue("presale") == ["c1"]
    await s.close_conversation("c1", "customer")
    assert await s.assign_or_enqueue("c1", "presale", NORMAL) is None
    c = await s.get_conversation("c1")
    assert c is not None and c.state is ConvState.CLOSED and c.priority is NORMAL


async def test_queue_order_priority_then_arrival_and_positions(env: Env) -> None:
    s = env.store
    await agent(s, "a", ("presale", "aftersale"), cap=1, status=None)
    ps = [await handoff(s, "n1"), await handoff(s, "u1", priority=URGENT), await handoff(s, "h1", priority=HIGH),
          await handoff(s, "n2"), await handoff(s, "u2", priority=URGENT)]
    assert [(p.conversation, p.position) for p in ps] == [("n1", 1), ("u1", 1), ("h1", 2), ("n2", 4), ("u2", 2)]
    assert await s.queue("presale") == ["u1", "u2", "h1", "n1", "n2"]
    h2 = await handoff(s, "h2", "aftersale", HIGH)  # another skill, a later ticket than h1
    assert h2.position == 1
    c = await s.get_conversation("u2")
    assert c is not None and c.ticket > 0 and c.state is ConvState.QUEUED
    # each pull takes the first among the agent's skills: priority, then arrival across queues
    got: list[str] = []
    pulled = (await s.agent_connected("a", "s", ONLINE, "i1"))[1]
    assert [(p.conversation, p.skill, p.agent, p.from_queue) for p in pulled] == [("u1", "presale", "a", True)]
    got.append(pulled[0].conversation)
    for _ in range(6):
        res = await s.close_conversation(got[-1], "resolved")
        if res.placements:
            got.append(res.placements[0].conversation)
    assert got == ["u1", "u2", "h1", "h2", "n1", "n2"]
    assert await s.queue_lengths() == {"presale": 0, "aftersale": 0}


async def test_pull_when_coming_online_fills_capacity(env: Env) -> None:
    s = env.store
    await agent(s, "a", ("presale",), cap=3, status=None)
    for i in range(5):
        await handoff(s, f"c{i}")
    await s.agent_connected("a", "s1", AWAY, "i1")
    assert await held(s, "a") == []
    await env.bus.take(s)
    pulled = await s.set_agent_status("a", "s1", ONLINE)
    assert [(p.conversation, p.agent, p.from_queue) for p in pulled] == [(f"c{i}", "a", True) for i in range(3)]
    assert await held(s, "a") == ["c0", "c1", "c2"]
    assert await s.queue("presale") == ["c3", "c4"]
    events = await env.bus.take(s)
    assert events == [ev for i in range(3) for ev in (
        (f"c:c{i}", {**assigned_entry("a"), "seq": 1}),
        ("a:a", {"type": "assigned", "conversation": f"c{i}"}),
    )]
    assert await s.set_agent_status("a", "s1", ONLINE) == []  # full: nothing more
    assert await s.set_agent_status("a", "s1", AWAY) == []
    await s.close_conversation("c0", "resolved")
    assert await held(s, "a") == ["c1", "c2"]  # away: its room is not filled
    pulled = await s.set_agent_status("a", "s1", ONLINE)
    assert [p.conversation for p in pulled] == ["c3"]


async def test_close_variants(env: Env) -> None:
    s = env.store
    with pytest.raises(NotFound):
        await s.close_conversation("nope", "resolved")
    await agent(s, "a", cap=1)
    await conv(s, "bot")
    r = await s.close_conversation("bot", "idle")
    assert r.closed and r.agent == "" and r.placements == () and r.left_queue == ""
    assert r.conversation is not None and r.conversation.state is ConvState.CLOSED
    assert r.conversation.close_reason == "idle" and r.conversation.closed_at > 0
    assert (await s.read_log("bot"))[-1]["type"] == "closed"
    again = await s.close_conversation("bot", "customer")
    assert not again.closed and again.conversation is not None and again.conversation.close_reason == "idle"
    assert len(await s.read_log("bot")) == 1  # closing twice logs once

    assert (await handoff(s, "held")).agent == "a"
    await handoff(s, "q1")
    await handoff(s, "q2")
    r = await s.close_conversation("q2", "customer")  # waiting: leaves its queue
    assert r.closed and r.left_queue == "presale" and r.agent == ""
    assert await s.queue("presale") == ["q1"]
    with pytest.raises(NotAssigned):
        await s.close_conversation("held", "resolved", by_agent="b")
    with pytest.raises(NotAssigned):
        await s.close_conversation("q1", "resolved", by_agent="a")  # not held by anyone
    await env.bus.take(s)
    r = await s.close_conversation("held", "resolved", by_agent="a")
    assert r.closed and r.agent == "a" and r.left_queue == ""
    assert [(p.conversation, p.agent, p.from_queue) for p in r.placements] == [("q1", "a", True)]
    assert r.conversation is not None and r.conversation.had_agent == "a" and r.conversation.agent == ""
    assert await env.bus.take(s) == [
        ("c:held", {"type": "closed", "reason": "resolved", "seq": 2}),
        ("a:a", {"type": "unassigned", "conversation": "held", "reason": "closed"}),
        ("c:q1", {**assigned_entry("a"), "seq": 1}),
        ("a:a", {"type": "assigned", "conversation": "q1"}),
    ]
    with pytest.raises(NotAssigned):
        await s.close_conversation("held", "resolved", by_agent="a")  # closed: nobody holds it


async def test_close_finds_its_queue_after_fields_changed(env: Env) -> None:
    s = env.store
    await handoff(s, "c1")
    await s.update_conversation("c1", {"skill": "aftersale", "priority": "urgent"})
    r = await s.close_conversation("c1", "customer")
    assert r.left_queue == "presale"
    assert await s.queue("presale") == [] and await s.queue("aftersale") == []


async def test_requeue_after_grace_keeps_tickets_ahead_of_newer(env: Env) -> None:
    s = env.store
    with pytest.raises(NotFound):
        await s.requeue_agent("ghost")
    await agent(s, "a", cap=2)
    await handoff(s, "old1")
    await handoff(s, "old2")
    await handoff(s, "new1")  # a is full: waits
    await handoff(s, "new2", priority=HIGH)
    assert await s.requeue_agent("a") == []  # online: a no-op
    assert await s.agent_disconnected("a", "s-a")
    assert await held(s, "a") == ["old1", "old2"]  # kept during grace
    await s.agent_connected("a", "s-a2", ONLINE, "i1")
    assert await s.requeue_agent("a") == []  # came back in time: a no-op
    assert await held(s, "a") == ["old1", "old2"]
    await s.agent_disconnected("a", "s-a2")
    await env.bus.take(s)
    placed = await s.requeue_agent("a")
    assert [(p.conversation, p.agent, p.position) for p in placed] == [("old1", "", 2), ("old2", "", 3)]
    assert await s.queue("presale") == ["new2", "old1", "old2", "new1"]
    assert await held(s, "a") == []
    c = await s.get_conversation("old1")
    assert c is not None and c.state is ConvState.QUEUED and c.agent == "" and c.had_agent == "a"
    assert await env.bus.take(s) == [
        ("a:a", {"type": "unassigned", "conversation": "old1", "reason": "timeout"}),
        ("a:a", {"type": "unassigned", "conversation": "old2", "reason": "timeout"}),
    ]
    await agent(s, "b", cap=3)  # the next agent takes them in that order
    assert await held(s, "b") == ["new2", "old1", "old2"]


async def test_requeue_goes_to_another_agent_with_room(env: Env) -> None:
    s = env.store
    await agent(s, "a", cap=2)
    await handoff(s, "c1")
    await agent(s, "b", cap=1)
    await s.agent_disconnected("a", "s-a")
    placed = await s.requeue_agent("a")
    assert [(p.conversation, p.agent) for p in placed] == [("c1", "b")]
    assert (await s.read_log("c1"))[-1]["agent"] == {"id": "b", "name": "客服b"}


async def test_transfer_to_skill(env: Env) -> None:
    s = env.store
    await agent(s, "a", ("presale",), cap=1)
    await agent(s, "b", ("aftersale",), cap=1)
    await handoff(s, "c1")  # -> a
    await handoff(s, "c2")  # waits for a
    await env.bus.take(s)
    res = await s.transfer("c1", "a", skill="aftersale")
    assert (res.placement.conversation, res.placement.skill, res.placement.agent) == ("c1", "aftersale", "b")
    assert [(p.conversation, p.agent, p.from_queue) for p in res.pulled] == [("c2", "a", True)]
    c = await s.get_conversation("c1")
    assert c is not None and (c.state, c.agent, c.skill) == (ConvState.ASSIGNED, "b", "aftersale")
    assert await env.bus.take(s) == [
        ("a:a", {"type": "unassigned", "conversation": "c1", "reason": "transferred"}),
        ("c:c1", {"type": "transferred", "from": {"id": "a", "name": "客服a"}, "to": {"skill": "aftersale"}, "seq": 2}),
        ("c:c2", {**assigned_entry("a"), "seq": 1}),
        ("a:a", {"type": "assigned", "conversation": "c2"}),
        ("c:c1", {**assigned_entry("b"), "seq": 3}),
        ("a:b", {"type": "assigned", "conversation": "c1"}),
    ]


async def test_transfer_to_skill_never_back_to_the_source(env: Env) -> None:
    s = env.store
    await agent(s, "a", ("presale", "aftersale"), cap=2)
    await handoff(s, "c1")
    res = await s.transfer("c1", "a", skill="presale")  # a has room and the skill, but it is the source
    assert (res.placement.agent, res.placement.position, res.pulled) == ("", 1, ())
    assert await s.queue("presale") == ["c1"]
    assert await held(s, "a") == []
    # a later release or online pulls it like any waiting conversation
    await agent(s, "b", ("presale",), cap=1)
    assert await held(s, "b") == ["c1"]


async def test_transfer_to_agent_and_errors(env: Env) -> None:
    s = env.store
    await agent(s, "a", cap=2)
    await agent(s, "b", ("logistics",), cap=1)  # a named agent needs no skill match
    await agent(s, "away", cap=1, status=AWAY)
    await agent(s, "off", cap=1, status=None)
    await handoff(s, "c1")  # -> a
    await handoff(s, "c2")  # -> a
    with pytest.raises(NotAssigned):
        await s.transfer("c1", "b", to_agent="a")
    with pytest.raises(NotAssigned):
        await s.transfer("nope", "a", skill="presale")
    for target in ("ghost", "a", "away", "off"):
        with pytest.raises(NotFound):
            await s.transfer("c1", "a", to_agent=target)
    assert await held(s, "a") == ["c1", "c2"]  # errors change nothing
    await env.bus.take(s)
    res = await s.transfer("c1", "a", to_agent="b")
    assert (res.placement.conversation, res.placement.agent, res.placement.skill) == ("c1", "b", "presale")
    assert await held(s, "b") == ["c1"] and await held(s, "a") == ["c2"]
    assert await env.bus.take(s) == [
        ("a:a", {"type": "unassigned", "conversation": "c1", "reason": "transferred"}),
        ("c:c1", {"type": "transferred", "from": {"id": "a", "name": "客服a"},
                  "to": {"agent": {"id": "b", "name": "客服b"}}, "seq": 2}),
        ("c:c1", {**assigned_entry("b"), "seq": 3}),
        ("a:b", {"type": "assigned", "conversation": "c1"}),
    ]
    with pytest.raises(NotFound):
        await s.transfer("c2", "a", to_agent="b")  # b is full now


async def test_invariants_under_concurrent_handoffs(env: Env) -> None:
    s = env.store
    twin = await env.twin()
    caps = {"a": 3, "b": 5, "c": 1, "d": 2}
    for aid, cap in caps.items():
        await agent(s, aid, ("presale",), cap=cap)
    for i in range(30):
        await conv(s, f"c{i}")
    ps = await asyncio.gather(*[(s if i % 2 else twin).assign_or_enqueue(f"c{i}", "presale", NORMAL)
                                for i in range(30)])
    assigned = [p.conversation for p in ps if p is not None and p.agent]
    assert len(assigned) == sum(caps.values()) == len(set(assigned))
    holders: dict[str, str] = {}
    for aid, cap in caps.items():
        h = await held(s, aid)
        assert len(h) == cap
        for c in h:
            assert c not in holders
            holders[c] = aid
    assert len(await s.queue("presale")) == 30 - len(holders)


# ------------------------------------------------------------------ timers


async def test_timers_claim_cancel_reschedule(env: Env) -> None:
    s = env.store
    now = time.time()
    assert await s.claim_due(now) == []
    await s.schedule("idle:c1", now - 3)
    await s.schedule("sla:c1", now - 5)
    await s.schedule("grace:a", now - 1)
    await s.schedule("later", now + 60)
    await s.schedule("gone", now - 2)
    await s.cancel("gone")
    await s.cancel("never-scheduled")
    await s.schedule("moved-later", now - 4)
    await s.schedule("moved-later", now + 60)
    await s.schedule("moved-earlier", now + 60)
    await s.schedule("moved-earlier", now - 0.5)
    assert await s.claim_due(now, limit=2) == ["sla:c1", "idle:c1"]  # due order
    assert await s.claim_due(now) == ["grace:a", "moved-earlier"]
    assert await s.claim_due(now) == []  # each once
    assert await s.claim_due(now + 61) == ["later", "moved-later"]
    await s.schedule("again", now - 1)  # a claimed key can be scheduled again
    await s.schedule("same-due-b", now - 1)
    await s.schedule("same-due-a", now - 1)
    assert await s.claim_due(now) == ["again", "same-due-a", "same-due-b"]


async def test_timers_are_claimed_exactly_once_across_claimers(env: Env) -> None:
    s = env.store
    claimers = [s, await env.twin(), await env.twin()]
    now = time.time()
    keys = [f"t{i:03d}" for i in range(150)]
    for i, k in enumerate(keys):
        await s.schedule(k, now - 10 + i * 0.01)
    got = await asyncio.gather(*[claimers[i % 3].claim_due(now, limit=7) for i in range(40)])
    flat = [k for batch in got for k in batch]
    assert sorted(flat) == keys  # all of them, none twice


# ------------------------------------------------------------------ claims and dead letters


async def test_claims(env: Env) -> None:
    s = env.store
    twin = await env.twin()
    assert await s.get_claim("k") is None
    results = await asyncio.gather(*[(s if i % 2 else twin).claim_once("k", 60, f"v{i}") for i in range(10)])
    assert results.count(True) == 1
    winner = f"v{results.index(True)}"
    assert await s.get_claim("k") == winner and await twin.get_claim("k") == winner
    assert await s.claim_once("short", 0.05, "v") is True

    async def expired() -> bool:
        return await s.get_claim("short") is None

    await until(expired, what="the short claim to expire")  # Redis expires it on its own clock
    assert await s.claim_once("short", 60, "w") is True
    await s.release_claim("k")
    await s.release_claim("never")
    assert await s.get_claim("k") is None
    assert await s.claim_once("k", 60) is True and await s.get_claim("k") == "1"


async def test_dead_letters(env: Env) -> None:
    s = env.store
    assert await s.dead_letters() == []
    for i in range(5):
        await s.add_dead_letter({"n": i, "shop": "店", "error": "timeout"}, keep=3)
    assert await s.dead_letters() == [{"n": i, "shop": "店", "error": "timeout"} for i in (4, 3, 2)]
    assert [r["n"] for r in await s.dead_letters(limit=2)] == [4, 3]
    assert await s.dead_letters(limit=0) == []


# ------------------------------------------------------------------ both stores, same random story


def _norm(x: Any) -> Any:
    """Drop what legitimately differs between stores: clocks."""
    if isinstance(x, dict):
        return {k: _norm(v) for k, v in x.items() if k not in ("ts", "closed_at", "last_assigned")}
    if isinstance(x, list | tuple):
        return [_norm(v) for v in x]
    if isinstance(x, Conversation):
        return _norm(x.to_dict())
    if hasattr(x, "__slots__") and hasattr(x, "__dataclass_fields__"):
        return {"_": type(x).__name__, **_norm({f: getattr(x, f) for f in x.__dataclass_fields__})}
    return x


async def _apply(s: Store, op: tuple[Any, ...]) -> Any:
    name, args = op[0], op[1:]
    try:
        if name == "append":
            conv_id, text, cid, guard = args
            return await s.append(conv_id, msg(text), client_id=cid, guard=guard)
        if name == "status":
            return await s.set_agent_status(*args)
        if name == "transfer":
            conv_id, frm, skill, to = args
            return await s.transfer(conv_id, frm, skill=skill, to_agent=to)
        if name == "close":
            conv_id, reason, by = args
            return await s.close_conversation(conv_id, reason, by_agent=by)
        fn = {"create": s.create_conversation, "handoff": s.assign_or_enqueue, "connect": s.agent_connected,
              "disconnect": s.agent_disconnected, "requeue": s.requeue_agent}[name]
        return await fn(*args)
    except (NotFound, NotAssigned) as e:
        return type(e).__name__


class _Story:
    """Random operations; about half of the transfers and agent closes aim at a held conversation."""

    agents = ("a1", "a2", "a3", "a4")
    skills = ("presale", "aftersale", "logistics")

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.convs: list[str] = []
        self.sessions = dict.fromkeys(self.agents, 0)

    async def next(self, oracle: Store) -> tuple[Any, ...]:
        rng, agents, skills, convs = self.rng, self.agents, self.skills, self.convs
        held = [(c, a.id) for a in await oracle.list_agents() for c in a.held]
        r = rng.random()
        if r < 0.16 or not convs:
            c = f"c{len(convs)}"
            convs.append(c)
            return ("create", Conversation(c, f"u{rng.randrange(5)}", created_at=1.0))
        if r < 0.36:
            return ("handoff", rng.choice(convs), rng.choice(skills), rng.choice(list(Priority)))
        if r < 0.46:
            a = rng.choice(agents)
            self.sessions[a] += rng.random() < 0.3
            return ("connect", a, f"s{self.sessions[a]}", rng.choice([ONLINE, ONLINE, AWAY]), "i1")
        if r < 0.52:
            a = rng.choice(agents)
            return ("disconnect", a, f"s{self.sessions[a] - rng.randrange(2)}")
        if r < 0.57:
            return ("requeue", rng.choice(agents))
        if r < 0.63:
            a = rng.choice(agents)
            return ("status", a, f"s{self.sessions[a]}", rng.choice([ONLINE, AWAY]))
        c, a = rng.choice(held) if held and rng.random() < 0.6 else (rng.choice(convs), rng.choice(agents))
        if r < 0.76:
            to = (rng.choice(skills), "") if rng.random() < 0.6 else ("", rng.choice([*agents, "ghost"]))
            return ("transfer", c, a, *to)
        if r < 0.88:
            return ("close", c, rng.choice(["resolved", "customer", "idle"]), rng.choice(["", a, a]))
        guard = rng.choice([None, Guard(open=True), Guard(agent=a), Guard(state=ConvState.BOT)])
        return ("append", c, "x", rng.choice([None, "m1", "m2"]), guard)


async def _snapshot(s: Store, convs: list[str]) -> Any:
    return _norm({
        "agents": await s.list_agents(),
        "queues": {k: await s.queue(k) for k in ("presale", "aftersale", "logistics")},
        "lengths": await s.queue_lengths(),
        "convs": [await s.get_conversation(c) for c in convs],
        "logs": [await s.read_log(c) for c in convs],
    })


@pytest.mark.redis
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_random_sequences_agree(redis_server: Any, seed: int) -> None:
    from gateway.store.redis import RedisStore

    mem, red = MemoryStore("m"), RedisStore(redis_server.url, f"r{uuid.uuid4().hex[:10]}", instance="t")
    mem_bus, red_bus = Bus(), Bus()
    await mem.start(mem_bus.on)
    await red.start(red_bus.on)
    try:
        for st in (mem, red):
            await st.register_agent(AgentProfile("a1", "一", ("presale", "aftersale"), 2))
            await st.register_agent(AgentProfile("a2", "二", ("aftersale",), 1))
            await st.register_agent(AgentProfile("a3", "三", ("logistics", "presale"), 3))
            await st.register_agent(AgentProfile("a4", "四", ("logistics",), 1))
        story = _Story(seed)
        for i in range(300):
            op = await story.next(mem)
            a, b = _norm(await _apply(mem, op)), _norm(await _apply(red, op))
            assert a == b, f"step {i} {op}: memory {a} != redis {b}"
        assert await _snapshot(mem, story.convs) == await _snapshot(red, story.convs)
        assert await mem_bus.take(mem) == await red_bus.take(red)
    finally:
        await red.close()
        await mem.close()
