"""Bad input over real websockets: the documented error, the server keeps serving, nothing stored."""

from __future__ import annotations

import json

from tests.e2e import agent, agents_cfg, barrier, customer, say
from tests.support import Client, is_, until


async def _log_len(app, conv: str) -> int:
    return len(await app.ctx.store.read_log(conv))


async def test_malformed_binary_unknown_and_bad_fields_keep_the_connection(gateway_app) -> None:
    app = await gateway_app()
    c, w = await customer(app.ws_url, "u-bad")
    conv = w["conversation"]
    await c.send_raw("{not json")
    await c.send_raw(b"\x00\x01binary")
    await c.send_raw("[1,2,3]")
    await c.send({"type": "nope", "id": "u1"})
    await c.send({"type": "message", "id": "e1"})  # no text
    await c.send({"type": "message", "id": "e2", "text": 42})
    await c.send({"type": "message", "id": "x" * 65, "text": "hi"})
    await c.send({"type": "message", "id": "big", "text": "长" * 4001})
    errors = await c.wait_count(is_("error"), 8)
    codes = [e["code"] for e in errors]
    assert codes == ["bad_frame", "bad_frame", "bad_frame", "unknown_type", "bad_frame", "bad_frame",
                     "bad_frame", "too_large"]
    assert errors[3]["id"] == "u1" and errors[4]["id"] == "e1" and errors[7]["id"] == "big"
    assert all(isinstance(e["message"], str) and e["message"] for e in errors)
    assert await _log_len(app, conv) == 0, "nothing stored"
    # still serving this connection
    await say(c, "ok1", "什么时候发货")
    assert c.close_code is None


async def test_oversized_frame_closes_1009_and_others_keep_working(gateway_app) -> None:
    app = await gateway_app()
    other, _ = await customer(app.ws_url, "u-other")
    c, w = await customer(app.ws_url, "u-huge")
    await c.send_raw(json.dumps({"type": "message", "id": "h", "text": "x" * (70 * 1024)}))
    assert await c.wait_closed() == 1009
    assert await _log_len(app, w["conversation"]) == 0
    await say(other, "m1", "什么时候发货")


def _frame_of(size: int, mid: str) -> str:
    """A message frame of exactly ``size`` bytes (padded with a field the gateway ignores)."""
    base = json.dumps({"type": "message", "id": mid, "text": "什么时候发货", "pad": ""}, ensure_ascii=False)
    frame = json.dumps({"type": "message", "id": mid, "text": "什么时候发货",
                        "pad": "x" * (size - len(base.encode()))}, ensure_ascii=False)
    assert len(frame.encode()) == size
    return frame


async def test_a_frame_of_exactly_64_kib_is_taken_one_byte_more_closes_1009(gateway_app) -> None:
    app = await gateway_app()
    c, _ = await customer(app.ws_url, "u-edge")
    await c.send_raw(_frame_of(64 * 1024, "exact"))
    await c.wait(lambda f: f.get("type") == "ack" and f.get("id") == "exact", what="ack of the 64 KiB frame")
    assert c.close_code is None
    await c.send_raw(_frame_of(64 * 1024 + 1, "over"))
    assert await c.wait_closed() == 1009


async def test_flooding_is_rate_limited_and_not_stored(gateway_app) -> None:
    app = await gateway_app({"limits": {"customer_messages": 5, "customer_window_s": 30}})
    c, w = await customer(app.ws_url, "u-flood")
    for i in range(8):
        await c.send({"type": "message", "id": f"f{i}", "text": f"第{i}条"})
    acks = await c.wait_count(lambda f: f.get("type") == "ack", 5)
    limited = await c.wait_count(lambda f: f.get("code") == "rate_limited", 3)
    await barrier(c)  # all 8 handled, every reply to them in
    assert len(c.of(lambda f: f.get("type") == "ack")) == 5 == len(acks)
    assert sorted(e["id"] for e in limited) == ["f5", "f6", "f7"]
    texts = [e.get("text") for e in await app.ctx.store.read_log(w["conversation"]) if e.get("from") == "customer"]
    assert texts == [f"第{i}条" for i in range(5)]
    # others are served meanwhile
    o, _ = await customer(app.ws_url, "u-calm")
    await say(o, "m1", "什么时候发货")


