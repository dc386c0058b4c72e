"""What one event costs in Redis, measured end to end, so it cannot grow unnoticed.

A real gateway (in this process) on a private redis-server, real websocket
clients. ``INFO commandstats`` around a burst gives the Redis commands per
bot-answered message and per hand-off lifecycle (hand-off, one agent reply,
close), including the commands inside the Lua scripts; the background rate
(timer loop, heartbeat) is measured in a quiet window first and subtracted.
Store calls (each one script or one command: one round trip at most) are
counted on the service's store. The README's figures come from this test's
output (``-s``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.store import Store
from tests.conftest import RedisServer, RunningApp
from tests.e2e import agent, agents_cfg, customer
from tests.support import is_

pytestmark = pytest.mark.redis

N = 60
QUESTIONS = ["什么时候发货", "尺码怎么选", "多久发货", "有尺码表吗"]

# Ceilings with headroom over what was measured (README "What an event costs in Redis").
MAX_STORE_CALLS_PER_ANSWER = 2.02
MAX_COMMANDS_PER_ANSWER = 20.5
MAX_SCRIPTS_PER_LIFECYCLE = 4.05
MAX_COMMANDS_PER_LIFECYCLE = 82.0


class CountingStore:
    """Forwards to the real store and counts the awaited calls (round trips at most)."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target) or not asyncio.iscoroutinefunction(target):
            return target

        async def counted(*a: Any, **kw: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return await target(*a, **kw)

        return counted

    def total(self) -> int:
        return sum(self.calls.values())


async def commandstats(r: aioredis.Redis) -> dict[str, int]:
    info = await r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}


async def measure(r: aioredis.Redis, work: Callable[[], Awaitable[None]], noise_per_s: dict[str, float]) -> dict[str, float]:
    await r.config_resetstat()
    t0 = time.monotonic()
    await work()
    elapsed = time.monotonic() - t0
    stats = await commandstats(r)
    stats.pop("info", None)
    stats.pop("config|resetstat", None)
    return {k: max(0.0, v - noise_per_s.get(k, 0.0) * elapsed) for k, v in stats.items()}


async def quiet_rate(r: aioredis.Redis, seconds: float = 1.0) -> dict[str, float]:
    await r.config_resetstat()
    await asyncio.sleep(seconds)  # a rate is measured here, nothing is asserted about it
    stats = await commandstats(r)
    stats.pop("info", None)
    stats.pop("config|resetstat", None)
    return {k: v / seconds for k, v in stats.items()}


@pytest.fixture
async def setup(gateway_app: Callable[..., Awaitable[RunningApp]],
                redis_factory: Callable[..., RedisServer]) -> Any:
    srv = redis_factory()
    app = await gateway_app({"agents": agents_cfg(("cc1", ["presale", "aftersale"], N)),
                             "limits": {"agent_messages": 100_000, "customer_messages": 1000,
                                        "address_messages": 1_000_000, "address_hellos": 1_000_000}},
                            store=srv.url)
    assert app.ctx.archiver is not None
    app.ctx.archiver.pause()  # archiving is background work on the outbox, not part of an event's cost
    counting = CountingStore(app.ctx.service.store)
    app.ctx.service.store = counting  # type: ignore[assignment]
    r = aioredis.Redis.from_url(srv.url)
    yield app, counting, r
    await r.aclose()


async def test_bot_answered_message_and_handoff_lifecycle_costs(setup: Any) -> None:
    app, counting, r = setup
    custs = [await customer(app.ws_url) for _ in range(N)]
    noise = await quiet_rate(r)

    async def answered() -> None:
        for i, (c, _) in enumerate(custs):
            await c.send({"type": "message", "id": "q1", "text": QUESTIONS[i % len(QUESTIONS)]})
        for c, _ in custs:
            await c.wait(lambda f: f.get("from") == "bot" and "faq" in f, what="bot answer")

    counting.calls.clear()
    got = await measure(r, answered, noise)
    store_calls = counting.total() / N
    per_msg = sum(got.values()) / N
    scripts = (got.get("evalsha", 0) + got.get("eval", 0)) / N
    print(f"\nbot-answered message: {per_msg:.1f} Redis commands, {scripts:.2f} scripts, "
          f"{store_calls:.2f} store calls ({dict(sorted(counting.calls.items()))})")
    print("  by command:", {k: round(v / N, 2) for k, v in sorted(got.items()) if v / N >= 0.05})

    ag, _ = await agent(app.ws_url, "cc1", "tok-cc1")

    async def lifecycle() -> None:
        for c, _ in custs:
            await c.send({"type": "message", "id": "h1", "text": "转人工"})
        frames = await ag.wait_count(is_("assigned"), N, 30)
        for f in frames:
            conv = f["conversation"]["id"]
            await ag.send({"type": "message", "id": f"r-{conv}", "conversation": conv, "text": "您好"})
        await ag.wait_count(lambda f: f.get("type") == "ack" and str(f.get("id", "")).startswith("r-"), N, 30)
        for f in frames:
            conv = f["conversation"]["id"]
            await ag.send({"type": "close", "id": f"x-{conv}", "conversation": conv})
        await ag.wait_count(lambda f: f.get("type") == "ack" and str(f.get("id", "")).startswith("x-"), N, 30)
        for c, _ in custs:
            await c.wait(is_("survey"), what="survey")

    counting.calls.clear()
    got = await measure(r, lifecycle, noise)
    per_life = sum(got.values()) / N
    scripts_life = (got.get("evalsha", 0) + got.get("eval", 0)) / N
    print(f"hand-off lifecycle: {per_life:.1f} Redis commands, {scripts_life:.2f} scripts, "
          f"{counting.total() / N:.2f} store calls ({dict(sorted(counting.calls.items()))})")
    print("  by command:", {k: round(v / N, 2) for k, v in sorted(got.items()) if v / N >= 0.05})
    await ag.close()
    for c, _ in custs:
        await c.close()

    assert store_calls <= MAX_STORE_CALLS_PER_ANSWER
    assert per_msg <= MAX_COMMANDS_PER_ANSWER
    assert scripts_life <= MAX_SCRIPTS_PER_LIFECYCLE
    assert per_life <= MAX_COMMANDS_PER_LIFECYCLE
