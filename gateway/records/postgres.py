"""The shared archive: PostgreSQL through asyncpg (``[archive] url = "postgresql://…"``).

Several gateway instances write to one database. Migrations run at start under a transaction-scoped
advisory lock, so instances starting together migrate once. ``?schema=NAME`` in the URL keeps the
tables in that schema (made if missing): several gateways, or test runs, can share one database.

Message text is searched by PostgreSQL full text over the same words as SQLite (``gateway.records.text``):
the tsvector is built from those words as they are (``array_to_tsvector``, no parser or dictionary,
so no locale changes how Chinese is split) and a query is the AND of its words as a tsquery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from gateway.records import rows, text
from gateway.records.errors import ArchiveUnavailable
from gateway.records.model import HistoryItem, Record, SearchFilters
from gateway.records.query import decode_cursor, encode_cursor

log = logging.getLogger("gateway.records.postgres")

MAX_LEXEMES = 20_000  # a tsvector holds at most 1 MB
CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 30.0

MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE records (
            id text COLLATE "C" PRIMARY KEY,  -- ids sort bytewise, as in SQLite
            customer_id text NOT NULL,
            channel text NOT NULL,
            shop text NOT NULL,
            skill text NOT NULL,
            priority text NOT NULL,
            agents text[] NOT NULL,
            orders text[] NOT NULL,
            created_at double precision NOT NULL,
            closed_at double precision NOT NULL,
            resolution text NOT NULL,
            category text NOT NULL,
            rating integer NOT NULL,
            needs_review boolean NOT NULL,
            version integer NOT NULL,
            words tsvector NOT NULL,
            record text NOT NULL,
            messages text NOT NULL)""",
        "CREATE INDEX records_created ON records (created_at, id)",
        "CREATE INDEX records_customer ON records (customer_id, created_at)",
        "CREATE INDEX records_agents ON records USING gin (agents)",
        "CREATE INDEX records_orders ON records USING gin (orders)",
        "CREATE INDEX records_words ON records USING gin (words)",
        "CREATE INDEX records_review ON records (created_at, id) WHERE needs_review",
        """CREATE TABLE reviews (id text PRIMARY KEY, state text NOT NULL, note text NOT NULL,
            reviewed_by text NOT NULL, reviewed_at double precision NOT NULL)""",
    ]),
]

_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def tsquery(words: Sequence[str]) -> str:
    """Every word a quoted lexeme, ANDed: no word is read as tsquery syntax."""
    return " & ".join("'" + w.replace("\\", "\\\\").replace("'", "''") + "'" for w in words)


def _t(s: str) -> str:
    return s.replace("\x00", "")  # PostgreSQL text cannot hold NUL


