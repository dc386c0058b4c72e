"""Memory stays flat over a long run: 50,000 closed conversations pass through, the store ends where it began.

The long ones of the suite (about 20-40 s each). Conversations are opened, written in and closed by
their customers through the conversation service (its steps, no sockets: the fast path), 1,000 at a
time, while the archiver writes them to the real SQLite archive (on tmpfs where there is one, so the
archive's file costs neither time nor this process's memory) and the store lets each go
``keep_hot_s`` after it is archived:

- memory store: ``keep_hot_s`` 60 s on the store's injected clock, which moves 30 s per round, so
  each round's conversations are dropped two rounds later. After 5,000 as a warm-up (first-use
  caches, the allocator's arenas) the process's RSS (``VmRSS``) and its live objects are read; after
  50,000 more they are read again: the store holds nothing of them and RSS is within 5 %;
- Redis store (a private redis-server): ``keep_hot_s`` 1 s and Redis's own expiry. ``INFO memory``
  ``used_memory`` once the warm-up's keys are gone, and again once the 50,000's are gone: within 5 %.

The figures are printed (``pytest -s``); README "The outbox and hot data" quotes them.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config, parse_config
from gateway.records.sqlite import SqliteArchive
from gateway.service.archiver import Archiver, ArchiverSettings
from gateway.service.botholder import BotHolder
from gateway.service.conversations import ConversationService
from gateway.store import MemoryStore, Store
from tests.conftest import RedisServer
from tests.support import DEMO_CONFIG, demo_config, until

ROUND = 1000
WARM_ROUNDS = 5
ROUNDS = 50  # 50,000 conversations after the warm-up
LIVE_TYPES = ("Conversation", "_Log", "OutboxEntry", "Record")


def config() -> Config:
    return parse_config(demo_config(), DEMO_CONFIG.parent)


def _rss_kb() -> int:
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def rss_kb() -> int:
    gc.collect()
    return await asyncio.to_thread(_rss_kb)


def live() -> Counter[str]:
    gc.collect()
    return Counter(n for o in gc.get_objects() if (n := type(o).__name__) in LIVE_TYPES)


@pytest.fixture
def archive_dir(tmp_path: Path) -> Iterator[Path]:
    """tmpfs where there is one: the archive's writes cost neither time nor this process's memory."""
    folder = Path(tempfile.mkdtemp(dir="/dev/shm")) if os.path.isdir("/dev/shm") else tmp_path
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def archive(archive_dir: Path) -> AsyncIterator[SqliteArchive]:
    a = SqliteArchive(str(archive_dir / "archive.sqlite3"))
    await a.start()
    yield a
    await a.close()


async def service(store: Store) -> ConversationService:
    svc = ConversationService(config(), store, BotHolder("", {}), "mem")
    await svc.start()
    return svc


async def one_round(svc: ConversationService, tag: str, concurrency: int = 1) -> list[str]:
    """``ROUND`` conversations opened, written in and closed by their customers (each a new customer)."""

    async def one(i: int) -> str:
        opened = await svc.open_conversation(f"u-{tag}-{i}")
        cid = opened.conversation.id
        await svc.customer_message(cid, "m1", "你好，我的快递到哪了", bot_turn=False)
        await svc.customer_close(cid)
        return cid

    out: list[str] = []
    for start in range(0, ROUND, concurrency):
        out += await asyncio.gather(*(one(i) for i in range(start, min(ROUND, start + concurrency))))
    return out


async def drain(archiver: Archiver) -> int:
    n = 0
    while True:
        res = await archiver.pass_once()
        assert not res.failed
        n += res.archived
        if res.claimed < archiver.settings.batch:
            return n


def store_sizes(s: MemoryStore) -> dict[str, int]:
    return {"conversations": len(s._convs), "logs": len(s._logs), "customers": len(s._customer_conv),
            "outbox": len(s._outbox), "hot": len(s._hot), "timers": len(s._timers)}


async def test_50000_closed_conversations_through_the_memory_store_leave_it_flat(archive: SqliteArchive) -> None:
    store = MemoryStore("flat")
    await store.start(lambda t, p: None)
    svc = await service(store)
    now = [time.time()]
    store.clock = lambda: now[0]
    archiver = Archiver(store, archive, ArchiverSettings(keep_hot_s=60.0), clock=lambda: time.time() + 1)
    written = 0

    async def rounds(n: int, tag: str) -> None:
        nonlocal written
        for r in range(n):
            await one_round(svc, f"{tag}{r}")
            written += await drain(archiver)
            now[0] += 30.0  # half of keep_hot_s: each round is dropped two rounds after it was archived
        now[0] += 61.0  # past every hot copy
        await store.claim_outbox(time.time())  # the store's next outbox step drops what has gone cold

    t0 = time.monotonic()
    await rounds(WARM_ROUNDS, "w")
    before, objects_before, sizes_before = await rss_kb(), live(), store_sizes(store)
    await rounds(ROUNDS, "r")
    after, objects_after, sizes_after = await rss_kb(), live(), store_sizes(store)
    elapsed = time.monotonic() - t0
    total = ROUND * (WARM_ROUNDS + ROUNDS)
    print(f"\nmemory store: {total} conversations closed and archived in {elapsed:.1f} s; RSS after the "
          f"{ROUND * WARM_ROUNDS:,} warm-up {before / 1024:.1f} MB, after {ROUND * ROUNDS:,} more "
          f"{after / 1024:.1f} MB ({(after - before) / before:+.1%}); store {sizes_after}; live {dict(objects_after)}")
    assert written == total
    assert sizes_before == sizes_after == {"conversations": 0, "logs": 0, "customers": 0, "outbox": 0, "hot": 0,
                                           "timers": 0}
    assert objects_after == objects_before, f"objects left: {objects_after - objects_before}"
    assert after <= before * 1.05, f"RSS grew {before} -> {after} kB"
    found = 0
    async for _ in archive.between(0.0, time.time() + 60):
        found += 1
    assert found == total
    await store.close()


async def used_memory(r: Any) -> int:
    return int((await r.info("memory"))["used_memory"])


@pytest.mark.redis
async def test_50000_closed_conversations_through_redis_expire_and_used_memory_is_flat(
        redis_factory: Callable[..., RedisServer], archive: SqliteArchive) -> None:
    from redis.asyncio import Redis

    from gateway.store.redis import RedisStore

    srv = redis_factory()
    store = RedisStore(srv.url, "flat", instance="flat-1")
    await store.start(lambda t, p: None)
    svc = await service(store)
    r = Redis.from_url(srv.url)
    # as on a gateway: the archiver runs beside the traffic (idle passes 50 ms apart)
    archiver = Archiver(store, archive, ArchiverSettings(keep_hot_s=1.0, batch=500, idle_s=0.05))
    task = asyncio.create_task(archiver.run())
    baseline_keys = 0
    peak = 0

    async def rounds(n: int, tag: str) -> None:
        nonlocal peak
        for i in range(n):
            await one_round(svc, f"{tag}{i}", concurrency=250)
            peak = max(peak, await used_memory(r))
        await until(lambda: _outbox_empty(store), timeout=60, what="everything archived")
        # Redis's own expiry takes every archived conversation's keys (keep_hot_s 1 s)
        await until(lambda: _dbsize_at_most(r, baseline_keys), timeout=60, what="the conversations' keys expired")

    try:
        t0 = time.monotonic()
        await svc.open_conversation("u-first")  # the namespace's own keys (secret, agents, ...) and one more
        baseline_keys = int(await r.dbsize())
        await rounds(WARM_ROUNDS, "w")
        before = await used_memory(r)
        await rounds(ROUNDS, "r")
        after = await used_memory(r)
        elapsed = time.monotonic() - t0
        found = 0
        async for _ in archive.between(0.0, time.time() + 60):
            found += 1
        mb = 1024 * 1024
        print(f"\nredis store: {found} conversations closed, archived and expired in {elapsed:.1f} s; used_memory "
              f"after the {ROUND * WARM_ROUNDS:,} warm-up {before / mb:.2f} MB, after {ROUND * ROUNDS:,} more "
              f"{after / mb:.2f} MB ({(after - before) / mb:+.2f} MB; peak while a round was hot {peak / mb:.1f} MB); "
              f"keys {await r.dbsize()}")
        assert found == ROUND * (WARM_ROUNDS + ROUNDS)
        # flat: what stays does not grow with the conversations (kept, 50,000 would be about 250 MB)
        assert after - before <= 512 * 1024, f"used_memory grew {before} -> {after}"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await r.aclose()
        await store.close()


async def _outbox_empty(store: Store) -> bool:
    return (await store.outbox_stats()).depth == 0


async def _dbsize_at_most(r: Any, n: int) -> bool:
    return int(await r.dbsize()) <= n
