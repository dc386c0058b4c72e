"""Taobao TMC polling end to end: a fake TOP router that checks every signature."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.adapters.taobao import top_timestamp
from tests.adapter_fakes import FakeRelay, FakeTop, eventually, relay_post, text_record
from tests.support import Client, is_

APP, SECRET, SHOP = "12345678", "topsecret0001", "1001"


@pytest.fixture
async def top() -> AsyncIterator[FakeTop]:
    t = await FakeTop(APP, SECRET).start()
    yield t
    await t.stop()


async def start(gateway_app: Any, top: FakeTop, sign_method: str = "md5", **extra: Any) -> Any:
    shop = {"platform": "taobao", "shop_id": SHOP, "app_key": APP, "app_secret": SECRET, "api_base": top.api_base,
            "sign_method": sign_method, "poll_interval_s": 0.05, "access_token": "sess0001", **extra}
    return await gateway_app({"shops": [shop], "adapters": {"reconnect_max_s": 0.2}})


def refund(tid: str, refund_id: str, buyer: str = "tb买家") -> dict[str, Any]:
    return {"buyer_nick": buyer, "refund_fee": "99.00", "oid": tid, "tid": tid, "refund_id": refund_id,
            "seller_nick": "测试店铺", "modified": "2024-01-01 12:00:00", "refund_phase": "onsale"}


async def agent(gw: Any, agent_id: str) -> Client:
    c = await Client.connect(gw.ws_url + "/ws/agent")
    await c.send({"type": "hello", "agent": agent_id, "token": f"demo-{agent_id}"})
    await c.wait(is_("welcome"))
    return c


def test_top_timestamp_is_beijing_time() -> None:
    assert top_timestamp(1704081600.0) == "2024-01-01 12:00:00"  # 04:00 UTC


@pytest.mark.parametrize("method", ["md5", "hmac", "hmac-sha256"])
async def test_refund_consumed_stored_then_confirmed(gateway_app: Any, top: FakeTop, method: str) -> None:
    gw = await start(gateway_app, top, method)
    a2 = await agent(gw, "a2")
    top.publish(9001, "taobao_refund_RefundCreated", refund("3000000000000001", "r1"))
    await eventually(lambda: "9001" in top.confirmed, what="confirm")
    conv = (await a2.wait(is_("assigned")))["conversation"]
    assert conv["customer"] == {"id": f"taobao:{SHOP}:tb买家", "name": "tb买家"}
    assert conv["skill"] == "aftersale" and conv["priority"] == "high"
    assert conv["meta"]["orders"] == ["3000000000000001"] and conv["meta"]["aftersale"]["id"] == "r1"
    assert top.problems == []
    consume = next(c for c in top.calls if c["method"] == "taobao.tmc.messages.consume")
    assert consume["group_name"] == "default" and consume["sign_method"] == method and consume["session"] == "sess0001"
    await a2.close()


async def test_redeliveries_and_business_key_duplicates_stored_once(gateway_app: Any, top: FakeTop) -> None:
    gw = await start(gateway_app, top)
    top.publish(9101, "taobao_refund_RefundCreated", refund("3000000000000002", "r2"))
    top.publish(9102, "taobao_refund_RefundCreated", refund("3000000000000002", "r2"))  # same event, new id
    await eventually(lambda: {"9101", "9102"} <= set(top.confirmed), what="both confirmed")
    conv = await gw.ctx.store.customer_conversation(f"taobao:{SHOP}:tb买家")
    notes = [e for e in await gw.ctx.store.read_log(conv, 0) if e.get("internal")]
    assert len(notes) == 1


async def test_unconfirmed_after_a_store_failure_is_stored_on_redelivery(
        gateway_app: Any, top: FakeTop, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = await start(gateway_app, top)
    real = gw.ctx.store.handoff  # an after-sales event is one hand-off step (note, meta, routing)
    calls = 0

    async def flaky(*a: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("store down")
        return await real(*a, **kw)

    monkeypatch.setattr(gw.ctx.store, "handoff", flaky)
    top.publish(9201, "taobao_refund_RefundCreated", refund("3000000000000003", "r3", buyer="b3"))
    await eventually(lambda: "9201" in top.confirmed, what="confirmed after the redelivery")
    assert calls >= 2
    conv = await gw.ctx.store.customer_conversation(f"taobao:{SHOP}:b3")
    assert len([e for e in await gw.ctx.store.read_log(conv, 0) if e.get("internal")]) == 1


async def test_api_errors_back_off_and_recover(gateway_app: Any, top: FakeTop) -> None:
    gw = await start(gateway_app, top)
    top.script.queue = [500, 502, 503]
    top.publish(9301, "taobao_refund_RefundCreated", refund("3000000000000004", "r4", buyer="b4"))
    await eventually(lambda: "9301" in top.confirmed, what="confirmed once the API is back")
    assert await gw.ctx.store.customer_conversation(f"taobao:{SHOP}:b4")


async def test_a_wrong_secret_is_refused_by_top(gateway_app: Any, top: FakeTop) -> None:
    await start(gateway_app, top, app_secret="not-the-secret")
    top.publish(9401, "taobao_refund_RefundCreated", refund("3000000000000005", "r5"))
    await eventually(lambda: len(top.problems) >= 2, what="refused calls")
    assert set(top.problems) == {"sign"} and top.confirmed == []


async def test_bad_and_foreign_messages_are_confirmed_and_dropped(gateway_app: Any, top: FakeTop) -> None:
    gw = await start(gateway_app, top)
    top.pending["9501"] = {"id": 9501, "topic": "taobao_refund_RefundCreated", "user_id": 1001, "content": "{bad"}
    top.publish(9502, "taobao_item_ItemUpdate", {"num_iid": 1})
    top.publish(9503, "taobao_trade_TradeBuyerPay", {"tid": "3000000000000009", "buyer_nick": "nobody"})
    await eventually(lambda: {"9501", "9502", "9503"} <= set(top.confirmed), what="all confirmed")
    assert await gw.ctx.store.customer_conversation(f"taobao:{SHOP}:nobody") is None


async def test_trade_events_attach_to_the_buyers_open_chat(gateway_app: Any, top: FakeTop) -> None:
    relay = await FakeRelay(SHOP, "r").start()
    try:
        gw = await start(gateway_app, top, relay_secret="r", callback_url=relay.callback_url)
        await relay_post(gw.http_url, "taobao", SHOP, "r", [text_record("w1", "tb买家", "你好")])
        top.publish(9601, "taobao_trade_TradeSellerShip", {"tid": "3000000000000010", "buyer_nick": "tb买家",
                                                          "status": "WAIT_BUYER_CONFIRM_GOODS"})
        await eventually(lambda: "9601" in top.confirmed, what="confirmed")
        conv = await gw.ctx.store.customer_conversation(f"taobao:{SHOP}:tb买家")
        notes = [e for e in await gw.ctx.store.read_log(conv, 0) if e.get("internal")]
        assert notes and "卖家已发货" in notes[0]["text"] and "3000000000000010" in notes[0]["text"]
    finally:
        await relay.stop()
