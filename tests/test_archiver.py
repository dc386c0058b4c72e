"""The archiver (``gateway/service/archiver.py``) over the store's outbox and the real SQLite archive.

On the memory store, a redis-server and a Redis Cluster: every closed conversation is written, a
rating queues a new version (also one that lands while the record is being written), an archive
outage loses nothing and is backed off exponentially with jitter on an injected clock, and
``/metrics`` shows the outbox's depth and lag and the writes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.model import ConvState
from gateway.records.model import Record
from gateway.service.archiver import Archiver, ArchiverSettings
from gateway.service.metrics import METRICS
from gateway.store import MemoryStore, Store
from tests import test_store_contract as contract
from tests.archive_support import FakeTime, Outage, Stop, sqlite_archive
from tests.test_store_contract import Env, conv
from tests.test_store_steps import closed

backend, env = contract.backend, contract.env  # the contract's fixtures: memory, redis-server, cluster

HOUR = 3600.0


def writes(result: str) -> float:
    return METRICS.registry.get_sample_value("gateway_archive_writes_total", {"result": result}) or 0.0


async def test_each_closed_conversation_is_written_and_its_hot_copy_goes(env: Env, tmp_path: Path) -> None:
    s = env.store
    archive = await sqlite_archive(tmp_path)
    try:
        await closed(s, "c1", "u-1")
        await closed(s, "c2", "u-2")
        await s.rate("c2", 5, "很好")  # after its close: version 2
        await conv(s, "c3")  # open: not archived
        ok = writes("ok")
        archiver = Archiver(s, archive, ArchiverSettings(keep_hot_s=0.0), clock=lambda: time.time() + 1)
        res = await archiver.pass_once()
        assert (res.claimed, res.archived, res.failed) == (2, 2, 0) and writes("ok") == ok + 2
        r1, r2 = await archive.get("c1"), await archive.get("c2")
        assert r1 is not None and (r1.version, r1.agents, r1.customer_id, r1.bot_only) == (1, ("a",), "u-1", False)
        assert [m["seq"] for m in r1.messages] == [1, 2, 3, 4] and r1.messages[-1]["type"] == "closed"
        assert r2 is not None and (r2.version, r2.rating, r2.comment) == (2, 5, "很好")
        # the archive has them: the store lets them go (keep_hot_s 0: at once), the open one stays
        assert await s.get_conversation("c1") is None and await s.read_log("c2") == []
        assert await s.customer_conversation("u-1") is None
        assert await s.get_conversation("c3") is not None
        assert (await s.outbox_stats()).depth == 0
        assert (await archiver.pass_once()).claimed == 0
    finally:
        await archive.close()


class RatedDuringPut:
    """An archive whose first write is overtaken by the customer's rating (another instance's step)."""

    def __init__(self, inner: Any, store: Store) -> None:
        self.inner, self.store, self.versions = inner, store, []  # type: ignore[var-annotated]

    async def put(self, record: Record) -> None:
        if not self.versions:
            assert await self.store.rate(record.id, 2, "太慢了") == "a"
        self.versions.append(record.version)
        await self.inner.put(record)


async def test_a_rating_that_lands_while_the_record_is_written_gets_its_own_version(env: Env,
                                                                                   tmp_path: Path) -> None:
    s = env.store
    archive = await sqlite_archive(tmp_path)
    try:
        await closed(s, "r1")
        racing = RatedDuringPut(archive, s)
        archiver = Archiver(s, racing, ArchiverSettings(keep_hot_s=HOUR), clock=lambda: time.time() + 1)  # type: ignore[arg-type]
        assert (await archiver.pass_once()).archived == 1  # version 1 written; the store kept the entry
        assert (await s.outbox_stats()).depth == 1 and await s.get_conversation("r1") is not None
        assert (await archiver.pass_once()).archived == 1
        assert racing.versions == [1, 2]
        rec = await archive.get("r1")
        assert rec is not None and (rec.version, rec.rating, rec.comment) == (2, 2, "太慢了")
        assert (await s.outbox_stats()).depth == 0
    finally:
        await archive.close()


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_an_archive_outage_loses_nothing_and_backs_off_with_jitter(env: Env, tmp_path: Path) -> None:
    s = env.store
    outage = Outage(await sqlite_archive(tmp_path))
    n = 20
    try:
        for i in range(n):
            await closed(s, f"o{i}")
        outage.down = True
        errors = writes("error")
        t = FakeTime(time.time() + 1)
        backoffs = lambda: [w for w in t.waits if w != ArchiverSettings().idle_s]  # noqa: E731 - the passes' idle waits left out
        t.stop = lambda: len(backoffs()) >= 8
        archiver = Archiver(s, outage, ArchiverSettings(keep_hot_s=HOUR), clock=t.clock, sleep=t.sleep,  # type: ignore[arg-type]
                            rand=lambda: 0.5)
        with pytest.raises(Stop):
            await archiver.run()
        # the first pass finds the archive down with its whole batch; from then on one entry per pass
        # probes it, and the waits double up to 60 s (jitter takes up to half of each: rand 0.5, a quarter)
        assert outage.refused == n + 7 and writes("error") == errors + n + 7 and outage.puts == []
        assert backoffs() == [0.75 * w for w in (1, 2, 4, 8, 16, 32, 60, 60)]
        assert (await s.outbox_stats()).depth == n  # nothing left the outbox
        for i in range(n):  # and the live log is still the truth
            c = await s.get_conversation(f"o{i}")
            assert c is not None and c.state is ConvState.CLOSED and len(await s.read_log(f"o{i}")) == 4
        # the archive comes back: everything is written, the ones claimed during the outage too
        outage.down = False
        back = t.t
        t.stop = lambda: len(outage.puts) >= n
        with pytest.raises(Stop):
            await archiver.run()
        assert sorted(outage.puts) == sorted((f"o{i}", 1) for i in range(n))
        assert t.t - back <= 60.0 + 1.0  # the longest a claim hides an entry, plus a pass
        assert (await s.outbox_stats()).depth == 0 and archiver.failures == 0
        for i in range(n):
            rec = await outage.get(f"o{i}")
            assert rec is not None and rec.version == 1
    finally:
        await outage.close()


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
async def test_a_record_that_cannot_be_built_is_retried_without_stopping_the_others(env: Env,
                                                                                    tmp_path: Path) -> None:
    s = env.store
    archive = await sqlite_archive(tmp_path)
    try:
        await closed(s, "good")
        await closed(s, "bad")
        assert isinstance(s, MemoryStore)
        s._convs["bad"].meta["orders"] = 12345  # not a list: build_record fails on it
        t = FakeTime(time.time() + 1)
        archiver = Archiver(s, archive, ArchiverSettings(keep_hot_s=HOUR), clock=t.clock, sleep=t.sleep)
        res = await archiver.pass_once()
        assert (res.archived, res.failed) == (1, 1) and await archive.get("good") is not None
        assert (await s.outbox_stats()).depth == 1  # kept, claimed again later (10 s, 20 s, ...)
        s._convs["bad"].meta["orders"] = []
        t.t += 10.0
        assert (await archiver.pass_once()).archived == 1 and await archive.get("bad") is not None
    finally:
        await archive.close()


async def test_metrics_show_the_outbox_depth_lag_and_writes(gateway_app: Any) -> None:
    app = await gateway_app()
    ctx = app.ctx
    assert ctx.archiver is not None
    ctx.archiver.pause()
    store = ctx.service.store
    await closed(store, "m1")

    async def scrape() -> dict[str, float]:
        async with aiohttp.ClientSession() as http, http.get(app.http_url + "/metrics") as r:
            text = await r.text()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith(("gateway_archive_", "gateway_follow_ups_due")):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    m = await scrape()
    assert m["gateway_archive_outbox_depth"] == 1.0 and m["gateway_archive_outbox_lag_seconds"] > 0.0
    assert m["gateway_follow_ups_due"] == 0.0  # read at scrape time too (none pending here)
    ok = m.get('gateway_archive_writes_total{result="ok"}', 0.0)
    ctx.archiver.resume()  # the app's own archiver task writes it to the configured (SQLite) archive
    from tests.support import until

    await until(lambda: ctx.archive is not None and ctx.archive.get("m1"), what="archived")
    await until(lambda: store.get_conversation("m1"), what="still hot (keep_hot_s 1 day)")
    m = await until(scrape_when_empty(scrape), what="outbox empty")
    assert m["gateway_archive_outbox_lag_seconds"] == 0.0
    assert m['gateway_archive_writes_total{result="ok"}'] >= ok + 1


def scrape_when_empty(scrape: Any) -> Any:
    async def check() -> dict[str, float] | None:
        m: dict[str, float] = await scrape()
        return m if m["gateway_archive_outbox_depth"] == 0.0 else None

    return check
