"""Kill (or raise) at every await of the conversation service: never half, always answered once.

Issue 11, item 1, "Prove it". A ``ConversationService`` runs over a store
wrapped in ``CrashingStore``, which dies at the k-th awaited store call of a
flow, BEFORE forwarding it (the step never reached the store) or AFTER it (the
step happened; the instance died before using the result), for every k until
the flow completes. Flows: the customer message path (a bot answer, one with
an order number, a hand-off with and without an online agent, a message while
queued), an agent message, transfer to a skill and to an agent, agent close,
customer close (assigned and queued), the idle timer (assigned, queued, with a
pending turn) and agent disconnect with and without grace. Both stores: the
memory store and a real redis-server (a fresh namespace per run).

After each crash:
- the data is exactly what a clean run had at a step boundary (untouched, or
  every step up to the crash fully done), and holds the invariants (hand-off
  notice iff queued/assigned with a ticket and in exactly one queue or one
  held list; closed: in no queue, no held list, no timers, no pending turns;
  held <= capacity; nobody waits while a matching agent has room; the Redis
  free-agent index agrees; queue orders and log entries published);
- a SURVIVOR (Redis: another RedisStore on the namespace; memory: the same
  store) claims due timers on a clock past ``routing.turn_retry_s`` and fires
  them: every stored customer message then has exactly one answer or exactly
  one hand-off, never zero, never two;
- the client retries the whole flow on the survivor (the same client ids: a
  duplicate), the survivor sweeps again, and the result is the clean run's.

And a survivor that itself dies (Redis: killed and reaped) or fails (a
``StoreUnavailable`` it survives) while recovering a turn must not lose it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.config import Config, parse_config
from gateway.errors import Closed, NotAssigned, NotFound, StoreUnavailable
from gateway.model import AgentStatus
from gateway.service.botholder import BotHolder
from gateway.service.conversations import TIMER_RETRY_S, ConversationService
from gateway.store import MemoryStore, Store
from tests.crash_support import Bus, Crash, CrashingStore, Probe, State, audit, read_state
from tests.support import DEMO_CONFIG, DEMO_FAQ, demo_config, merge

SKILLS = ["presale", "aftersale", "logistics"]
ORDER = "1234567890123"
HANDOFF = "转人工"
SWEEP_AHEAD_S = 10.0  # the survivor's clock: past routing.turn_retry_s (5 s), before the SLA (30 s) and idle timers

BASE = {
    "agents": [
        {"id": "a1", "name": "小王", "skills": ["presale", "aftersale"], "capacity": 1, "token": "t-a1"},
        {"id": "a2", "name": "小李", "skills": ["aftersale", "logistics"], "capacity": 2, "token": "t-a2"},
        {"id": "a3", "name": "小张", "skills": ["presale", "logistics"], "capacity": 2, "token": "t-a3"},  # never on
    ],
}


@pytest.fixture(scope="module")
def bot() -> BotHolder:
    """The demo FAQ bot, loaded once for the module (decisions are pure)."""
    holder = BotHolder(str(DEMO_FAQ), {})
    asyncio.run(holder.load())
    return holder


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        return str(request.getfixturevalue("redis_server").url)
    return "memory://"


# ------------------------------------------------------------------ one world: a store, the dying instance, a survivor


@dataclass
class World:
    config: Config
    store: Store  # the real store of the instance that dies
    proxy: CrashingStore
    svc: ConversationService  # the instance that dies (over ``proxy``)
    survivor_store: Store
    survivor: ConversationService
    probe: Probe
    bus: Bus
    redis_url: str
    labels: dict[str, str] = field(default_factory=dict)  # label -> conversation id

    @property
    def names(self) -> dict[str, str]:
        return {cid: label for label, cid in self.labels.items()}

    def cid(self, label: str) -> str:
        return self.labels[label]

    async def state(self) -> State:
        return await read_state(self.probe, list(self.labels.values()), SKILLS)

    async def close(self) -> None:
        await self.probe.close()
        for s in [self.store, *([] if self.survivor_store is self.store else [self.survivor_store])]:
            await s.close()


def make_config(overrides: dict[str, Any]) -> Config:
    return parse_config(merge(merge(demo_config(), BASE), overrides), DEMO_CONFIG.parent)


def redis_store(url: str, ns: str, instance: str) -> Store:
    from gateway.store.redis import RedisStore

    return RedisStore(url, ns, instance=instance)


async def make_world(backend: str, bot: BotHolder, overrides: dict[str, Any]) -> World:
    config = make_config(overrides)
    ns = f"crash{uuid.uuid4().hex[:10]}"
    bus = Bus()
    store: Store
    if backend.startswith("memory"):
        store = survivor_store = MemoryStore(ns)
        await store.start(bus.on)
        a_name, b_name, url = "A", "A", ""
    else:
        a_name, b_name, url = f"A-{ns}", f"B-{ns}", backend
        store, survivor_store = redis_store(url, ns, a_name), redis_store(url, ns, b_name)
        await store.start(bus.on)
        await survivor_store.start(lambda t, p: None)
    proxy = CrashingStore(store)
    svc = ConversationService(config, proxy, bot, a_name)  # type: ignore[arg-type]
    await svc.start()
    survivor = ConversationService(config, survivor_store, bot, b_name)
    await survivor.start()
    return World(config, store, proxy, svc, survivor_store, survivor, Probe(store, url), bus, url)


# ------------------------------------------------------------------ what the flows do


async def talk(w: World, svc: ConversationService, label: str, mid: str, text: str) -> None:
    """What the customer socket does with one message (server/customer.py on_message)."""
    cid = w.cid(label)
    res = await svc.customer_message(cid, mid, text)
    if res.refused or res.duplicate:
        return
    await svc.after_customer_message(cid, text, seq=int(res.entry["seq"]), state=res.state, channel="web")


async def open_conv(w: World, label: str) -> None:
    opened = await w.svc.open_conversation(f"u-{label}-{uuid.uuid4().hex[:6]}", name=label)
    w.labels[label] = opened.conversation.id


async def online(w: World, agent: str) -> None:
    await w.svc.agent_connected(agent, f"s-{agent}", AgentStatus.ONLINE)


async def sweep(w: World) -> None:
    """The survivor's timer loop, on a clock past the turn retry: claim what is due and fire it."""
    now = time.time() + SWEEP_AHEAD_S
    for _ in range(10):
        keys = await w.survivor_store.claim_due(now)
        if not keys:
            return
        for key in keys:
            await w.survivor.fire(key)
    raise AssertionError("timers kept coming due")


