"""``/metrics``: ``gateway_first_response_seconds{channel,skill}`` (hand-off to the first agent message, once
per hand-off) and ``gateway_sla_breaches_total{channel,skill}`` (those later than ``[sla] ack_target_s``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp

from gateway.service.metrics import METRICS
from tests.conftest import RunningApp
from tests.e2e import agent, agents_cfg, customer, say
from tests.support import is_

AppFactory = Callable[..., Awaitable[RunningApp]]


def sample(name: str, **labels: str) -> float:
    value = METRICS.registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


async def test_first_response_observed_once_per_handoff_and_late_ones_are_breaches(gateway_app: AppFactory) -> None:
    gw = await gateway_app({"agents": agents_cfg(("m1", ["presale", "aftersale", "logistics"], 5)),
                            "sla": {"ack_target_s": 1}})
    labels = {"channel": "web", "skill": "presale"}
    count0 = sample("gateway_first_response_seconds_count", **labels)
    within0 = sample("gateway_first_response_seconds_bucket", le="5.0", **labels)
    breaches0 = sample("gateway_sla_breaches_total", **labels)
    ag, _ = await agent(gw.ws_url, "m1", "tok-m1")

    async def handed_off(text: str) -> str:
        c, _ = await customer(gw.ws_url)
        await say(c, "q1", text)
        frame = await ag.wait(is_("assigned"), what="assigned")
        ag.frames.remove(frame)
        return str(frame["conversation"]["id"])

    async def reply(conv: str, mid: str) -> None:
        await ag.send({"type": "message", "id": mid, "conversation": conv, "text": "您好"})
        await ag.wait(is_("ack", id=mid), what=f"ack {mid}")

    quick = await handed_off("转人工，想问下尺码")
    await reply(quick, "r1")
    await reply(quick, "r2")  # not a first response
    await reply(quick, "r1")  # a duplicate of the first: not counted again
    assert sample("gateway_first_response_seconds_count", **labels) == count0 + 1
    assert sample("gateway_first_response_seconds_bucket", le="5.0", **labels) == within0 + 1
    assert sample("gateway_sla_breaches_total", **labels) == breaches0

    late = await handed_off("转人工")
    await asyncio.sleep(1.2)  # past the 1 s target
    await reply(late, "r3")
    assert sample("gateway_first_response_seconds_count", **labels) == count0 + 2
    assert sample("gateway_sla_breaches_total", **labels) == breaches0 + 1
    async with aiohttp.ClientSession() as s, s.get(gw.http_url + "/metrics") as r:
        text = await r.text()
    assert 'gateway_first_response_seconds_bucket{channel="web",le="30.0",skill="presale"}' in text
    assert "gateway_sla_breaches_total" in text
    await ag.close()
