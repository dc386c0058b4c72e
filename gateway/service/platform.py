"""The platform adapters' bookkeeping: once-only claims and the dead-letter list.

Not conversation state, so not part of ``ConversationService``: platform
message ids and business keys claimed once (dedupe across instances), order
numbers linked to the buyer who sent them, outbound ``(conversation, seq)``
claims (one instance sends each reply), and the replies that failed for good.
Adapters reach it through their host (``Host.platform``) and never the store.
"""

from __future__ import annotations

from typing import Any

from gateway.store import Store


class PlatformService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def claim_once(self, key: str, ttl_s: float, value: str = "1") -> bool:
        """True for the one caller (on any instance) that set ``key``; it expires after ``ttl_s``."""
        return await self._store.claim_once(key, ttl_s, value)

    async def confirm_claim(self, key: str, ttl_s: float, value: str = "1") -> None:
        """Keep a claim for ``ttl_s`` from now (a short in-progress claim becomes the long one)."""
        await self._store.set_claim(key, ttl_s, value)

    async def get_claim(self, key: str) -> str | None:
        """The value of an unexpired claim, else None."""
        return await self._store.get_claim(key)

    async def release_claim(self, key: str) -> None:
        """Forget a claim, so that a redelivery can take it again."""
        await self._store.release_claim(key)

    async def add_dead_letter(self, record: dict[str, Any], keep: int) -> None:
        """Record a reply that failed for good; only the newest ``keep`` are kept."""
        await self._store.add_dead_letter(record, keep)

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first, at most ``limit``."""
        return await self._store.dead_letters(limit)
