"""The store contract for the one-step-per-event steps (both stores, same outcomes).

Hand-off, pending bot turns, meta patches, the close step's extras, rating,
priority, the agent steps with their timers, and the queue orders a step
publishes. Fixtures and helpers come from ``test_store_contract``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway.errors import NotFound
from gateway.model import Conversation, ConvState, MetaMerge, MetaPatch, Priority
from gateway.store import Guard, HandoffRequest, MemoryStore, OutboxStats, Store, turn_timer
from tests.test_store_contract import (  # noqa: F401 - fixtures
    ONLINE,
    Env,
    agent,
    backend,
    conv,
    env,
    handoff,
    held,
    msg,
)

NOTICE = {"type": "message", "from": "system", "text": "正在为您转接"}


def req(skill: str = "", turn: int = 0, *, priority: Priority = Priority.NORMAL, meta: MetaPatch | None = None,
        sla: tuple[str, float] | None = None, channel_skills: dict[str, str] | None = None) -> HandoffRequest:
    return HandoffRequest(NOTICE, skill, priority, channel_skills or {}, "presale", meta or MetaPatch(), turn, sla)


async def timers(s: Store, now: float = 1e12) -> list[str]:
    """Every timer due by ``now`` (claims them: call at the end of a test)."""
    return sorted(await s.claim_due(now, 1000))


async def texts(s: Store, cid: str) -> list[tuple[str, str]]:
    return [(e["type"], e.get("text", "")) for e in await s.read_log(cid)]


# ------------------------------------------------------------------ create

async def test_create_with_greeting_and_timer_in_one_step(env: Env) -> None:
    s = env.store
    c = Conversation("g1", "u-g1", created_at=1.5, meta={"platform": {"shop": "s1"}, "orders": []})
    got = await s.create_conversation(c, greeting=msg("您好", "system"), timer=("idle:g1", 100.0))
    assert [(e["seq"], e["text"]) for e in got] == [(1, "您好")]
    assert await s.read_log("g1") == got
    back = await s.get_conversation("g1")
    assert back is not None and back.meta == {"platform": {"shop": "s1"}, "orders": []}
    assert await s.claim_due(99.0) == [] and await s.claim_due(100.0) == ["idle:g1"]
    assert await s.create_conversation(Conversation("g2", "u-g2")) == []


# ------------------------------------------------------------------ pending turns

async def test_a_customer_message_with_the_bot_is_a_pending_turn_finished_once(env: Env) -> None:
    s = env.store
    await conv(s, "t1")
    r = await s.append("t1", msg("在吗"), client_id="m1", turn_due=50.0, vip=True)
    assert r.state is ConvState.BOT
    seq = r.entry["seq"]
    p = await s.pending_turn("t1", seq)
    assert p is not None and (p.seq, p.state, p.channel, p.vip, p.entry["text"]) == (seq, ConvState.BOT, "web", True,
                                                                                      "在吗")
    # the answer finishes it, once
    a = await s.append("t1", msg("您好", "bot"), guard=Guard(state=ConvState.BOT), turn=seq)
    assert not a.refused
    assert await s.pending_turn("t1", seq) is None
    again = await s.append("t1", msg("您好", "bot"), guard=Guard(state=ConvState.BOT), turn=seq)
    assert again.refused
    assert [t for _, t in await texts(s, "t1")] == ["在吗", "您好"]
    # its timer went with it; a duplicate records nothing new
    dup = await s.append("t1", msg("在吗"), client_id="m1", turn_due=50.0)
    assert dup.duplicate and await s.pending_turn("t1", seq) is None
    assert await timers(s) == []


async def test_no_pending_turn_once_people_have_it(env: Env) -> None:
    s = env.store
    await agent(s, "a")
    await conv(s, "t2")
    assert await s.handoff("t2", req()) is not None
    r = await s.append("t2", msg("还在吗"), turn_due=50.0)
    assert r.state is ConvState.ASSIGNED
    assert await s.pending_turn("t2", r.entry["seq"]) is None
    assert turn_timer("t2", r.entry["seq"]) not in await timers(s)


async def test_an_unfinished_turn_is_a_due_timer_for_any_instance(env: Env) -> None:
    s = env.store
    await conv(s, "t3")
    r = await s.append("t3", msg("发货"), turn_due=50.0)
    other = await env.twin()
    assert await other.claim_due(49.0) == []
    assert await other.claim_due(50.0) == [turn_timer("t3", r.entry["seq"])]
    assert await s.claim_due(60.0) == []  # claimed once
    p = await other.pending_turn("t3", r.entry["seq"])
    assert p is not None and p.entry["text"] == "发货"


# ------------------------------------------------------------------ hand-off

async def test_handoff_is_one_step_and_finishes_every_pending_turn(env: Env) -> None:
    s = env.store
    await conv(s, "h1", channel="douyin")
    r1 = await s.append("h1", msg("一"), turn_due=50.0)
    r2 = await s.append("h1", msg("转人工"), turn_due=50.0)
    await env.bus.take(s)
    p = await s.handoff("h1", req(turn=r2.entry["seq"], priority=Priority.HIGH, sla=("sla:h1", 30.0),
                                  channel_skills={"douyin": "aftersale"},
                                  meta=MetaPatch(set={"reasons": ["转人工"]}, union={"orders": ("123",)})))
    assert p is not None and (p.skill, p.agent, p.position) == ("aftersale", "", 1)
    c = await s.get_conversation("h1")
    assert c is not None
    assert (c.state, c.skill, c.priority, c.meta) == (ConvState.QUEUED, "aftersale", Priority.HIGH,
                                                      {"reasons": ["转人工"], "orders": ["123"]})
    assert c.ticket > 0 and await s.queue("aftersale") == ["h1"]
    assert [t for _, t in await texts(s, "h1")] == ["一", "转人工", NOTICE["text"]]
    for r in (r1, r2):
        assert await s.pending_turn("h1", r.entry["seq"]) is None
    events = await env.bus.take(s, queues=True)
    assert [t for t, _ in events] == ["c:h1", "q:aftersale"]
    assert events[1][1] == {"queue": ["h1"]}
    assert await timers(s) == ["sla:h1"]


async def test_handoff_guards(env: Env) -> None:
    s = env.store
    with pytest.raises(NotFound):
        await s.handoff("nope", req())
    await conv(s, "h2")
    r = await s.append("h2", msg("转人工"), turn_due=50.0)
    assert await s.append("h2", msg("答", "bot"), turn=r.entry["seq"]) is not None
    # the turn was answered already: the hand-off for it changes nothing
    assert await s.handoff("h2", req(turn=r.entry["seq"])) is None
    c = await s.get_conversation("h2")
    assert c is not None and c.state is ConvState.BOT and c.ticket == 0
    assert await s.handoff("h2", req()) is not None
    assert await s.handoff("h2", req()) is None  # not with the bot any more
    assert [t for _, t in await texts(s, "h2")].count(NOTICE["text"]) == 1


async def test_handoff_skill_defaults(env: Env) -> None:
    s = env.store
    await conv(s, "d1", meta={"default_skill": "shopteam"})
    await conv(s, "d2", channel="pdd")
    await conv(s, "d3", channel="pdd", meta={"default_skill": ""})
    await conv(s, "d4")
    cs = {"pdd": "pddteam"}
    got = [await s.handoff(c, req(channel_skills=cs)) for c in ("d1", "d2", "d3", "d4")]
    assert [p.skill for p in got if p is not None] == ["shopteam", "pddteam", "pddteam", "presale"]
    await conv(s, "d5", meta={"default_skill": "shopteam"})
    p5 = await s.handoff("d5", req("billing", channel_skills=cs))
    assert p5 is not None and p5.skill == "billing"


async def test_handoff_assigns_to_an_agent_with_room(env: Env) -> None:
    s = env.store
    await agent(s, "a", cap=1)
    await conv(s, "h3")
    await conv(s, "h4")
    await env.bus.take(s)
    p3 = await s.handoff("h3", req())
    p4 = await s.handoff("h4", req())
    assert p3 is not None and p3.agent == "a" and p4 is not None and p4.position == 1
    assert await held(s, "a") == ["h3"]
    topics = [t for t, _ in await env.bus.take(s, queues=True)]
    assert topics == ["c:h3", "c:h3", "a:a", "c:h4", "q:presale"]


# ------------------------------------------------------------------ meta patches

async def test_meta_patch_set_delete_union_merge(env: Env) -> None:
    s = env.store
    await conv(s, "m1", meta={"keep": 1, "gone": "x", "orders": ["A"]})
    assert await s.patch_meta("m1", MetaPatch(set={"gone": None, "n": {"a": []}}, union={"orders": ("B", "A", "C")}))
    ops = [MetaPatch(merge={"po": MetaMerge({f"o{i}": {"status": f"s{i}", "updated": float(i), "tags": []}},
                                            keep=3)}) for i in range(5)]
    for op in ops:
        await s.patch_meta("m1", op)
    await s.patch_meta("m1", MetaPatch(merge={"po": MetaMerge({"o1": {"status": "late", "updated": 9.0}}, keep=3)}))
    c = await s.get_conversation("m1")
    assert c is not None
    assert c.meta == {"keep": 1, "n": {"a": []}, "orders": ["A", "B", "C"],
                      "po": {"o1": {"status": "late", "updated": 9.0}, "o3": {"status": "s3", "updated": 3.0,
                                                                              "tags": []},
                             "o4": {"status": "s4", "updated": 4.0, "tags": []}}}
    assert not await s.patch_meta("nope", MetaPatch(set={"a": 1}))
    # a whole-meta update replaces merged keys too
    await s.update_conversation("m1", {"meta": {"only": True}})
    await s.patch_meta("m1", MetaPatch(merge={"po": MetaMerge({"z": {"updated": 1}}, keep=3)}))
    c = await s.get_conversation("m1")
    assert c is not None and c.meta == {"only": True, "po": {"z": {"updated": 1}}}


async def test_concurrent_meta_patches_are_not_lost(env: Env) -> None:
    import asyncio

    s = env.store
    await conv(s, "m2")
    other = await env.twin()
    await asyncio.gather(*[(s if i % 2 else other).patch_meta("m2", MetaPatch(set={f"k{i}": i},
                                                                             union={"orders": (f"o{i}",)}))
                           for i in range(20)])
    c = await s.get_conversation("m2")
    assert c is not None
    assert {k: v for k, v in c.meta.items() if k != "orders"} == {f"k{i}": i for i in range(20)}
    assert sorted(c.meta["orders"]) == sorted(f"o{i}" for i in range(20))


async def test_append_with_meta_patch(env: Env) -> None:
    s = env.store
    await conv(s, "m3")
    r = await s.append("m3", msg("答", "bot"), meta=MetaPatch(union={"orders": ("9",)}))
    assert not r.refused
    refused = await s.append("m3", msg("x", "bot"), guard=Guard(state=ConvState.QUEUED),
                             meta=MetaPatch(set={"no": 1}))
    assert refused.refused
    c = await s.get_conversation("m3")
    assert c is not None and c.meta == {"orders": ["9"]}


# ------------------------------------------------------------------ close, rate, priority

async def test_close_step_extras(env: Env) -> None:
    s = env.store
    await agent(s, "a", cap=1)
    await conv(s, "k1")
    r = await s.append("k1", msg("在"), turn_due=50.0, timer=("idle:k1", 40.0))
    await s.handoff("k1", req(sla=("sla:k1", 30.0)))
    await conv(s, "k2")
    await s.handoff("k2", req())
    await env.bus.take(s)
    res = await s.close_conversation("k1", "idle", notice=msg("再见", "system"), survey=True)
    assert res.closed and res.agent == "a" and [p.conversation for p in res.placements] == ["k2"]
    assert [t for _, t in await texts(s, "k1")][-2:] == ["再见", ""]
    assert await s.pending_turn("k1", r.entry["seq"]) is None
    events = await env.bus.take(s, queues=True)
    assert [t for t, _ in events] == ["c:k1", "c:k1", "a:a", "c:k2", "a:a", "c:k1", "q:presale"]
    assert events[-2][1] == {"type": "survey", "conversation": "k1"}
    assert await timers(s) == []


async def test_idle_close_of_a_waiting_conversation_only_moves_the_timer(env: Env) -> None:
    s = env.store
    await conv(s, "w1")
    await s.handoff("w1", req())
    res = await s.close_conversation("w1", "idle", notice=msg("再见", "system"), idle_retry=("idle:w1", 77.0))
    assert not res.closed and res.conversation is not None and res.conversation.state is ConvState.QUEUED
    assert await s.queue("presale") == ["w1"]
    assert await s.claim_due(76.0) == [] and await s.claim_due(77.0) == ["idle:w1"]
    await conv(s, "w2")
    closed = await s.close_conversation("w2", "idle", notice=msg("再见", "system"), idle_retry=("idle:w2", 77.0))
    assert closed.closed and [t for _, t in await texts(s, "w2")] == ["再见", ""]


async def test_rate_and_raise_priority(env: Env) -> None:
    s = env.store
    await agent(s, "a")
    await conv(s, "r1")
    assert await s.rate("r1", 5, "好") is None  # open, never with an agent: nothing stored
    assert await s.rate("nope", 5, "") is None
    assert await s.raise_priority("r1", Priority.HIGH)
    assert not await s.raise_priority("r1", Priority.NORMAL)
    await s.handoff("r1", req(priority=Priority.HIGH))
    assert not await s.raise_priority("r1", Priority.URGENT)  # not with the bot any more
    assert await s.rate("r1", 4, "不错") == "a"
    c = await s.get_conversation("r1")
    assert c is not None and (c.rating, c.rating_comment, c.priority) == (4, "不错", Priority.HIGH)


# ------------------------------------------------------------------ agents and their timers

async def test_agent_steps_carry_their_timers(env: Env) -> None:
    s = env.store
    await agent(s, "a", cap=2)
    await conv(s, "x1")
    await s.handoff("x1", req())
    assert await s.agent_disconnected("a", "s-a", grace=("grace:a", 20.0))
    assert await held(s, "a") == ["x1"]
    await s.agent_connected("a", "s-a2", ONLINE, "i1")  # back in time: the grace timer goes
    assert await s.claim_due(100.0) == []
    assert await s.agent_disconnected("a", "s-a2", requeue=True)  # no grace: routed again at once
    assert await held(s, "a") == [] and await s.queue("presale") == ["x1"]
    assert not await s.agent_disconnected("a", "s-a2", grace=("grace:a", 20.0))  # not its session any more
    assert await s.claim_due(100.0) == []


@pytest.mark.parametrize("n", [3])
async def test_queue_orders_are_published_once_per_step(env: Env, n: int) -> None:
    s = env.store
    await agent(s, "a", cap=n, status=None)
    for i in range(n + 1):
        await conv(s, f"q{i}")
        await s.handoff(f"q{i}", req())
    await s.agent_connected("a", "s-a", ONLINE, "i1")
    events: list[tuple[str, dict[str, Any]]] = [e for e in await env.bus.take(s, queues=True) if e[0].startswith("q:")]
    assert events[-1] == ("q:presale", {"queue": [f"q{n}"]})
    assert len(events) == n + 2  # one per hand-off, one for the pull of n


async def test_set_claim_confirms_a_claim_for_longer(env: Env) -> None:
    s = env.store
    assert await s.claim_once("k", 60.0, "pending")
    await s.set_claim("k", 3600.0, "done")
    assert await s.get_claim("k") == "done"
    assert not await s.claim_once("k", 60.0)
    await s.set_claim("fresh", 60.0)
    assert await s.get_claim("fresh") == "1"


async def test_a_claimed_timer_not_reported_done_comes_back(env: Env) -> None:
    s = env.store
    await s.schedule("ok", 10.0)
    await s.schedule("fails", 11.0)
    assert await s.claim_due(20.0, retry_after=2.0) == ["ok", "fails"]
    assert await s.claim_due(21.0, done=("ok",), retry_after=2.0) == []  # not yet: claimed 1 s ago
    assert await s.claim_due(22.0, retry_after=2.0) == ["fails"]  # its fire failed: again
    assert await s.claim_due(25.0, done=("fails",), retry_after=2.0) == []
    assert await s.claim_due(99.0, retry_after=2.0) == []
    # another instance never sees a key this one holds
    await s.schedule("mine", 100.0)
    assert await s.claim_due(100.0, retry_after=2.0) == ["mine"]
    other = await env.twin()
    if other is not s:
        assert await other.claim_due(200.0, retry_after=2.0) == []


async def test_overflow_moves_a_long_wait_to_another_skill_keeping_its_place(env: Env) -> None:
    s = env.store
    await conv(s, "o1")
    p = await s.handoff("o1", HandoffRequest(NOTICE, "billing", Priority.NORMAL, {}, "presale", MetaPatch(), 0,
                                             None, None, ("overflow:o1", 50.0)))
    assert p is not None and p.position == 1
    await conv(s, "o-new")
    await s.handoff("o-new", req("presale"))  # waits in presale, newer than o1
    assert await s.claim_due(49.0) == [] and await s.claim_due(50.0) == ["overflow:o1"]
    await env.bus.take(s)
    moved = await s.overflow("o1", "presale", msg("已为您转接其他客服", "system"))
    assert moved is not None and (moved.skill, moved.agent) == ("presale", "")
    assert await s.queue("billing") == [] and await s.queue("presale") == ["o1", "o-new"]  # its ticket is older
    assert [t for _, t in await texts(s, "o1")][-1] == "已为您转接其他客服"
    topics = [t for t, _ in await env.bus.take(s, queues=True)]
    assert topics == ["c:o1", "q:billing", "q:presale"]
    assert await s.overflow("o1", "presale", msg("x", "system")) is None  # already there: nothing changes
    await agent(s, "a")  # an agent with room takes the first in line
    assert await held(s, "a") == ["o1", "o-new"]
    assert await s.overflow("o1", "billing", msg("x", "system")) is None  # not waiting any more


async def test_overflow_timer_only_while_waiting_and_dropped_on_close(env: Env) -> None:
    s = env.store
    await agent(s, "a", cap=1)
    await conv(s, "v1")
    await conv(s, "v2")
    for c in ("v1", "v2"):
        await s.handoff(c, HandoffRequest(NOTICE, "presale", Priority.NORMAL, {}, "presale", MetaPatch(), 0,
                                          None, None, (f"overflow:{c}", 50.0)))
    assert await held(s, "a") == ["v1"]  # assigned at once: no overflow timer for v1
    await s.close_conversation("v2", "customer")
    assert await s.claim_due(1000.0) == []


async def test_memory_store_keeps_no_record_of_finished_turns() -> None:
    from gateway.store import MemoryStore

    s = MemoryStore("t")
    await s.start(lambda t, p: None)
    await conv(s, "f1")
    r = await s.append("f1", msg("在吗"), turn_due=50.0)
    await s.append("f1", msg("在", "bot"), turn=r.entry["seq"])
    assert s._turns == {}  # one conversation's bookkeeping would otherwise outlive every turn


async def test_discard_unused_forgets_only_a_conversation_nobody_wrote_in(env: Env) -> None:
    s = env.store
    greeting = {"type": "message", "from": "system", "text": "您好，有什么可以帮您？"}
    for cid in ("c-empty", "c-said", "c-bot"):
        await s.create_conversation(Conversation(cid, f"u-{cid}", created_at=1.0), greeting=greeting,
                                    timer=(f"idle:{cid}", 100.0))
    await s.append("c-said", {"type": "message", "from": "customer", "text": '"from":"system" 你好'})
    await s.append("c-bot", {"type": "message", "from": "bot", "text": "在的"})
    await handoff(s, "c-queued")  # an empty log, but waiting for a person
    assert await s.discard_unused("c-empty") is True
    assert await s.get_conversation("c-empty") is None
    assert await s.read_log("c-empty") == []
    assert await s.customer_conversation("u-c-empty") is None
    for cid in ("c-said", "c-queued", "c-bot"):  # written in, or with people: kept whole
        assert await s.discard_unused(cid) is False
        assert await s.get_conversation(cid) is not None
        assert cid == "c-queued" or len(await s.read_log(cid)) == 2
    assert await s.discard_unused("c-empty") is False and await s.discard_unused("nope") is False
    due = await s.claim_due(1000.0)
    assert "idle:c-empty" not in due and "idle:c-said" in due  # its idle timer went with it
    # a newer conversation of the same customer keeps the customer's pointer
    await s.create_conversation(Conversation("c-old", "u-two", created_at=1.0))
    await s.create_conversation(Conversation("c-new", "u-two", created_at=2.0))
    assert await s.discard_unused("c-old") is True
    assert await s.customer_conversation("u-two") == "c-new"


async def test_idle_close_forgets_a_conversation_nobody_wrote_in_in_the_same_step(env: Env) -> None:
    s = env.store
    greeting = {"type": "message", "from": "system", "text": "您好"}
    notice = {"type": "message", "from": "system", "text": "会话已关闭"}
    for cid in ("c-empty", "c-said"):
        await s.create_conversation(Conversation(cid, f"u-{cid}", created_at=1.0), greeting=greeting)
    await s.append("c-said", {"type": "message", "from": "customer", "text": "在吗"})
    empty = await s.close_conversation("c-empty", "idle", notice=notice, discard_unused=True)
    assert (empty.discarded, empty.closed) == (True, False)
    assert await s.get_conversation("c-empty") is None and await s.read_log("c-empty") == []
    said = await s.close_conversation("c-said", "idle", notice=notice, discard_unused=True)
    assert (said.discarded, said.closed) == (False, True)
    assert [e["type"] for e in await s.read_log("c-said")][-1] == "closed"


# ------------------------------------------------------------------ feedback and the walk over conversations

async def test_feedback_is_kept_on_the_conversation_in_one_step_and_replaced_by_a_later_one(env: Env) -> None:
    s = env.store
    await conv(s, "fb1")
    await s.append("fb1", msg("什么时候发货"))
    answer = await s.append("fb1", {**msg("48小时内发货", "bot"), "faq": "ship_time", "in_reply_to": 1})
    await s.append("fb1", msg("好的"))
    await env.bus.take(s)
    seq = answer.entry["seq"]
    assert await s.feedback("fb1", seq, False) is True
    got = await s.get_conversation("fb1")
    assert got is not None and got.feedback == {seq: False}
    assert await env.bus.take(s) == [("c:fb1", {"type": "feedback", "conversation": "fb1", "entry_seq": seq,
                                                "helpful": False, "to": "agent"})]
    assert await s.feedback("fb1", seq, True) is True  # the second verdict replaces the first
    got = await s.get_conversation("fb1")
    assert got is not None and got.feedback == {seq: True}
    # the log itself never changes: no new entry, the bot entry as it was stored
    log = await s.read_log("fb1")
    assert [e["seq"] for e in log] == [1, 2, 3] and "helpful" not in log[1]
    # only a bot message of that conversation can be judged
    for cid, bad in (("fb1", 1), ("fb1", 3), ("fb1", 4), ("fb1", 999), ("nope", seq)):
        assert await s.feedback(cid, bad, False) is False, (cid, bad)
    got = await s.get_conversation("fb1")
    assert got is not None and got.feedback == {seq: True}
    # it survives the conversation's other steps (a meta rewrite, the close) and shows in what they return
    await s.update_conversation("fb1", {"meta": {"orders": []}, "rating": 4})
    closed = await s.close_conversation("fb1", "resolved")
    assert closed.conversation is not None and closed.conversation.feedback == {seq: True}


async def test_scan_conversations_walks_every_conversation_with_activity_since(env: Env) -> None:
    s = env.store
    # closing stamps the store's clock: ``since`` an hour from now leaves the closed ones behind
    since = time.time() + 3600
    old, recent = 1000.0, since + 3600
    for i in range(23):  # created long ago and closed before ``since``: no activity since
        await conv_at(s, f"old{i}", old)
        await s.close_conversation(f"old{i}", "resolved")
    for i in range(17):  # created recently
        await conv_at(s, f"new{i}", recent)
    for i in range(5):  # created long ago, still open: active
        await conv_at(s, f"open{i}", old)
    await conv_at(s, "fbk", recent)
    await s.append("fbk", msg("答", "bot"))
    await s.feedback("fbk", 1, False)
    seen: list[str] = []
    cursor, pages = "", 0
    while True:
        page, cursor = await s.scan_conversations(cursor, 7, since=since)
        seen += [c.id for c in page]
        pages += 1
        if not cursor:
            break
        assert pages < 100_000, "the walk does not end"  # (Redis: SCAN examines every key of the db)
    assert pages > 1  # paged, not one read of everything
    want = {f"new{i}" for i in range(17)} | {f"open{i}" for i in range(5)} | {"fbk"}
    assert set(seen) == want  # closed before ``since``: left out; every other one, once at least
    # the closed ones come back with since=0, and what a page carries is the whole conversation
    everything: dict[str, Conversation] = {}
    cursor = ""
    while True:
        page, cursor = await s.scan_conversations(cursor, 50)
        everything.update((c.id, c) for c in page)
        if not cursor:
            break
    assert len(everything) == 23 + 17 + 5 + 1
    assert everything["fbk"].feedback == {1: False} and everything["old3"].state is ConvState.CLOSED


async def conv_at(s: Store, cid: str, created_at: float) -> None:
    await s.create_conversation(Conversation(cid, f"u-{cid}", created_at=created_at))


# ------------------------------------------------------------------ the archive outbox


async def _pttl(env: Env, key: str) -> int:
    """Redis: the key's time to live in ms (-1: none, -2: no key)."""
    return int(await env.store._call("PTTL", key))  # type: ignore[attr-defined]


