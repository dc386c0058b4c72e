"""The embedded archive: one SQLite file (``[archive] url = "sqlite:///PATH"``), the default.

Every call runs on one dedicated worker thread that owns the connection: nothing here ever touches
the database from the event loop. WAL, so ``gateway export`` and other processes read while the
gateway writes; ``synchronous=FULL``, so a record the outbox was told is archived survives a power
loss. Message text is searched through an FTS5 table over the words of ``gateway.records.text``
(the bot's segmenter, joined by spaces): the ``unicode61`` tokenizer then splits on those spaces.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gateway.records import rows, text
from gateway.records.errors import ArchiveUnavailable
from gateway.records.model import HistoryItem, Record, SearchFilters
from gateway.records.query import decode_cursor, encode_cursor

log = logging.getLogger("gateway.records.sqlite")
T = TypeVar("T")

# (version, statements): applied in order at start, each in its own transaction with its version row.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE records (
            pk INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            customer_id TEXT NOT NULL,
            channel TEXT NOT NULL,
            shop TEXT NOT NULL,
            skill TEXT NOT NULL,
            priority TEXT NOT NULL,
            created_at REAL NOT NULL,
            closed_at REAL NOT NULL,
            resolution TEXT NOT NULL,
            category TEXT NOT NULL,
            rating INTEGER NOT NULL,
            needs_review INTEGER NOT NULL,
            version INTEGER NOT NULL,
            record BLOB NOT NULL,
            messages BLOB NOT NULL)""",
        "CREATE INDEX records_created ON records (created_at, id)",
        "CREATE INDEX records_customer ON records (customer_id, created_at)",
        "CREATE INDEX records_review ON records (needs_review, created_at)",
        """CREATE TABLE record_agents (record_pk INTEGER NOT NULL, agent TEXT NOT NULL,
            PRIMARY KEY (agent, record_pk)) WITHOUT ROWID""",
        "CREATE INDEX record_agents_pk ON record_agents (record_pk)",
        """CREATE TABLE record_orders (record_pk INTEGER NOT NULL, order_no TEXT NOT NULL,
            PRIMARY KEY (order_no, record_pk)) WITHOUT ROWID""",
        "CREATE INDEX record_orders_pk ON record_orders (record_pk)",
        # rowid = records.pk; body = the segmented words of the searched messages
        "CREATE VIRTUAL TABLE record_text USING fts5(body, tokenize = 'unicode61 remove_diacritics 0')",
        """CREATE TABLE reviews (id TEXT PRIMARY KEY, state TEXT NOT NULL, note TEXT NOT NULL,
            reviewed_by TEXT NOT NULL, reviewed_at REAL NOT NULL)""",
    ]),
]


def fts_query(words: Sequence[str]) -> str:
    """Every word as an FTS5 string (implicit AND): no word is read as FTS5 syntax."""
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


