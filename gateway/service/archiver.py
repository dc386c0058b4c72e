"""The archiver: every instance drains the store's archive outbox into the archive.

The close step queued the conversation (and a rating of a closed one queued a new version) in the
store, in that same step. Here, on any instance: claim what is due (``Store.claim_outbox``), read the
conversation and its log, build the record (``gateway.records.build``), ``await archive.put`` it,
then tell the store (``Store.archived``), which takes the entry out and lets the hot copy go
``[archive] keep_hot_s`` later. Until then the live log stays the truth:

- an instance that dies (kill -9) anywhere in this leaves its claimed entries in the outbox: they
  are claimed again, by any instance, once their claim's delay (``retry_s``, doubling up to
  ``max_retry_s``) has passed. A record written twice is harmless: ``put`` keeps the highest version;
- an archive that fails (down, full, a bad write) is retried: the next pass waits with exponential
  backoff and jitter (``backoff_s`` doubling up to ``max_backoff_s``) and claims one entry only, as
  a probe, until a write gets through; each failed write is logged and counted
  (``gateway_archive_writes_total{result="error"}``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.errors import StoreUnavailable
from gateway.model import ConvState
from gateway.records.archive import Archive
from gateway.records.build import build_record
from gateway.service.metrics import METRICS
from gateway.store import OutboxEntry, Store

log = logging.getLogger("gateway.archiver")


@dataclass(slots=True, frozen=True)
class ArchiverSettings:
    keep_hot_s: float = 86400.0  # [archive] keep_hot_s: an archived conversation stays in the store this long
    batch: int = 100  # entries claimed per pass (archived concurrently)
    idle_s: float = 0.5  # the wait after a pass that found less than a batch due
    retry_s: float = 10.0  # a claimed entry not reported archived is claimed again after this, doubling
    max_retry_s: float = 60.0
    backoff_s: float = 1.0  # the wait after a pass whose every write failed, doubling, with jitter
    max_backoff_s: float = 60.0
    store_retry_s: float = 1.0  # the wait after the store could not be reached


class ArchiveWriteFailed(Exception):
    """``archive.put`` raised: the entry stays in the outbox and is claimed again later."""


@dataclass(slots=True)
class PassResult:
    claimed: int = 0
    archived: int = 0  # written and reported (or nothing to write: gone, or open again)
    failed: int = 0  # the write failed, or building the record did


class Archiver:
    def __init__(
        self,
        store: Store,
        archive: Archive,
        settings: ArchiverSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.archive = archive
        self.settings = settings or ArchiverSettings()
        self.clock, self.sleep, self.rand = clock, sleep, rand
        self.failures = 0  # passes in a row whose every write failed
        self._running = asyncio.Event()
        self._running.set()

    def pause(self) -> None:
        """Stop after the current pass (until ``resume``): nothing is lost, the outbox waits."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def backoff(self, failures: int) -> float:
        """The wait after ``failures`` failed passes in a row: exponential, capped, half of it jitter."""
        s = self.settings
        full = min(s.max_backoff_s, s.backoff_s * 2.0 ** max(failures - 1, 0))
        return full / 2 + self.rand() * full / 2

    async def run(self) -> None:
        """Drain the outbox for ever (cancel to stop: what is in hand goes back to the outbox by itself)."""
        s = self.settings
        while True:
            await self._running.wait()
            try:
                res = await self.pass_once()
            except (StoreUnavailable, ConnectionError, OSError) as e:
                log.warning("event=archiver_store_unavailable error=%r", e)
                await self.sleep(s.store_retry_s)
                continue
            except Exception:
                log.exception("event=archiver_failed")
                await self.sleep(s.store_retry_s)
                continue
            if res.failed and not res.archived:
                self.failures += 1
                wait = self.backoff(self.failures)
                log.warning("event=archive_backoff failures=%d wait_s=%.1f", self.failures, wait)
                await self.sleep(wait)
                continue
            if res.archived:
                self.failures = 0  # (nothing due keeps the count: the next entry due probes the archive)
            if res.claimed < s.batch:
                await self.sleep(s.idle_s)

    async def pass_once(self) -> PassResult:
        """Claim what is due and archive it (one entry only while the archive is failing)."""
        s = self.settings
        limit = 1 if self.failures else s.batch
        entries = await self.store.claim_outbox(self.clock(), limit, retry_s=s.retry_s, max_retry_s=s.max_retry_s)
        res = PassResult(claimed=len(entries))
        if not entries:
            return res
        outcomes = await asyncio.gather(*(self.archive_one(e) for e in entries), return_exceptions=True)
        store_error: BaseException | None = None
        for entry, out in zip(entries, outcomes, strict=True):
            if out is None:
                res.archived += 1
            elif not isinstance(out, Exception):
                raise out  # cancelled, or dying: not ours to swallow
            elif isinstance(out, (StoreUnavailable, ConnectionError, OSError)):
                store_error = store_error or out
            else:
                res.failed += 1
                if not isinstance(out, ArchiveWriteFailed):
                    log.error("event=archive_record_failed conversation=%s version=%d error=%r",
                              entry.conversation, entry.version, out)
        if store_error is not None and not (res.archived or res.failed):
            raise store_error
        return res

    async def archive_one(self, entry: OutboxEntry) -> None:
        """Read, build, write, report: the entry leaves the outbox only once the archive has the record."""
        keep = self.settings.keep_hot_s
        conv = await self.store.get_conversation(entry.conversation)
        if conv is None or conv.state is not ConvState.CLOSED:
            # gone (nothing to write), or open again (its next close queues it): only out of the outbox
            log.warning("event=archive_skipped conversation=%s state=%s", entry.conversation,
                        conv.state.value if conv else "gone")
            METRICS.archive_writes.labels("skipped").inc()
            await self.store.archived(entry.conversation, entry.version, keep)
            return
        record = build_record(conv, await self.store.read_log(conv.id), entry.version)
        try:
            await self.archive.put(record)
        except Exception as e:
            METRICS.archive_writes.labels("error").inc()
            log.warning("event=archive_write_failed conversation=%s version=%d claims=%d error=%r",
                        conv.id, entry.version, entry.claims, e)
            raise ArchiveWriteFailed(str(e)) from e
        METRICS.archive_writes.labels("ok").inc()
        await self.store.archived(conv.id, entry.version, keep)