async def closed(s: Store, cid: str, customer: str = "") -> None:
    await agent(s, "a", cap=50)
    await conv(s, cid, customer)
    await s.append(cid, msg("在吗"), client_id=f"m-{cid}")
    assert await s.handoff(cid, req()) is not None
    await s.close_conversation(cid, "resolved", by_agent="a")


async def test_the_close_step_queues_the_conversation_for_the_archive(env: Env) -> None:
    s = env.store
    assert await s.outbox_stats() == OutboxStats(0, None)
    t0 = time.time()
    await closed(s, "o1")
    await conv(s, "open1")  # an open conversation is not queued
    stats = await s.outbox_stats()
    assert stats.depth == 1 and stats.oldest_at is not None and t0 - 1 <= stats.oldest_at <= time.time() + 1
    now = time.time() + 1
    [e] = await s.claim_outbox(now, retry_s=10.0)
    assert (e.conversation, e.version, e.claims, e.queued_at) == ("o1", 1, 1, stats.oldest_at)
    assert await s.outbox_stats() == stats  # claimed is still in the outbox
    other = await env.twin()
    assert await other.claim_outbox(now + 9.9) == []  # hidden while claimed, from every instance
    assert await s.archived("o1", 1, 3600.0)
    assert await s.outbox_stats() == OutboxStats(0, None)
    assert await other.claim_outbox(now + 1000) == []
    assert not await s.archived("o1", 1, 3600.0)  # reported twice: nothing more


