"""A PostgreSQL for the archive tests: the test machines run one on 127.0.0.1:5432 (trust auth, database test).

``GATEWAY_TEST_POSTGRES`` names another server. Without one the tests skip with the reason, unless
``GATEWAY_REQUIRE_POSTGRES=1`` (``.ci/run``), which makes its absence a failure. Every test gets a
schema of its own (``?schema=gw_test_…``), dropped after it.
"""

from __future__ import annotations

import os
import uuid

import asyncpg
import pytest

SERVER = os.environ.get("GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def reachable_postgres() -> str:
    """The server's URL, or skip (fail under GATEWAY_REQUIRE_POSTGRES=1) naming why there is none."""
    try:
        conn = await asyncpg.connect(SERVER, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as e:
        reason = f"no PostgreSQL at {SERVER}: {e!r}"
        if os.environ.get("GATEWAY_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"GATEWAY_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    await conn.close()
    return SERVER


def new_schema() -> str:
    return f"gw_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"


async def drop_schema(server: str, schema: str) -> None:
    conn = await asyncpg.connect(server, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
