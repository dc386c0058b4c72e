"""End to end over real websockets (issue 14, items 3 and 4): the agent's close with its resolution,
category and pending follow-up (the seat freed, the customer's notice, ``follow_up_due`` on an
injected clock, the console's list in ``welcome``, closing it again); reopening (within and after
``[records] reopen_s``, priority high, the previous agent first, straight to people, from the store
or, once the store let it go, from the archive); the survey after every close, bot-only ones marked;
the customer's history on the agent's conversation objects (a slow archive costs at most its bound).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.records.model import Record
from gateway.server.agent_records import HISTORY_TIMEOUT_S
from gateway.service.followups import follow_up_text
from gateway.store import follow_up_timer
from tests.e2e import agent, agents_cfg, barrier, bus_barrier, customer, run_timers, say
from tests.support import Client, is_, until

# Timers run on the test's clock (``run_timers``): idle closes and queue overflow are set far away,
# so moving the clock to a follow-up's time fires nothing else.
QUIET = {"routing": {"customer_idle_close_s": 30 * 86400, "max_queue_s": 0}}
HOUR = 3600.0


def cfg(*agents: tuple[str, list[str], int], **extra: Any) -> dict[str, Any]:
    return {"agents": agents_cfg(*agents), **QUIET, **extra}


def system_texts(c: Client) -> list[str]:
    return [f["text"] for f in c.frames if f.get("type") == "message" and f.get("from") == "system"]


async def assigned_obj(ag: Client, conv: str) -> dict[str, Any]:
    f = await ag.wait(lambda f: f.get("type") == "assigned" and isinstance(f.get("conversation"), dict)
                      and f["conversation"]["id"] == conv, what=f"assigned {conv}")
    return f["conversation"]


# ------------------------------------------------------------------ pending and follow-ups


async def test_a_pending_close_frees_the_seat_tells_the_customer_and_comes_due_on_time(gateway_app) -> None:
    app = await gateway_app(cfg(("x1", ["presale"], 1)))
    store = app.ctx.store
    x1, welcome = await agent(app.ws_url, "x1", "tok-x1")
    assert welcome["follow_ups"] == [] and welcome["categories"] == ["quality", "logistics", "usage", "service",
                                                                        "other"]
    c1, w1 = await customer(app.ws_url, "u-p1", "张三")
    conv1 = w1["conversation"]
    await say(c1, "m1", "转人工")
    await assigned_obj(x1, conv1)
    c2, w2 = await customer(app.ws_url, "u-p2")
    await say(c2, "m1", "转人工")
    await c2.wait(is_("queued"))  # x1 is full

    due = float(int(time.time() + HOUR))
    await x1.send({"type": "close", "id": "k1", "conversation": conv1, "resolution": "pending",
                   "category": "logistics", "follow_up_at": due, "note": "等仓库回复"})
    await x1.wait(is_("ack", id="k1"))
    await x1.wait(is_("unassigned", conversation=conv1, reason="closed"))
    item = await x1.wait(is_("follow_up", conversation=conv1))
    assert {k: v for k, v in item.items() if k != "closed_at"} == {
        "type": "follow_up", "conversation": conv1, "customer": {"id": "u-p1", "name": "张三"}, "channel": "web",
        "skill": "presale", "category": "logistics", "follow_up_at": due, "note": "等仓库回复", "due": False}
    await assigned_obj(x1, w2["conversation"])  # the seat it freed took the next customer
    await c2.wait(is_("assigned"))
    # the customer: the promised time, then closed (pending), then the survey
    promise = follow_up_text(app.config.texts.follow_up, due)
    assert "{time}" not in promise and "北京时间" in promise
    closed = await c1.wait(is_("closed"))
    assert closed["reason"] == "pending" and promise in system_texts(c1)
    assert await c1.wait(is_("survey")) == {"type": "survey", "conversation": conv1}
    a = await store.get_agent("x1")
    assert a is not None and a.held == [w2["conversation"]], "pending uses no capacity"
    assert await store.follow_ups("x1") == [conv1]
    stored = await store.get_conversation(conv1)
    assert stored is not None and (stored.resolution, stored.category, stored.follow_up_at,
                                   stored.follow_up_note) == ("pending", "logistics", due, "等仓库回复")

    # the follow-up comes due on the injected clock, not before
    assert follow_up_timer(conv1) not in await run_timers(app, due - 1)
    await barrier(x1)
    assert not x1.of(is_("follow_up_due"))
    assert follow_up_timer(conv1) in await run_timers(app, due)
    assert await x1.wait(is_("follow_up_due", conversation=conv1)) == {
        "type": "follow_up_due", "conversation": conv1, "follow_up_at": due}

    # a reconnecting console lists it; closing it again ends it
    x1b, again = await agent(app.ws_url, "x1", "tok-x1")
    assert [(f["conversation"], f["follow_up_at"], f["note"]) for f in again["follow_ups"]] == [
        (conv1, due, "等仓库回复")]
    assert [c["id"] for c in again["conversations"]] == [w2["conversation"]]
    await x1b.send({"type": "close", "id": "k2", "conversation": conv1, "resolution": "pending",
                    "follow_up_at": due + 60})
    assert (await x1b.wait(is_("error", id="k2")))["code"] == "bad_frame", "a pending case ends resolved or not"
    await x1b.send({"type": "close", "id": "k3", "conversation": conv1, "resolution": "resolved"})
    await x1b.wait(is_("ack", id="k3"))
    await x1b.wait(is_("follow_up_done", conversation=conv1))
    done = await store.get_conversation(conv1)
    assert done is not None and (done.resolution, done.category) == ("resolved", "logistics")
    assert done.follow_up_done_at > 0 and await store.follow_ups("x1") == []
    await x1b.send({"type": "close", "id": "k4", "conversation": conv1, "resolution": "resolved"})
    assert (await x1b.wait(is_("error", id="k4")))["code"] == "not_assigned", "once"
    assert follow_up_timer(conv1) not in await run_timers(app, due + 3 * HOUR)
    _, last = await agent(app.ws_url, "x1", "tok-x1")
    assert last["follow_ups"] == []


async def test_the_close_frame_is_checked_whole(gateway_app) -> None:
    app = await gateway_app(cfg(("v1", ["presale"], 2), records={"categories": ["退货", "物流"]}))
    v1, welcome = await agent(app.ws_url, "v1", "tok-v1")
    assert welcome["categories"] == ["退货", "物流"]
    c, w = await customer(app.ws_url, "u-v")
    conv = w["conversation"]
    await say(c, "m1", "转人工")
    await assigned_obj(v1, conv)
    now = time.time()
    bad: list[dict[str, Any]] = [
        {"resolution": "done"},
        {"resolution": "resolved", "category": "quality"},  # not in this config's list
        {"resolution": "resolved", "category": 3},
        {"resolution": "pending"},  # no follow_up_at
        {"resolution": "pending", "follow_up_at": "明天"},
        {"resolution": "pending", "follow_up_at": True},
        {"resolution": "pending", "follow_up_at": now - 60},  # in the past
        {"resolution": "pending", "follow_up_at": now + 400 * 86400},  # absurdly far
        {"resolution": "pending", "follow_up_at": now + HOUR, "note": "长" * 501},
        {"resolution": "pending", "follow_up_at": now + HOUR, "note": 5},
        {"resolution": "resolved", "follow_up_at": now + HOUR},  # a follow-up goes with pending only
        {"resolution": "unresolved", "note": "x"},
    ]
    for i, extra in enumerate(bad):
        await v1.send({"type": "close", "id": f"b{i}", "conversation": conv, **extra})
        err = await v1.wait(is_("error", id=f"b{i}"))
        assert err["code"] == "bad_frame", (extra, err)
    held = await app.ctx.store.get_conversation(conv)
    assert held is not None and held.state.value == "assigned", "nothing changed"
    await v1.send({"type": "close", "id": "ok", "conversation": conv, "resolution": "unresolved", "category": "物流"})
    await v1.wait(is_("ack", id="ok"))
    closed = await app.ctx.store.get_conversation(conv)
    assert closed is not None and (closed.resolution, closed.category, closed.close_reason) == (
        "unresolved", "物流", "unresolved")


# ------------------------------------------------------------------ reopening


async def test_a_return_within_reopen_s_reopens_high_to_the_previous_agent_straight_to_people(gateway_app) -> None:
    app = await gateway_app(cfg(("a1", ["presale"], 3), ("a2", ["presale"], 3)))
    a1, _ = await agent(app.ws_url, "a1", "tok-a1")
    a2, _ = await agent(app.ws_url, "a2", "tok-a2")
    c, w = await customer(app.ws_url, "u-r", "王五")
    first = w["conversation"]
    await say(c, "m1", "转人工")
    obj = await assigned_obj(a1, first)  # both idle: the smaller id
    assert obj["reopened_from"] is None and obj["priority"] == "normal"
    await a1.send({"type": "close", "id": "k1", "conversation": first, "resolution": "unresolved",
                   "category": "quality"})
    await c.wait(is_("survey"))
    # a1 now more loaded than a2: the policy alone would pick a2
    for cid in ("u-x", "u-y"):
        o, wo = await customer(app.ws_url, cid)
        await say(o, "m1", "转人工")
        await o.wait(is_("assigned"))
    a1_state, a2_state = await app.ctx.store.get_agent("a1"), await app.ctx.store.get_agent("a2")
    assert a1_state is not None and a2_state is not None and len(a1_state.held) == len(a2_state.held) == 1
    await until(lambda: app.ctx.archive.get(first), what="the first conversation archived")

    before = len(c.of(is_("assigned")))
    await say(c, "m2", "还是没收到货")  # a question the bot could answer: people take it anyway
    second = c.of(is_("welcome"))[-1]["conversation"]
    assert second != first
    got = (await c.wait_count(is_("assigned"), before + 1))[-1]
    assert got["agent"]["id"] == "a1"
    obj = await assigned_obj(a1, second)
    assert obj["priority"] == "high" and obj["reopened_from"] == first and obj["skill"] == "presale"
    assert obj["meta"]["reasons"] == ["reopened"]
    assert [h["id"] for h in obj["history"]] == [first]
    assert obj["history"][0]["resolution"] == "unresolved" and obj["history"][0]["category"] == "quality"
    assert obj["history"][0]["first_message"] == "转人工"
    await bus_barrier(app, second, c)
    since = c.frames[c.frames.index(c.of(is_("welcome"))[-1]):]
    assert got in since and not [f for f in since if f.get("from") == "bot"], "the bot stayed out of it"
    stored = await app.ctx.store.get_conversation(second)
    assert stored is not None and (stored.reopened_from, stored.prefer_agent, stored.priority.value) == (
        first, "a1", "high")


async def test_what_reopens_and_what_does_not(gateway_app) -> None:
    app = await gateway_app(cfg(("b1", ["presale"], 5)))
    b1, _ = await agent(app.ws_url, "b1", "tok-b1")
    svc = app.ctx.service
    # resolved and rated 5: the next message is a new conversation for the bot
    c, w = await customer(app.ws_url, "u-ok")
    await say(c, "m1", "转人工")
    await assigned_obj(b1, w["conversation"])
    await b1.send({"type": "close", "id": "k1", "conversation": w["conversation"], "resolution": "resolved"})
    await c.wait(is_("survey"))
    await c.send({"type": "rate", "id": "r1", "score": 5})
    await c.wait(is_("ack", id="r1"))
    assert await svc.reopen_of("u-ok", time.time()) is None
    await say(c, "m2", "什么时候发货")
    await c.wait(lambda f: f.get("from") == "bot" and f.get("faq"))
    # bot-only, rated 2: the return reopens it (to people, high; no previous agent)
    d, wd = await customer(app.ws_url, "u-bot")
    await say(d, "m1", "什么时候发货")
    await d.wait(lambda f: f.get("from") == "bot")
    await d.send({"type": "close", "id": "k"})
    assert await d.wait(is_("survey")) == {"type": "survey", "conversation": wd["conversation"], "bot_only": True}
    await d.send({"type": "rate", "id": "r1", "score": 2, "comment": "答非所问"})
    await d.wait(is_("ack", id="r1"))
    now = time.time()
    reopen = await svc.reopen_of("u-bot", now)
    assert reopen is not None and (reopen.conversation, reopen.agent) == (wd["conversation"], "")
    # ... but not once reopen_s has passed (measured from the close)
    assert await svc.reopen_of("u-bot", now + app.config.records.reopen_s + 60) is None
    await say(d, "m2", "什么时候发货")
    new_id = d.of(is_("welcome"))[-1]["conversation"]
    obj = await assigned_obj(b1, new_id)
    assert obj["priority"] == "high" and obj["reopened_from"] == wd["conversation"]


async def test_reopen_s_zero_never_reopens(gateway_app) -> None:
    app = await gateway_app(cfg(("z1", ["presale"], 5), records={"reopen_s": 0}))
    z1, _ = await agent(app.ws_url, "z1", "tok-z1")
    c, w = await customer(app.ws_url, "u-z")
    await say(c, "m1", "转人工")
    await assigned_obj(z1, w["conversation"])
    await z1.send({"type": "close", "id": "k1", "conversation": w["conversation"], "resolution": "unresolved"})
    await c.wait(is_("survey"))
    await say(c, "m2", "什么时候发货")
    await c.wait(lambda f: f.get("from") == "bot" and f.get("faq"))


async def test_a_case_the_store_let_go_is_reopened_from_the_archive(gateway_app) -> None:
    app = await gateway_app(cfg(("h1", ["presale"], 3), ("h2", ["presale"], 3), archive={"keep_hot_s": 0}))
    h1, _ = await agent(app.ws_url, "h1", "tok-h1")
    h2, _ = await agent(app.ws_url, "h2", "tok-h2")
    c, w = await customer(app.ws_url, "u-cold")
    first = w["conversation"]
    await say(c, "m1", "转人工")
    await assigned_obj(h1, first)
    await h1.send({"type": "close", "id": "k1", "conversation": first, "resolution": "pending",
                   "follow_up_at": time.time() + HOUR})
    await c.wait(is_("survey"))
    await h1.send({"type": "close", "id": "k2", "conversation": first, "resolution": "unresolved"})
    await h1.wait(is_("follow_up_done"))
    # archived (the ended case as its second version), then dropped from the store at once
    await until(lambda: _gone(app, first), what="archived and dropped from the store")
    assert await app.ctx.store.customer_conversation("u-cold") is None
    rec = await app.ctx.archive.get(first)
    assert rec is not None and rec.resolution == "unresolved" and rec.follow_up_done_at and rec.agents == ("h1",)
    # one each (h2 first, h1 last): the policy alone would pick h2, idle longest
    for cid, holder in (("u-o1", h2), ("u-o2", h1)):
        o, wo = await customer(app.ws_url, cid)
        await say(o, "m1", "转人工")
        await assigned_obj(holder, wo["conversation"])
    await say(c, "m2", "在吗")
    second = c.of(is_("welcome"))[-1]["conversation"]
    obj = await assigned_obj(h1, second)
    assert obj["reopened_from"] == first and obj["priority"] == "high"
    assert [h["id"] for h in obj["history"]] == [first]


async def _gone(app: Any, conv: str) -> bool:
    return await app.ctx.store.get_conversation(conv) is None


# ------------------------------------------------------------------ survey


async def test_an_idle_close_of_a_bot_only_conversation_sends_the_survey_while_connected(gateway_app) -> None:
    app = await gateway_app({"routing": {"customer_idle_close_s": 100_000, "max_queue_s": 0}})
    c, w = await customer(app.ws_url, "u-idle")
    await say(c, "m1", "什么时候发货")
    await c.wait(lambda f: f.get("from") == "bot")
    await run_timers(app, time.time() + 100_001)
    assert (await c.wait(is_("closed")))["reason"] == "idle"
    assert await c.wait(is_("survey")) == {"type": "survey", "conversation": w["conversation"], "bot_only": True}
    await c.send({"type": "rate", "id": "r1", "score": 4})
    await c.wait(is_("ack", id="r1"))


# ------------------------------------------------------------------ history


def old(rid: str, customer_id: str, at: float, **kw: Any) -> Record:
    return Record(id=rid, customer_id=customer_id, created_at=at, closed_at=at + 300, first_customer_text=f"问题{rid}",
                  **kw)


async def test_the_customers_last_five_conversations_ride_on_assigned_and_welcome(gateway_app) -> None:
    app = await gateway_app(cfg(("y1", ["presale"], 3)))
    t0 = time.time() - 30 * 86400
    for i in range(7):
        await app.ctx.archive.put(old(f"c-old{i}", "u-h", t0 + i * 3600, resolution="resolved",
                                      category="usage", rating=4 if i % 2 else 0))
    await app.ctx.archive.put(old("c-else", "u-someone-else", t0 + 99999))
    y1, _ = await agent(app.ws_url, "y1", "tok-y1")
    c, w = await customer(app.ws_url, "u-h")
    await say(c, "m1", "转人工")
    obj = await assigned_obj(y1, w["conversation"])
    assert [h["id"] for h in obj["history"]] == [f"c-old{i}" for i in (6, 5, 4, 3, 2)], "newest first, five"
    assert obj["history"][0] == {"id": "c-old6", "closed_at": t0 + 6 * 3600 + 300, "resolution": "resolved",
                                 "category": "usage", "rating": None, "first_message": "问题c-old6"}
    assert obj["history"][1]["rating"] == 4
    _, welcome = await agent(app.ws_url, "y1", "tok-y1")
    assert [h["id"] for h in welcome["conversations"][0]["history"]] == [f"c-old{i}" for i in (6, 5, 4, 3, 2)]


@pytest.mark.parametrize("trouble", ["slow", "down"])
async def test_a_slow_or_failing_archive_gives_an_empty_history_within_its_bound(gateway_app, monkeypatch,
                                                                                    trouble: str) -> None:
    app = await gateway_app(cfg(("s1", ["presale"], 3)))

    async def history(customer: str, limit: int = 5, before: str = "") -> list[Any]:
        if trouble == "slow":
            await asyncio.sleep(30)
        raise ConnectionError("archive down")

    monkeypatch.setattr(app.ctx.archive, "history", history)
    s1, _ = await agent(app.ws_url, "s1", "tok-s1")
    c, w = await customer(app.ws_url, "u-slow")
    started = time.monotonic()
    await say(c, "m1", "转人工")
    obj = await assigned_obj(s1, w["conversation"])
    assert obj["history"] == []
    assert time.monotonic() - started < HISTORY_TIMEOUT_S + 2.0