async def tolerate(call: Awaitable[Any]) -> None:
    """A client's retry of a step that already happened: the refusals it may get."""
    try:
        await call
    except (NotAssigned, Closed, NotFound):
        pass


Step = Callable[[World, ConversationService], Awaitable[None]]


@dataclass
class Flow:
    name: str
    setup: Callable[[World], Awaitable[None]]
    action: Step
    steps: tuple[str, ...]  # its store calls: one step per event (the customer message: stored, then its turn)
    expect: Callable[[dict[str, Any]], None]  # on the final shape
    overrides: dict[str, Any] = field(default_factory=dict)
    same_final: bool = True  # after crash + survivor + retry, the data is the clean run's

    async def retry(self, w: World, svc: ConversationService) -> None:
        await tolerate(self.action(w, svc))


async def setup_one(w: World) -> None:
    await open_conv(w, "c1")


async def setup_agent_and_one(w: World) -> None:
    await online(w, "a1")
    await open_conv(w, "c1")


async def setup_one_queued(w: World) -> None:
    await open_conv(w, "c0")
    await open_conv(w, "c1")
    await talk(w, w.svc, "c0", "m0", HANDOFF)


async def setup_assigned(w: World) -> None:
    await setup_agent_and_one(w)
    await talk(w, w.svc, "c1", "m1", HANDOFF)


async def setup_assigned_and_waiting(w: World) -> None:
    """a1 (capacity 1) holds c1; c2 and c3 wait for presale."""
    await setup_assigned(w)
    for label in ("c2", "c3"):
        await open_conv(w, label)
        await talk(w, w.svc, label, "m1", HANDOFF)