class PostgresArchive:
    def __init__(self, dsn: str, schema: str = "") -> None:
        self.dsn = dsn  # without the ``schema`` parameter
        self.schema = schema
        self._pool: asyncpg.Pool | None = None
        self._starting = asyncio.Lock()

    async def _ensure(self) -> asyncpg.Pool:
        """The pool, connecting and migrating first if that has not happened yet (or failed before)."""
        if self._pool is not None:
            return self._pool
        async with self._starting:
            if self._pool is None:
                await asyncio.to_thread(text.segmenter)  # jieba's dictionary, off the event loop
                settings = {"search_path": f'"{self.schema}"'} if self.schema else {}
                try:
                    pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4, timeout=CONNECT_TIMEOUT_S,
                                                     command_timeout=COMMAND_TIMEOUT_S, server_settings=settings)
                except _ERRORS as e:
                    raise ArchiveUnavailable(f"postgresql archive: {e!r}") from e
                try:
                    await self._migrate(pool)
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
        assert self._pool is not None
        return self._pool

    async def _migrate(self, pool: asyncpg.Pool) -> None:
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('gateway-archive:' || $1))", self.schema)
                if self.schema:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                await conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                                   "(version integer NOT NULL, applied_at double precision NOT NULL)")
                current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
                for version, statements in MIGRATIONS:
                    if version > current:
                        for sql in statements:
                            await conn.execute(sql)
                        await conn.execute("INSERT INTO schema_version VALUES ($1, $2)", version, time.time())
                        log.info("event=archive_migrated backend=postgresql version=%d", version)
        except _ERRORS as e:
            raise ArchiveUnavailable(f"postgresql archive migration: {e!r}") from e

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        pool = await self._ensure()
        try:
            result: list[asyncpg.Record] = await pool.fetch(sql, *args)
        except _ERRORS as e:
            raise ArchiveUnavailable(f"postgresql archive: {e!r}") from e
        return result

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._ensure()

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def schema_version(self) -> int:
        return int((await self._fetch("SELECT max(version) AS v FROM schema_version"))[0]["v"])

    # ------------------------------------------------------------ writes

    async def put(self, record: Record) -> None:
        rec = record
        await self._ensure()  # the segmenter is built there
        lexemes = (await asyncio.to_thread(text.lexemes, rec.messages))[:MAX_LEXEMES]  # a long log: CPU
        await self._fetch(
            "INSERT INTO records (id, customer_id, channel, shop, skill, priority, agents, orders, created_at, "
            "closed_at, resolution, category, rating, needs_review, version, words, record, messages) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, array_to_tsvector($16), "
            "$17, $18) ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id, "
            "channel = EXCLUDED.channel, shop = EXCLUDED.shop, skill = EXCLUDED.skill, "
            "priority = EXCLUDED.priority, agents = EXCLUDED.agents, orders = EXCLUDED.orders, "
            "created_at = EXCLUDED.created_at, closed_at = EXCLUDED.closed_at, resolution = EXCLUDED.resolution, "
            "category = EXCLUDED.category, rating = EXCLUDED.rating, needs_review = EXCLUDED.needs_review, "
            "version = EXCLUDED.version, words = EXCLUDED.words, record = EXCLUDED.record, "
            "messages = EXCLUDED.messages WHERE records.version <= EXCLUDED.version",
            _t(rec.id), _t(rec.customer_id), _t(rec.channel), _t(rec.shop), _t(rec.skill), _t(rec.priority),
            [_t(a) for a in rec.agents], [_t(o) for o in rec.orders], rec.created_at, rec.closed_at,
            _t(rec.resolution), _t(rec.category), rec.rating, rows.needs_review(rec), rec.version, lexemes,
            rows.dump_record(rec).decode(), rows.dump_messages(rec).decode())

    async def mark_reviewed(self, conversation: str, note: str, by: str) -> bool:
        found = await self._fetch(
            "INSERT INTO reviews SELECT id, 'reviewed', $2, $3, $4 FROM records WHERE id = $1 AND needs_review "
            "ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, note = EXCLUDED.note, "
            "reviewed_by = EXCLUDED.reviewed_by, reviewed_at = EXCLUDED.reviewed_at RETURNING id",
            _t(conversation), _t(note), _t(by), time.time())
        return bool(found)

    # ------------------------------------------------------------ reads

    async def get(self, conversation: str) -> Record | None:
        found = await self._fetch("SELECT record, messages FROM records WHERE id = $1", _t(conversation))
        return rows.load_record(found[0]["record"], found[0]["messages"]) if found else None

    async def search(self, filters: SearchFilters, limit: int = 50, cursor: str = "") -> tuple[list[Record], str]:
        after = decode_cursor(cursor) if cursor else None
        await self._ensure()  # the segmenter is built there
        if filters.q and not text.query_words(filters.q):
            return [], ""
        where, args = _where(filters)
        if after is not None:
            args += [after[0], _t(after[1])]
            where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
        args.append(limit + 1)
        found = await self._fetch(f"SELECT record FROM records WHERE {' AND '.join(where) or 'true'} "
                                  f"ORDER BY created_at DESC, id DESC LIMIT ${len(args)}", *args)
        records = [rows.load_record(r["record"]) for r in found[:limit]]
        more = len(found) > limit
        return records, encode_cursor(records[-1].created_at, records[-1].id) if more else ""

    async def history(self, customer: str, limit: int = 5, before: str = "") -> list[HistoryItem]:
        found = await self._fetch("SELECT record FROM records WHERE customer_id = $1 AND id <> $2 "
                                  "ORDER BY created_at DESC, id DESC LIMIT $3", _t(customer), _t(before), limit)
        return [rows.history_item(rows.load_record(r["record"])) for r in found]

    async def between(self, from_ts: float, to_ts: float) -> AsyncIterator[Record]:
        after: tuple[float, str] = (from_ts, "")
        while True:
            found = await self._fetch(
                "SELECT record, messages FROM records WHERE created_at < $1 AND (created_at, id) > ($2, $3) "
                "ORDER BY created_at, id LIMIT $4", to_ts, after[0], after[1], rows.PAGE)
            page = [rows.load_record(r["record"], r["messages"]) for r in found]
            for rec in page:
                yield rec
            if len(page) < rows.PAGE:
                return
            after = (page[-1].created_at, page[-1].id)

    async def reviews(self, state: str = "open", limit: int = 100) -> list[dict[str, object]]:
        cond = rows.review_condition(state)
        found = await self._fetch(
            "SELECT r.record, v.state, v.note, v.reviewed_by, v.reviewed_at FROM records r "
            f"LEFT JOIN reviews v ON v.id = r.id WHERE r.needs_review {cond} "
            "ORDER BY r.created_at DESC, r.id DESC LIMIT $1", limit)
        return [rows.review(rows.load_record(r["record"]), r["state"], r["note"], r["reviewed_by"], r["reviewed_at"])
                for r in found]


def _where(f: SearchFilters) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []

    def add(condition: str, value: Any) -> None:
        args.append(value)
        where.append(condition.replace("$?", f"${len(args)}"))

    for column, value in (("customer_id", f.customer), ("channel", f.channel), ("skill", f.skill),
                          ("category", f.category), ("resolution", f.resolution)):
        if value:
            add(f"{column} = $?", _t(value))
    if f.agent:
        add("agents @> ARRAY[$?::text]", _t(f.agent))
    if f.order:
        add("orders @> ARRAY[$?::text]", _t(f.order))
    if f.rating_max is not None:
        add("rating BETWEEN 1 AND $?", f.rating_max)
    if f.from_ts is not None:
        add("created_at >= $?", f.from_ts)
    if f.to_ts is not None:
        add("created_at < $?", f.to_ts)
    if f.q:
        add("words @@ $?::tsquery", tsquery(text.query_words(f.q)))
    return where, args
