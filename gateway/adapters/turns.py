"""Bot turns after the acknowledgement: ``after_customer_message`` off the request path.

A platform wants its answer fast (抖音 retries after 5 s), and a relay batch
carries up to 100 records, so the bot's turns run here, after the append is
acknowledged: a fixed set of workers, each with a bounded queue; a conversation
always lands on the same worker, so its turns run in arrival order.

Nothing is lost when a turn does not run here. ``customer_message`` stored the
message and its *pending turn* (timer ``turn:<conv>:<seq>``) in one step, so a
turn dropped because its queue is full (logged), or lost with a crashed
instance, is answered by whichever instance claims that timer after
``routing.turn_retry_s``; a turn finishes once, so one that runs here late is
refused by the store. Only the order is not kept for a dropped turn: a later
message queued meanwhile may be answered first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Awaitable, Callable

log = logging.getLogger("gateway.adapters.turns")

Turn = Callable[[], Awaitable[None]]


class TurnRunner:
    def __init__(self, workers: int, queue_size: int) -> None:
        self._queues: list[asyncio.Queue[tuple[str, Turn]]] = [asyncio.Queue(queue_size) for _ in range(workers)]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work(i), name=f"adapter-turns-{i}") for i in range(len(self._queues))]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []

    def submit(self, key: str, turn: Turn) -> bool:
        """Queue ``turn`` behind the earlier turns of ``key`` (a conversation id).

        False when the queue is full: the turn is dropped here, and its pending-turn timer answers it.
        """
        i = zlib.crc32(key.encode()) % len(self._queues)
        try:
            self._queues[i].put_nowait((key, turn))
        except asyncio.QueueFull:
            log.warning("event=turn_dropped key=%s reason=queue_full recovery=turn_timer", key)
            return False
        return True

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until every queued turn has run (tests, shutdown)."""
        async with asyncio.timeout(timeout):
            for q in self._queues:
                await q.join()

    async def _work(self, i: int) -> None:
        q = self._queues[i]
        while True:
            key, turn = await q.get()
            try:
                await turn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event=turn_failed key=%s", key)
            finally:
                q.task_done()