async def setup_transfer_to_agent(w: World) -> None:
    await setup_assigned_and_waiting(w)
    await online(w, "a2")


async def setup_pending_turn(w: World) -> None:
    """c1's message is stored, its bot turn not yet taken (a pending turn)."""
    await open_conv(w, "c1")
    await w.svc.customer_message(w.cid("c1"), "m1", "什么时候发货")


async def agent_message(w: World, s: ConversationService) -> None:
    await s.agent_message("a1", w.cid("c1"), "x1", "您好，我是小王")


async def customer_close(w: World, s: ConversationService, label: str) -> None:
    await s.customer_close(w.cid(label))


# expectations on the final shape (see ``shape``)


def log_of(f: dict[str, Any], label: str) -> list[tuple[Any, ...]]:
    return [(e.get("type"), e.get("from"), e.get("text") if e.get("from") != "bot" else e.get("faq"))
            for e in f["convs"][label]["log"]]


def expect_answer(f: dict[str, Any]) -> None:
    c1 = f["convs"]["c1"]
    assert c1["state"] == "bot" and c1["pending"] == []
    assert log_of(f, "c1") == [("message", "customer", "什么时候发货"), ("message", "bot", "ship_time")]


def expect_orders(f: dict[str, Any]) -> None:
    c1 = f["convs"]["c1"]
    assert c1["state"] == "bot" and c1["meta"].get("orders") == [ORDER]
    assert [x[1] for x in log_of(f, "c1")] == ["customer", "bot"]


def handoff_log(agent: str | None) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [("message", "customer", HANDOFF), ("message", "system", "正在为您转接人工客服，请稍候～")]
    return out + ([("assigned", None, None)] if agent else [])


def expect_handoff_agent(f: dict[str, Any]) -> None:
    c1 = f["convs"]["c1"]
    assert (c1["state"], c1["agent"], c1["skill"]) == ("assigned", "a1", "presale")
    assert log_of(f, "c1") == handoff_log("a1") and c1["log"][-1]["agent"]["id"] == "a1"
    assert c1["timers"] == ["idle", "sla"] and f["agents"]["a1"] == ("online", ["c1"])


def expect_handoff_queue(f: dict[str, Any]) -> None:
    c1 = f["convs"]["c1"]
    assert (c1["state"], c1["skill"]) == ("queued", "presale") and f["queues"] == {"presale": ["c0", "c1"]}
    assert log_of(f, "c1") == handoff_log(None) and c1["timers"] == ["idle", "sla"]


def expect_queued_message(f: dict[str, Any]) -> None:
    assert f["convs"]["c1"]["state"] == "queued"
    assert log_of(f, "c1")[-1] == ("message", "customer", "还要多久") and len(log_of(f, "c1")) == 3


def expect_agent_message(f: dict[str, Any]) -> None:
    c1 = f["convs"]["c1"]
    assert log_of(f, "c1") == [*handoff_log("a1"), ("message", "agent", "您好，我是小王")]
    assert c1["timers"] == ["idle"]  # the SLA timer stopped with the first reply


def expect_transfer_skill(f: dict[str, Any]) -> None:
    c1 = f["convs"]["c1"]
    assert (c1["state"], c1["skill"]) == ("queued", "logistics")
    assert c1["log"][-1]["type"] == "transferred" and c1["log"][-1]["to"] == {"skill": "logistics"}
    assert f["agents"]["a1"] == ("online", ["c2"]) and f["queues"] == {"presale": ["c3"], "logistics": ["c1"]}


def expect_transfer_agent(f: dict[str, Any]) -> None:
    c1 = f["convs"]["c1"]
    assert (c1["state"], c1["agent"]) == ("assigned", "a2")
    assert [e["type"] for e in c1["log"][-2:]] == ["transferred", "assigned"]
    assert f["agents"]["a1"] == ("online", ["c2"]) and f["agents"]["a2"] == ("online", ["c1"])
    assert f["queues"] == {"presale": ["c3"]}


