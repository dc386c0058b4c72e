"""End to end over real websockets: FAQ answers, handoff, routing, chat, transfer, close, rating."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e import agent, agents_cfg, assigned_to, barrier, bus_barrier, customer, run_timers, say
from tests.support import is_, until

# Timers run on the test's clock (``run_timers``): each is set far longer than any test runs, so the
# app's own timer loop never reaches it, and "not yet" is a tick 1 s before it is due.
LONG_S = 20.0


def entries(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if "seq" in f and f.get("type") != "ack"]


async def test_faq_question_gets_ack_then_bot_answer(gateway_app) -> None:
    app = await gateway_app()
    c, w = await customer(app.ws_url, "u-faq")
    assert w["conversation"].startswith("c-") and w["token"] and w["customer"] == "u-faq" and w["messages"] == []
    ack = await say(c, "m1", "什么时候发货")
    bot = await c.wait(lambda f: f.get("type") == "message" and f.get("from") == "bot")
    assert bot["faq"] == "ship_time" and bot["seq"] == ack["seq"] + 1
    assert c.frames.index(ack) < c.frames.index(bot), "the ack comes before the answer"
    assert "48" in bot["text"] or bot["text"]


async def test_handoff_goes_to_less_loaded_skilled_agent_and_chat_both_ways(gateway_app) -> None:
    app = await gateway_app({"agents": agents_cfg(("x1", ["presale"], 5), ("x2", ["presale"], 5),
                                                  ("x3", ["logistics"], 5))})
    x1, _ = await agent(app.ws_url, "x1", "tok-x1")
    x2, _ = await agent(app.ws_url, "x2", "tok-x2")
    x3, _ = await agent(app.ws_url, "x3", "tok-x3")
    # x1 gets a first conversation (tie -> both idle, smaller id), so x1 is more loaded
    c0, w0 = await customer(app.ws_url, "u-0")
    await say(c0, "m1", "转人工")
    await x1.wait(is_("assigned"))
    c, w = await customer(app.ws_url, "u-1", "张三")
    await say(c, "m1", "转人工")
    notice = await c.wait(lambda f: f.get("type") == "message" and f.get("from") == "system")
    got = await c.wait(is_("assigned"))
    assert notice["seq"] < got["seq"]
    assert got["agent"]["id"] == "x2", "the less loaded presale agent"
    af = await x2.wait(lambda f: f.get("type") == "assigned" and f["conversation"]["id"] == w["conversation"])
    conv = af["conversation"]
    assert conv["customer"] == {"id": "u-1", "name": "张三"} and conv["skill"] == "presale"
    assert conv["priority"] in ("normal", "high", "urgent") and conv["channel"] == "web"
    assert [m.get("text") for m in conv["messages"] if m.get("from") == "customer"] == ["转人工"]
    assert not x3.of(is_("assigned")), "no skill, no assignment"

    # both directions, in order, and a re-sent id is stored once
    a1 = await x2.send({"type": "message", "id": "g1", "conversation": w["conversation"], "text": "您好"})
    ack_g1 = await x2.wait(is_("ack", id="g1"))
    m = await c.wait(lambda f: f.get("type") == "message" and f.get("from") == "agent")
    assert m["seq"] == ack_g1["seq"] and m["agent"] == {"id": "x2", "name": "客服x2"} and a1 is None
    first = await say(c, "m2", "我的快递到哪了")
    await c.send({"type": "message", "id": "m2", "text": "我的快递到哪了"})
    acks = await c.wait_count(is_("ack", id="m2"), 2)
    assert acks[0]["seq"] == acks[1]["seq"] == first["seq"]
    await x2.send({"type": "message", "id": "g1", "conversation": w["conversation"], "text": "您好"})
    await x2.wait_count(is_("ack", id="g1"), 2)
    got_c = await x2.wait(lambda f: f.get("type") == "message" and f.get("text") == "我的快递到哪了")
    assert got_c["conversation"] == w["conversation"] and got_c["from"] == "customer"
    await say(c, "m3", "谢谢")
    await x2.wait(lambda f: f.get("type") == "message" and f.get("text") == "谢谢")
    await bus_barrier(app, w["conversation"], c, x2)  # a late duplicate would have arrived before this
    seqs = [f["seq"] for f in entries(c.frames)]
    assert seqs == sorted(set(seqs))
    agent_seqs = [f["seq"] for f in entries(x2.frames) if f.get("conversation") == w["conversation"]]
    assert agent_seqs == sorted(set(agent_seqs))
    log = (await app.ctx.store.read_log(w["conversation"]))
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1)), "gap-free"
    assert sum(1 for e in log if e.get("text") == "我的快递到哪了") == 1
    assert sum(1 for e in log if e.get("text") == "您好") == 1
    assert sum(1 for e in log if e.get("text") == "转人工") == 1
    # no bot after the handoff
    handoff_seq = next(e["seq"] for e in log if e.get("type") == "assigned")
    assert not [e for e in log if e.get("from") == "bot" and e["seq"] > handoff_seq]


async def test_capacity_queue_positions_pull_and_priority(gateway_app) -> None:
    app = await gateway_app({"agents": agents_cfg(("solo", ["presale"], 2))})
    ag, _ = await agent(app.ws_url, "solo", "tok-solo")
    custs = []
    for i in range(5):
        c, w = await customer(app.ws_url, f"u-{i}")
        await say(c, "m1", "转人工")
        custs.append((c, w))
        if i < 2:
            await c.wait(is_("assigned"))
        else:
            q = await c.wait(is_("queued"))
            assert q["position"] == i - 1 and q["skill"] == "presale"
    assert len(assigned_to(ag.frames)) == 2
    # an urgent complaint jumps ahead of the normal ones (about a price: presale's; a complaint
    # saying nothing else goes to aftersale)
    cu, wu = await customer(app.ws_url, "u-urgent")
    await say(cu, "m1", "价格跟页面上不一样，我要投诉你们，转人工！")
    qu = await cu.wait(is_("queued"))
    assert qu["position"] == 1
    assert await app.ctx.store.queue("presale") == [wu["conversation"], *[w["conversation"] for _, w in custs[2:]]]
    # the others moved back one
    for idx, (c, _) in enumerate(custs[2:]):
        await c.wait(lambda f, p=idx + 2: f.get("type") == "queued" and f["position"] == p)
    # closing one pulls the first waiting in (the urgent one)
    first = custs[0][1]["conversation"]
    await ag.send({"type": "close", "id": "k1", "conversation": first, "resolution": "resolved"})
    await ag.wait(is_("unassigned", conversation=first, reason="closed"))
    await cu.wait(is_("assigned"))
    pulled = await ag.wait(lambda f: f.get("type") == "assigned" and f["conversation"]["id"] == wu["conversation"])
    assert pulled["conversation"]["priority"] == "urgent"
    assert "投诉" in "".join(pulled["conversation"]["meta"].get("reasons", [])) or pulled["conversation"]["meta"]
    for idx, (c, _) in enumerate(custs[2:]):
        await c.wait(lambda f, p=idx + 1: f.get("type") == "queued" and f["position"] == p)
    a = await app.ctx.store.get_agent("solo")
    assert a is not None and len(a.held) == 2


async def test_transfer_to_skill_and_agent_close_survey_rate(gateway_app) -> None:
    app = await gateway_app({"agents": agents_cfg(("p1", ["presale"], 3), ("l1", ["logistics"], 3),
                                                  ("l2", ["logistics", "presale"], 3))})
    p1, _ = await agent(app.ws_url, "p1", "tok-p1")
    c, w = await customer(app.ws_url, "u-t")
    conv = w["conversation"]
    await say(c, "m1", "转人工")
    await p1.wait(is_("assigned"))
    l1, _ = await agent(app.ws_url, "l1", "tok-l1")
    # to a skill
    await p1.send({"type": "transfer", "id": "t1", "conversation": conv, "skill": "logistics"})
    await p1.wait(is_("unassigned", conversation=conv, reason="transferred"))
    a = await l1.wait(is_("assigned"))
    assert a["conversation"]["id"] == conv and a["conversation"]["skill"] == "logistics"
    tr = await c.wait(is_("transferred"))
    assert isinstance(tr["seq"], int)
    assert not [f for f in l1.frames if f.get("type") == "transferred"], "agents learn only through assigned"
    # p1 no longer holds it
    await p1.send({"type": "message", "id": "x", "conversation": conv, "text": "还在吗"})
    err = await p1.wait(is_("error", id="x"))
    assert err["code"] == "not_assigned"
    # to a named agent
    l2, _ = await agent(app.ws_url, "l2", "tok-l2")
    await l1.send({"type": "transfer", "id": "t2", "conversation": conv, "agent": "l2"})
    await l1.wait(is_("unassigned", conversation=conv, reason="transferred"))
    b = await l2.wait(is_("assigned"))
    assert b["conversation"]["id"] == conv
    assigned_entries = await c.wait_count(is_("assigned"), 3)
    assert [e["agent"]["id"] for e in assigned_entries] == ["p1", "l1", "l2"]
    # unknown target agent -> not_found, nothing changes
    await l2.send({"type": "transfer", "id": "t3", "conversation": conv, "agent": "nobody"})
    assert (await l2.wait(is_("error", id="t3")))["code"] == "not_found"
    # a skill no configured agent has -> not_found, nothing changes (the customer would wait for ever)
    await l2.send({"type": "transfer", "id": "t4", "conversation": conv, "skill": "nobody-serves-this"})
    err4 = await l2.wait(is_("error", id="t4"))
    assert err4["code"] == "not_found" and "nobody-serves-this" in err4["message"]
    held = await app.ctx.store.get_conversation(conv)
    assert held is not None and held.agent == "l2" and held.state.value == "assigned"
    # close -> closed + survey; rate -> ack, stored
    await l2.send({"type": "close", "id": "k1", "conversation": conv, "resolution": "resolved"})
    await l2.wait(is_("unassigned", conversation=conv, reason="closed"))
    closed = await c.wait(is_("closed"))
    assert closed["reason"] == "resolved"
    survey = await c.wait(is_("survey"))
    assert survey["conversation"] == conv
    await c.send({"type": "rate", "id": "r1", "score": 4, "comment": "不错"})
    await c.wait(is_("ack", id="r1"))
    stored = await app.ctx.store.get_conversation(conv)
    assert stored is not None and stored.rating == 4 and stored.rating_comment == "不错"
    await c.send({"type": "rate", "id": "r2", "score": 9})
    assert (await c.wait(is_("error", id="r2")))["code"] == "bad_frame"
    # a new message after closed starts a new conversation: welcome first, then the ack
    await c.send({"type": "message", "id": "n1", "text": "你好"})
    ack = await c.wait(is_("ack", id="n1"))
    welcomes = c.of(is_("welcome"))
    assert len(welcomes) == 2 and welcomes[1]["conversation"] != conv and welcomes[1]["messages"] == []
    assert c.frames.index(welcomes[1]) < c.frames.index(ack)


async def test_customer_close_and_close_twice(gateway_app) -> None:
    app = await gateway_app()
    c, w = await customer(app.ws_url, "u-close")
    await say(c, "m1", "什么时候发货")
    await c.send({"type": "close"})
    closed = await c.wait(is_("closed"))
    assert closed["reason"] == "customer"
    # the survey goes out after a bot-only conversation too, marked so (issue 14)
    assert await c.wait(is_("survey")) == {"type": "survey", "conversation": w["conversation"], "bot_only": True}
    await c.send({"type": "close", "id": "k2"})
    assert (await c.wait(is_("error", id="k2")))["code"] == "closed"
    await c.send({"type": "rate", "id": "r1", "score": 5})
    await c.wait(is_("ack", id="r1"))
    stored = await app.ctx.store.get_conversation(w["conversation"])
    assert stored is not None and stored.rating == 5 and not stored.had_agent


async def test_resume_replays_exactly_the_missed_entries(gateway_app) -> None:
    app = await gateway_app({"agents": agents_cfg(("r1", ["presale"], 3))})
    ag, _ = await agent(app.ws_url, "r1", "tok-r1")
    c, w = await customer(app.ws_url, "u-r")
    conv, token = w["conversation"], w["token"]
    await say(c, "m1", "转人工")
    await c.wait(is_("assigned"))
    seen = max(f["seq"] for f in entries(c.frames))
    await c.close()
    for i in range(3):
        await ag.send({"type": "message", "id": f"g{i}", "conversation": conv, "text": f"回复{i}"})
        await ag.wait(is_("ack", id=f"g{i}"))
    c2, w2 = await customer(app.ws_url, "u-r", resume={"conversation": conv, "token": token, "after": seen})
    assert w2["conversation"] == conv
    assert [m["text"] for m in w2["messages"]] == ["回复0", "回复1", "回复2"]
    assert [m["seq"] for m in w2["messages"]] == [seen + 1, seen + 2, seen + 3]
    # live delivery continues after the replay, without repeats
    await ag.send({"type": "message", "id": "g9", "conversation": conv, "text": "在吗"})
    live = await c2.wait(lambda f: f.get("text") == "在吗")
    assert live["seq"] == seen + 4
    assert len([f for f in c2.frames if f.get("text") == "回复2"]) == 0
    # the agent sees the customer's messages from the resumed socket
    await say(c2, "m2", "在的")
    await ag.wait(lambda f: f.get("text") == "在的")
    # wrong token, or another customer's id with the right token: refused
    for hello in ({"resume": {"conversation": conv, "token": token + "x", "after": 0}},
                  {"customer": {"id": "u-other"}, "resume": {"conversation": conv, "token": token, "after": 0}},
                  {"resume": {"conversation": "c-nope", "token": token, "after": 0}}):
        from tests.support import Client

        bad = await Client.connect(f"{app.ws_url}/ws/customer")
        await bad.send({"type": "hello", **hello})
        assert await bad.wait_closed() == 4401


async def test_agent_grace_keeps_then_requeues_ahead(gateway_app) -> None:
    app = await gateway_app({"routing": {"agent_grace_s": LONG_S},
                             "agents": agents_cfg(("g1", ["presale"], 2), ("g2", ["presale"], 1))})
    g1, _ = await agent(app.ws_url, "g1", "tok-g1")
    c, w = await customer(app.ws_url, "u-g")
    conv = w["conversation"]
    await say(c, "m1", "转人工")
    await g1.wait(is_("assigned"))
    # drop and come back within grace: it is still ours, listed in welcome
    await g1.close()
    g1b, wb = await agent(app.ws_url, "g1", "tok-g1")
    assert [x["id"] for x in wb["conversations"]] == [conv]
    assert wb["conversations"][0]["messages"], "with its history"
    await barrier(g1b)  # its sign-in step is done: the next step for g1 is this socket's disconnect
    dropped = time.time()
    await g1b.close()

    async def offline() -> bool:
        state = await app.ctx.store.get_agent("g1")
        return state is not None and state.status.value == "offline"

    await until(offline, what="g1's disconnect step (its grace timer is set in the same step)")
    # a newer arrival waits in the queue while g2 is busy
    g2, _ = await agent(app.ws_url, "g2", "tok-g2", status="away")
    c2, w2 = await customer(app.ws_url, "u-g2")
    await say(c2, "m1", "转人工")
    await c2.wait(is_("queued"))
    # a second before the grace is over: still g1's, nothing requeued
    assert not [k for k in await run_timers(app, dropped + LONG_S - 1) if k.startswith("grace:")]
    assert await app.ctx.store.queue("presale") == [w2["conversation"]]
    assert (await app.ctx.store.get_agent("g1")).held == [conv]  # type: ignore[union-attr]
    # grace expires: conv is requeued ahead of the newer arrival
    assert "grace:g1" in await run_timers(app, time.time() + LONG_S + 1)
    assert await app.ctx.store.queue("presale") == [conv, w2["conversation"]]
    await g2.send({"type": "status", "status": "online"})
    got = await g2.wait(is_("assigned"))
    assert got["conversation"]["id"] == conv, "requeued ahead of newer arrivals"
    assert (await c.wait_count(is_("assigned"), 2))[1]["agent"]["id"] == "g2"
    # g1 is offline: nothing goes to it even when it has room
    state = await app.ctx.store.get_agent("g1")
    assert state is not None and state.held == [] and state.status.value == "offline"


async def test_idle_close(gateway_app) -> None:
    app = await gateway_app({"routing": {"customer_idle_close_s": LONG_S}})
    c, w = await customer(app.ws_url, "u-idle")
    said = time.time()
    await say(c, "m1", "什么时候发货")
    await c.wait(lambda f: f.get("from") == "bot")
    await run_timers(app, said + LONG_S - 1)  # not idle long enough yet
    conv = await app.ctx.store.get_conversation(w["conversation"])
    assert conv is not None and conv.state.value == "bot"
    assert await run_timers(app, time.time() + LONG_S + 1) == [f"idle:{w['conversation']}"]
    closed = await c.wait(is_("closed"))
    assert closed["reason"] == "idle"


async def test_away_takes_nothing_online_pulls_backlog(gateway_app) -> None:
    app = await gateway_app({"agents": agents_cfg(("w1", ["aftersale"], 2))})
    ag, _ = await agent(app.ws_url, "w1", "tok-w1", status="away")
    cs = []
    for i in range(3):
        c, w = await customer(app.ws_url, f"u-w{i}")
        await say(c, "m1", "我要退货退款，转人工")
        await c.wait(is_("queued"))
        cs.append(w["conversation"])
    await barrier(ag)  # an assignment made by those hand-offs would have reached w1 before this reply
    assert not ag.of(is_("assigned"))
    assert (await app.ctx.store.get_agent("w1")).held == []  # type: ignore[union-attr]
    await ag.send({"type": "status", "status": "online", "id": "s1"})
    frames = await ag.wait_count(is_("assigned"), 2)
    assert [f["conversation"]["id"] for f in frames] == cs[:2]
    assert await app.ctx.store.queue("aftersale") == cs[2:]


@pytest.mark.parametrize("n", [1])
async def test_sla_waiting_notice(gateway_app, n: int) -> None:
    app = await gateway_app({"sla": {"ack_target_s": LONG_S}, "agents": agents_cfg(("s1", ["presale"], 1))})
    c, w = await customer(app.ws_url, "u-sla")
    asked = time.time()
    await say(c, "m1", "转人工")
    await c.wait(is_("queued"))
    waiting = app.config.texts.sla_waiting
    await run_timers(app, asked + LONG_S - 1)  # not waiting long enough yet
    assert not [e for e in await app.ctx.store.read_log(w["conversation"]) if e.get("text") == waiting]
    assert f"sla:{w['conversation']}" in await run_timers(app, time.time() + LONG_S + 1)
    note = await c.wait(lambda f: f.get("from") == "system" and f.get("text") == waiting)
    assert isinstance(note["seq"], int) and "排队" in note["text"]


async def test_typing_is_relayed_both_ways_and_not_stored(gateway_app) -> None:
    app = await gateway_app({"agents": agents_cfg(("ty", ["presale"], 2))})
    ag, _ = await agent(app.ws_url, "ty", "tok-ty")
    c, w = await customer(app.ws_url, "u-typing")
    conv = w["conversation"]
    await say(c, "m1", "转人工")
    await ag.wait(is_("assigned"))
    n = len(await app.ctx.store.read_log(conv))
    await c.send({"type": "typing"})
    t = await ag.wait(is_("typing"))
    assert t["conversation"] == conv and "seq" not in t
    await ag.send({"type": "typing", "conversation": conv})
    t2 = await c.wait(is_("typing"))
    assert t2.get("from") == "agent" and "seq" not in t2
    assert len(await app.ctx.store.read_log(conv)) == n


async def test_resume_while_queued_gets_the_position(gateway_app) -> None:
    app = await gateway_app({"agents": agents_cfg(("q1", ["presale"], 1))})
    for i in range(2):
        c, w = await customer(app.ws_url, f"u-qr{i}")
        await say(c, "m1", "转人工")
        await c.wait(is_("queued"))
    await c.close()
    c2, _ = await customer(app.ws_url, "u-qr1", resume={"conversation": w["conversation"], "token": w["token"],
                                                         "after": 0})
    q = await c2.wait(is_("queued"))
    assert q["position"] == 2 and q["skill"] == "presale"


async def test_a_long_wait_in_an_unserved_skill_is_offered_to_the_default_skill(gateway_app) -> None:
    app = await gateway_app({"agents": agents_cfg(("g1", ["presale"], 3)),
                             "routing": {"channel_skills": {"app": "aftersale"}, "max_queue_s": LONG_S}})
    g1, _ = await agent(app.ws_url, "g1", "tok-g1")
    c, w = await customer(app.ws_url, "u-long-wait", channel="app")
    asked = time.time()
    await say(c, "m1", "转人工")
    queued = await c.wait(is_("queued"))
    assert queued["skill"] == "aftersale"  # nobody online serves it
    await run_timers(app, asked + LONG_S - 1)  # not waiting long enough yet: it stays where it is
    conv = await app.ctx.store.get_conversation(w["conversation"])
    assert conv is not None and conv.skill == "aftersale" and conv.state.value == "queued"
    assert f"overflow:{w['conversation']}" in await run_timers(app, time.time() + LONG_S + 1)
    notice = await c.wait(lambda f: f.get("text") == app.config.texts.queue_overflow, what="the overflow notice")
    assigned = await c.wait(is_("assigned"))
    assert assigned["agent"]["id"] == "g1" and assigned["seq"] > notice["seq"]
    got = await g1.wait(is_("assigned"))
    assert got["conversation"]["id"] == w["conversation"] and got["conversation"]["skill"] == "presale"
