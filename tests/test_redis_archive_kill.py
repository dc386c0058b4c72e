"""kill -9 of ``gateway serve`` in the middle of archiving: a second instance archives the rest.

Instance A (its own process, on a redis-server, the SQLite archive in a file) drains the outbox while
this test closes 1,000 conversations in its namespace (the store's own steps, as another instance
would). Once A has archived some and holds a batch it has claimed but not reported (the outbox's
``outbox_retry`` entries whose delay has not passed), A gets SIGKILL. Instance B then starts: it
archives what was never claimed at once, and A's claimed entries as their delay (10 s) passes.
In the end every conversation is in the archive exactly once, the outbox is empty and every hot
copy is set to expire (``[archive] keep_hot_s``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from gateway.model import Conversation
from gateway.records.sqlite import SqliteArchive
from gateway.store.keys import Keys
from gateway.store.redis import RedisStore
from tests.conftest import GatewayProcess, RedisServer
from tests.support import until
from tests.test_redis_instances import base_config, spawn, stop_all

pytestmark = pytest.mark.redis

N = 1000
KEEP_HOT_S = 3600


@pytest.fixture
def procs() -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    yield started
    stop_all(started)


async def close_many(store: RedisStore, n: int) -> list[str]:
    """``n`` conversations opened, written in and closed by the customer (three steps each), 100 at a time."""
    ids = [f"k-{i:04d}-{uuid.uuid4().hex[:6]}" for i in range(n)]

    async def one(cid: str) -> None:
        await store.create_conversation(Conversation(cid, f"u-{cid}", created_at=time.time()))
        await store.append(cid, {"type": "message", "from": "customer", "text": "我的快递到哪了"}, client_id="m1")
        await store.close_conversation(cid, "customer")

    for start in range(0, n, 100):
        await asyncio.gather(*(one(cid) for cid in ids[start:start + 100]))
    return ids


async def test_kill_9_mid_archiving_a_second_instance_archives_the_rest(
        procs: list[GatewayProcess], redis_server: RedisServer, tmp_path: Path) -> None:
    namespace = f"archkill{uuid.uuid4().hex[:8]}"
    db = tmp_path / "archive.sqlite3"
    cfg = base_config(namespace, [])
    cfg["archive"] = {"url": f"sqlite:///{db}", "keep_hot_s": KEEP_HOT_S}
    [a] = spawn(tmp_path, cfg, redis_server.url, 1)
    procs.append(a)
    k = Keys(namespace)
    r = Redis.from_url(redis_server.url, decode_responses=True)
    maker = RedisStore(redis_server.url, namespace, instance=f"maker-{namespace}")
    archive = SqliteArchive(str(db))
    try:
        await maker.start(lambda t, p: None)
        ids = await close_many(maker, N)

        async def in_hand() -> int:
            """Entries claimed and not reported archived whose claim still hides them."""
            return int(await r.zcount(k.outbox_retry, f"({time.time() + 1}", "+inf"))

        async def mid_archiving() -> bool:
            left = int(await r.zcard(k.outbox))
            return left < N - 50 and left > 0 and await in_hand() > 0

        await until(mid_archiving, timeout=60, what="A archiving, a batch in hand")
        a.proc.kill()  # SIGKILL: no drain, no hand-over
        await asyncio.to_thread(a.proc.wait, 10)
        left, held = int(await r.zcard(k.outbox)), await in_hand()
        print(f"\nkill -9 of A: {N - left} of {N} archived, {left} left in the outbox, {held} of them in A's hands")
        assert 0 < held <= left < N

        t0 = time.monotonic()
        [b] = spawn(tmp_path, cfg, redis_server.url, 1)
        procs.append(b)
        await until(lambda: _empty(r, k), timeout=90, what="B emptied the outbox")
        print(f"B archived the rest in {time.monotonic() - t0:.1f} s (A's claims came back after their 10 s)")

        found = [rec async for rec in archive.between(0.0, time.time() + 60)]
        assert sorted(rec.id for rec in found) == sorted(ids)  # every one, exactly once
        assert all(rec.version == 1 and rec.close_reason == "customer" and rec.customer_messages == 1
                   for rec in found)
        assert await r.zcard(k.outbox_retry) == 0 and await r.hlen(k.outbox_tries) == 0
        pipe = r.pipeline(transaction=False)
        for cid in ids:
            pipe.pttl(k.conv(cid))
            pipe.pttl(k.log(cid))
        ttls = await pipe.execute()
        assert all(0 < t <= KEEP_HOT_S * 1000 for t in ttls), "a hot copy is not set to expire"
    finally:
        await archive.close()
        await maker.close()
        await r.aclose()


async def _empty(r: Redis, k: Keys) -> bool:
    return int(await r.zcard(k.outbox)) == 0