def expect_closed(reason: str) -> Callable[[dict[str, Any]], None]:
    def check(f: dict[str, Any]) -> None:
        c1 = f["convs"]["c1"]
        assert (c1["state"], c1["close_reason"], c1["timers"], c1["pending"]) == ("closed", reason, [], [])
        assert f["agents"]["a1"] == ("online", ["c2"]) and f["queues"] == {"presale": ["c3"]}
        if reason == "idle":
            assert c1["log"][-2]["text"] == "由于您长时间未回复，本次会话已结束。如需帮助请随时联系我们。"

    return check


def expect_queued_closed(f: dict[str, Any]) -> None:
    assert f["convs"]["c2"]["state"] == "closed" and f["convs"]["c2"]["timers"] == []
    assert f["queues"] == {"presale": ["c3"]} and f["agents"]["a1"] == ("online", ["c1"])


def expect_idle_queued(f: dict[str, Any]) -> None:
    c2 = f["convs"]["c2"]
    assert c2["state"] == "queued" and "idle" in c2["timers"]  # we keep them waiting: only moved
    assert f["queues"] == {"presale": ["c2", "c3"]}


def expect_idle_pending(f: dict[str, Any]) -> None:
    c1 = f["convs"]["c1"]
    assert (c1["state"], c1["timers"], c1["pending"]) == ("closed", [], [])


def expect_grace(f: dict[str, Any]) -> None:
    assert f["agents"]["a1"] == ("offline", ["c1"]) and f["grace"] == ["a1"]
    assert f["convs"]["c1"]["state"] == "assigned" and f["queues"] == {"presale": ["c2", "c3"]}


def expect_requeued(f: dict[str, Any]) -> None:
    assert f["agents"]["a1"] == ("offline", []) and f["grace"] == []
    assert f["queues"] == {"presale": ["c1", "c2", "c3"]}  # c1 keeps its ticket: ahead of the others


ANSWER, HANDOFF_STEPS = ("append", "append"), ("append", "handoff")
FLOWS = [
    Flow("bot_answer", setup_one, lambda w, s: talk(w, s, "c1", "m1", "什么时候发货"), ANSWER, expect_answer),
    Flow("bot_answer_with_order", setup_one, lambda w, s: talk(w, s, "c1", "m1", f"订单号 {ORDER} 什么时候发货"),
         ANSWER, expect_orders),
    Flow("handoff_to_online_agent", setup_agent_and_one, lambda w, s: talk(w, s, "c1", "m1", HANDOFF),
         HANDOFF_STEPS, expect_handoff_agent),
    Flow("handoff_nobody_online", setup_one_queued, lambda w, s: talk(w, s, "c1", "m1", HANDOFF),
         HANDOFF_STEPS, expect_handoff_queue),
    Flow("message_while_queued", setup_one_queued, lambda w, s: talk(w, s, "c0", "m1", "还要多久"), ("append",),
         lambda f: expect_queued_message({**f, "convs": {"c1": f["convs"]["c0"]}})),
    Flow("agent_message", setup_assigned, lambda w, s: agent_message(w, s), ("append",), expect_agent_message),
    Flow("transfer_to_skill", setup_assigned_and_waiting,
         lambda w, s: s.agent_transfer("a1", w.cid("c1"), skill="logistics"), ("transfer",), expect_transfer_skill),
    Flow("transfer_to_agent", setup_transfer_to_agent,
         lambda w, s: s.agent_transfer("a1", w.cid("c1"), to_agent="a2"), ("transfer",), expect_transfer_agent),
    Flow("agent_close", setup_assigned_and_waiting, lambda w, s: s.agent_close("a1", w.cid("c1"), "resolved"),
         ("close_conversation",), expect_closed("resolved")),
    Flow("customer_close", setup_assigned_and_waiting, lambda w, s: customer_close(w, s, "c1"),
         ("close_conversation",), expect_closed("customer")),
    Flow("customer_close_while_queued", setup_assigned_and_waiting, lambda w, s: customer_close(w, s, "c2"),
         ("close_conversation",), expect_queued_closed),
    Flow("idle_timer_close", setup_assigned_and_waiting, lambda w, s: s.fire(f"idle:{w.cid('c1')}"),
         ("close_conversation",), expect_closed("idle")),
    Flow("idle_timer_while_queued", setup_assigned_and_waiting, lambda w, s: s.fire(f"idle:{w.cid('c2')}"),
         ("close_conversation",), expect_idle_queued),
    # a crash BEFORE the close leaves the turn to the survivor, which answers it first: another (fine) ending
    Flow("idle_timer_with_pending_turn", setup_pending_turn, lambda w, s: s.fire(f"idle:{w.cid('c1')}"),
         ("close_conversation",), expect_idle_pending, same_final=False),
    Flow("agent_disconnect_with_grace", setup_assigned_and_waiting,
         lambda w, s: s.agent_disconnected("a1", "s-a1"), ("agent_disconnected",), expect_grace),
    Flow("agent_disconnect_without_grace", setup_assigned_and_waiting,
         lambda w, s: s.agent_disconnected("a1", "s-a1"), ("agent_disconnected",), expect_requeued,
         {"routing": {"agent_grace_s": 0}}),
]


