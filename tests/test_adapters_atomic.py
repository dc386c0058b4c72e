"""The adapters on the one-step service: pending bot turns, meta patches, no lost updates.

- A buyer message takes the widget's path (``customer_message`` with its pending
  turn, then ``after_customer_message``): a turn the ``TurnRunner`` drops (full
  queue) is answered by the turn timer, and one that runs late is refused, so a
  message is answered once.
- Order and after-sales events, order cards, buyer messages and hand-offs landing
  at once on one conversation all keep their meta changes (merged inside the
  store step), on the memory store and on Redis with two instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.adapters.runtime import AdapterRuntime
from gateway.config import load_config
from gateway.server.app import build_app
from tests.adapter_fakes import (
    FakePdd,
    FakeRelay,
    doudian_body,
    doudian_push,
    eventually,
    eventually_async,
    relay_post,
    text_record,
)
from tests.conftest import RunningApp
from tests.e2e import run_timers
from tests.support import T, write_config

RELAY_SECRET, PDD_SHOP = "relay-secret-a", "pdd-a"
APP, DD_SECRET, DD_SHOP = "dk-atomic", "dsecret-atomic", "7799"
ORDERS = [f"49123456789012345{i:02d}" for i in range(1, 6)]

Start = Callable[..., Awaitable[tuple[RunningApp, web.Application]]]


@pytest.fixture
async def relay() -> AsyncIterator[FakeRelay]:
    r = await FakeRelay(PDD_SHOP, RELAY_SECRET).start()
    yield r
    await r.stop()


@pytest.fixture
async def dd_relay() -> AsyncIterator[FakeRelay]:
    r = await FakeRelay(DD_SHOP, RELAY_SECRET).start()
    yield r
    await r.stop()


@pytest.fixture
async def started(tmp_path: Path) -> AsyncIterator[Start]:
    """Like ``gateway_app``, keeping the aiohttp app (its ``app["adapters"]`` runtime)."""
    runners: list[web.AppRunner] = []

    async def start(overrides: dict[str, Any], store: str | None = None) -> tuple[RunningApp, web.Application]:
        config = load_config(write_config(tmp_path, overrides)).with_overrides(host="127.0.0.1", port=0, store=store)
        app = await build_app(config)
        runner = web.AppRunner(app, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return RunningApp(f"http://{host}:{port}", f"ws://{host}:{port}", config, app["ctx"], tmp_path), app

    yield start
    for r in reversed(runners):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(r.cleanup(), 10)


# The turn timer runs on the test's clock (``run_timers``): the app's own loop never reaches it.
TURN_S = 20.0


def pdd_relay(relay: FakeRelay, **routing: Any) -> dict[str, Any]:
    return {"shops": [{"platform": "pdd", "shop_id": PDD_SHOP, "relay_secret": RELAY_SECRET,
                       "callback_url": relay.callback_url}],
            "routing": {"turn_retry_s": TURN_S, **routing},
            "adapters": {"turn_workers": 1, "turn_queue": 1, "backoff_base_s": 0.05, "max_attempts": 3}}


async def buyer_log(gw: RunningApp, platform: str, shop: str, buyer: str) -> list[dict[str, Any]]:
    conv = await gw.ctx.store.customer_conversation(f"{platform}:{shop}:{buyer}")
    return await gw.ctx.store.read_log(conv, 0) if conv else []


def bot_entries(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in log if e.get("from") == "bot"]


async def turn_timer_answers(gw: RunningApp, posted: float) -> None:
    """The one message posted at ``posted`` has no answer until its turn timer fires; then it has one."""
    assert await run_timers(gw, posted + TURN_S - 1) == []  # a second before it is due: nothing
    fired = await run_timers(gw, time.time() + TURN_S + 1)
    assert [k.split(":")[0] for k in fired] == ["turn"], fired


async def block_turns(app: web.Application, n: int) -> asyncio.Event:
    """Occupy the single turn worker, then put ``n - 1`` more blockers in its queue."""
    rt: AdapterRuntime = app["adapters"]
    gate, taken = asyncio.Event(), asyncio.Event()

    async def wait() -> None:
        taken.set()
        await gate.wait()

    assert rt.turns.submit("blocker", wait)
    await asyncio.wait_for(taken.wait(), T)  # the worker took it: the queue is empty again
    for _ in range(n - 1):
        assert rt.turns.submit("blocker", wait)
    return gate


# ------------------------------------------------------------------ pending turns


async def test_a_turn_dropped_by_a_full_queue_is_answered_by_the_turn_timer(
        started: Start, relay: FakeRelay, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    gw, app = await started(pdd_relay(relay))
    gate = await block_turns(app, 2)  # the worker busy, its queue (1) full
    try:
        posted = time.time()
        status, body = await relay_post(gw.http_url, "pdd", PDD_SHOP, RELAY_SECRET,
                                        [text_record("m1", "b1", "什么时候发货")])
        assert status == 200 and body["results"][0]["status"] == "stored"  # acknowledged at once
        assert any("event=turn_dropped" in r.getMessage() for r in caplog.records)
        await turn_timer_answers(gw, posted)
        await eventually(lambda: relay.replies, what="the answer, from the turn timer")
        assert "48小时" in relay.replies[0]["text"] and relay.replies[0]["reply_to"] == "m1"
        assert not gate.is_set()  # the turn workers never ran it
        assert any("event=turn_recovered" in r.getMessage() for r in caplog.records)
        assert len(bot_entries(await buyer_log(gw, "pdd", PDD_SHOP, "b1"))) == 1
    finally:
        gate.set()


async def test_a_late_turn_is_refused_so_the_message_is_answered_once(started: Start, relay: FakeRelay) -> None:
    gw, app = await started(pdd_relay(relay))
    gate = await block_turns(app, 1)  # the worker busy: the message's turn waits in the queue
    rt: AdapterRuntime = app["adapters"]
    posted = time.time()
    await relay_post(gw.http_url, "pdd", PDD_SHOP, RELAY_SECRET, [text_record("m1", "b2", "什么时候发货")])
    await turn_timer_answers(gw, posted)
    await eventually(lambda: relay.replies, what="the answer, from the turn timer")
    gate.set()  # now the queued turn runs too, late
    await rt.turns.drain()  # barrier: the late turn ran, and its answer step was refused
    assert len(bot_entries(await buyer_log(gw, "pdd", PDD_SHOP, "b2"))) == 1
    assert len(relay.replies) == 1


async def test_non_text_messages_get_no_bot_turn(started: Start, relay: FakeRelay) -> None:
    gw, app = await started(pdd_relay(relay))
    records = [{"msg_id": "i1", "buyer": {"id": "b3"}, "kind": "image", "url": "https://img.example/1.jpg"},
               {"msg_id": "i2", "buyer": {"id": "b3"}, "kind": "EMOTION"}]
    assert (await relay_post(gw.http_url, "pdd", PDD_SHOP, RELAY_SECRET, records))[0] == 200
    log = await buyer_log(gw, "pdd", PDD_SHOP, "b3")
    assert [e["text"] for e in log] == ["[图片]", "[表情]"]
    conv = await gw.ctx.store.customer_conversation(f"pdd:{PDD_SHOP}:b3")
    assert conv is not None
    # stored with no pending turn (so no turn timer can ever run the bot on them)
    assert [await gw.ctx.store.pending_turn(conv, e["seq"]) for e in log] == [None, None]
    assert not [k for k in await gw.ctx.store.claim_due(1e12, 1000) if k.startswith(f"turn:{conv}:")]
    rt: AdapterRuntime = app["adapters"]
    await rt.turns.drain()  # barrier: whatever the adapters queued has run
    assert (await gw.ctx.store.get_conversation(conv)).state.value == "bot"
    assert bot_entries(await buyer_log(gw, "pdd", PDD_SHOP, "b3")) == []


async def test_non_text_on_a_channel_without_bot_goes_to_people(started: Start, relay: FakeRelay) -> None:
    gw, _ = await started(pdd_relay(relay, no_bot_channels=["pdd"]))
    records = [{"msg_id": "i1", "buyer": {"id": "b4"}, "kind": "image"}]
    assert (await relay_post(gw.http_url, "pdd", PDD_SHOP, RELAY_SECRET, records))[0] == 200
    await eventually(lambda: relay.replies, what="the hand-off notice")
    conv = await gw.ctx.store.customer_conversation(f"pdd:{PDD_SHOP}:b4")
    assert (await gw.ctx.store.get_conversation(conv)).state.value in ("queued", "assigned")


# ------------------------------------------------------------------ meta: no lost updates


def doudian_relay(relay: FakeRelay, ns: str = "") -> dict[str, Any]:
    o: dict[str, Any] = {
        "shops": [{"platform": "doudian", "shop_id": DD_SHOP, "app_key": APP, "app_secret": DD_SECRET,
                   "relay_secret": RELAY_SECRET, "callback_url": relay.callback_url}],
        "adapters": {"backoff_base_s": 0.05, "max_attempts": 3},
    }
    if ns:
        o["store"] = {"namespace": ns}
    return o


async def concurrent_meta_changes(gws: list[RunningApp]) -> None:
    """An order card per order, then at once (spread over ``gws``): an order event per order, an
    after-sales event, a buyer message; every meta change must survive."""
    cards = [{"msg_id": f"card-{o}", "buyer": {"id": "b1", "nick": "小红"}, "kind": "order_card", "order": o}
             for o in ORDERS]
    status, body = await relay_post(gws[0].http_url, "doudian", DD_SHOP, RELAY_SECRET, cards)
    assert status == 200 and {r["status"] for r in body["results"]} == {"stored"}, body
    conv_id = body["results"][0]["conversation"]

    def push(gw: RunningApp, tag: str, msg_id: str, data: dict[str, Any]) -> Awaitable[tuple[int, Any]]:
        return doudian_push(gw.http_url, APP, DD_SECRET, doudian_body(tag, msg_id, {"shop_id": int(DD_SHOP), **data}))

    jobs: list[Awaitable[Any]] = [push(gws[i % len(gws)], "102", f"ship-{o}", {"p_id": int(o), "update_time": 1700000000 + i})
                                  for i, o in enumerate(ORDERS)]
    jobs.append(push(gws[-1], "200", "refund-1", {"p_id": int(ORDERS[0]), "aftersale_id": 7300000000000000777,
                                                 "apply_time": 1700000100}))
    jobs.append(relay_post(gws[0].http_url, "doudian", DD_SHOP, RELAY_SECRET,
                           [text_record("t1", "b1", "什么时候发货", nick="小红")]))
    results = await asyncio.gather(*jobs)
    assert all(r[0] == 200 for r in results), results

    store = gws[0].ctx.store
    conv = await store.get_conversation(conv_id)
    assert conv is not None
    meta = conv.meta
    assert set(meta["platform_orders"]) == set(ORDERS)  # five order events, none overwritten
    assert {v["status"] for v in meta["platform_orders"].values()} == {"卖家已发货"}
    assert meta["aftersale"]["order"] == ORDERS[0] and meta["aftersale"]["status"] == "买家发起售后申请"
    assert meta["orders"][:len(ORDERS)] == ORDERS and len(meta["orders"]) == len(set(meta["orders"]))
    assert meta["platform"]["route"] == "relay" and meta["platform"]["buyer"] == "b1"
    assert meta["handoff_reason"] == "买家发起售后申请"  # the hand-off's own meta is there too
    assert conv.skill == "aftersale" and conv.priority.value == "high" and conv.state.value != "bot"
    log = await store.read_log(conv_id, 0)
    notes = [e for e in log if e.get("internal")]
    assert len(notes) == len(ORDERS) + 1
    assert sum(1 for e in log if e.get("from") == "customer") == len(ORDERS) + 1


async def test_concurrent_order_and_aftersales_events_all_survive(started: Start, dd_relay: FakeRelay) -> None:
    gw, _ = await started(doudian_relay(dd_relay))
    await concurrent_meta_changes([gw])


@pytest.mark.redis
async def test_concurrent_events_on_two_instances_all_survive_on_redis(
        started: Start, dd_relay: FakeRelay, redis_server: Any) -> None:
    ns = f"at-{uuid.uuid4().hex[:8]}"
    gw1, _ = await started(doudian_relay(dd_relay, ns), store=redis_server.url)
    gw2, _ = await started(doudian_relay(dd_relay, ns), store=redis_server.url)
    await concurrent_meta_changes([gw1, gw2])


async def test_order_lookups_and_an_event_at_once_keep_both(started: Start) -> None:
    """Seven look-ups and an after-sales event together: the newest five details, and the event's meta."""
    pdd = await FakePdd("pddcid-at", "pddsecret-at", "tok-at").start()
    try:
        mall, tid = 654321, "231127-000000000000777"
        shop = {"platform": "pdd", "shop_id": str(mall), "app_key": "pddcid-at", "app_secret": "pddsecret-at",
                "access_token": "tok-at", "api_base": pdd.url + "/api/router", "message_base": pdd.ws_base}
        gw, _ = await started({"shops": [shop], "adapters": {"heartbeat_s": 0.1, "reconnect_max_s": 0.2}})
        await eventually(lambda: pdd.connects == 1, what="connected")
        refund = {"mall_id": mall, "tid": tid, "refund_id": 9, "modified": 1700000000}
        await pdd.push(1, "pdd_refund_RefundCreated", mall, refund)
        store = gw.ctx.store
        conv = await eventually_async(lambda: store.customer_conversation(f"pdd:{mall}:order-{tid}"))
        orders = [f"231127-00000000000100{i}" for i in range(7)]

        async def lookup(s: aiohttp.ClientSession, order: str) -> int:
            async with s.get(f"{gw.http_url}/api/adapters/orders/{conv}/{order}",
                             headers={"Authorization": "Bearer demo-admin"}) as r:
                return r.status

        async with aiohttp.ClientSession() as s:
            statuses = await asyncio.gather(*[lookup(s, o) for o in orders],
                                            pdd.push(2, "pdd_refund_RefundBuyerReturnGoods", mall,
                                                     {**refund, "modified": 1700000100}))
        assert statuses[:7] == [200] * 7
        await eventually(lambda: any(a["id"] == 2 for a in pdd.acks), what="the second event stored")
        meta = (await store.get_conversation(conv)).meta
        assert len(meta["order_details"]) == 5 and set(meta["order_details"]) <= set(orders)
        assert meta["aftersale"]["status"] == "买家已退货" and meta["orders"] == [tid]
        assert meta["handoff_reason"] == "买家申请退款"
    finally:
        await pdd.stop()


