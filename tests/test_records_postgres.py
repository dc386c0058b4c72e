"""The PostgreSQL archive: the shared contract, plus schemas, concurrent starts and an unreachable server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway.records.errors import ArchiveUnavailable
from gateway.records.open import open_archive
from gateway.records.postgres import PostgresArchive
from tests.pg import drop_schema, new_schema, reachable_postgres
from tests.records_contract import ArchiveContract, ids, rec
from tests.support import free_port


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A URL with a schema of this test's own (dropped after it)."""
    server = await reachable_postgres()
    schema = new_schema()
    yield f"{server}?schema={schema}"
    await drop_schema(server, schema)


@pytest.fixture
async def archive(pg_url: str) -> AsyncIterator[PostgresArchive]:
    a = open_archive(pg_url)
    assert isinstance(a, PostgresArchive)
    await a.start()
    yield a
    await a.close()


class TestPostgresArchive(ArchiveContract):
    pass


async def test_instances_starting_together_migrate_once(pg_url: str) -> None:
    archives = [open_archive(pg_url) for _ in range(4)]
    await asyncio.gather(*(a.start() for a in archives))
    await archives[0].put(rec("c-1"))
    assert await ids(archives[3]) == ["c-1"]
    for a in archives:
        await a.close()
    server, schema = pg_url.split("?schema=")
    conn = await asyncpg.connect(server)
    try:
        rows = await conn.fetch(f'SELECT version FROM "{schema}".schema_version')
        tables = await conn.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema)
    finally:
        await conn.close()
    assert [r["version"] for r in rows] == [1]
    assert {"records", "reviews", "schema_version"} <= {r["table_name"] for r in tables}


async def test_an_unreachable_server_is_unavailable_then_recovers_lazily(pg_url: str) -> None:
    dead = open_archive(f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    with pytest.raises(ArchiveUnavailable):
        await dead.start()
    with pytest.raises(ArchiveUnavailable):
        await dead.put(rec("c-1"))
    await dead.close()
    # the same object connects on its next call once the server is there (here: the real URL)
    late = open_archive(pg_url)
    assert isinstance(late, PostgresArchive)
    real_dsn = late.dsn
    late.dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    with pytest.raises(ArchiveUnavailable):
        await late.get("c-1")
    late.dsn = real_dsn
    await late.put(rec("c-1"))
    assert await late.get("c-1") is not None
    await late.close()