async def test_hello_problems(gateway_app) -> None:
    app = await gateway_app({"limits": {"hello_timeout_s": 0.5}, "customers": {"secret": "s3cret"}})
    # no hello in time
    c = await Client.connect(f"{app.ws_url}/ws/customer")
    assert await c.wait_closed() == 4408
    # not a hello / malformed first frame
    for first in ('{"type":"message","text":"hi"}', "garbage", '{"type":"hello","customer":"u-1"}'):
        c = await Client.connect(f"{app.ws_url}/ws/customer")
        await c.send_raw(first)
        assert await c.wait_closed() == 4400, first
    # bad or missing signature when the server sets a customer secret
    for sig in ("00" * 32, None):
        c = await Client.connect(f"{app.ws_url}/ws/customer")
        hello = {"type": "hello", "customer": {"id": "u-sig"}}
        if sig:
            hello["signature"] = sig
        await c.send(hello)
        assert await c.wait_closed() == 4401
    # the right signature works
    from gateway.service.tokens import customer_signature

    c, w = await customer(app.ws_url, "u-sig", signature=customer_signature("s3cret", "u-sig"))
    assert w["customer"] == "u-sig"
    assert not [k for k in await app.ctx.store.queue_lengths()]


async def test_agent_bad_token_unknown_agent_and_not_assigned(gateway_app) -> None:
    app = await gateway_app({"agents": agents_cfg(("b1", ["presale"], 2), ("b2", ["presale"], 2))})
    for hello in ({"agent": "b1", "token": "wrong"}, {"agent": "ghost", "token": "tok-b1"}, {"agent": "b1"}):
        a = await Client.connect(f"{app.ws_url}/ws/agent")
        await a.send({"type": "hello", **hello})
        assert await a.wait_closed() == 4401
    b1, _ = await agent(app.ws_url, "b1", "tok-b1")
    b2, _ = await agent(app.ws_url, "b2", "tok-b2", status="away")
    c, w = await customer(app.ws_url, "u-na")
    conv = w["conversation"]
    await say(c, "m1", "转人工")
    await b1.wait(is_("assigned"))
    before = await _log_len(app, conv)
    for frame in ({"type": "message", "id": "x1", "conversation": conv, "text": "我来"},
                  {"type": "close", "id": "x2", "conversation": conv, "resolution": "resolved"},
                  {"type": "transfer", "id": "x3", "conversation": conv, "skill": "logistics"},
                  {"type": "message", "id": "x4", "conversation": "c-unknown", "text": "?"}):
        await b2.send(frame)
        err = await b2.wait(is_("error", id=frame["id"]))
        assert err["code"] == "not_assigned", err
    assert await _log_len(app, conv) == before
    await b1.send({"type": "transfer", "id": "t", "conversation": conv})
    assert (await b1.wait(is_("error", id="t")))["code"] == "bad_frame"
    await b1.send({"type": "status", "id": "s", "status": "sleeping"})
    assert (await b1.wait(is_("error", id="s")))["code"] == "bad_frame"


async def test_second_agent_connection_replaces_the_first(gateway_app) -> None:
    app = await gateway_app({"agents": agents_cfg(("r1", ["presale"], 2))})
    first, _ = await agent(app.ws_url, "r1", "tok-r1")
    c, w = await customer(app.ws_url, "u-rep")
    await say(c, "m1", "转人工")
    await first.wait(is_("assigned"))
    first_peer = app.ctx.hub.agents["r1"]
    second, w2 = await agent(app.ws_url, "r1", "tok-r1")
    assert await first.wait_closed() == 1000
    assert [x["id"] for x in w2["conversations"]] == [w["conversation"]]
    await say(c, "m2", "有人吗")
    await second.wait(lambda f: f.get("text") == "有人吗")
    # the first socket's session has run to its end (stopping its outbox is its last step, after
    # whatever it does for the agent on the way out): nothing of it can come later
    await until(lambda: first_peer.closed, what="the first session's end")
    state = await app.ctx.store.get_agent("r1")
    assert state is not None and state.status.value == "online", "the old socket's close does not sign it out"
    assert state.held == [w["conversation"]]
    await second.send({"type": "message", "id": "g", "conversation": w["conversation"], "text": "在的"})
    await c.wait(lambda f: f.get("text") == "在的")


