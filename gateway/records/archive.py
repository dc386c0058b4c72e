"""What every archive backend does (``[archive] url``: ``sqlite:///PATH`` or ``postgresql://…``).

Writes are idempotent (``put`` replaces a record whose stored ``version`` is not higher), so the
outbox may deliver a record twice. Reads never see a half-written record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from gateway.records.model import HistoryItem, Record, SearchFilters


class Archive(Protocol):
    async def start(self) -> None:
        """Connect and run the schema migrations (idempotent)."""

    async def close(self) -> None: ...

    async def put(self, record: Record) -> None:
        """Insert or replace ``record`` (kept: the highest ``version``)."""

    async def get(self, conversation: str) -> Record | None:
        """The record with its messages."""

    async def search(self, filters: SearchFilters, limit: int = 50, cursor: str = "") -> tuple[list[Record], str]:
        """Newest first (``created_at``, then ``id``); the next page's cursor, or ""."""

    async def history(self, customer: str, limit: int = 5, before: str = "") -> list[HistoryItem]:
        """The customer's last ``limit`` archived conversations, newest first (``before``: leave this one out)."""

    def between(self, from_ts: float, to_ts: float) -> AsyncIterator[Record]:
        """Every record created in [from_ts, to_ts), oldest first (export and reports)."""

    async def reviews(self, state: str = "open", limit: int = 100) -> list[dict[str, object]]:
        """Cases rated <= 2 or closed unresolved, with their review ``state`` (open / reviewed) and note."""

    async def mark_reviewed(self, conversation: str, note: str, by: str) -> bool:
        """False when there is no such case."""
