"""Pinduoduo end to end: a fake message service (websocket) and API router on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.adapter_fakes import FakePdd, eventually, eventually_async
from tests.support import Client, is_

CID, SECRET, TOKEN, MALL = "pddcid0001", "pddsecret0001", "tok0001", 123456


@pytest.fixture
async def pdd() -> AsyncIterator[FakePdd]:
    p = await FakePdd(CID, SECRET, TOKEN).start()
    yield p
    await p.stop()


async def start(gateway_app: Any, pdd: FakePdd, secret: str = SECRET) -> Any:
    shop = {"platform": "pdd", "shop_id": str(MALL), "app_key": CID, "app_secret": secret, "access_token": TOKEN,
            "api_base": pdd.url + "/api/router", "message_base": pdd.ws_base}
    return await gateway_app({"shops": [shop], "adapters": {"heartbeat_s": 0.1, "reconnect_max_s": 0.2}})


def refund(tid: str, refund_id: int, **kw: Any) -> dict[str, Any]:
    return {"mall_id": MALL, "tid": tid, "refund_id": refund_id, "bill_type": 1, "refund_amount": 9900,
            "modified": 1700000000, **kw}


async def agent(gw: Any, agent_id: str) -> Client:
    c = await Client.connect(gw.ws_url + "/ws/agent")
    await c.send({"type": "hello", "agent": agent_id, "token": f"demo-{agent_id}"})
    await c.wait(is_("welcome"))
    return c


async def test_signed_connection_heartbeat_and_ack_after_store(gateway_app: Any, pdd: FakePdd) -> None:
    gw = await start(gateway_app, pdd)
    await eventually(lambda: pdd.connects == 1, what="connected")
    await eventually(lambda: pdd.heartbeats >= 2, what="heartbeats")
    a2 = await agent(gw, "a2")
    await pdd.push(1001, "pdd_refund_RefundCreated", MALL, refund("231127-123456789012345", 77))
    await eventually(lambda: pdd.acks, what="an Ack")
    ack = pdd.acks[0]
    assert ack["commandType"] == "Ack" and ack["id"] == 1001 and ack["mallID"] == MALL
    assert ack["type"] == "pdd_refund_RefundCreated" and isinstance(ack["sendTime"], int)
    # stored before the Ack: the conversation exists and is routed to after-sales
    conv = (await a2.wait(is_("assigned")))["conversation"]
    assert conv["skill"] == "aftersale" and conv["priority"] == "high" and conv["channel"] == "pdd"
    assert conv["meta"]["orders"] == ["231127-123456789012345"]
    assert conv["meta"]["aftersale"]["status"] == "买家申请退款"
    await a2.close()


async def test_unacked_frames_come_again_after_a_reconnect_and_are_stored_once(gateway_app: Any,
                                                                               pdd: FakePdd) -> None:
    gw = await start(gateway_app, pdd)
    await eventually(lambda: pdd.connects == 1, what="connected")
    await pdd.push(2001, "pdd_refund_RefundCreated", MALL, refund("231127-000000000000001", 88))
    await eventually(lambda: pdd.acks, what="Ack")
    pdd.unacked["2001"] = {**(pdd.acks[0] | {}), "commandType": "Common", "id": 2001, "sendTime": 1,
                           "message": {"type": "pdd_refund_RefundCreated", "mallID": MALL,
                                       "content": '{"mall_id":123456,"tid":"231127-000000000000001",'
                                                  '"refund_id":88,"bill_type":1,"refund_amount":9900,'
                                                  '"modified":1700000000}'}}
    await pdd.drop_connections()  # the service resends 2001 on the next connection
    await eventually(lambda: pdd.connects >= 2, what="reconnected")
    await eventually(lambda: len(pdd.acks) >= 2, what="the resent frame acknowledged")
    # the same event under another id (business key) is a duplicate too
    await pdd.push(2002, "pdd_refund_RefundCreated", MALL, refund("231127-000000000000001", 88))
    await eventually(lambda: len(pdd.acks) >= 3, what="Ack of the copy")
    conv = await gw.ctx.store.customer_conversation(f"pdd:{MALL}:order-231127-000000000000001")
    assert conv is not None
    notes = [e for e in await gw.ctx.store.read_log(conv, 0) if e.get("internal")]
    assert len(notes) == 1


async def test_bad_frames_never_crash_the_client(gateway_app: Any, pdd: FakePdd) -> None:
    gw = await start(gateway_app, pdd)
    await eventually(lambda: pdd.connects == 1, what="connected")
    for ws in pdd.sockets:
        await ws.send_str("not json")
        await ws.send_str('{"commandType":"Common","id":5,"message":{"type":"pdd_refund_X","mallID":123456,'
                          '"content":"{broken"}}')
    await pdd.push(3001, "pdd_trade_TradeConfirmed", 999, {"tid": "1"})  # a mall we do not serve
    await pdd.push(3002, "pdd_refund_RefundCreated", MALL, refund("231127-000000000000003", 99))
    await eventually(lambda: any(a["id"] == 3002 for a in pdd.acks), what="good frame acknowledged")
    assert {a["id"] for a in pdd.acks} >= {5, 3001, 3002}  # unparseable ones are acknowledged and dropped
    assert pdd.connects == 1
    assert await gw.ctx.store.customer_conversation(f"pdd:{MALL}:order-231127-000000000000003")


async def test_a_wrong_secret_never_connects(gateway_app: Any, pdd: FakePdd) -> None:
    await start(gateway_app, pdd, secret="wrong")
    await eventually(lambda: pdd.bad_connects >= 2, what="retried with back-off")
    assert pdd.connects == 0


async def test_store_down_means_no_ack(gateway_app: Any, pdd: FakePdd, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = await start(gateway_app, pdd)
    await eventually(lambda: pdd.connects == 1, what="connected")
    rt = gw.ctx  # the ingest path raises as a Redis store would when it is down
    calls = 0
    real = rt.store.handoff  # an after-sales event is one hand-off step (note, meta, routing)

    async def down(*a: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("store down")
        return await real(*a, **kw)

    monkeypatch.setattr(rt.store, "handoff", down)
    await pdd.push(4001, "pdd_refund_RefundCreated", MALL, refund("231127-000000000000004", 11))
    await eventually(lambda: calls >= 1, what="tried to store")
    # barrier: one connection's frames are handled in order, so once the next one is acknowledged the
    # first was handled, without an ack
    await pdd.push(4002, "pdd_refund_RefundCreated", MALL, refund("231127-000000000000005", 12))
    await eventually(lambda: pdd.acks, what="the next event acknowledged")
    assert [a["id"] for a in pdd.acks] == [4002] and "4001" in pdd.unacked
    await pdd.drop_connections()  # redelivered on reconnect, stored this time (the claim was released)
    await eventually(lambda: any(a["id"] == 4001 for a in pdd.acks), what="acknowledged after the retry")
    conv = await gw.ctx.store.customer_conversation(f"pdd:{MALL}:order-231127-000000000000004")
    assert len([e for e in await gw.ctx.store.read_log(conv, 0) if e.get("internal")]) == 1


async def test_agent_order_lookup_through_the_signed_api(gateway_app: Any, pdd: FakePdd) -> None:
    gw = await start(gateway_app, pdd)
    a2 = await agent(gw, "a2")
    await eventually(lambda: pdd.connects == 1, what="connected")
    await pdd.push(5001, "pdd_refund_RefundCreated", MALL, refund("231127-555555555555555", 5))
    conv = (await a2.wait(is_("assigned")))["conversation"]["id"]
    url = f"{gw.http_url}/api/adapters/orders/{conv}/231127-555555555555555"
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers={"Authorization": "Bearer demo-a2", "X-Agent-Id": "a2"}) as r:
            assert r.status == 200, await r.text()
            got = await r.json()
        async with s.get(url, headers={"Authorization": "Bearer demo-a1", "X-Agent-Id": "a1"}) as r:
            assert r.status == 403  # a1 does not hold it
        async with s.get(url) as r:
            assert r.status == 401
    assert got["data"]["order_info_get_response"]["order_info"]["order_sn"] == "231127-555555555555555"
    call = pdd.api_calls[0]
    assert call["type"] == "pdd.order.information.get" and call["order_sn"] == "231127-555555555555555"
    assert call["client_id"] == CID and call["access_token"] == TOKEN and call["data_type"] == "JSON"
    assert pdd.api_problems == []
    c = await eventually_async(lambda: gw.ctx.store.get_conversation(conv))
    assert "231127-555555555555555" in c.meta["order_details"]
    await a2.close()
