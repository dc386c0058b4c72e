"""A closed socket leaves nothing behind (gateway/server/socket.py, customer.py, connections.py): its
objects and timers are freed by reference counting at once, and a conversation opened by a hello and
left without a word is not kept."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import websockets

from gateway.service.metrics import METRICS
from tests.e2e import customer, say
from tests.support import Client, T, is_, until


async def test_a_conversation_left_without_a_word_is_not_kept(gateway_app) -> None:
    app = await gateway_app({"texts": {"greeting": "您好，请问有什么可以帮您？"}})
    store = app.ctx.store
    before = METRICS.conversations_discarded._value.get()
    c, w = await customer(app.ws_url, "u-silent")
    assert w["messages"][0]["text"].startswith("您好")  # the greeting is in its log
    await c.close()
    await until(lambda: METRICS.conversations_discarded._value.get() == before + 1)
    assert await store.get_conversation(w["conversation"]) is None
    assert await store.customer_conversation("u-silent") is None
    again = await Client.connect(f"{app.ws_url}/ws/customer")  # its token now resumes nothing
    await again.send({"type": "hello", "resume": {"conversation": w["conversation"], "token": w["token"]}})
    assert (await again.wait(is_("error")))["code"] == "unauthorized" and await again.wait_closed() == 4401


async def test_a_conversation_with_a_message_or_another_watcher_is_kept(gateway_app) -> None:
    app = await gateway_app()
    store = app.ctx.store
    c, w = await customer(app.ws_url, "u-said")
    await say(c, "m", "什么时候发货")
    await c.wait(lambda f: f.get("from") == "bot", what="bot answer")
    await c.close()
    first, w2 = await customer(app.ws_url, "u-two-tabs")
    second, _ = await customer(app.ws_url, resume={"conversation": w2["conversation"], "token": w2["token"]})
    await first.close()
    await first.wait_closed()
    # barrier: the server has finished with the first socket once its peer left the hub
    await until(lambda: len(app.ctx.hub.watchers.get(w2["conversation"], ())) == 1)
    await say(second, "m2", "在吗")  # the second tab still writes into the same conversation
    assert await store.get_conversation(w["conversation"]) is not None
    assert await store.get_conversation(w2["conversation"]) is not None
    await second.close()


# The server's own objects per connection: all must go when the connection goes.
_SERVER_TYPES = ("RequestHandler", "Guarded", "WebSocketResponse", "WebSocketWriter", "CustomerSession", "Peer",
                 "WsOutlet", "Request", "StreamWriter", "Conversation", "_Log", "TimerHandle")


def census() -> collections.Counter[str]:
    """Live objects of those types (a cancelled timer holds nothing: the loop drops it in its own time)."""
    wanted = set(_SERVER_TYPES)
    return collections.Counter(n for o in gc.get_objects() if (n := type(o).__name__) in wanted
                               and not (n == "TimerHandle" and o.cancelled()))


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    """Only reference counting frees objects while the test runs: what is left is what would wait for
    a full collection (which the server's start-up GC settings make rare)."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
        gc.collect()


async def test_5000_sockets_opened_and_dropped_leave_no_objects_behind(gateway_app, no_cyclic_gc) -> None:
    app = await gateway_app({"limits": {"address_hellos": 100_000, "address_messages": 100_000,
                                        "hello_timeout_s": 0.3, "header_timeout_s": 0.3,
                                        "max_connections_per_address": 10_000}})
    ctx = app.ctx
    host, port = "127.0.0.1", int(app.http_url.rsplit(":", 1)[1])

    async def one(i: int) -> None:
        kind = i % 6
        if kind == 0:  # TCP only, never a request: closed at the header deadline
            _, w = await asyncio.open_connection(host, port)
            w.close()
            return
        if kind == 1:  # plain HTTP
            async with aiohttp.ClientSession() as s, s.get(app.http_url + "/healthz") as r:
                await r.read()
            return
        ws = await websockets.connect(f"{app.ws_url}/ws/customer", open_timeout=T)
        if kind == 2:  # no hello: closed 4408 by the hello timeout
            await ws.wait_closed()
            return
        await ws.send('{"type":"hello"}')
        await ws.recv()
        if kind == 3:
            await ws.close()
        elif kind == 4:  # gone without a close frame
            ws.transport.abort()
        else:  # a bad frame, then gone
            await ws.send("{not json")
            await ws.recv()
            ws.transport.abort()

    async def churn(n: int) -> None:
        for start in range(0, n, 500):
            await asyncio.gather(*(one(i) for i in range(start, min(n, start + 500))))
        # barrier: the server has closed every connection and ended every session
        await until(lambda: ctx.connections.open == 0 and not ctx.peers and not ctx.hub.watchers, 20)

    await churn(600)  # warm: first-use caches, pools, interned names
    baseline = census()
    await churn(5000)
    left = census()
    grown = {k: left[k] - baseline[k] for k in _SERVER_TYPES if left[k] > baseline[k] + 3}
    timers = [repr(o) for o in gc.get_objects() if type(o).__name__ == "TimerHandle" and not o.cancelled()]
    assert not grown, f"left behind after 5000 sockets: {grown}; timers: {timers[:5]}"


async def test_a_consumer_that_stops_reading_is_closed_1013_and_resumes_with_nothing_lost(gateway_app) -> None:
    from tests.e2e import agent, agents_cfg

    app = await gateway_app({"limits": {"send_queue": 16, "agent_messages": 1_000_000, "agent_window_s": 1},
                             "agents": agents_cfg(("a1", ["presale", "aftersale", "logistics"], 5))})
    a, _ = await agent(app.ws_url, "a1", "tok-a1")
    # max_queue=1: the client library stops reading the socket as soon as one frame waits unread
    slow = await websockets.connect(f"{app.ws_url}/ws/customer", max_queue=1, max_size=2**22, open_timeout=T)
    await slow.send('{"type":"hello","customer":{"id":"u-slow"}}')
    w = json.loads(await slow.recv())
    conv, token = w["conversation"], w["token"]
    await slow.send('{"type":"message","id":"h","text":"转人工"}')
    await a.wait(is_("assigned"), what="assigned")
    sent: list[str] = []
    big = "慢" * 3000  # ~9 KB a frame: the socket buffers fill within a few hundred
    for i in range(600):
        text = f"{i:04d}{big}"
        await a.send({"type": "message", "id": f"a{i}", "conversation": conv, "text": text})
        sent.append(text)
        await a.wait(is_("ack", id=f"a{i}"), what=f"ack a{i}")
    # The server gives up on the slow socket and ends its session; the client reads again only after
    # that and after the server's close handshake would have timed out (a client paused this long).
    await until(lambda: not any(p.kind == p.CUSTOMER for p in app.ctx.peers), 10)
    paused = asyncio.Event()
    asyncio.get_running_loop().call_later(3.0, paused.set)
    await paused.wait()
    got: list[dict[str, Any]] = []
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            got.append(json.loads(await asyncio.wait_for(slow.recv(), T)))
    assert slow.close_code == 1013, (slow.close_code, slow.close_reason)
    seen = [f for f in got if f.get("type") == "message"]
    last = max(f["seq"] for f in seen)
    assert len(seen) < 600  # it was cut off before the end
    again = await websockets.connect(f"{app.ws_url}/ws/customer", max_size=2**22, open_timeout=T)
    await again.send(json.dumps({"type": "hello", "resume": {"conversation": conv, "token": token, "after": last}}))
    rest = json.loads(await again.recv())["messages"]
    texts = [e["text"] for e in seen + rest if e.get("from") == "agent"]
    assert texts == sent  # every agent message once, in order, across the cut
    await again.close()
    await a.close()
