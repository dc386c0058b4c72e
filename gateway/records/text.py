"""The words an archived conversation is found by: message text cut with the bot's segmenter.

Both backends index the same words and cut a query the same way, so a Chinese query matches words,
not characters (``退款`` finds ``我想申请退款``; ``款`` alone does not). The segmenter is the bot's
(``gateway.bot.segment.Segmenter``: jieba's dictionary, no HMM) *without* the FAQ's own words: what
is indexed must not depend on the FAQ of the day, or a reload would split a query differently from
the text it was indexed with. One segmenter per process, built off the event loop (about a second:
``await asyncio.to_thread(segmenter)`` at start).
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.bot.segment import STOP_WORDS, Segmenter

INDEXED_FROM = ("customer", "agent", "bot")  # system notices are the same in every conversation
MAX_WORD_CHARS = 100  # longer "words" (a pasted URL or blob) are not indexed
MAX_QUERY_WORDS = 16

_lock = threading.Lock()
_segmenter: Segmenter | None = None


def segmenter() -> Segmenter:
    """The process's archive segmenter (built on first use: call it from a thread the first time)."""
    global _segmenter
    if _segmenter is None:
        with _lock:
            if _segmenter is None:
                _segmenter = Segmenter()
    return _segmenter


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def words(text: str) -> list[str]:
    """``text`` cut into words (NFKC, lower case), punctuation and spaces dropped."""
    out: list[str] = []
    for w in segmenter().cut(_norm(text)):
        w = w.strip()
        if w and len(w) <= MAX_WORD_CHARS and any(ch.isalnum() for ch in w):
            out.append(w)
    return out


def message_texts(messages: Iterable[Mapping[str, Any]]) -> list[str]:
    """The texts of a log's ``message`` entries that are searched (customer, agent and bot)."""
    return [str(m.get("text", "")) for m in messages
            if m.get("type", "message") == "message" and m.get("from") in INDEXED_FROM and m.get("text")]


def document(messages: Iterable[Mapping[str, Any]]) -> str:
    """The indexed text: every searched message's words joined by spaces (SQLite FTS5)."""
    return " ".join(" ".join(words(t)) for t in message_texts(messages))


def lexemes(messages: Iterable[Mapping[str, Any]]) -> list[str]:
    """The distinct indexed words (PostgreSQL tsvector lexemes, used as they are)."""
    seen: dict[str, None] = {}
    for t in message_texts(messages):
        for w in words(t):
            seen.setdefault(w, None)
    return list(seen)


def query_words(q: str) -> list[str]:
    """The words a query must all match: stop words (我, 的, 请问…) dropped unless nothing else is left.

    Empty when ``q`` has no word at all (only punctuation or spaces).
    """
    ws = list(dict.fromkeys(words(q)))
    meaningful = [w for w in ws if w not in STOP_WORDS]
    return (meaningful or ws)[:MAX_QUERY_WORDS]
