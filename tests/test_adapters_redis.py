"""The adapters on the Redis store: dedupe, after-sales, dead letters, and one send per reply
when two gateway instances share the store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.adapters.base import OutboundMessage
from gateway.adapters.outbound import OutboundRouter
from gateway.model import Entry
from tests.adapter_fakes import (
    FakeRelay,
    doudian_push,
    eventually,
    eventually_async,
    relay_post,
    text_record,
)
from tests.support import Client, is_
from tests.test_adapters_doudian import APP, ORDER, REFUND_200
from tests.test_adapters_doudian import SECRET as DD_SECRET
from tests.test_adapters_doudian import SHOP as DD_SHOP

pytestmark = pytest.mark.redis

SECRET, SHOP = "relay-secret-r", "pdd-r"


@pytest.fixture
async def relay() -> AsyncIterator[FakeRelay]:
    r = await FakeRelay(SHOP, SECRET).start()
    yield r
    await r.stop()


def overrides(relay: FakeRelay, ns: str) -> dict[str, Any]:
    return {"store": {"namespace": ns},
            "shops": [{"platform": "pdd", "shop_id": SHOP, "relay_secret": SECRET, "callback_url": relay.callback_url},
                      {"platform": "doudian", "shop_id": DD_SHOP, "app_key": APP, "app_secret": DD_SECRET}],
            "adapters": {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "max_attempts": 3}}


async def test_relay_doudian_and_dead_letters_on_redis(gateway_app: Any, redis_server: Any, relay: FakeRelay) -> None:
    gw = await gateway_app(overrides(relay, f"ad-{uuid.uuid4().hex[:8]}"), store=redis_server.url)
    rec = text_record("m1", "b1", "什么时候发货")
    assert (await relay_post(gw.http_url, "pdd", SHOP, SECRET, [rec]))[1]["results"][0]["status"] == "stored"
    assert (await relay_post(gw.http_url, "pdd", SHOP, SECRET, [rec]))[1]["results"][0]["status"] == "duplicate"
    await eventually(lambda: relay.replies, what="answer")
    assert "48小时" in relay.replies[0]["text"]

    a2 = await Client.connect(gw.ws_url + "/ws/agent")
    await a2.send({"type": "hello", "agent": "a2", "token": "demo-a2"})
    await a2.wait(is_("welcome"))
    for _ in range(2):
        assert (await doudian_push(gw.http_url, APP, DD_SECRET, REFUND_200))[1] == {"code": 0, "msg": "success"}
    conv = (await a2.wait(is_("assigned")))["conversation"]
    assert conv["skill"] == "aftersale" and conv["meta"]["orders"] == [ORDER]
    assert len([m for m in conv["messages"] if m.get("internal")]) == 1
    await a2.close()

    relay.script.always = 404
    await relay_post(gw.http_url, "pdd", SHOP, SECRET, [text_record("m2", "b1", "尺码怎么选")])
    dead = await eventually_async(lambda: gw.ctx.store.dead_letters(), what="dead letter")
    assert dead[0]["http_status"] == 404 and dead[0]["attempts"] == 1


class Outbound:
    """What one instance's outbound router did: the entries it has finished with (sent on, or left to
    the instance that claimed them) and the messages it queued for sending."""

    def __init__(self, gw: Any) -> None:
        # the router is the hub tap the adapters installed
        router = next(t.__self__ for t in gw.ctx.hub.taps if isinstance(getattr(t, "__self__", None), OutboundRouter))
        self.considered: set[tuple[str, int]] = set()
        self.submitted: list[tuple[str, int]] = []
        consider, submit = router._consider, router.submit

        async def considered(conversation: str, entry: Entry) -> None:
            await consider(conversation, entry)
            self.considered.add((conversation, int(entry["seq"])))

        async def submitted(msg: OutboundMessage) -> None:
            self.submitted.append((msg.conversation, msg.seq))
            await submit(msg)

        router._consider = considered
        router.submit = submitted


async def test_two_instances_send_each_reply_once(gateway_app: Any, redis_server: Any, relay: FakeRelay) -> None:
    ns = f"ad-{uuid.uuid4().hex[:8]}"
    gw1 = await gateway_app(overrides(relay, ns), store=redis_server.url)
    gw2 = await gateway_app(overrides(relay, ns), store=redis_server.url)
    outs = [Outbound(gw1), Outbound(gw2)]
    for i, gw in enumerate((gw1, gw2, gw1, gw2)):
        q = "什么时候发货" if i % 2 == 0 else "尺码怎么选"
        await relay_post(gw.http_url, "pdd", SHOP, SECRET, [text_record(f"m{i}", f"b{i}", q)])
    await eventually(lambda: len(relay.replies) >= 4, what="four answers")
    answers = {(a["conversation"], a["seq"]) for a in relay.attempts}
    assert len(answers) == 4
    # barrier: both instances are done with every answer (each sees every entry on the bus), so any
    # second send would be queued by now: each answer was queued once, by one instance
    await eventually(lambda: all(answers <= o.considered for o in outs), what="both instances past the answers")
    assert sorted(outs[0].submitted + outs[1].submitted) == sorted(answers)
    assert len(relay.attempts) == 4