@pytest.mark.redis
async def test_dropped_turn_answered_by_the_timer_on_redis(started: Start, relay: FakeRelay,
                                                           redis_server: Any) -> None:
    overrides = {**pdd_relay(relay), "store": {"namespace": f"at-{uuid.uuid4().hex[:8]}"}}
    gw, app = await started(overrides, store=redis_server.url)
    gate = await block_turns(app, 2)
    try:
        posted = time.time()
        await relay_post(gw.http_url, "pdd", PDD_SHOP, RELAY_SECRET, [text_record("m1", "b9", "什么时候发货")])
        await turn_timer_answers(gw, posted)
        await eventually(lambda: relay.replies, what="the answer, from the turn timer")
        assert "48小时" in relay.replies[0]["text"]
        assert len(bot_entries(await buyer_log(gw, "pdd", PDD_SHOP, "b9"))) == 1
    finally:
        gate.set()


# ------------------------------------------------------------------ hand-off skill


async def test_bot_handoffs_take_the_shop_skill_else_the_channel_skill(started: Start, relay: FakeRelay) -> None:
    shops = [{"platform": "pdd", "shop_id": PDD_SHOP, "relay_secret": RELAY_SECRET, "callback_url": relay.callback_url},
             {"platform": "pdd", "shop_id": "pdd-own", "relay_secret": RELAY_SECRET,
              "callback_url": relay.callback_url, "default_skill": "aftersale"}]
    gw, _ = await started({"shops": shops, "routing": {"channel_skills": {"pdd": "logistics"}}})
    for shop in (PDD_SHOP, "pdd-own"):
        await relay_post(gw.http_url, "pdd", shop, RELAY_SECRET, [text_record("h1", "b1", "转人工")])
    store = gw.ctx.store

    async def skill(shop: str) -> str:
        conv = await store.get_conversation(await store.customer_conversation(f"pdd:{shop}:b1") or "")
        return conv.skill if conv is not None and conv.state.value != "bot" else ""

    assert await eventually_async(lambda: skill(PDD_SHOP), what="handed off") == "logistics"
    assert await eventually_async(lambda: skill("pdd-own"), what="handed off") == "aftersale"


