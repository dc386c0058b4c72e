"""抖音私信 end to end: signed webhooks into a real gateway, replies to a fake open API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.adapters import signing
from tests.adapter_fakes import FakeDouyin, douyin_event, douyin_push, eventually, eventually_async

SECRET = "awsecret"
ACCOUNT = "acct-open-id"
TOKEN = "act.douyin-token"
FAST = {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "max_attempts": 4, "request_timeout_s": 2.0}


@pytest.fixture
async def douyin() -> AsyncIterator[FakeDouyin]:
    d = await FakeDouyin(TOKEN).start()
    yield d
    await d.stop()


async def start(gateway_app: Any, douyin: FakeDouyin, **adapters: Any) -> Any:
    shop = {"platform": "douyin", "shop_id": "dy-1", "app_key": "awkey", "app_secret": SECRET,
            "access_token": TOKEN, "open_id": ACCOUNT, "api_base": douyin.url}
    return await gateway_app({"shops": [shop], "adapters": {**FAST, **adapters}})


async def conv_log(gw: Any, buyer: str) -> list[dict[str, Any]]:
    conv = await gw.ctx.store.customer_conversation(f"douyin:dy-1:{buyer}")
    return await gw.ctx.store.read_log(conv, 0) if conv else []


async def test_verify_webhook_challenge_echoed(gateway_app: Any, douyin: FakeDouyin) -> None:
    gw = await start(gateway_app, douyin)
    # the shared vector's exact body and signature
    body = {"event": "verify_webhook", "client_key": "awkey", "content": {"challenge": 12345}}
    status, got = await douyin_push(gw.http_url, SECRET, body, signature="166891e7340c6a2f61845fed88ad783775af4a51")
    assert (status, got) == (200, {"challenge": 12345})
    # the local-life doc sends content as a JSON string
    body2 = {"event": "verify_webhook", "client_key": "awkey", "content": json.dumps({"challenge": "abc"})}
    assert await douyin_push(gw.http_url, SECRET, body2) == (200, {"challenge": "abc"})
    status, _ = await douyin_push(gw.http_url, "wrong", body)
    assert status == 401


async def test_a_dm_is_answered(gateway_app: Any, douyin: FakeDouyin) -> None:
    gw = await start(gateway_app, douyin)
    status, body = await douyin_push(gw.http_url, SECRET, douyin_event("srv-1", "buyer-1", ACCOUNT, "什么时候发货"))
    assert status == 200 and body["status"] == "stored"
    await eventually(lambda: douyin.sent, what="a send to /im/send/msg/")
    sent = douyin.sent[0]
    assert "48小时" in sent["content"]["text"]["text"] and sent["content"]["msg_type"] == 1
    assert sent["to_user_id"] == "buyer-1" and sent["open_id"] == ACCOUNT
    assert sent["conversation_id"] == "conv-buyer-1" and sent["msg_id"] == "srv-1"
    assert douyin.problems == []
    entries = await conv_log(gw, "buyer-1")
    assert entries[0]["text"] == "什么时候发货"
    conv = await gw.ctx.store.get_conversation(body["conversation"])
    assert conv.customer_name == "抖音买家" and conv.channel == "douyin"


async def test_a_dm_longer_than_a_customer_may_send_is_kept_cut_to_the_limit(gateway_app: Any,
                                                                             douyin: FakeDouyin) -> None:
    gw = await start(gateway_app, douyin)
    limit = gw.ctx.config.limits.max_text_chars
    status, body = await douyin_push(gw.http_url, SECRET, douyin_event("srv-long", "buyer-long", ACCOUNT, "长" * 300_000))
    assert status == 200 and body["status"] == "stored"
    entries = await conv_log(gw, "buyer-long")
    assert entries[0]["text"] == "长" * limit


async def test_retried_deliveries_are_stored_once(gateway_app: Any, douyin: FakeDouyin) -> None:
    gw = await start(gateway_app, douyin)
    ev = douyin_event("srv-2", "buyer-2", ACCOUNT, "什么时候发货", content_as_string=False)
    results = [await douyin_push(gw.http_url, SECRET, ev, msg_id="delivery-7") for _ in range(4)]  # 1 + 3 retries
    assert [r[1]["status"] for r in results] == ["stored", "duplicate", "duplicate", "duplicate"]
    await eventually(lambda: douyin.sent, what="answer")
    # barrier: the buyer's next message is answered, so a second answer to the first would be out already
    # (one buyer's turns run in order, and one shop's sends go out in order)
    await douyin_push(gw.http_url, SECRET, douyin_event("srv-2b", "buyer-2", ACCOUNT, "尺码怎么选"))
    await eventually(lambda: len(douyin.sent) >= 2, what="the answer to the next message")
    assert [s["msg_id"] for s in douyin.sent] == ["srv-2", "srv-2b"]
    assert [e["from"] for e in await conv_log(gw, "buyer-2")] == ["customer", "bot", "customer", "bot"]


async def test_bad_or_missing_signature_refused_nothing_stored(gateway_app: Any, douyin: FakeDouyin) -> None:
    gw = await start(gateway_app, douyin)
    ev = douyin_event("srv-3", "buyer-3", ACCOUNT, "你好")
    for sig in ("", "0" * 40, signing.douyin_webhook_sign("other-secret", b"{}")):
        status, body = await douyin_push(gw.http_url, SECRET, ev, signature=sig)
        assert status == 401 and body["error"] == "unauthorized"
    status, _ = await douyin_push(gw.http_url, SECRET, {**ev, "client_key": "someone-else"})
    assert status == 401
    assert await conv_log(gw, "buyer-3") == []


async def test_bad_payloads_get_400(gateway_app: Any, douyin: FakeDouyin) -> None:
    gw = await start(gateway_app, douyin)
    bad = [
        {**douyin_event("s", "b", ACCOUNT, "x"), "content": "{not json"},
        {**douyin_event("s", "b", ACCOUNT, "x"), "content": json.dumps({"server_message_id": "s",
                                                                         "message_type": "text"})},
        {**douyin_event("s", "b", ACCOUNT, "x"), "from_user_id": ""},
        {"event": "verify_webhook", "client_key": "awkey", "content": {}},
    ]
    for ev in bad:
        status, body = await douyin_push(gw.http_url, SECRET, ev)
        assert status == 400, (ev, body)
    assert await gw.ctx.store.customer_conversation("douyin:dy-1:b") is None


async def test_other_kinds_and_events(gateway_app: Any, douyin: FakeDouyin) -> None:
    gw = await start(gateway_app, douyin)
    status, body = await douyin_push(gw.http_url, SECRET, douyin_event("srv-4", "buyer-4", ACCOUNT, "",
                                                                          message_type="image"))
    assert body["status"] == "stored"
    status, body = await douyin_push(gw.http_url, SECRET, douyin_event("srv-5", "buyer-4", ACCOUNT, "",
                                                                          message_type="sticker-v9"))
    assert [e["text"] for e in await conv_log(gw, "buyer-4")] == ["[图片]", "[暂不支持的消息类型]"]
    sent_event = {**douyin_event("srv-6", ACCOUNT, "buyer-4", "我们发出的"), "event": "im_send_msg"}
    assert (await douyin_push(gw.http_url, SECRET, sent_event))[1]["status"] == "ignored"
    group = douyin_event("srv-7", "buyer-5", ACCOUNT, "群里的话", content_as_string=False)
    group["content"]["conversation_type"] = 2
    assert (await douyin_push(gw.http_url, SECRET, group))[1]["status"] == "ignored"
    assert await gw.ctx.store.customer_conversation("douyin:dy-1:buyer-5") is None
    # barrier: a text from the same buyer is answered, so a turn for the image would have been out before
    await douyin_push(gw.http_url, SECRET, douyin_event("srv-4t", "buyer-4", ACCOUNT, "什么时候发货"))
    await eventually(lambda: douyin.sent, what="the answer to the text")
    assert [s["msg_id"] for s in douyin.sent] == ["srv-4t"]  # no bot turn for an image


async def test_api_down_then_up_retried_in_order(gateway_app: Any, douyin: FakeDouyin) -> None:
    gw = await start(gateway_app, douyin)
    douyin.script.queue = [500, 503]
    await douyin_push(gw.http_url, SECRET, douyin_event("srv-8", "buyer-6", ACCOUNT, "什么时候发货"))
    await douyin_push(gw.http_url, SECRET, douyin_event("srv-9", "buyer-6", ACCOUNT, "尺码怎么选"))
    await eventually(lambda: len(douyin.sent) >= 2, what="both answers")
    texts = douyin.texts()
    assert "48小时" in texts[0] and "尺码" in texts[1]
    assert douyin.attempts == 4
    assert douyin.sent[1]["msg_id"] == "srv-9"  # each reply answers the latest buyer message


async def test_platform_error_code_is_not_retried(gateway_app: Any, douyin: FakeDouyin) -> None:
    gw = await start(gateway_app, douyin)
    douyin.error_code = 2190004
    await douyin_push(gw.http_url, SECRET, douyin_event("srv-10", "buyer-7", ACCOUNT, "什么时候发货"))
    await eventually_async(lambda: gw.ctx.store.dead_letters(), what="dead letter")
    dead = (await gw.ctx.store.dead_letters())[0]
    assert "2190004" in dead["error"] and dead["attempts"] == 1 and douyin.attempts == 1


REFUSED_TYPES: list[str | None] = [None, "text/plain", "application/x-www-form-urlencoded", "application/octet-stream",
                                   "application/json; charset=gbk", "application/jsonp", "multipart/form-data"]


async def test_content_type_must_be_json_else_415_before_anything(gateway_app: Any, douyin: FakeDouyin) -> None:
    gw = await start(gateway_app, douyin)
    ev = douyin_event("srv-ct", "buyer-ct", ACCOUNT, "你好")
    for ctype in REFUSED_TYPES:
        status, body = await douyin_push(gw.http_url, SECRET, ev, content_type=ctype)  # signed correctly
        assert status == 415 and body["ok"] is False and body["error"] == "unsupported_media_type", (ctype, body)
        assert "application/json" in body["message"]
    # 415 comes before the signature check: an unsigned, malformed form body is still a 415
    status, body = await douyin_push(gw.http_url, SECRET, b"a=1&b=2", signature="",
                                     content_type="application/x-www-form-urlencoded")
    assert (status, body["error"]) == (415, "unsupported_media_type")
    assert await conv_log(gw, "buyer-ct") == []
    # a charset parameter (any case) is allowed; the acknowledgement is as before
    status, body = await douyin_push(gw.http_url, SECRET, ev, content_type="Application/JSON; charset=UTF-8")
    assert status == 200 and body["ok"] is True and body["status"] == "stored"
    challenge = {"event": "verify_webhook", "client_key": "awkey", "content": {"challenge": 7}}
    assert await douyin_push(gw.http_url, SECRET, challenge, content_type="application/json;charset=utf-8") == (
        200, {"challenge": 7})


async def test_signature_is_checked_over_raw_bytes_before_parsing(gateway_app: Any, douyin: FakeDouyin) -> None:
    gw = await start(gateway_app, douyin)
    for raw in (b"{not json", b"", b"\xff\xfe", b'{"event": "im_receive_msg"'):
        for sig in ("", "0" * 40, signing.douyin_webhook_sign("other-secret", raw)):
            status, body = await douyin_push(gw.http_url, SECRET, raw, signature=sig)
            assert status == 401 and body["error"] == "unauthorized", (raw, sig, body)
        status, body = await douyin_push(gw.http_url, SECRET, raw)  # well signed, still malformed
        assert status == 400 and body["error"] == "bad_request", (raw, body)
    status, body = await douyin_push(gw.http_url, SECRET, b"[1, 2]")
    assert status == 400 and "JSON object" in body["message"]
    # the signature covers the bytes as received: a re-serialised body does not verify
    ev = douyin_event("srv-raw", "buyer-raw", ACCOUNT, "你好")
    spaced = json.dumps(ev, ensure_ascii=True).encode()
    compact_sig = signing.douyin_webhook_sign(SECRET, json.dumps(ev, ensure_ascii=False, separators=(",", ":"))
                                              .encode())
    assert (await douyin_push(gw.http_url, SECRET, spaced, signature=compact_sig))[0] == 401
    assert (await douyin_push(gw.http_url, SECRET, spaced))[1]["status"] == "stored"
