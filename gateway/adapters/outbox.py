"""One shop's outbound queue: bounded, in order, rate-limited, retried, then dead-lettered.

A single worker per shop sends one message at a time, so a buyer gets replies in
log order even while the platform is down (later messages wait behind the one
being retried). 5xx, 429, timeouts and connection errors are retried with
exponential back-off and jitter; 4xx and platform "bad request" codes are not.
Every message ends in exactly one ``on_result`` call: ``sent`` or ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from gateway.adapters.base import OutboundMessage, OutboundSender, SendError
from gateway.adapters.config import AdapterSettings
from gateway.service.ratelimit import TokenBucket

log = logging.getLogger("gateway.adapters.outbox")


@dataclass(slots=True, frozen=True)
class Outcome:
    status: str  # "sent" | "failed"
    error: str = ""
    http_status: int = 0
    attempts: int = 0


ResultHook = Callable[[OutboundMessage, Outcome], Awaitable[None]]


def backoff_delay(attempt: int, base: float, ceiling: float, rnd: Callable[[], float] = random.random) -> float:
    """Delay before retry ``attempt`` (1-based): base·2^(n-1) capped, "equal jitter" (half fixed, half random)."""
    d = min(ceiling, base * 2.0 ** (attempt - 1))
    return d / 2 + float(rnd()) * d / 2


class Outbox:
    def __init__(
        self,
        name: str,
        sender: OutboundSender,
        settings: AdapterSettings,
        on_result: ResultHook,
        *,
        rate: float,
        burst: int,
    ) -> None:
        self.name = name
        self._sender = sender
        self._settings = settings
        self._on_result = on_result
        self._queue: asyncio.Queue[OutboundMessage] = asyncio.Queue(settings.queue_size)
        self._rate = rate
        self._bucket = TokenBucket(burst, burst / rate, time.monotonic())
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"outbox:{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue.qsize():
            log.warning("event=outbox_stopped shop=%s unsent=%d", self.name, self._queue.qsize())

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def submit(self, msg: OutboundMessage) -> bool:
        """Queue ``msg``; False (nothing queued) when the queue is full."""
        try:
            self._queue.put_nowait(msg)
        except asyncio.QueueFull:
            return False
        return True

    async def _run(self) -> None:
        while True:
            msg = await self._queue.get()
            outcome = await self._deliver(msg)
            try:
                await self._on_result(msg, outcome)
            except Exception:
                log.exception("event=outbox_result_failed shop=%s conversation=%s seq=%d", self.name,
                              msg.conversation, msg.seq)

    async def _take_token(self) -> None:
        """Wait for the shop's rate limit (a token bucket refilled continuously)."""
        while not self._bucket.allow(time.monotonic()):  # noqa: ASYNC110 - polling a clock, not an event
            await asyncio.sleep(1.0 / self._rate)

    async def _deliver(self, msg: OutboundMessage) -> Outcome:
        s = self._settings
        attempt = 0
        while True:
            attempt += 1
            await self._take_token()
            status = 0
            try:
                async with asyncio.timeout(s.request_timeout_s):
                    await self._sender.send(msg)
                return Outcome("sent", attempts=attempt)
            except SendError as e:
                error, retry, status = e.message, e.retryable, e.status
            except TimeoutError:
                error, retry = f"timeout after {s.request_timeout_s}s", True
            except (aiohttp.ClientError, OSError) as e:
                error, retry = f"connection failed: {e!r}", True
            except Exception as e:  # a bug in a sender: do not loop on it
                log.exception("event=send_crashed shop=%s conversation=%s", self.name, msg.conversation)
                error, retry = f"internal error: {e!r}", False
            if not retry or attempt >= s.max_attempts:
                log.warning("event=send_failed shop=%s conversation=%s seq=%d attempts=%d error=%r", self.name,
                            msg.conversation, msg.seq, attempt, error)
                return Outcome("failed", error, status, attempt)
            delay = backoff_delay(attempt, s.backoff_base_s, s.backoff_max_s)
            log.info("event=send_retry shop=%s conversation=%s seq=%d attempt=%d delay_s=%.2f error=%r", self.name,
                     msg.conversation, msg.seq, attempt, delay, error)
            await asyncio.sleep(delay)
