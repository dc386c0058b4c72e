"""The store contract for issue 14's steps (both stores, same outcomes): an agent's close with its
resolution, category and pending follow-up; ending a pending case; the follow-up timer; the survey
after every close; rating a bot-only conversation; a reopened conversation offered first to its
previous agent; an unused reopened conversation handing the customer's pointer back.

Fixtures and helpers come from ``test_store_contract`` (memory, Redis, Redis Cluster).
"""

from __future__ import annotations

import pytest

from gateway.errors import NotAssigned
from gateway.model import Conversation, ConvState, MetaPatch, Priority
from gateway.store import CloseOutcome, HandoffRequest, Store, follow_up_timer
from tests import test_store_contract as contract
from tests.test_store_contract import AWAY, Env, agent, conv, held, msg

backend, env = contract.backend, contract.env  # the contract's fixtures: memory, Redis, Redis Cluster

NOTICE = {"type": "message", "from": "system", "text": "正在为您转接"}
DUE = 1_900_000_000.5


def req(skill: str = "presale") -> HandoffRequest:
    return HandoffRequest(NOTICE, skill, Priority.NORMAL, {}, "presale", MetaPatch())


async def assigned(s: Store, cid: str, customer: str = "", **kw: object) -> None:
    await conv(s, cid, customer, **kw)
    await s.append(cid, msg("转人工"))
    assert await s.handoff(cid, req()) is not None


async def timers(s: Store, now: float = 1e12) -> list[str]:
    return sorted(await s.claim_due(now, 1000))


# ------------------------------------------------------------------ the agent's close

async def test_an_agents_close_records_its_resolution_and_category(env: Env) -> None:
    s = env.store
    await agent(s, "a")
    await assigned(s, "k1")
    res = await s.close_conversation("k1", "unresolved", by_agent="a", survey=True,
                                     outcome=CloseOutcome("unresolved", "logistics"))
    assert res.closed and res.agent == "a"
    c = await s.get_conversation("k1")
    assert c is not None and (c.state, c.close_reason, c.resolution, c.category) == (
        ConvState.CLOSED, "unresolved", "unresolved", "logistics")
    assert (c.follow_up_at, c.follow_up_note, c.follow_up_done_at) == (0.0, "", 0.0)
    assert await s.follow_ups("a") == [] and await held(s, "a") == []
    # a customer's close records no resolution
    await conv(s, "k2")
    await s.close_conversation("k2", "customer", survey=True)
    c2 = await s.get_conversation("k2")
    assert c2 is not None and (c2.resolution, c2.category) == ("", "")


async def test_a_pending_close_frees_the_seat_and_keeps_the_case_on_the_agents_follow_ups(env: Env) -> None:
    s = env.store
    await agent(s, "a", cap=1)
    await assigned(s, "p1")
    await conv(s, "p2")
    await s.append("p2", msg("在吗"))
    placed = await s.handoff("p2", req())
    assert placed is not None and placed.position == 1  # a is full: p2 waits
    await env.bus.take(s)
    notice = msg("客服将于 12月3日 14:00 前联系您", "system")
    res = await s.close_conversation("p1", "pending", by_agent="a", notice=notice, survey=True,
                                     outcome=CloseOutcome("pending", "quality", DUE, "等仓库回复"))
    assert res.closed and [p.conversation for p in res.placements] == ["p2"], "the freed seat takes the next"
    assert await held(s, "a") == ["p2"] and await s.follow_ups("a") == ["p1"]
    c = await s.get_conversation("p1")
    assert c is not None and (c.state, c.resolution, c.category, c.follow_up_at, c.follow_up_note) == (
        ConvState.CLOSED, "pending", "quality", DUE, "等仓库回复")
    log = await s.read_log("p1")
    assert [(e["type"], e.get("text", e.get("reason"))) for e in log[-2:]] == [
        ("message", notice["text"]), ("closed", "pending")]
    events = await env.bus.take(s)
    kinds = [(t, p.get("type")) for t, p in events]
    assert kinds == [("c:p1", "message"), ("c:p1", "closed"), ("a:a", "unassigned"), ("a:a", "follow_up"),
                     ("c:p2", "assigned"), ("a:a", "assigned"), ("c:p1", "survey")]
    assert events[3][1] == {"type": "follow_up", "conversation": "p1", "follow_up_at": DUE}
    assert events[-1][1] == {"type": "survey", "conversation": "p1"}
    assert await s.claim_due(DUE - 1) == [] and await s.claim_due(DUE) == [follow_up_timer("p1")]


async def test_follow_ups_are_listed_soonest_first(env: Env) -> None:
    s = env.store
    await agent(s, "a", cap=3)
    for cid, due in (("f1", DUE + 50), ("f2", DUE), ("f3", DUE + 10)):
        await assigned(s, cid)
        await s.close_conversation(cid, "pending", by_agent="a", outcome=CloseOutcome("pending", "", due))
    assert await s.follow_ups("a") == ["f2", "f3", "f1"]
    assert await s.follow_ups("nobody") == []


