"""Kill the archiver at every await of its flow: nothing is lost, every version ends archived once.

An instance drains the archive outbox (``Archiver.pass_once``, one entry a pass) over a store and an
archive wrapped in one ``CrashingStore`` counter (``tests/crash_support.py``): it dies at the k-th
awaited call of the whole drain (claim, read the conversation, read its log, write the record,
report it archived; then the next entry), BEFORE the call (it never happened) or AFTER it (it
happened; the instance died before using the result), for every k until the drain completes. On
the memory store and a real redis-server (a fresh namespace per run), with the real SQLite archive.

After each death:
- nothing is lost: every closed conversation is either in the archive at its current version, or
  still in the outbox with its conversation and whole log in the store; the store lets no hot copy
  go (no drop scheduled, no key expiring) unless the archive has its current version;
- a rating lands on one of them (a new version), then a SURVIVOR (Redis: another instance; memory:
  the same store), on a clock past the dead instance's claims, drains the outbox: the archive then
  holds each conversation exactly once at its final version (rating included), the outbox is empty
  and every hot copy is set to go.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.records.sqlite import SqliteArchive
from gateway.service.archiver import Archiver, ArchiverSettings
from gateway.store import MemoryStore, Store
from tests.archive_support import sqlite_archive
from tests.crash_support import Crash, CrashingStore
from tests.test_store_steps import closed

CONVS = ("c1", "c2", "c3")
HOT_S = 3600.0
SETTINGS = ArchiverSettings(keep_hot_s=HOT_S, batch=1)  # one entry a pass: one order of awaits
PAST_CLAIMS_S = 61.0  # the survivor's clock: past any claim's hiding (at most max_retry_s, 60 s)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        return str(request.getfixturevalue("redis_server").url)
    return "memory://"


@dataclass
class World:
    store: Store
    survivor_store: Store
    archive: SqliteArchive
    store_proxy: CrashingStore
    archive_proxy: CrashingStore
    redis: object | None = None
    versions: dict[str, int] = field(default_factory=lambda: {"c1": 1, "c2": 2, "c3": 1})

    def dying(self) -> Archiver:
        return Archiver(self.store_proxy, self.archive_proxy, SETTINGS,  # type: ignore[arg-type]
                        clock=lambda: time.time() + 1)

    def arm(self, k: int, mode: str) -> None:
        self.store_proxy.arm(k, mode)
        self.archive_proxy.arm(k, mode)
        self.archive_proxy.calls = self.store_proxy.calls  # one count over both: the flow's awaits

    def calls(self) -> list[str]:
        return list(self.store_proxy.calls)

    async def close(self) -> None:
        await self.archive.close()
        if self.redis is not None:
            await self.redis.aclose()  # type: ignore[attr-defined]
        for s in {id(self.store): self.store, id(self.survivor_store): self.survivor_store}.values():
            await s.close()


@pytest.fixture
async def worlds(backend: str, tmp_path: Path) -> AsyncIterator[list[World]]:
    made: list[World] = []
    yield made
    for w in made:
        await w.close()


async def make_world(backend: str, folder: Path, made: list[World]) -> World:
    ns = f"arch{uuid.uuid4().hex[:10]}"
    redis = None
    store: Store
    if backend.startswith("memory"):
        store = survivor = MemoryStore(ns)
        await store.start(lambda t, p: None)
    else:
        from redis.asyncio import Redis

        from gateway.store.redis import RedisStore

        store, survivor = RedisStore(backend, ns, instance=f"A-{ns}"), RedisStore(backend, ns, instance=f"B-{ns}")
        await store.start(lambda t, p: None)
        await survivor.start(lambda t, p: None)
        redis = Redis.from_url(backend, decode_responses=True)
    archive = await sqlite_archive(folder)
    w = World(store, survivor, archive, CrashingStore(store), CrashingStore(archive), redis)  # type: ignore[arg-type]
    made.append(w)
    for cid in CONVS:
        await closed(store, cid, f"u-{cid}")
    assert await store.rate("c2", 5, "好") == "a"  # after its close: version 2 before any archiving
    return w


async def drain(archiver: Archiver) -> None:
    for _ in range(20):
        if not (await archiver.pass_once()).claimed:
            return
    raise AssertionError("the outbox never emptied")


async def let_go(w: World, cid: str) -> bool:
    """Has the store set ``cid``'s hot copy to go (memory: a drop scheduled; Redis: its keys expiring)?"""
    if isinstance(w.store, MemoryStore):
        return cid in w.store._hot
    from gateway.store.keys import Keys

    k = Keys(w.store.namespace)
    ttls = [await w.redis.pttl(key) for key in (k.conv(cid), k.log(cid))]  # type: ignore[attr-defined]
    assert ttls[0] > 0 or ttls[1] <= 0, f"{cid}: only part of it expires: {ttls}"
    return bool(ttls[0] > 0)


