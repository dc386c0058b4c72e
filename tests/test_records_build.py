"""``build_record``: every Record field from a conversation and its log (hand-written logs, pure)."""

from __future__ import annotations

from typing import Any

from gateway.model import Conversation, ConvState, Priority
from gateway.records.build import build_record
from gateway.records.model import Record

T0 = 1_764_000_000.0


def e(seq: int, dt: float, kind: str = "message", **kw: Any) -> dict[str, Any]:
    return {"type": kind, "seq": seq, "ts": T0 + dt, **kw}


def say(seq: int, dt: float, who: str, text: str, **kw: Any) -> dict[str, Any]:
    return e(seq, dt, "message", **{"from": who, "text": text, **kw})


def assigned(seq: int, dt: float, agent: str) -> dict[str, Any]:
    return e(seq, dt, "assigned", agent={"id": agent, "name": f"客服{agent}"})


def closed_conv(**kw: Any) -> Conversation:
    base: dict[str, Any] = {"id": "c-1", "customer_id": "u-1", "customer_name": "张三", "state": ConvState.CLOSED,
                            "created_at": T0, "closed_at": T0 + 300, "close_reason": "resolved"}
    return Conversation(**{**base, **kw})


# a customer asks the bot, is handed off, waits, is served by a1, transferred to a2, closes resolved
LOG = [
    say(1, 0, "customer", "订单 231127-123456789012345 什么时候发货"),
    say(2, 1, "bot", "现货商品付款后48小时内发货", in_reply_to=1, faq="ship_time"),
    say(3, 20, "customer", "转人工"),
    say(4, 21, "system", "正在为您转接人工客服，请稍候～", in_reply_to=3),
    assigned(5, 40, "a1"),
    say(6, 70, "agent", "您好，我来帮您", agent={"id": "a1", "name": "客服a1"}),
    say(7, 80, "customer", "物流到哪了"),
    say(8, 85, "customer", "在吗"),  # the same wait: timed from the first unanswered message
    say(9, 95, "agent", "我查一下", agent={"id": "a1", "name": "客服a1"}),
    e(10, 100, "transferred", **{"from": {"id": "a1", "name": "客服a1"}, "to": {"agent": {"id": "a2"}}}),
    assigned(11, 100, "a2"),
    say(12, 110, "customer", "好的"),
    say(13, 140, "agent", "已经到您的城市了", agent={"id": "a2", "name": "客服a2"}),
    e(14, 300, "closed", reason="resolved"),
]


def test_a_handed_off_conversation_fills_every_field() -> None:
    conv = closed_conv(channel="web", skill="logistics", priority=Priority.HIGH, had_agent="a2", rating=4,
                       rating_comment="还行", feedback={2: False},
                       meta={"queued_at": T0 + 21.5, "orders": ["231127-123456789012345"],
                             "handoff_reason": "转人工"})
    r = build_record(conv, LOG, 3)
    assert isinstance(r, Record)
    assert (r.id, r.customer_id, r.customer_name, r.channel, r.shop) == ("c-1", "u-1", "张三", "web", "")
    assert (r.skill, r.priority, r.version) == ("logistics", "high", 3)
    assert r.agents == ("a1", "a2") and r.transfers == 1
    assert (r.created_at, r.closed_at, r.close_reason) == (T0, T0 + 300, "resolved")
    assert r.handoff_at == T0 + 21.5  # the hand-off step's time (meta.queued_at), as the live metric
    assert r.assigned_at == T0 + 40
    assert r.first_response_at == T0 + 70 and r.first_response_s == 48.5
    assert r.response_times_s == (15.0, 30.0)  # 80 -> 95 (the 85 one is the same wait), 110 -> 140
    assert (r.customer_messages, r.agent_messages) == (5, 3)
    assert r.first_customer_text == "订单 231127-123456789012345 什么时候发货"
    assert r.orders == ("231127-123456789012345",) and r.bot_only is False
    assert (r.rating, r.comment) == (4, "还行")
    assert r.handle_s == 260.0
    assert [m["seq"] for m in r.messages] == list(range(1, 15))
    assert r.messages[1]["helpful"] is False  # the customer's verdict on the bot's answer, as agents see it
    assert "helpful" not in LOG[1]  # the log itself is not changed


def test_a_bot_only_conversation() -> None:
    log = [say(1, 0, "system", "您好"), say(2, 5, "customer", "什么时候发货"),
           say(3, 6, "bot", "48小时内发货", in_reply_to=2), e(4, 900, "closed", reason="idle")]
    r = build_record(closed_conv(close_reason="idle", closed_at=T0 + 900), log, 1)
    assert r.bot_only is True and r.agents == () and r.transfers == 0
    assert (r.handoff_at, r.assigned_at, r.first_response_at, r.first_response_s) == (None, None, None, None)
    assert r.response_times_s == () and r.handle_s is None
    assert (r.customer_messages, r.agent_messages, r.first_customer_text) == (1, 0, "什么时候发货")
    assert (r.resolution, r.category, r.follow_up_at, r.reopened_from, r.rating) == ("", "", None, "", 0)
    assert (r.skill, r.priority, r.version) == ("", "normal", 1)