MESSAGE_FLOWS = [f for f in FLOWS if f.name in ("bot_answer", "bot_answer_with_order", "handoff_to_online_agent",
                                                 "handoff_nobody_online")]


# ------------------------------------------------------------------ the data, comparable across runs


def shape(st: State, names: dict[str, str]) -> dict[str, Any]:
    """The store's data with conversation ids as labels, without clocks (ts, due times, stamps)."""

    def lab(cid: str) -> str:
        return names.get(cid, cid)

    convs = {}
    for cid, v in st.convs.items():
        c = v.conv
        convs[lab(cid)] = {
            "state": c.state.value, "agent": c.agent, "skill": c.skill, "priority": c.priority.value,
            "ticket": c.ticket, "had_agent": c.had_agent, "close_reason": c.close_reason,
            "meta": {k: c.meta[k] for k in ("orders", "handoff_reason", "reasons") if k in c.meta},
            "log": [{k: x for k, x in e.items() if k != "ts"} for e in v.log],
            "pending": v.pending, "timers": v.timers,
        }
    timer_keys = [*st.timers, *(k for ks in st.inflight.values() for k in ks)]
    return {
        "convs": convs,
        "queues": {s: [lab(c) for c in q] for s, q in st.queues.items() if q},
        "agents": {a: (status.value, [lab(c) for c in held]) for a, (status, _, _, held) in st.agents.items()},
        "grace": sorted(k.split(":", 1)[1] for k in timer_keys if k.startswith("grace:")),
        "free": {s: sorted(f) for s, f in st.free.items() if f},
    }


def check(st: State, w: World, *, pending_ok: bool, what: str) -> None:
    a = audit(st, w.config.texts.handoff, w.names)
    bad = a.violations(pending_ok=pending_ok)
    assert not bad, f"{what}: " + "; ".join(bad)


async def check_published(w: World, before: State, mark: int, what: str) -> None:
    """Every log entry the step stored went out on c:<conv> once, in order; a queue it changed, its new order."""
    await w.bus.sync(w.store)
    after = await w.state()
    events = w.bus.events[mark:]
    for cid, v in after.convs.items():
        old = len(before.convs[cid].log)
        stored = [e["seq"] for e in v.log[old:]]
        sent = [p["seq"] for t, p in events if t == f"c:{cid}" and "seq" in p]
        assert sent == stored, f"{what}: {w.names[cid]} stored {stored}, published {sent}"
    for s in SKILLS:
        if before.queues.get(s, []) != after.queues.get(s, []):
            orders = [p["queue"] for t, p in events if t == f"q:{s}"]
            assert orders and orders[-1] == after.queues[s], f"{what}: queue {s} now {after.queues[s]}, sent {orders}"


async def begin(w: World) -> tuple[State, int]:
    await w.bus.sync(w.store)  # rings of the setup are in before the action's window opens
    return await w.state(), len(w.bus.events)


