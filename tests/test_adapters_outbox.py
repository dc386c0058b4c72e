"""The outbox alone: order, retries with back-off on 5xx/timeouts, none on 4xx, rate limit, bounded queue."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.adapters.base import Kind, OutboundMessage, SendError, http_error, map_kind, placeholder
from gateway.adapters.config import AdapterSettings
from gateway.adapters.outbox import Outbox, Outcome, backoff_delay
from tests.adapter_fakes import eventually

FAST = AdapterSettings(backoff_base_s=0.01, backoff_max_s=0.04, max_attempts=4, request_timeout_s=0.2, queue_size=3)


def msg(seq: int) -> OutboundMessage:
    return OutboundMessage("pdd", "s", "b", "c-1", seq, f"text {seq}", route="relay")


class Sender:
    def __init__(self, plan: list[Any]) -> None:
        self.plan = plan  # per call: None (ok), an exception, or "hang"
        self.calls: list[tuple[int, float]] = []

    async def send(self, m: OutboundMessage) -> None:
        self.calls.append((m.seq, time.monotonic()))
        step = self.plan.pop(0) if self.plan else None
        if step == "hang":
            await asyncio.sleep(10)
        elif step is not None:
            raise step


async def run(plan: list[Any], msgs: list[OutboundMessage], settings: AdapterSettings = FAST,
              rate: float = 1000.0, burst: int = 100) -> tuple[Sender, list[tuple[int, Outcome]], list[bool]]:
    sender = Sender(plan)
    results: list[tuple[int, Outcome]] = []

    async def done(m: OutboundMessage, o: Outcome) -> None:
        results.append((m.seq, o))

    box = Outbox("pdd:s", sender, settings, done, rate=rate, burst=burst)
    box.start()
    accepted = [box.submit(m) for m in msgs]
    try:
        await eventually(lambda: len(results) == sum(accepted), timeout=5, what="all outcomes")
    finally:
        await box.stop()
    return sender, results, accepted


def test_backoff_is_exponential_capped_and_jittered() -> None:
    assert backoff_delay(1, 1.0, 30.0, lambda: 0.0) == 0.5
    assert backoff_delay(1, 1.0, 30.0, lambda: 1.0) == 1.0
    assert backoff_delay(4, 1.0, 30.0, lambda: 1.0) == 8.0
    assert backoff_delay(20, 1.0, 30.0, lambda: 1.0) == 30.0
    assert 15.0 <= backoff_delay(20, 1.0, 30.0) <= 30.0


def test_http_errors_classify() -> None:
    assert http_error(503, "").retryable and http_error(500, "").retryable and http_error(429, "").retryable
    assert not http_error(400, "").retryable and not http_error(404, "").retryable
    assert http_error(401, "x").status == 401


def test_kind_mapping() -> None:
    assert map_kind("pdd", 0) == (Kind.TEXT, "text")
    assert map_kind("pdd", 0, 0) == (Kind.GOODS_CARD, "goods_card")
    assert map_kind("pdd", 14)[0] is Kind.VIDEO and map_kind("pdd", 64)[0] is Kind.GOODS_CARD
    assert map_kind("douyin", "IMAGE")[0] is Kind.IMAGE and map_kind("x", None)[0] is Kind.OTHER
    assert map_kind("x", True)[0] is Kind.OTHER
    assert placeholder(Kind.VIDEO) == "[视频]" and placeholder(Kind.EVENT, "system_transfer") == "[会话转接]"


async def test_retries_5xx_and_timeouts_then_delivers_in_order() -> None:
    plan = [http_error(503, ""), "hang", ConnectionResetError("reset"), None, None]
    sender, results, _ = await run(plan, [msg(1), msg(2)])
    assert [seq for seq, _ in sender.calls] == [1, 1, 1, 1, 2]
    assert results == [(1, Outcome("sent", attempts=4)), (2, Outcome("sent", attempts=1))]


async def test_no_retry_on_4xx_and_platform_refusals() -> None:
    sender, results, _ = await run([http_error(400, "bad"), SendError("douyin error 1", retryable=False)],
                                   [msg(1), msg(2), msg(3)])
    assert [seq for seq, _ in sender.calls] == [1, 2, 3]
    assert [(s, o.status, o.attempts, o.http_status) for s, o in results] == [
        (1, "failed", 1, 400), (2, "failed", 1, 0), (3, "sent", 1, 0)]


async def test_gives_up_after_max_attempts() -> None:
    sender, results, _ = await run([http_error(502, "")] * 10, [msg(1)])
    assert len(sender.calls) == 4 and results[0][1].status == "failed" and results[0][1].attempts == 4


async def test_a_crashing_sender_fails_the_message_without_looping() -> None:
    sender, results, _ = await run([ValueError("bug")], [msg(1), msg(2)])
    assert [(s, o.status) for s, o in results] == [(1, "failed"), (2, "sent")]


async def test_bounded_queue_refuses_when_full() -> None:
    _, results, accepted = await run(["hang"], [msg(i) for i in range(1, 7)])
    assert accepted.count(False) >= 2  # 3 queued + possibly 1 in flight


async def test_rate_limit_spaces_sends() -> None:
    sender, _, _ = await run([], [msg(1), msg(2), msg(3)], rate=10.0, burst=1)
    times = [t for _, t in sender.calls]
    assert times[2] - times[0] >= 0.15  # 10/s with a burst of 1