async def test_the_follow_ups_due_are_counted_over_every_agent(env: Env) -> None:
    s = env.store
    await agent(s, "a", cap=3)
    await agent(s, "b", cap=3)
    assert await s.follow_ups_due_count(DUE + 100) == 0
    holders = []
    for cid, due in (("n1", DUE), ("n2", DUE + 50), ("n3", DUE + 10)):
        await assigned(s, cid)
        c = await s.get_conversation(cid)
        assert c is not None
        holders.append(c.agent)
        await s.close_conversation(cid, "pending", by_agent=c.agent, outcome=CloseOutcome("pending", "", due))
    assert set(holders) == {"a", "b"}  # cases of both agents are counted
    assert [await s.follow_ups_due_count(t) for t in (DUE - 1, DUE, DUE + 10, DUE + 50)] == [0, 1, 2, 3]
    assert await s.finish_follow_up("n1", holders[0], "resolved")
    assert await s.follow_ups_due_count(DUE + 50) == 2  # an ended case is no longer due


async def test_the_follow_up_timer_tells_the_owner_while_the_case_is_pending(env: Env) -> None:
    s = env.store
    await agent(s, "a")
    await assigned(s, "d1")
    await s.close_conversation("d1", "pending", by_agent="a", outcome=CloseOutcome("pending", "", DUE, ""))
    await env.bus.take(s)
    assert await s.follow_up_due("d1") == "a"
    assert await env.bus.take(s) == [("a:a", {"type": "follow_up_due", "conversation": "d1", "follow_up_at": DUE})]
    assert await s.follow_up_due("nope") == ""
    assert await s.finish_follow_up("d1", "a", "resolved")
    await env.bus.take(s)
    assert await s.follow_up_due("d1") == "" and await env.bus.take(s) == []


async def test_only_its_owner_ends_a_pending_case_once(env: Env) -> None:
    s = env.store
    await agent(s, "a")
    await agent(s, "b")
    await assigned(s, "e1")
    await s.close_conversation("e1", "pending", by_agent="a", outcome=CloseOutcome("pending", "usage", DUE, "n"))
    await env.bus.take(s)
    assert not await s.finish_follow_up("e1", "b", "resolved")
    assert not await s.finish_follow_up("nope", "a", "resolved")
    assert await s.finish_follow_up("e1", "a", "unresolved", "service")
    c = await s.get_conversation("e1")
    assert c is not None and (c.resolution, c.category, c.follow_up_at, c.close_reason) == (
        "unresolved", "service", DUE, "pending")
    assert c.follow_up_done_at > 0
    assert await s.follow_ups("a") == []
    assert await env.bus.take(s) == [("a:a", {"type": "follow_up_done", "conversation": "e1"})]
    claimed = await s.claim_outbox(1e12)  # the archive gets the ended case as a new version
    assert [(e.conversation, e.version) for e in claimed] == [("e1", 2)]
    assert not await s.finish_follow_up("e1", "a", "resolved"), "once"
    assert await timers(s) == [], "its timer went with it"
    # an open conversation is closed, not finished; a category left out keeps the one given
    await assigned(s, "e2")
    c2 = await s.get_conversation("e2")
    assert c2 is not None and c2.agent
    assert not await s.finish_follow_up("e2", c2.agent, "resolved")
    await s.close_conversation("e2", "pending", by_agent=c2.agent, outcome=CloseOutcome("pending", "quality", DUE))
    assert await s.finish_follow_up("e2", c2.agent, "resolved")
    c2 = await s.get_conversation("e2")
    assert c2 is not None and (c2.resolution, c2.category) == ("resolved", "quality")


async def test_a_pending_case_is_not_closed_again_by_close(env: Env) -> None:
    s = env.store
    await agent(s, "a")
    await assigned(s, "g1")
    await s.close_conversation("g1", "pending", by_agent="a", outcome=CloseOutcome("pending", "", DUE))
    with pytest.raises(NotAssigned):
        await s.close_conversation("g1", "resolved", by_agent="a", outcome=CloseOutcome("resolved"))
    assert await s.follow_ups("a") == ["g1"]


# ------------------------------------------------------------------ survey and rating