async def test_a_claim_not_reported_archived_comes_back_with_growing_delays(env: Env) -> None:
    s = env.store
    await closed(s, "o2")
    now = time.time() + 1
    got: list[tuple[float, int]] = []
    t = now
    for _ in range(6):
        [e] = await s.claim_outbox(t, retry_s=10.0, max_retry_s=60.0)
        got.append((t - now, e.claims))
        wait = min(60.0, 10.0 * 2 ** (e.claims - 1))
        assert await s.claim_outbox(t + wait - 0.01, retry_s=10.0, max_retry_s=60.0) == []  # not yet
        t += wait  # the instance that claimed it died, or the archive failed: it is due again now
    assert got == [(0.0, 1), (10.0, 2), (30.0, 3), (70.0, 4), (130.0, 5), (190.0, 6)]  # 10, 20, 40, then 60 s
    assert await s.archived("o2", 1, 3600.0)


async def test_claims_are_oldest_first_and_limited(env: Env) -> None:
    s = env.store
    for i in range(5):
        await closed(s, f"q{i}")
    now = time.time() + 1
    first = await s.claim_outbox(now, 2)
    assert [e.conversation for e in first] == ["q0", "q1"]
    assert [e.conversation for e in await s.claim_outbox(now, 10)] == ["q2", "q3", "q4"]  # past the hidden ones
    assert await s.claim_outbox(now, 10) == []
    assert (await s.outbox_stats()).oldest_at == first[0].queued_at


