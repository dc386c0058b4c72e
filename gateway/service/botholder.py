"""Holds the current FAQ bot and swaps it atomically on reload."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Mapping
from typing import Any

from gateway.bot import BotSettings, FaqBot, FaqList, load_faq
from gateway.bot.types import BotDecision
from gateway.errors import ConfigError

log = logging.getLogger("gateway.bot")

CACHE_ENTRIES = 20_000
CACHE_TEXT_CHARS = 64


class BotHolder:
    def __init__(self, faq_path: str, raw_settings: Mapping[str, Any]) -> None:
        self.faq_path = faq_path
        self.settings = BotSettings.from_mapping(raw_settings)
        self._bot: FaqBot | None = None
        self._faq = FaqList()  # the entries (and synonyms) the bot was built from
        self._lock = asyncio.Lock()
        # Customers repeat the same short questions (and click the same suggestion chips):
        # decisions are pure and frozen, so short texts are answered from a bounded cache.
        self._cache: dict[tuple[str, bool], BotDecision] = {}

    def build(self) -> FaqBot:
        """Load the FAQ and build a bot (CPU work: call it off the event loop)."""
        return self._build()[0]

    def _build(self) -> tuple[FaqBot, FaqList]:
        entries = load_faq(self.faq_path) if self.faq_path else FaqList()
        return FaqBot.build(entries, self.settings), entries

    async def load(self) -> int:
        """Build in a thread and swap in; a bad file raises ConfigError and keeps the old bot."""
        async with self._lock:
            bot, faq = await asyncio.to_thread(self._build)
            # one swap (no await between): requests see the old bot or the new, never half
            self._bot, self._faq = bot, faq
            self._cache = {}
            gc.freeze()  # the new index is long-lived: keep full collections off it
            log.info("event=faq_loaded path=%s entries=%d", self.faq_path, bot.faq_count)
            return bot.faq_count

    async def reload(self) -> tuple[bool, str, int]:
        try:
            n = await self.load()
        except ConfigError as e:
            log.warning("event=faq_reload_failed error=%s", e)
            return False, str(e), self.faq_count
        return True, "", n

    def current(self) -> tuple[FaqBot, FaqList]:
        """The bot in service and the FAQ it was built from (``gateway faq gaps`` reads with both)."""
        if self._bot is None:
            raise RuntimeError("the bot is not loaded")
        return self._bot, self._faq

    @property
    def faq_count(self) -> int:
        return self._bot.faq_count if self._bot is not None else 0

    def decide(self, text: str, *, vip: bool = False) -> BotDecision:
        bot = self._bot
        if bot is None:
            raise RuntimeError("the bot is not loaded")
        if len(text) > CACHE_TEXT_CHARS:
            return bot.decide(text, vip=vip)
        key = (text, vip)
        hit = self._cache.get(key)
        if hit is None:
            hit = bot.decide(text, vip=vip)
            cache = self._cache
            if len(cache) >= CACHE_ENTRIES:
                cache.clear()  # crude but O(1); the hot questions come back within seconds
            cache[key] = hit
        return hit
