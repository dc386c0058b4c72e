"""Archive tests' tools: the real SQLite archive, an outage switch over it, and a clock the archiver sleeps on.

- ``sqlite_archive(dir)``: the gateway's own SQLite backend (``gateway.records.sqlite``), started;
- ``Outage``: forwards to an archive and, while ``down``, raises ``ArchiveUnavailable`` from ``put``
  (nothing written), as the backends do when their database cannot be reached; it records every put;
- ``FakeTime``: an injected clock and ``sleep`` for ``Archiver``: a sleep moves the clock, yields to
  the loop once and records the wait, so backoff and retry delays are checked without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.records.archive import Archive
from gateway.records.errors import ArchiveUnavailable
from gateway.records.model import Record
from gateway.records.sqlite import SqliteArchive


async def sqlite_archive(folder: Path, name: str = "archive.sqlite3") -> SqliteArchive:
    archive = SqliteArchive(str(folder / name))
    await archive.start()
    return archive


class Outage:
    """An archive that can be taken down: ``put`` raises while ``down`` (nothing is written)."""

    def __init__(self, inner: Archive) -> None:
        self.inner = inner
        self.down = False
        self.puts: list[tuple[str, int]] = []  # (conversation, version) of every put that got through
        self.refused = 0

    async def put(self, record: Record) -> None:
        if self.down:
            self.refused += 1
            raise ArchiveUnavailable("archive database unreachable (test outage)")
        await self.inner.put(record)
        self.puts.append((record.id, record.version))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Stop(Exception):
    """Raised by ``FakeTime.sleep`` once the test's condition holds: ends ``Archiver.run``."""


class FakeTime:
    def __init__(self, start: float, stop: Callable[[], bool] = lambda: False, limit: int = 10_000) -> None:
        self.t = start
        self.waits: list[float] = []
        self.stop = stop
        self.limit = limit

    def clock(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)
        if self.stop() or len(self.waits) >= self.limit:
            raise Stop