# ------------------------------------------------------------------ a claim whose instance died


async def test_a_message_claimed_by_an_instance_that_died_is_stored_on_a_later_redelivery(
        started: Start, relay: FakeRelay, monkeypatch: pytest.MonkeyPatch) -> None:
    import time as real_time

    from gateway.adapters.ingest import CLAIM_IN_PROGRESS_S
    from gateway.store import MemoryStore

    gw, app = await started(pdd_relay(relay))
    rt: AdapterRuntime = app["adapters"]
    # the dead instance's last act: it claimed m7, then died before storing it
    assert await rt.ingest.platform.claim_once(f"adapters:in:pdd:{PDD_SHOP}:m7", CLAIM_IN_PROGRESS_S)
    record = [text_record("m7", "b7", "什么时候发货")]
    _, body = await relay_post(gw.http_url, "pdd", PDD_SHOP, RELAY_SECRET, record)
    assert body["results"][0]["status"] == "duplicate"  # within the in-progress window: maybe still being stored
    assert await buyer_log(gw, "pdd", PDD_SHOP, "b7") == []
    later = real_time.time() + CLAIM_IN_PROGRESS_S + 1  # the claims' clock moves past the short claim
    store = gw.ctx.store
    assert isinstance(store, MemoryStore)
    monkeypatch.setattr(store, "clock", lambda: later)
    _, body = await relay_post(gw.http_url, "pdd", PDD_SHOP, RELAY_SECRET, record)
    assert body["results"][0]["status"] == "stored"
    later += CLAIM_IN_PROGRESS_S + 1  # stored: now it is remembered for dedupe_ttl_s, not the short window
    _, body = await relay_post(gw.http_url, "pdd", PDD_SHOP, RELAY_SECRET, record)
    assert body["results"][0]["status"] == "duplicate"
    assert [e["text"] for e in await buyer_log(gw, "pdd", PDD_SHOP, "b7") if e.get("from") == "customer"] == [
        "什么时候发货"]