async def test_archived_drops_the_hot_copy_after_keep_hot_s(env: Env) -> None:
    s = env.store
    await closed(s, "h1", "u-h")
    await closed(s, "h0", "u-h0")
    [e1, e0] = await s.claim_outbox(time.time() + 1)
    # keep_hot_s 0: gone at once, with its log, client ids and its customer's pointer
    assert await s.archived("h0", e0.version, 0.0)
    assert await s.get_conversation("h0") is None and await s.read_log("h0") == []
    assert await s.customer_conversation("u-h0") is None
    # keep_hot_s: still there for reading, rating and resuming until then
    assert await s.archived("h1", e1.version, 3600.0)
    back = await s.get_conversation("h1")
    assert back is not None and back.state is ConvState.CLOSED and len(await s.read_log("h1")) == 4
    assert await s.customer_conversation("u-h") == "h1"
    if isinstance(s, MemoryStore):
        s.clock = lambda: time.time() + 3599.0
        await s.claim_outbox(time.time())
        assert await s.get_conversation("h1") is not None
        s.clock = lambda: time.time() + 3601.0
        await s.claim_outbox(time.time())  # the store's next outbox step drops what has gone cold
        assert await s.get_conversation("h1") is None and await s.read_log("h1") == []
        assert await s.customer_conversation("u-h") is None
        assert "h1" not in s._logs and "h1" not in s._customer_conv.values()
    else:
        from gateway.store.keys import Keys

        k = Keys(s.namespace)
        for key in (k.conv("h1"), k.log("h1"), k.dedupe("h1"), k.customer("u-h")):
            assert 3_590_000 < await _pttl(env, key) <= 3_600_000, key  # Redis' own expiry takes them