class SqliteArchive:
    def __init__(self, path: str) -> None:
        self.path = path  # a file path, or ":memory:"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive-sqlite")
        self._db: sqlite3.Connection | None = None  # used on the worker thread only
        self._closed = False

    # ------------------------------------------------------------ the worker thread

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise ArchiveUnavailable(f"sqlite archive {self.path}: closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call, fn, args)
        except (sqlite3.Error, OSError) as e:
            raise ArchiveUnavailable(f"sqlite archive {self.path}: {e}") from e

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._db is None:
            self._open()
        return fn(*args)

    def _open(self) -> None:
        text.segmenter()  # jieba's dictionary, loaded here rather than on the event loop
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        self._db = db

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it done
        try:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at REAL NOT NULL)")
            current = db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
            for version, statements in MIGRATIONS:
                if version > current:
                    for sql in statements:
                        db.execute(sql)
                    db.execute("INSERT INTO schema_version VALUES (?, ?)", (version, time.time()))
                    log.info("event=archive_migrated backend=sqlite version=%d", version)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @property
    def _conn(self) -> sqlite3.Connection:
        assert self._db is not None
        return self._db

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._run(lambda: None)

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, shut)
        finally:
            self._executor.shutdown(wait=False)

    async def schema_version(self) -> int:
        return int(await self._run(lambda: self._conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]))

    # ------------------------------------------------------------ writes

    async def put(self, record: Record) -> None:
        await self._run(self._put, record)

    def _put(self, rec: Record) -> None:
        db = self._conn
        body = text.document(rec.messages)  # cut before the write lock is taken
        values = (rec.customer_id, rec.channel, rec.shop, rec.skill, rec.priority, rec.created_at, rec.closed_at,
                  rec.resolution, rec.category, rec.rating, int(rows.needs_review(rec)), rec.version,
                  rows.dump_record(rec), rows.dump_messages(rec))
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT pk, version FROM records WHERE id = ?", (rec.id,)).fetchone()
            if row is not None and row[1] > rec.version:
                db.execute("ROLLBACK")
                return  # a newer version is archived already
            if row is None:
                cur = db.execute(
                    "INSERT INTO records (customer_id, channel, shop, skill, priority, created_at, closed_at, "
                    "resolution, category, rating, needs_review, version, record, messages, id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*values, rec.id))
                pk = cur.lastrowid
            else:
                pk = row[0]
                db.execute(
                    "UPDATE records SET customer_id = ?, channel = ?, shop = ?, skill = ?, priority = ?, "
                    "created_at = ?, closed_at = ?, resolution = ?, category = ?, rating = ?, needs_review = ?, "
                    "version = ?, record = ?, messages = ? WHERE pk = ?", (*values, pk))
                for table in ("record_agents", "record_orders"):
                    db.execute(f"DELETE FROM {table} WHERE record_pk = ?", (pk,))
                db.execute("DELETE FROM record_text WHERE rowid = ?", (pk,))
            db.executemany("INSERT OR IGNORE INTO record_agents VALUES (?, ?)", [(pk, a) for a in set(rec.agents)])
            db.executemany("INSERT OR IGNORE INTO record_orders VALUES (?, ?)", [(pk, o) for o in set(rec.orders)])
            db.execute("INSERT INTO record_text (rowid, body) VALUES (?, ?)", (pk, body))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def mark_reviewed(self, conversation: str, note: str, by: str) -> bool:
        return await self._run(self._mark, conversation, note, by, time.time())

    def _mark(self, conversation: str, note: str, by: str, at: float) -> bool:
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT 1 FROM records WHERE id = ? AND needs_review = 1", (conversation,)).fetchone()
            if row is not None:
                db.execute("INSERT INTO reviews VALUES (?, 'reviewed', ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                           "state = excluded.state, note = excluded.note, reviewed_by = excluded.reviewed_by, "
                           "reviewed_at = excluded.reviewed_at", (conversation, note, by, at))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return row is not None

    # ------------------------------------------------------------ reads

    async def get(self, conversation: str) -> Record | None:
        def read() -> Record | None:
            row = self._conn.execute("SELECT record, messages FROM records WHERE id = ?", (conversation,)).fetchone()
            return None if row is None else rows.load_record(row[0], row[1])

        return await self._run(read)

    async def search(self, filters: SearchFilters, limit: int = 50, cursor: str = "") -> tuple[list[Record], str]:
        after = decode_cursor(cursor) if cursor else None
        return await self._run(self._search, filters, limit, after)

    def _search(self, filters: SearchFilters, limit: int, after: tuple[float, str] | None
                ) -> tuple[list[Record], str]:
        if filters.q and not text.query_words(filters.q):
            return [], ""  # nothing to look for: no record matches
        where, args = _where(filters)
        if after is not None:
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            args += [after[0], after[0], after[1]]
        sql = (f"SELECT record FROM records WHERE {' AND '.join(where) or '1'} "
               "ORDER BY created_at DESC, id DESC LIMIT ?")
        found = self._conn.execute(sql, (*args, limit + 1)).fetchall()
        records = [rows.load_record(r[0]) for r in found[:limit]]
        more = len(found) > limit
        return records, encode_cursor(records[-1].created_at, records[-1].id) if more else ""

    async def history(self, customer: str, limit: int = 5, before: str = "") -> list[HistoryItem]:
        found = await self._run(lambda: self._conn.execute(
            "SELECT record FROM records WHERE customer_id = ? AND id != ? ORDER BY created_at DESC, id DESC LIMIT ?",
            (customer, before, limit)).fetchall())
        return [rows.history_item(rows.load_record(r[0])) for r in found]

    async def between(self, from_ts: float, to_ts: float) -> AsyncIterator[Record]:
        after: tuple[float, str] = (from_ts, "")
        while True:
            page = await self._run(self._page, to_ts, after)
            for rec in page:
                yield rec
            if len(page) < rows.PAGE:
                return
            after = (page[-1].created_at, page[-1].id)

    def _page(self, to_ts: float, after: tuple[float, str]) -> list[Record]:
        """The next ``rows.PAGE`` records after ``after`` (inclusive of its time when its id is "")."""
        found = self._conn.execute(
            "SELECT record, messages FROM records WHERE created_at < ? AND "
            "(created_at > ? OR (created_at = ? AND id > ?)) ORDER BY created_at, id LIMIT ?",
            (to_ts, after[0], after[0], after[1], rows.PAGE)).fetchall()
        return [rows.load_record(r[0], r[1]) for r in found]

    async def reviews(self, state: str = "open", limit: int = 100) -> list[dict[str, object]]:
        cond = rows.review_condition(state)
        sql = ("SELECT r.record, v.state, v.note, v.reviewed_by, v.reviewed_at FROM records r "
               f"LEFT JOIN reviews v ON v.id = r.id WHERE r.needs_review = 1 {cond} "
               "ORDER BY r.created_at DESC, r.id DESC LIMIT ?")
        found = await self._run(lambda: self._conn.execute(sql, (limit,)).fetchall())
        return [rows.review(rows.load_record(r[0]), *r[1:]) for r in found]


def _where(f: SearchFilters) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("customer_id", f.customer), ("channel", f.channel), ("skill", f.skill),
                          ("category", f.category), ("resolution", f.resolution)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if f.agent:
        where.append("pk IN (SELECT record_pk FROM record_agents WHERE agent = ?)")
        args.append(f.agent)
    if f.order:
        where.append("pk IN (SELECT record_pk FROM record_orders WHERE order_no = ?)")
        args.append(f.order)
    if f.rating_max is not None:
        where.append("rating BETWEEN 1 AND ?")
        args.append(f.rating_max)
    if f.from_ts is not None:
        where.append("created_at >= ?")
        args.append(f.from_ts)
    if f.to_ts is not None:
        where.append("created_at < ?")
        args.append(f.to_ts)
    if f.q:
        where.append("pk IN (SELECT rowid FROM record_text WHERE record_text MATCH ?)")
        args.append(fts_query(text.query_words(f.q)))
    return where, args
