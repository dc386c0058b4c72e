"""抖店 message push end to end: signed pushes (the shared vectors' bodies) into a real gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.adapter_fakes import (
    FakeRelay,
    doudian_body,
    doudian_push,
    eventually,
    eventually_async,
    relay_post,
    text_record,
)
from tests.support import Client, is_

APP, SECRET, SHOP = "dk123", "dsecret", "7788"
VECTORS = Path(__file__).resolve().parent.parent.parent / "shared" / "sign_vectors.json"
if not VECTORS.is_file():
    VECTORS = Path("/work/shared/sign_vectors.json")

ENDPOINT_CHECK = '[{"tag":"0","msg_id":"0","data":"1700000000"}]'
REFUND_200 = ('[{"tag":"200","msg_id":"7300000000000000001","data":"{\\"aftersale_id\\":7300000000000000002,'
              '\\"aftersale_status\\":6,\\"aftersale_type\\":2,\\"apply_time\\":1700000000,\\"p_id\\":'
              '4912345678901234567,\\"s_id\\":4912345678901234567,\\"shop_id\\":7788}"}]')
ORDER = "4912345678901234567"


# read at import, not in the async tests (no file I/O on their loop)
_VECTORS: list[dict[str, Any]] = (json.loads(VECTORS.read_text(encoding="utf-8"))["vectors"]
                                  if VECTORS.is_file() else [])


def vector(vid: str) -> dict[str, Any]:
    for v in _VECTORS:
        if v["id"] == vid:
            return dict(v)
    raise KeyError(vid)


async def start(gateway_app: Any, relay: FakeRelay | None = None) -> Any:
    shop: dict[str, Any] = {"platform": "doudian", "shop_id": SHOP, "app_key": APP, "app_secret": SECRET}
    if relay is not None:
        shop |= {"relay_secret": "r-secret", "callback_url": relay.callback_url}
    return await gateway_app({"shops": [shop]})


async def agent(gw: Any, agent_id: str) -> Client:
    c = await Client.connect(gw.ws_url + "/ws/agent")
    await c.send({"type": "hello", "agent": agent_id, "token": f"demo-{agent_id}"})
    await c.wait(is_("welcome"))
    return c


def test_bodies_match_the_vectors() -> None:
    if _VECTORS:
        assert vector("doudian.push.endpoint_check")["inputs"]["body"] == ENDPOINT_CHECK
        assert vector("doudian.push.refund_200")["inputs"]["body"] == REFUND_200


async def test_endpoint_check(gateway_app: Any) -> None:
    gw = await start(gateway_app)
    status, body = await doudian_push(gw.http_url, APP, SECRET, ENDPOINT_CHECK,
                                      sign="4eea4b7fa61f6d21af1b3475b40b1d03")
    assert (status, body) == (200, {"code": 0, "msg": "success"})


async def test_refund_becomes_an_aftersales_conversation_with_the_order(gateway_app: Any) -> None:
    gw = await start(gateway_app)
    a2 = await agent(gw, "a2")  # aftersale + logistics
    status, body = await doudian_push(gw.http_url, APP, SECRET, REFUND_200, sign="ecd257edc9750192648bd734d7c9ddd2")
    assert (status, body) == (200, {"code": 0, "msg": "success"})
    conv = (await a2.wait(is_("assigned")))["conversation"]
    assert conv["skill"] == "aftersale" and conv["priority"] == "high" and conv["channel"] == "doudian"
    assert conv["meta"]["orders"] == [ORDER]
    assert conv["meta"]["aftersale"]["id"] == "7300000000000000002"
    assert conv["meta"]["aftersale"]["status"] == "买家发起售后申请"
    assert conv["customer"]["id"] == f"doudian:{SHOP}:order-{ORDER}"
    note = conv["messages"][0]
    assert note["internal"] is True and ORDER in note["text"] and "买家发起售后申请" in note["text"]
    # 仲裁 on the same order updates the same conversation
    body217 = doudian_body("217", "7300000000000000009", {"aftersale_id": 7300000000000000002, "p_id": int(ORDER),
                                                          "arbitrate_id": "a1", "shop_id": 7788})
    assert (await doudian_push(gw.http_url, APP, SECRET, body217))[0] == 200
    live = await a2.wait(lambda f: f.get("type") == "message" and "仲裁客服介入" in f.get("text", ""))
    assert live["conversation"] == conv["id"]
    c = await eventually_async(lambda: _meta_status(gw, conv["id"], "仲裁客服介入"), what="meta updated")
    assert c.meta["orders"] == [ORDER] and c.priority.value == "high"
    await a2.close()


async def _meta_status(gw: Any, conv: str, status: str) -> Any:
    c = await gw.ctx.store.get_conversation(conv)
    return c if c.meta.get("aftersale", {}).get("status") == status else None


async def test_duplicate_pushes_are_stored_once(gateway_app: Any) -> None:
    gw = await start(gateway_app)
    for _ in range(3):
        assert (await doudian_push(gw.http_url, APP, SECRET, REFUND_200))[1] == {"code": 0, "msg": "success"}
    # msgId spelling (fudiwei) is the same message
    again = REFUND_200.replace('"msg_id"', '"msgId"')
    assert (await doudian_push(gw.http_url, APP, SECRET, again))[0] == 200
    conv = await gw.ctx.store.customer_conversation(f"doudian:{SHOP}:order-{ORDER}")
    await eventually_async(lambda: _queued(gw, conv), what="handed off")
    notes = [e for e in await gw.ctx.store.read_log(conv, 0) if e.get("internal")]
    assert len(notes) == 1


async def _queued(gw: Any, conv: str) -> bool:
    c = await gw.ctx.store.get_conversation(conv)
    return c.state.value in ("queued", "assigned")


async def test_bad_signatures_are_refused(gateway_app: Any) -> None:
    gw = await start(gateway_app)
    v = vector("doudian.push.utf8_and_space") if _VECTORS else None
    cases = [
        (REFUND_200, "", APP),
        (REFUND_200, "ecd257edc9750192648bd734d7c9ddd3", APP),
        (REFUND_200, "ecd257edc9750192648bd734d7c9ddd2", "other-app"),
        (REFUND_200, None, "dk999"),
    ]
    if v is not None:  # renhonghai's whitespace-stripping sign must not pass
        cases.append((v["inputs"]["body"], v["outlier_renhonghai_notifySign"], APP))
    for body, sign, app_id in cases:
        status, answer = await doudian_push(gw.http_url, APP, SECRET, body, sign=sign, app_id=app_id)
        assert status == 401 and answer["code"] != 0, (sign, app_id)
    assert await gw.ctx.store.customer_conversation(f"doudian:{SHOP}:order-{ORDER}") is None
    # upper-case hex is the same signature
    status, _ = await doudian_push(gw.http_url, APP, SECRET, REFUND_200, sign="ECD257EDC9750192648BD734D7C9DDD2")
    assert status == 200


async def test_bad_payloads_get_400_nothing_stored(gateway_app: Any) -> None:
    gw = await start(gateway_app)
    for body in ('{"tag":"200"}', "[1]", '[{"tag":"200","msg_id":"1","data":"{oops"}]',
                 '[{"tag":"200","data":"{}"}]', "not json",
                 REFUND_200[:-1] + ',{"tag":"201","msg_id":"x","data":"[]"}]'):
        status, answer = await doudian_push(gw.http_url, APP, SECRET, body)
        assert status == 400 and answer["code"] == 1, body
    assert await gw.ctx.store.customer_conversation(f"doudian:{SHOP}:order-{ORDER}") is None


async def test_terminal_and_unknown_tags_do_not_open_conversations(gateway_app: Any) -> None:
    gw = await start(gateway_app)
    done = doudian_body("206", "m-206", {"aftersale_id": 1, "p_id": 555, "shop_id": 7788})
    other = doudian_body("9001", "m-9001", {"shop_id": 7788})
    for body in (done, other):
        assert (await doudian_push(gw.http_url, APP, SECRET, body))[1] == {"code": 0, "msg": "success"}
    assert await gw.ctx.store.customer_conversation(f"doudian:{SHOP}:order-555") is None


async def test_order_events_attach_to_the_buyers_open_conversation(gateway_app: Any) -> None:
    relay = await FakeRelay(SHOP, "r-secret").start()
    try:
        gw = await start(gateway_app, relay)
        a1 = await agent(gw, "a1")
        # the buyer sends an order card through the relay, then asks for a person
        card = {"msg_id": "c1", "buyer": {"id": "fg-buyer", "nick": "飞鸽买家"}, "kind": "ORDER_INFO",
                "order": "6900000000000000001"}
        await relay_post(gw.http_url, "doudian", SHOP, "r-secret", [card, text_record("c2", "fg-buyer", "转人工")])
        conv = (await a1.wait(is_("assigned")))["conversation"]["id"]
        shipped = doudian_body("102", "m-102", {"p_id": 6900000000000000001, "s_ids": [6900000000000000001],
                                                "shop_id": 7788, "order_status": 3, "update_time": 1700000100})
        assert (await doudian_push(gw.http_url, APP, SECRET, shipped))[1]["code"] == 0
        note = await a1.wait(lambda f: f.get("type") == "message" and "卖家已发货" in f.get("text", ""))
        assert note["internal"] is True and note["conversation"] == conv
        c = await eventually_async(lambda: _has_order_note(gw, conv), what="order status in meta")
        assert c.meta["platform_orders"]["6900000000000000001"]["status"] == "卖家已发货"
        # barrier: the agent's next reply reaches the relay, so the note logged before it was passed over
        await a1.send({"type": "message", "id": "r1", "conversation": conv, "text": "已为您查到物流"})
        await eventually(lambda: "已为您查到物流" in relay.texts(), what="the agent's reply at the relay")
        assert all("卖家已发货" not in a["text"] for a in relay.attempts)  # internal: not sent to the buyer
        # an order event for an order nobody mentioned is acknowledged and dropped
        lone = doudian_body("101", "m-101", {"p_id": 42, "shop_id": 7788})
        assert (await doudian_push(gw.http_url, APP, SECRET, lone))[1]["code"] == 0
        await a1.close()
    finally:
        await relay.stop()


async def _has_order_note(gw: Any, conv: str) -> Any:
    c = await gw.ctx.store.get_conversation(conv)
    return c if c.meta.get("platform_orders") else None


async def test_agent_reply_in_an_event_conversation_reports_no_route(gateway_app: Any) -> None:
    gw = await start(gateway_app)
    a2 = await agent(gw, "a2")
    await doudian_push(gw.http_url, APP, SECRET, REFUND_200)
    conv = (await a2.wait(is_("assigned")))["conversation"]["id"]
    await a2.send({"type": "message", "id": "x1", "conversation": conv, "text": "已收到退款申请"})
    seq = (await a2.wait(is_("ack", id="x1")))["seq"]
    failed = await a2.wait(lambda f: f.get("type") == "delivery" and f.get("entry_seq") == seq)
    assert failed["status"] == "failed" and failed["error"].startswith("no_route")
    await eventually(lambda: True)
    assert await gw.ctx.store.dead_letters() == []  # nothing was attempted
    await a2.close()


async def test_content_type_must_be_json_else_415_before_anything(gateway_app: Any) -> None:
    gw = await start(gateway_app)
    for ctype in (None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=gbk",
                  "text/json"):
        status, answer = await doudian_push(gw.http_url, APP, SECRET, REFUND_200, content_type=ctype)  # well signed
        assert status == 415 and answer["code"] == 1 and answer["error"] == "unsupported_media_type", (ctype, answer)
        assert "application/json" in answer["message"]
    # before the signature check too
    status, answer = await doudian_push(gw.http_url, APP, SECRET, "a=1", sign="", content_type="text/plain")
    assert status == 415 and answer["code"] == 1
    assert await gw.ctx.store.customer_conversation(f"doudian:{SHOP}:order-{ORDER}") is None
    # a charset parameter is allowed; the acknowledgement is exactly as before
    for ctype in ("application/json; charset=utf-8", "application/json;charset=UTF-8"):
        assert await doudian_push(gw.http_url, APP, SECRET, REFUND_200, content_type=ctype) == (
            200, {"code": 0, "msg": "success"})
        assert await doudian_push(gw.http_url, APP, SECRET, ENDPOINT_CHECK, content_type=ctype) == (
            200, {"code": 0, "msg": "success"})


async def test_signature_is_checked_over_raw_bytes_before_parsing(gateway_app: Any) -> None:
    gw = await start(gateway_app)
    for raw in (b"not json", b"", b"\xff\xfe[", b'[{"tag":"200"'):
        for sign, app_id in (("", APP), ("0" * 32, APP), (None, "dk999")):
            status, answer = await doudian_push(gw.http_url, APP, SECRET, raw, sign=sign, app_id=app_id)
            assert status == 401 and answer["code"] == 1 and answer["msg"] == "fail", (raw, sign, answer)
        status, answer = await doudian_push(gw.http_url, APP, SECRET, raw)
        assert status == 400 and answer["code"] == 1 and answer["msg"] == "fail", (raw, answer)