async def test_a_newer_conversation_keeps_the_customers_pointer(env: Env) -> None:
    s = env.store
    await closed(s, "p1", "u-p")
    await conv(s, "p2", "u-p")  # the customer came back
    [e] = await s.claim_outbox(time.time() + 1)
    assert await s.archived("p1", e.version, 0.0)
    assert await s.customer_conversation("u-p") == "p2" and await s.get_conversation("p2") is not None


async def test_rating_a_closed_conversation_queues_a_new_version_in_the_same_step(env: Env) -> None:
    s = env.store
    await closed(s, "r1")
    now = time.time() + 1
    [v1] = await s.claim_outbox(now)
    assert v1.version == 1
    assert await s.rate("r1", 5, "很好") == "a"
    # due at once although version 1 is claimed, and it keeps its place (its oldest change)
    [v2] = await s.claim_outbox(now)
    assert (v2.version, v2.claims, v2.queued_at) == (2, 1, v1.queued_at)
    assert not await s.archived("r1", 1, 0.0)  # the archive has version 1 only: the entry stays
    assert (await s.outbox_stats()).depth == 1 and await s.get_conversation("r1") is not None
    assert await s.archived("r1", 2, 3600.0)
    assert (await s.outbox_stats()).depth == 0
    # rated again while hot: queued again, and kept hot (no expiry) until the archive has it
    await s.rate("r1", 4, "还行")
    [v3] = await s.claim_outbox(now + 100)
    assert v3.version == 3 and v3.queued_at > v1.queued_at
    if isinstance(s, MemoryStore):
        s.clock = lambda: time.time() + 7200.0
        await s.claim_outbox(time.time())
        assert await s.get_conversation("r1") is not None  # not dropped: the archive lacks version 3
    else:
        from gateway.store.keys import Keys

        k = Keys(s.namespace)
        keys = (k.conv("r1"), k.log("r1"), k.dedupe("r1"), k.customer("u-r1"))
        assert [await _pttl(env, key) for key in keys] == [-1, -1, -1, -1]
    assert await s.archived("r1", 3, 0.0)
    assert await s.get_conversation("r1") is None


async def test_rating_an_open_conversation_queues_nothing(env: Env) -> None:
    s = env.store
    await agent(s, "a")
    await conv(s, "r2")
    assert await s.handoff("r2", req()) is not None
    await s.rate("r2", 5, "")
    assert await s.outbox_stats() == OutboxStats(0, None)
    await s.close_conversation("r2", "resolved", by_agent="a")
    [e] = await s.claim_outbox(time.time() + 1)
    assert e.version == 1  # the close's version carries the rating