# ------------------------------------------------------------------ the matrix


@dataclass
class Reference:
    calls: list[str]  # the flow's store calls, in order
    steps: list[dict[str, Any]]  # the data before the flow and after each of its calls
    final: dict[str, Any]  # after the survivor's sweep, the client's retry and another sweep


async def reference(backend: str, bot: BotHolder, flow: Flow) -> Reference:
    w = await make_world(backend, bot, flow.overrides)
    try:
        await flow.setup(w)
        before, mark = await begin(w)
        check(before, w, pending_ok=True, what=f"{flow.name} setup")
        steps = [shape(before, w.names)]

        async def on_step(n: int, name: str) -> None:
            st = await w.state()
            check(st, w, pending_ok=True, what=f"{flow.name} clean run after call {n} ({name})")
            steps.append(shape(st, w.names))

        w.proxy.on_step = on_step
        w.proxy.arm(0)
        await flow.action(w, w.svc)
        calls = list(w.proxy.calls)
        w.proxy.disarm()
        assert tuple(calls) == flow.steps, f"{flow.name}: store calls {calls}, one step per event wants {flow.steps}"
        await check_published(w, before, mark, f"{flow.name} clean run")
        await sweep(w)
        await flow.retry(w, w.survivor)
        await sweep(w)
        st = await w.state()
        check(st, w, pending_ok=False, what=f"{flow.name} clean run, final")
        final = shape(st, w.names)
        flow.expect(final)
        return Reference(calls, steps, final)
    finally:
        await w.close()


@pytest.mark.parametrize("flow", FLOWS, ids=[f.name for f in FLOWS])
async def test_crash_at_every_store_call(backend: str, bot: BotHolder, flow: Flow) -> None:
    ref = await reference(backend, bot, flow)
    crashes = 0
    for mode in ("before", "after"):
        for k in range(1, len(ref.calls) + 2):
            w = await make_world(backend, bot, flow.overrides)
            what = f"{flow.name}, died {mode} call {k}"
            try:
                await flow.setup(w)
                before, mark = await begin(w)
                w.proxy.arm(k, mode)
                try:
                    await flow.action(w, w.svc)
                    completed = True
                except Crash:
                    completed = False
                calls = list(w.proxy.calls)
                w.proxy.disarm()
                if completed:  # k is past the flow's last call: it ran to the end, as the clean run
                    assert k == len(ref.calls) + 1 and calls == ref.calls, f"{what}: completed after {calls}"
                    continue
                crashes += 1
                assert calls == ref.calls[:k], f"{what}: took another path {calls} (clean: {ref.calls})"
                # untouched, or fully moved up to the crash: exactly the clean run's data at that boundary
                st = await w.state()
                check(st, w, pending_ok=True, what=what)
                assert shape(st, w.names) == ref.steps[k - 1 if mode == "before" else k], (
                    f"{what}: the data is not the clean run's at a step boundary")
                await check_published(w, before, mark, what)
                # the survivor takes over what was left: every stored customer message answered once
                await sweep(w)
                check(await w.state(), w, pending_ok=False, what=f"{what}, after the survivor's sweep")
                # the client resends on the survivor (same ids): nothing doubles, the end is the clean run's
                await flow.retry(w, w.survivor)
                await sweep(w)
                st = await w.state()
                check(st, w, pending_ok=False, what=f"{what}, after the client's retry")
                final = shape(st, w.names)
                if flow.same_final:
                    assert final == ref.final, f"{what}: ends differently from the clean run"
                flow.expect(final)
            finally:
                await w.close()
    assert crashes == 2 * len(ref.calls)


# ------------------------------------------------------------------ the survivor dies or fails while recovering


