"""The SQLite archive: the shared contract, plus what only a file on disk shows."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.records.errors import ArchiveUnavailable
from gateway.records.model import SearchFilters
from gateway.records.open import open_archive
from gateway.records.sqlite import SqliteArchive
from tests.records_contract import T0, ArchiveContract, ids, msg, rec


@pytest.fixture
async def archive(tmp_path: Path) -> AsyncIterator[SqliteArchive]:
    a = open_archive(f"sqlite:///{tmp_path}/var/archive.sqlite3")
    assert isinstance(a, SqliteArchive)
    await a.start()
    yield a
    await a.close()


class TestSqliteArchive(ArchiveContract):
    pass


def _read(path: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


async def test_the_file_is_made_in_wal_mode_with_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "archive.sqlite3"
    a = SqliteArchive(str(path))
    await a.start()
    await a.put(rec("c-1"))
    await a.close()
    assert await asyncio.to_thread(_read, path, "PRAGMA journal_mode") == [("wal",)]
    assert await asyncio.to_thread(_read, path, "SELECT version FROM schema_version") == [(1,)]
    # reopened: the record is there and no migration runs twice
    b = SqliteArchive(str(path))
    await b.start()
    assert (await b.get("c-1")) is not None
    await b.close()
    assert await asyncio.to_thread(_read, path, "SELECT version FROM schema_version") == [(1,)]


async def test_every_call_runs_on_the_one_worker_thread(archive: SqliteArchive, monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    threads: set[str] = set()
    real = archive._call

    def spy(fn, args):  # type: ignore[no-untyped-def]
        threads.add(threading.current_thread().name)
        return real(fn, args)

    monkeypatch.setattr(archive, "_call", spy)
    await archive.put(rec("c-1", messages=[msg("customer", "退款", 1)]))
    await archive.search(SearchFilters(q="退款"))
    await archive.history("u-1")
    assert len(threads) == 1 and next(iter(threads)).startswith("archive-sqlite")
    assert threading.main_thread().name not in threads


async def test_two_archives_on_one_file_see_each_others_records(tmp_path: Path) -> None:
    """Two processes (here: two connections) on one file, as ``gateway export`` beside a running gateway."""
    url = f"sqlite:///{tmp_path}/shared.sqlite3"
    a, b = open_archive(url), open_archive(url)
    await asyncio.gather(a.start(), b.start())
    await a.put(rec("c-1", T0 + 1))
    await b.put(rec("c-2", T0 + 2))
    assert await ids(a) == ["c-2", "c-1"] and await ids(b) == ["c-2", "c-1"]
    await a.close()
    await b.close()


async def test_an_unusable_path_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    await asyncio.to_thread(blocker.write_text, "not a directory")
    a = SqliteArchive(str(blocker / "archive.sqlite3"))
    with pytest.raises(ArchiveUnavailable):
        await a.start()
    with pytest.raises(ArchiveUnavailable):
        await a.put(rec("c-1"))
    await a.close()


def test_open_archive_refuses_bad_urls() -> None:
    for url in ("", "mysql://x", "sqlite://", "sqlite:///", "sqlite:///a.db?mode=ro",
                "postgresql://h/db?schema=Bad-Name"):
        with pytest.raises(ConfigError) as e:
            open_archive(url)
        assert e.value.key == "archive.url"


async def test_a_closed_archive_is_unavailable_and_closes_twice(tmp_path: Path) -> None:
    a = SqliteArchive(str(tmp_path / "a.sqlite3"))
    await a.start()
    await a.close()
    await a.close()
    with pytest.raises(ArchiveUnavailable):
        await a.get("c-1")
