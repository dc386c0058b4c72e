"""Work that follows an acknowledgement: bot turns and hand-offs, off the request path.

A fixed set of workers, each with a bounded queue; a conversation always lands on
the same worker, so its turns run in arrival order. A full queue drops the turn
(logged): the message itself is already stored and an agent still sees it.
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
        """Queue ``turn`` behind the earlier turns of ``key`` (a conversation id). False when full."""
        i = zlib.crc32(key.encode()) % len(self._queues)
        try:
            self._queues[i].put_nowait((key, turn))
        except asyncio.QueueFull:
            log.error("event=turn_dropped key=%s reason=queue_full", key)
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