async def test_the_survey_goes_out_after_every_close_bot_only_ones_marked(env: Env) -> None:
    s = env.store
    await agent(s, "a", cap=1)
    await conv(s, "s1")
    await s.append("s1", msg("发货"))
    await env.bus.take(s)
    await s.close_conversation("s1", "customer", survey=True)
    assert (await env.bus.take(s))[-1] == ("c:s1", {"type": "survey", "conversation": "s1", "bot_only": True})
    await assigned(s, "s2")
    await conv(s, "s3")  # waits in the queue (a is full): closed by its customer, nobody held it
    await s.handoff("s3", req())
    await env.bus.take(s)
    await s.close_conversation("s3", "customer", survey=True)
    assert (await env.bus.take(s))[-1] == ("c:s3", {"type": "survey", "conversation": "s3", "bot_only": True})
    await s.close_conversation("s2", "resolved", by_agent="a", survey=True)
    assert (await env.bus.take(s))[-1] == ("c:s2", {"type": "survey", "conversation": "s2"})
    await conv(s, "s4")
    await s.append("s4", msg("在"))
    await env.bus.take(s)
    await s.close_conversation("s4", "idle", notice=msg("再见", "system"))  # no survey asked: none
    assert [p.get("type") for _, p in await env.bus.take(s)] == ["message", "closed"]


async def test_a_closed_bot_only_conversation_can_be_rated(env: Env) -> None:
    s = env.store
    await conv(s, "r1")
    await s.append("r1", msg("发货"))
    assert await s.rate("r1", 2, "没用") is None, "open and never with an agent: nothing stored"
    await s.close_conversation("r1", "customer", survey=True)
    assert await s.rate("r1", 2, "没用") == ""
    c = await s.get_conversation("r1")
    assert c is not None and (c.rating, c.rating_comment) == (2, "没用")


# ------------------------------------------------------------------ reopening

async def test_a_reopened_conversation_goes_first_to_its_previous_agent_when_online_with_room(env: Env) -> None:
    s = env.store
    await agent(s, "a", cap=2)
    await agent(s, "b", cap=2)
    await assigned(s, "busy")  # a and b idle: a (smaller id) takes it, so b is the less loaded
    assert await held(s, "a") == ["busy"]
    await conv(s, "o1", prefer_agent="a", priority=Priority.HIGH)
    p = await s.handoff("o1", req())
    assert p is not None and p.agent == "a", "the previous agent, though more loaded"
    await conv(s, "o2", prefer_agent="a")  # a is full now: the policy's choice
    p2 = await s.handoff("o2", req())
    assert p2 is not None and p2.agent == "b"
    await agent(s, "c", skills=("aftersale",), cap=1)
    await conv(s, "o3", prefer_agent="c")  # online with room: whatever its skills
    p3 = await s.handoff("o3", req())
    assert p3 is not None and p3.agent == "c"
    await agent(s, "d", cap=1, status=AWAY)
    await conv(s, "o4", prefer_agent="d")  # away: not offered
    p4 = await s.handoff("o4", req())
    assert p4 is not None and p4.agent == "b"
    await conv(s, "o5", prefer_agent="ghost")  # an agent the store does not know
    p5 = await s.handoff("o5", req())
    assert p5 is not None and p5.agent == "" and p5.position == 1


async def test_an_unused_reopened_conversation_hands_its_customer_back_to_the_one_it_reopened(env: Env) -> None:
    s = env.store
    await conv(s, "old", "u-r")
    await s.append("old", msg("坏了"))
    await s.close_conversation("old", "customer")
    await s.create_conversation(Conversation("new", "u-r", reopened_from="old", priority=Priority.HIGH))
    assert await s.customer_conversation("u-r") == "new"
    assert await s.discard_unused("new")
    assert await s.customer_conversation("u-r") == "old"
    res = await s.create_conversation(Conversation("new2", "u-r", reopened_from="old"))
    assert res == []
    assert (await s.close_conversation("new2", "idle", discard_unused=True)).discarded
    assert await s.customer_conversation("u-r") == "old"
    await s.create_conversation(Conversation("plain", "u-r"))
    assert await s.discard_unused("plain")
    assert await s.customer_conversation("u-r") is None


async def test_the_new_fields_round_trip_through_the_store(env: Env) -> None:
    s = env.store
    c = Conversation("rt", "u-rt", reopened_from="x", prefer_agent="a", resolution="pending", category="other",
                     follow_up_at=DUE, follow_up_note="记", follow_up_done_at=DUE + 1)
    await s.create_conversation(c)
    back = await s.get_conversation("rt")
    assert back is not None
    assert (back.reopened_from, back.prefer_agent, back.resolution, back.category, back.follow_up_at,
            back.follow_up_note, back.follow_up_done_at) == ("x", "a", "pending", "other", DUE, "记", DUE + 1)
    assert Conversation.from_dict(c.to_dict()) == c
    # a turn left unfinished says the conversation was reopened (a survivor hands it to people, no bot)
    r = await s.append("rt", msg("又坏了"), turn_due=50.0)
    p = await s.pending_turn("rt", r.entry["seq"])
    assert p is not None and p.reopened
    await conv(s, "plain")
    r2 = await s.append("plain", msg("在吗"), turn_due=50.0)
    p2 = await s.pending_turn("plain", r2.entry["seq"])
    assert p2 is not None and not p2.reopened