def test_queued_then_left_is_handed_off_but_never_assigned() -> None:
    log = [say(1, 0, "customer", "转人工"), say(2, 1, "system", "正在为您转接", in_reply_to=1),
           say(3, 60, "customer", "还要多久"), e(4, 120, "closed", reason="customer")]
    r = build_record(closed_conv(close_reason="customer", meta={"queued_at": T0 + 1}), log, 1)
    assert r.bot_only is False and r.handoff_at == T0 + 1
    assert (r.assigned_at, r.first_response_at, r.first_response_s, r.agents) == (None, None, None, ())
    assert r.response_times_s == ()  # nobody held it: no response time started


def test_without_a_handoff_step_the_first_assignment_is_the_handoff() -> None:
    log = [assigned(1, 10, "a1"), say(2, 25, "agent", "您好", agent={"id": "a1"}), e(3, 30, "closed", reason="x")]
    r = build_record(closed_conv(), log, 1)
    assert (r.handoff_at, r.assigned_at, r.first_response_s) == (T0 + 10, T0 + 10, 15.0)
    assert r.bot_only is False and r.agents == ("a1",)


def test_a_transfer_to_a_queue_keeps_the_customers_wait_running() -> None:
    log = [assigned(1, 0, "a1"), say(2, 10, "customer", "在吗"),
           e(3, 12, "transferred", **{"from": {"id": "a1"}, "to": {"skill": "aftersale"}}),
           say(4, 30, "customer", "人呢"),  # while queued: not a new wait
           assigned(5, 50, "a3"), say(6, 70, "agent", "您好", agent={"id": "a3"}),
           assigned(7, 80, "a1")]  # held again by an agent seen before: listed once
    r = build_record(closed_conv(meta={"queued_at": T0}), log, 2)
    assert r.response_times_s == (60.0,) and r.agents == ("a1", "a3") and r.transfers == 1


def test_platform_shop_orders_and_the_closed_loop_fields() -> None:
    conv = closed_conv(channel="pdd", meta={"platform": {"platform": "pdd", "shop": "s-88", "buyer": "b-1"},
                                            "orders": ["o-1", "o-2", ""], "queued_at": T0})
    for name, value in (("resolution", "pending"), ("category", "logistics"), ("follow_up_at", T0 + 86400),
                        ("follow_up_note", "明天回访"), ("follow_up_done_at", T0 + 90000), ("reopened_from", "c-0")):
        if hasattr(conv, name):
            setattr(conv, name, value)
        else:  # a conversation model without the closed loop's fields: they come from meta
            conv.meta[name] = value
    r = build_record(conv, [e(1, 5, "closed", reason="pending")], 1)
    assert (r.channel, r.shop, r.orders) == ("pdd", "s-88", ("o-1", "o-2"))
    assert (r.resolution, r.category, r.follow_up_note, r.reopened_from) == ("pending", "logistics", "明天回访", "c-0")
    assert (r.follow_up_at, r.follow_up_done_at) == (T0 + 86400, T0 + 90000)


def test_the_closed_loop_fields_may_come_from_meta() -> None:
    conv = closed_conv(meta={"resolution": "unresolved", "category": "quality", "reopened_from": "c-9",
                             "follow_up_at": T0 + 60})
    r = build_record(conv, [], 1)
    assert (r.resolution, r.category, r.reopened_from, r.follow_up_at) == ("unresolved", "quality", "c-9", T0 + 60)
    assert r.follow_up_done_at is None and r.messages == [] and r.first_customer_text == ""


def test_a_record_round_trips_through_its_dict() -> None:
    conv = closed_conv(meta={"queued_at": T0 + 21.5, "orders": ["x"]})
    r = build_record(conv, LOG, 2)
    assert Record.from_dict(r.to_dict()) == r


def test_to_dict_is_dataclasses_asdict_with_lists() -> None:
    from dataclasses import asdict

    r = build_record(closed_conv(meta={"queued_at": T0 + 21.5, "orders": ["x"]}), LOG, 2)
    want = asdict(r)
    want["agents"], want["orders"], want["response_times_s"] = list(r.agents), list(r.orders), list(
        r.response_times_s)
    got = r.to_dict()
    assert got == want and list(got) == list(want)
    assert got["messages"][4]["agent"] is not r.messages[4]["agent"]  # a copy: changing it changes no record