async def test_a_message_of_only_zero_width_characters_is_refused_and_not_stored(gateway_app) -> None:
    app = await gateway_app()
    c, w = await customer(app.ws_url, "u-zw")
    await c.send({"type": "message", "id": "zw", "text": "\u200b\u200c\ufeff"})
    err = await c.wait(lambda f: f.get("type") == "error" and f.get("id") == "zw", what="bad_frame")
    assert err["code"] == "bad_frame"
    await say(c, "ok", "什么时候发货")  # barrier: the next message is stored and acked
    texts = [e.get("text") for e in await app.ctx.store.read_log(w["conversation"]) if e.get("from") == "customer"]
    assert texts == ["什么时候发货"]


async def test_a_web_hello_cannot_name_a_platform_buyer(gateway_app) -> None:
    app = await gateway_app()
    for cid in ("pdd:123456:b-42", "Douyin:shop:x", "taobao:s:买家"):
        c = await Client.connect(f"{app.ws_url}/ws/customer")
        await c.send({"type": "hello", "customer": {"id": cid}})
        err = await c.wait(is_("error"), what=f"refusal of {cid}")
        assert err["code"] == "unauthorized" and await c.wait_closed() == 4401
        assert await app.ctx.store.customer_conversation(cid) is None  # nothing opened under that id
    ok, w = await customer(app.ws_url, "pddfan:not-a-platform")  # only the platforms' own prefixes are taken
    assert w["customer"] == "pddfan:not-a-platform"
    await ok.close()


async def test_vip_counts_only_in_a_signed_hello(gateway_app) -> None:
    from gateway.service.tokens import customer_signature

    async def priority_after_handoff(app, cid: str, **hello) -> str:  # type: ignore[no-untyped-def]
        c = await Client.connect(f"{app.ws_url}/ws/customer")
        await c.send({"type": "hello", "customer": {"id": cid, "vip": True}, **hello})
        w = await c.wait(is_("welcome"))
        await say(c, "h", "转人工")
        await c.wait(lambda f: f.get("from") == "system" and "转接" in f.get("text", ""), what="hand-off notice")
        conv = await app.ctx.store.get_conversation(w["conversation"])
        await c.close()
        return conv.priority.value

    open_app = await gateway_app()
    assert await priority_after_handoff(open_app, "u-claims-vip") == "normal"  # no secret: a claim, not a fact
    signed_app = await gateway_app({"customers": {"secret": "s3cret"}})
    assert await priority_after_handoff(signed_app, "u-real-vip",
                                        signature=customer_signature("s3cret", "u-real-vip")) == "high"


async def test_without_a_secret_naming_another_web_customer_reaches_nothing_of_theirs(gateway_app) -> None:
    app = await gateway_app()  # the demo config: no [customers] secret
    victim, vw = await customer(app.ws_url, "u-victim")
    await say(victim, "v1", "我的订单123456789012什么时候到")
    impostor, iw = await customer(app.ws_url, "u-victim")  # the same id, claimed
    assert iw["conversation"] != vw["conversation"]
    assert all(e.get("from") != "customer" for e in iw["messages"])  # none of the victim's log
    await say(impostor, "i1", "在吗")
    victim_log = await app.ctx.store.read_log(vw["conversation"])
    assert [e["text"] for e in victim_log if e.get("from") == "customer"] == ["我的订单123456789012什么时候到"]
    # the victim's conversation opens only with its own token: the impostor's token does not fit it
    c = await Client.connect(f"{app.ws_url}/ws/customer")
    await c.send({"type": "hello", "customer": {"id": "u-victim"},
                  "resume": {"conversation": vw["conversation"], "token": iw["token"]}})
    assert (await c.wait(is_("error")))["code"] == "unauthorized" and await c.wait_closed() == 4401
    await victim.close()
    await impostor.close()