@pytest.mark.redis
@pytest.mark.parametrize("flow", MESSAGE_FLOWS, ids=[f.name for f in MESSAGE_FLOWS])
async def test_survivor_killed_while_recovering_a_turn(redis_server: Any, bot: BotHolder, flow: Flow) -> None:
    """A dies after storing the message; C claims the turn and is killed at each of its calls; B finishes it.

    C's death is its reaping: ``close`` runs ``reap_instance`` on C, the same
    step a survivor runs when C's heartbeat expires (test_redis_failover does
    that one for real), which puts C's claimed timers back.
    """
    ref = await reference(redis_server.url, bot, flow)
    for mode in ("before", "after"):
        for k in range(1, 5):
            w = await make_world(redis_server.url, bot, flow.overrides)
            what = f"{flow.name}, C died {mode} its call {k}"
            try:
                await flow.setup(w)
                w.proxy.arm(1, "after")  # the message is stored with its pending turn; A dies
                with pytest.raises(Crash):
                    await flow.action(w, w.svc)
                c_store = redis_store(w.redis_url, w.store.namespace, f"C-{uuid.uuid4().hex[:6]}")
                await c_store.start(lambda t, p: None)
                c_proxy = CrashingStore(c_store)
                c_svc = ConversationService(w.config, c_proxy, bot, c_store.instance)  # type: ignore[attr-defined,arg-type]
                c_proxy.arm(k, mode)
                completed = True
                try:
                    for key in await c_proxy.claim_due(time.time() + SWEEP_AHEAD_S):
                        await c_svc.fire(key)
                except Crash:
                    completed = False
                c_calls = list(c_proxy.calls)
                c_proxy.disarm()
                await c_store.close()  # reaped: what C claimed and did not finish goes back
                if completed:
                    assert len(c_calls) == 3, f"{what}: C's recovery took {c_calls}"
                check(await w.state(), w, pending_ok=True, what=what)
                await sweep(w)
                check(await w.state(), w, pending_ok=False, what=f"{what}, after B's sweep")
                await flow.retry(w, w.survivor)
                await sweep(w)
                st = await w.state()
                check(st, w, pending_ok=False, what=f"{what}, after the client's retry")
                assert shape(st, w.names) == ref.final, f"{what}: ends differently from the clean run"
            finally:
                await w.close()
            if completed:
                break


@pytest.mark.parametrize("flow", MESSAGE_FLOWS[:1] + MESSAGE_FLOWS[2:3], ids=["bot_answer", "handoff"])
async def test_survivor_failing_while_recovering_a_turn_retries_it(backend: str, bot: BotHolder,
                                                                   flow: Flow) -> None:
    """B's store call fails once (StoreUnavailable) while it recovers a turn; B's timer loop goes on.

    As ``server/app.py timer_loop``: a failing claim waits and claims again,
    a failing fire is logged and the loop goes on, and only keys whose fire
    succeeded are reported done, so a failed one is claimed again after
    ``TIMER_RETRY_S``. Later passes must still answer the message.
    """
    failures: list[str] = []
    for mode in ("before", "after"):
        for k in range(1, 5):
            w = await make_world(backend, bot, flow.overrides)
            try:
                await flow.setup(w)
                w.proxy.arm(1, "after")
                with pytest.raises(Crash):
                    await flow.action(w, w.svc)
                b_proxy = CrashingStore(w.survivor_store)
                b_proxy.error = StoreUnavailable
                b_svc = ConversationService(w.config, b_proxy, bot, "B")  # type: ignore[arg-type]
                b_proxy.arm(k, mode)
                now = time.time() + SWEEP_AHEAD_S
                done: list[str] = []
                for i in range(5):  # timer_loop's passes, the clock moving on
                    try:
                        keys = await b_svc.due_timers(now + i * TIMER_RETRY_S, tuple(done))
                        done = []
                        for key in keys:
                            try:
                                await b_svc.fire(key)
                                done.append(key)
                            except Exception:
                                logging.getLogger("test").info("timer %s failed", key)
                    except StoreUnavailable:
                        pass
                b_calls = list(b_proxy.calls)
                b_proxy.disarm()
                a = audit(await w.state(), w.config.texts.handoff, w.names)
                bad = a.violations(pending_ok=False)
                if bad:
                    failures.append(f"B failed {mode} its call {k} ({b_calls[k - 1] if k <= len(b_calls) else '-'})"
                                    f": {bad}")
            finally:
                await w.close()
    assert not failures, "\n".join(failures)