async def check_nothing_lost(w: World, what: str) -> None:
    depth = (await w.store.outbox_stats()).depth
    queued = 0
    for cid in CONVS:
        rec = await w.archive.get(cid)
        has_it = rec is not None and rec.version == w.versions[cid]
        assert rec is None or rec.version <= w.versions[cid], f"{what}: {cid} archived ahead of the store"
        conv = await w.store.get_conversation(cid)
        assert conv is not None and len(await w.store.read_log(cid)) == 4, f"{what}: {cid} hot copy gone early"
        if await let_go(w, cid):
            assert has_it, f"{what}: {cid} let go before the archive had version {w.versions[cid]}"
        elif not has_it:
            queued += 1  # still the live log's: it must still be queued
    assert depth >= queued, f"{what}: {queued} not archived but only {depth} in the outbox"


async def check_final(w: World, what: str) -> None:
    assert (await w.store.outbox_stats()).depth == 0, f"{what}: the outbox is not empty"
    for cid in CONVS:
        rec = await w.archive.get(cid)
        conv = await w.store.get_conversation(cid)
        assert rec is not None and conv is not None, f"{what}: {cid} missing"
        assert rec.version == w.versions[cid] and (rec.rating, rec.comment) == (conv.rating, conv.rating_comment), (
            f"{what}: {cid} archived as version {rec.version} with rating {rec.rating}")
        assert len(rec.messages) == 4 and await let_go(w, cid), f"{what}: {cid}"
    found = [r.id async for r in w.archive.between(0.0, time.time() + 10)]
    assert sorted(found) == sorted(CONVS), f"{what}: the archive holds {found}"  # each exactly once


async def survive(w: World, what: str) -> None:
    """A rating on c1 (another instance's step), then the survivor drains on a clock past the claims."""
    assert await w.survivor_store.rate("c1", 3, "一般") == "a"
    w.versions["c1"] += 1
    survivor = Archiver(w.survivor_store, w.archive, SETTINGS, clock=lambda: time.time() + PAST_CLAIMS_S)
    await drain(survivor)
    await check_final(w, what)


async def test_kill_the_archiver_at_every_await(backend: str, tmp_path: Path, worlds: list[World]) -> None:
    ref = await make_world(backend, tmp_path / "ref", worlds)
    ref.arm(0, "before")
    await drain(ref.dying())
    calls = ref.calls()
    per_entry = ["claim_outbox", "get_conversation", "read_log", "put", "archived"]
    assert calls == per_entry * len(CONVS) + ["claim_outbox"], calls
    await survive(ref, "clean run")
    deaths = 0
    for mode in ("before", "after"):
        for k in range(1, len(calls) + 1):
            what = f"died {mode} call {k} ({calls[k - 1]})"
            w = await make_world(backend, tmp_path / f"{mode}{k}", worlds)
            w.arm(k, mode)
            with pytest.raises(Crash):
                await drain(w.dying())
            assert w.calls() == calls[:k], f"{what}: took another path {w.calls()}"
            deaths += 1
            await check_nothing_lost(w, what)
            await survive(w, what)
            await w.close()
            worlds.remove(w)
    assert deaths == 2 * len(calls)
