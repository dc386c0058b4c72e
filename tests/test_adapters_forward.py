"""Signed relays end to end: a real gateway, a fake relay on loopback, agents on /ws/agent."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.adapter_fakes import FakeRelay, eventually, eventually_async, relay_post, text_record
from tests.support import Client, is_

SECRET = "relay-secret-1"
SHOP = "pdd-shop-1"
FAST = {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "max_attempts": 4, "request_timeout_s": 2.0}


@pytest.fixture
async def relay() -> AsyncIterator[FakeRelay]:
    r = await FakeRelay(SHOP, SECRET).start()
    yield r
    await r.stop()


def relay_shop(relay: FakeRelay, **kw: Any) -> dict[str, Any]:
    return {"platform": "pdd", "shop_id": SHOP, "relay_secret": SECRET, "callback_url": relay.callback_url, **kw}


async def start(gateway_app: Callable[..., Awaitable[Any]], relay: FakeRelay, **adapters: Any) -> Any:
    return await gateway_app({"shops": [relay_shop(relay)], "adapters": {**FAST, **adapters}})


async def agent(gw: Any, agent_id: str = "a1") -> Client:
    c = await Client.connect(gw.ws_url + "/ws/agent")
    await c.send({"type": "hello", "agent": agent_id, "token": f"demo-{agent_id}"})
    await c.wait(is_("welcome"))
    return c


async def customer_log(gw: Any, buyer: str) -> list[dict[str, Any]]:
    store = gw.ctx.store
    conv = await store.customer_conversation(f"pdd:{SHOP}:{buyer}")
    return await store.read_log(conv, 0) if conv else []


async def test_faq_question_answered_through_the_relay(gateway_app: Any, relay: FakeRelay) -> None:
    gw = await start(gateway_app, relay)
    status, body = await relay_post(gw.http_url, "pdd", SHOP, SECRET, [text_record("m1", "b1", "什么时候发货")])
    assert status == 200, body
    assert body["ok"] and body["results"][0]["status"] == "stored" and body["results"][0]["seq"] >= 1
    await eventually(lambda: relay.replies, what="the bot's answer at the relay")
    reply = relay.replies[0]
    assert "48小时" in reply["text"]
    assert reply["buyer"] == "b1" and reply["from"] == "bot" and reply["reply_to"] == "m1"
    assert reply["platform"] == "pdd" and reply["shop"] == SHOP and reply["msg_id"].startswith("gw-")
    assert not relay.rejected
    entries = await customer_log(gw, "b1")
    assert entries[0]["from"] == "customer" and entries[0]["platform"]["msg_id"] == "m1"
    conv = await gw.ctx.store.get_conversation(body["results"][0]["conversation"])
    assert conv.channel == "pdd" and conv.customer_name == "买家"


async def test_duplicates_are_stored_once(gateway_app: Any, relay: FakeRelay) -> None:
    gw = await start(gateway_app, relay)
    rec = text_record("m1", "b1", "什么时候发货")
    s1, b1 = await relay_post(gw.http_url, "pdd", SHOP, SECRET, [rec])
    s2, b2 = await relay_post(gw.http_url, "pdd", SHOP, SECRET, [rec, rec])
    assert (s1, s2) == (200, 200)
    assert b1["results"][0]["status"] == "stored"
    assert [r["status"] for r in b2["results"]] == ["duplicate", "duplicate"]
    await eventually(lambda: relay.replies, what="answer")
    # barrier: the buyer's next message is answered, so a second answer to m1 would have come first
    # (one buyer's turns run in order, and one shop's sends go out in order)
    await relay_post(gw.http_url, "pdd", SHOP, SECRET, [text_record("m2", "b1", "尺码怎么选")])
    await eventually(lambda: len(relay.replies) >= 2, what="the answer to m2")
    entries = await customer_log(gw, "b1")
    assert [e["platform"]["msg_id"] for e in entries if e.get("from") == "customer"] == ["m1", "m2"]
    assert [r["reply_to"] for r in relay.attempts] == ["m1", "m2"]


async def test_handoff_served_by_an_agent_whose_reply_reaches_the_relay(gateway_app: Any, relay: FakeRelay) -> None:
    gw = await start(gateway_app, relay)
    a1 = await agent(gw)
    status, body = await relay_post(gw.http_url, "pdd", SHOP, SECRET, [text_record("m1", "b9", "转人工", nick="小红")])
    assert status == 200
    assigned = await a1.wait(is_("assigned"))
    conv = assigned["conversation"]
    assert conv["customer"] == {"id": f"pdd:{SHOP}:b9", "name": "小红"} and conv["channel"] == "pdd"
    assert conv["meta"]["platform"]["buyer"] == "b9"
    # the hand-off notice reached the buyer
    await eventually(lambda: any("人工" in t for t in relay.texts("b9")), what="handoff notice")
    await a1.send({"type": "message", "id": "x1", "conversation": conv["id"], "text": "您好，我是小王，请问有什么可以帮您？"})
    ack = await a1.wait(is_("ack", id="x1"))
    await eventually(lambda: any(r["from"] == "agent" for r in relay.replies), what="agent reply at the relay")
    reply = next(r for r in relay.replies if r["from"] == "agent")
    assert reply["text"] == "您好，我是小王，请问有什么可以帮您？"
    assert reply["agent"] == {"id": "a1", "name": "小王"} and reply["seq"] == ack["seq"]
    sent = await a1.wait(lambda f: f.get("type") == "delivery" and f.get("entry_seq") == ack["seq"])
    assert sent["status"] == "sent" and sent["conversation"] == conv["id"]
    # the buyer writes again: the agent gets it live
    await relay_post(gw.http_url, "pdd", SHOP, SECRET, [text_record("m2", "b9", "我的订单还没到")])
    got = await a1.wait(lambda f: f.get("type") == "message" and f.get("text") == "我的订单还没到")
    assert got["conversation"] == conv["id"]
    await a1.close()


async def test_rating_prompt_and_a_digit_rates(gateway_app: Any, relay: FakeRelay) -> None:
    gw = await start(gateway_app, relay)
    a1 = await agent(gw)
    await relay_post(gw.http_url, "pdd", SHOP, SECRET, [text_record("m1", "b2", "转人工")])
    conv = (await a1.wait(is_("assigned")))["conversation"]["id"]
    await a1.send({"type": "close", "id": "k1", "conversation": conv, "resolution": "resolved"})
    await a1.wait(is_("ack", id="k1"))
    survey = gw.config.texts.platform_survey
    await eventually(lambda: survey in relay.texts("b2"), what="rating prompt")
    status, body = await relay_post(gw.http_url, "pdd", SHOP, SECRET, [text_record("m2", "b2", "5")])
    assert body["results"][0]["status"] == "rated"
    assert (await gw.ctx.store.get_conversation(conv)).rating == 5
    await eventually(lambda: "感谢您的评价！" in relay.texts("b2"), what="thanks")
    # a later digit is an ordinary message of a new conversation
    status, body = await relay_post(gw.http_url, "pdd", SHOP, SECRET, [text_record("m3", "b2", "4")])
    assert body["results"][0]["status"] == "stored" and body["results"][0]["conversation"] != conv
    await a1.close()


async def test_bad_signatures_and_stale_timestamps_are_refused(gateway_app: Any, relay: FakeRelay) -> None:
    gw = await start(gateway_app, relay)
    rec = [text_record("m1", "b1", "什么时候发货")]
    status, body = await relay_post(gw.http_url, "pdd", SHOP, "wrong-secret", rec)
    assert status == 401 and body["error"] == "unauthorized"
    status, _ = await relay_post(gw.http_url, "pdd", SHOP, SECRET, rec, sign="")
    assert status == 401
    status, _ = await relay_post(gw.http_url, "pdd", SHOP, SECRET, rec, ts=int(time.time()) - 3600)
    assert status == 401
    status, _ = await relay_post(gw.http_url, "pdd", "other-shop", SECRET, rec)
    assert status == 401
    status, _ = await relay_post(gw.http_url, "taobao", SHOP, SECRET, rec)  # the shop is a PDD shop
    assert status == 401
    status, _ = await relay_post(gw.http_url, "wechat", SHOP, SECRET, rec)
    assert status == 404
    assert await customer_log(gw, "b1") == []
    assert await gw.ctx.store.customer_conversation(f"pdd:{SHOP}:b1") is None


async def test_bad_payloads_get_400_and_nothing_is_stored(gateway_app: Any, relay: FakeRelay) -> None:
    gw = await start(gateway_app, relay, max_batch=3)
    good = text_record("m1", "b1", "你好")
    cases: list[tuple[bytes | None, list[dict[str, Any]], str]] = [
        (b"{not json", [], "JSON"),
        (b"[]", [], "records"),
        (None, [], "empty"),
        (None, [good, {"msg_id": "m2", "text": "x"}], "records[1].buyer"),
        (None, [good, text_record("", "b1", "x")], "records[1].msg_id"),
        (None, [good, text_record("m3", "b1", "  ")], "records[1].text"),
        (None, [good, text_record("m4", "b1", 5)], "records[1].text"),  # type: ignore[arg-type]
        (None, [good, text_record("m5", "b1", "x" * 5000)], "longer"),
        (None, [good] * 4, "at most 3"),
        (None, [good, "nope"], "records[1] must be an object"),  # type: ignore[list-item]
    ]
    for raw, records, needle in cases:
        status, body = await relay_post(gw.http_url, "pdd", SHOP, SECRET, records, body=raw)
        assert status == 400, (needle, body)
        assert needle in body["message"], (needle, body)
    assert await gw.ctx.store.customer_conversation(f"pdd:{SHOP}:b1") is None


async def test_kinds_are_mapped_and_unknown_ones_stored_as_placeholders(gateway_app: Any, relay: FakeRelay) -> None:
    gw = await start(gateway_app, relay)
    records = [
        {"msg_id": "k1", "buyer": {"id": "b5"}, "kind": 1, "url": "https://img.example/1.jpg"},  # PDD image
        {"msg_id": "k2", "buyer": {"id": "b5"}, "kind": 0, "sub_type": 1, "order": "231127-123456789012345"},
        {"msg_id": "k3", "buyer": {"id": "b5"}, "kind": "EMOTION"},
        {"msg_id": "k4", "buyer": {"id": "b5"}, "kind": "red_packet", "text": "恭喜发财"},
        {"msg_id": "k5", "buyer": {"id": "b5"}, "kind": 1002},
        {"msg_id": "k6", "buyer": {"id": 123456}, "kind": "goods_card", "text": "纯棉T恤 白色 L"},
    ]
    status, body = await relay_post(gw.http_url, "pdd", SHOP, SECRET, records)
    assert status == 200, body
    texts = [e["text"] for e in await customer_log(gw, "b5")]
    assert texts == ["[图片]", "[订单卡片] 231127-123456789012345", "[表情]", "[暂不支持的消息类型] 恭喜发财",
                     "[买家撤回了一条消息]"]
    entries = await customer_log(gw, "b5")
    assert entries[0]["platform"]["media_url"] == "https://img.example/1.jpg"
    assert entries[3]["platform"]["kind"] == "other"
    assert [e["text"] for e in await customer_log(gw, "123456")] == ["[商品卡片] 纯棉T恤 白色 L"]
    # an order card lists the order on the conversation; no bot answer for non-text kinds
    conv = await gw.ctx.store.get_conversation(body["results"][1]["conversation"])
    await eventually_async(lambda: _has_order(gw, conv.id, "231127-123456789012345"), what="order in meta")
    assert relay.replies == []


async def _has_order(gw: Any, conv: str, order: str) -> bool:
    c = await gw.ctx.store.get_conversation(conv)
    return order in c.meta.get("orders", [])


async def test_relay_down_then_up_is_retried_and_delivered_in_order(gateway_app: Any, relay: FakeRelay) -> None:
    gw = await start(gateway_app, relay)
    relay.script.queue = [503, 503, 502]
    await relay_post(gw.http_url, "pdd", SHOP, SECRET, [text_record("m1", "b3", "什么时候发货")])
    await relay_post(gw.http_url, "pdd", SHOP, SECRET, [text_record("m2", "b3", "尺码怎么选")])
    await eventually(lambda: len(relay.replies) >= 2, what="both answers")
    assert "48小时" in relay.replies[0]["text"] and "尺码" in relay.replies[1]["text"]
    assert [r["seq"] for r in relay.replies] == sorted(r["seq"] for r in relay.replies)
    assert len(relay.attempts) == 5  # 3 refused, then both
    assert [a["seq"] for a in relay.attempts[:4]] == [relay.replies[0]["seq"]] * 4


async def test_a_4xx_is_dead_lettered_and_the_agent_sees_failed(gateway_app: Any, relay: FakeRelay) -> None:
    gw = await start(gateway_app, relay)
    a1 = await agent(gw)
    await relay_post(gw.http_url, "pdd", SHOP, SECRET, [text_record("m1", "b4", "转人工")])
    conv = (await a1.wait(is_("assigned")))["conversation"]["id"]
    await eventually(lambda: relay.replies, what="handoff notice")
    relay.script.always = 400
    before = len(relay.attempts)
    await a1.send({"type": "message", "id": "x1", "conversation": conv, "text": "请提供订单号"})
    seq = (await a1.wait(is_("ack", id="x1")))["seq"]
    failed = await a1.wait(lambda f: f.get("type") == "delivery" and f.get("entry_seq") == seq)
    assert failed["status"] == "failed" and "400" in failed["error"]
    assert len(relay.attempts) == before + 1  # no retry on a 4xx
    note = await a1.wait(lambda f: f.get("type") == "message" and f.get("internal") is True)
    assert note["delivery"] == {"seq": seq, "status": "failed", "error": failed["error"]}
    async with aiohttp.ClientSession() as s:
        async with s.get(gw.http_url + "/api/adapters/failures") as r:
            assert r.status == 401
        async with s.get(gw.http_url + "/api/adapters/failures",
                         headers={"Authorization": "Bearer demo-admin"}) as r:
            assert r.status == 200
            dead = (await r.json())["failures"]
    assert dead[0]["conversation"] == conv and dead[0]["seq"] == seq and dead[0]["http_status"] == 400
    assert dead[0]["text"] == "请提供订单号" and dead[0]["attempts"] == 1 and dead[0]["shop"] == SHOP
    # the note is internal: never sent to the buyer (barrier: the agent's next reply, logged after the
    # note, reaches the relay, so the note was passed over)
    relay.script.always = 0
    await a1.send({"type": "message", "id": "x2", "conversation": conv, "text": "订单号收到了"})
    await eventually(lambda: "订单号收到了" in relay.texts(), what="the next reply at the relay")
    assert all("未能送达" not in a["text"] for a in relay.attempts)
    await a1.close()


async def test_exhausted_retries_are_dead_lettered(gateway_app: Any, relay: FakeRelay) -> None:
    gw = await start(gateway_app, relay, max_attempts=3)
    relay.script.always = 503
    await relay_post(gw.http_url, "pdd", SHOP, SECRET, [text_record("m1", "b6", "什么时候发货")])
    await eventually_async(lambda: gw.ctx.store.dead_letters(), what="a dead letter")
    dead = (await gw.ctx.store.dead_letters())[0]
    assert dead["attempts"] == 3 and dead["http_status"] == 503 and len(relay.attempts) == 3


async def test_replies_are_signed_for_the_relay(gateway_app: Any, relay: FakeRelay) -> None:
    gw = await start(gateway_app, relay)
    relay.secret = "the-relay-expects-another-secret"
    relay.script.always = 0
    await relay_post(gw.http_url, "pdd", SHOP, SECRET, [text_record("m1", "b7", "什么时候发货")])
    await eventually(lambda: relay.rejected, what="a rejected callback")
    assert relay.rejected[0] == "signature" and relay.replies == []
    await eventually_async(lambda: gw.ctx.store.dead_letters(), what="dead letter for 401")
    assert json.dumps((await gw.ctx.store.dead_letters())[0]["http_status"]) == "401"


async def test_content_type_must_be_json_else_415_before_anything(gateway_app: Any, relay: FakeRelay) -> None:
    gw = await start(gateway_app, relay)
    rec = [text_record("m1", "b1", "什么时候发货")]
    for ctype in (None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1",
                  "application/problem+json"):
        status, body = await relay_post(gw.http_url, "pdd", SHOP, SECRET, rec, content_type=ctype)  # well signed
        assert status == 415 and body["ok"] is False and body["error"] == "unsupported_media_type", (ctype, body)
        assert "application/json" in body["message"]
    # before the signature and timestamp checks too
    status, body = await relay_post(gw.http_url, "pdd", SHOP, SECRET, rec, sign="", ts=1, content_type="text/plain")
    assert (status, body["error"]) == (415, "unsupported_media_type")
    assert await customer_log(gw, "b1") == []
    status, body = await relay_post(gw.http_url, "pdd", SHOP, SECRET, rec, content_type="application/json; charset=utf-8")
    assert status == 200 and body["ok"] is True and body["results"][0]["status"] == "stored"


async def test_signature_is_checked_over_raw_bytes_before_parsing(gateway_app: Any, relay: FakeRelay) -> None:
    gw = await start(gateway_app, relay)
    for raw in (b"{not json", b"", b"\xff\xfe", b'{"records": ['):
        for secret, sign in (("wrong-secret", None), (SECRET, ""), (SECRET, "0" * 64)):
            status, body = await relay_post(gw.http_url, "pdd", SHOP, secret, [], body=raw, sign=sign)
            assert status == 401 and body["error"] == "unauthorized", (raw, sign, body)
        status, body = await relay_post(gw.http_url, "pdd", SHOP, SECRET, [], body=raw)
        assert status == 400 and body["error"] == "bad_request", (raw, body)
