"""Customer rate limits that hold beyond one connection: per conversation and per client address."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.config import Limits, load_config
from gateway.errors import ConfigError
from gateway.service.ratelimit import BucketMap, TokenBucket, allow_all
from tests.e2e import customer, say
from tests.support import Client, Frame, is_, write_config

# the per-address limits out of the way where a test is about another limit
_WIDE = {"address_messages": 100_000, "address_hellos": 100_000}


def _answer(mid: str) -> object:
    return lambda f: f.get("id") == mid and f.get("type") in ("ack", "error")


async def _customer_texts(app, conv: str) -> list[str]:
    return [e["text"] for e in await app.ctx.store.read_log(conv)
            if e.get("type") == "message" and e.get("from") == "customer"]


async def test_reconnect_and_resume_does_not_reset_the_conversation_limit(gateway_app) -> None:
    app = await gateway_app({"limits": {"customer_messages": 10, "customer_window_s": 10, **_WIDE}})
    first, w = await customer(app.ws_url)
    conv, token = w["conversation"], w["token"]
    started = time.monotonic()
    await say(first, "first", "你好")  # written in: kept when this socket leaves (one left empty is discarded)
    await first.close()
    answers: list[Frame] = []
    for cycle in range(20):  # the attack of issue 12: a new connection, a fresh per-connection bucket
        c, rw = await customer(app.ws_url, resume={"conversation": conv, "token": token})
        assert rw["conversation"] == conv
        for i in range(10):
            mid = f"c{cycle}-{i}"
            await c.send({"type": "message", "id": mid, "text": f"第{cycle}轮第{i}条"})
            answers.append(await c.wait(_answer(mid), what=f"answer to {mid}"))  # type: ignore[arg-type]
        await c.close()
    elapsed = time.monotonic() - started
    stored = await _customer_texts(app, conv)
    acked = [a for a in answers if a["type"] == "ack"]
    refused = [a for a in answers if a["type"] == "error"]
    # 10 per 10 s, refilled continuously: at most 10 plus what the elapsed time refilled
    assert len(stored) <= 10 + int(elapsed) + 1, (len(stored), elapsed)  # the first one included
    assert len(acked) + 1 == len(stored)  # and the first one
    assert refused and all(a["code"] == "rate_limited" for a in refused)


async def test_messages_per_client_address_across_connections(gateway_app) -> None:
    app = await gateway_app({"limits": {"customer_messages": 1000, "address_messages": 5,
                                        "address_window_s": 600, "address_hellos": 100}})
    clients = [await customer(app.ws_url, f"u-addr-{i}") for i in range(3)]
    answers: list[Frame] = []
    for round_ in range(3):
        for i, (c, _) in enumerate(clients):
            mid = f"a{i}-{round_}"
            await c.send({"type": "message", "id": mid, "text": "什么时候发货"})
            answers.append(await c.wait(_answer(mid), what=f"answer to {mid}"))  # type: ignore[arg-type]
    assert [a["type"] for a in answers] == ["ack"] * 5 + ["error"] * 4
    assert all(a["code"] == "rate_limited" for a in answers[5:])
    stored = 0
    for _, w in clients:
        stored += len(await _customer_texts(app, w["conversation"]))
    assert stored == 5, "a refused message is not stored"
    assert all(c.close_code is None for c, _ in clients), "rate_limited keeps the connection"


async def test_hellos_per_client_address_get_rate_limited_and_1013(gateway_app) -> None:
    app = await gateway_app({"limits": {"address_hellos": 3, "address_hello_window_s": 600}})
    served = [await customer(app.ws_url, f"u-h-{i}") for i in range(3)]
    c = await Client.connect(f"{app.ws_url}/ws/customer")
    await c.send({"type": "hello", "customer": {"id": "u-h-over"}})
    err = await c.wait(is_("error"), what="rate_limited error")
    assert err["code"] == "rate_limited"
    assert await c.wait_closed() == 1013
    assert not c.of(is_("welcome"))
    assert await app.ctx.store.customer_conversation("u-h-over") is None, "no conversation made"
    await say(served[0][0], "still", "什么时候发货")  # those already in keep being served


def test_defaults_and_parsing_of_the_address_limits(tmp_path: Path) -> None:
    d = Limits()
    assert (d.address_messages, d.address_window_s, d.address_hellos, d.address_hello_window_s) == (60, 10.0, 30, 10.0)
    cfg = load_config(write_config(tmp_path, {"limits": {"address_messages": 7, "address_window_s": 2,
                                                         "address_hellos": 4, "address_hello_window_s": 3}}))
    lim = cfg.limits
    assert (lim.address_messages, lim.address_window_s, lim.address_hellos, lim.address_hello_window_s) == (7, 2.0, 4, 3.0)


def test_bucket_map_forgets_idle_keys_so_memory_stays_flat() -> None:
    m = BucketMap(10, 10.0, max_keys=1000)
    now = 0.0
    for i in range(50_000):  # a new key every 10 ms: about one window's worth (1,000) alive at once
        now = i * 0.01
        assert m.allow(f"k{i}", now)
        assert len(m) <= 1001
    # a key refused stays remembered while it is not full again
    hot = BucketMap(2, 100.0)
    assert hot.allow("a", 0.0) and hot.allow("a", 0.0) and not hot.allow("a", 1.0)
    hot.allow("b", 9.0)
    assert not hot.allow("a", 9.0), "not yet refilled: still remembered"
    assert hot.allow("a", 120.0)
    hot.get("c", 300.0)
    assert len(hot) == 1, "idle full buckets dropped"


def test_bounded_even_when_every_key_stays_busy() -> None:
    m = BucketMap(1, 1000.0, max_keys=100)
    for i in range(1000):
        m.allow(i, 0.0)
    assert len(m) == 100


def test_a_refusal_by_one_bucket_costs_the_others_nothing() -> None:
    a, b = TokenBucket(5, 10.0, 0.0), TokenBucket(1, 10.0, 0.0)
    assert allow_all(0.0, a, b)
    for _ in range(10):
        assert not allow_all(0.0, a, b)
    assert [a.allow(0.0) for _ in range(5)] == [True] * 4 + [False]


async def _hello_from(app, xff: str | None, cid: str) -> Client:
    kw = {"additional_headers": {"X-Forwarded-For": xff}} if xff else {}
    c = await Client.connect(f"{app.ws_url}/ws/customer", **kw)
    await c.send({"type": "hello", "customer": {"id": cid}})
    await c.wait(lambda f: f.get("type") in ("welcome", "error"), what="welcome or error")
    return c


async def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(gateway_app) -> None:
    app = await gateway_app({"limits": {"address_hellos": 2, "address_hello_window_s": 600}})
    for i, xff in enumerate(["203.0.113.1", "203.0.113.2"]):
        assert (await _hello_from(app, xff, f"u-x{i}")).of(is_("welcome"))
    over = await _hello_from(app, "203.0.113.3", "u-x3")  # a made-up header does not make a new address
    assert over.of(is_("error", code="rate_limited")) and await over.wait_closed() == 1013


async def test_behind_a_trusted_proxy_each_forwarded_client_is_limited_on_its_own(gateway_app) -> None:
    app = await gateway_app({"server": {"trusted_proxies": ["127.0.0.0/8"]},
                             "limits": {"address_hellos": 2, "address_hello_window_s": 600}})
    for i in range(2):
        assert (await _hello_from(app, "198.51.100.9, 203.0.113.1, 127.0.0.1", f"u-p{i}")).of(is_("welcome"))
    over = await _hello_from(app, "203.0.113.1", "u-p-over")
    assert over.of(is_("error", code="rate_limited")) and await over.wait_closed() == 1013
    other = await _hello_from(app, "203.0.113.2", "u-p-other")  # another client behind the same proxy
    assert other.of(is_("welcome")) and other.close_code is None


async def test_trusted_proxies_must_be_addresses(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_config(write_config(tmp_path, {"server": {"trusted_proxies": ["proxy.example.com"]}}))
    cfg = load_config(write_config(tmp_path, {"server": {"trusted_proxies": ["10.0.0.1", "192.168.0.0/16"]}}))
    assert cfg.limits.trusted_proxies == ("10.0.0.1/32", "192.168.0.0/16")
