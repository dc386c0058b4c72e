"""Slot values read as their class (``data/slots.toml``): 一米六八 -> 身高, 5斤 -> 斤, 西藏 -> 地区.

Applied by ``normalize`` to FAQ texts and messages alike, after NFKC, lower case, simplified
script and Chinese numerals before units, before punctuation splits clauses (1.68m keeps its dot).
A slot's patterns are tried only on a text holding one of the characters it ``needs``; the
places, which need no particular character, are one alternation of literal names.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

DATA = Path(__file__).with_name("data") / "slots.toml"

Slot = tuple[frozenset[str], re.Pattern[str], str]  # needs (empty: always tried), patterns, class word


def load(path: Path = DATA) -> tuple[tuple[Slot, ...], frozenset[str]]:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    numbers: dict[str, str] = raw.get("numbers", {})
    slots: list[Slot] = []
    for slot in raw.get("slot", []):
        alts = []
        for pattern in slot["patterns"]:
            for name, value in numbers.items():
                pattern = pattern.replace("{" + name + "}", value)
            re.compile(pattern)  # a bad pattern names itself here
            alts.append(f"(?:{pattern})")
        slots.append((frozenset(slot.get("needs", "")), re.compile("|".join(alts)), slot["word"]))
    return tuple(slots), frozenset(word for _, _, word in slots)


SLOTS, CLASS_WORDS = load()


def read_slots(text: str) -> str:
    """``text`` with every slot value replaced by its class word (a folded text: lower, simplified)."""
    chars = set(text)  # (``isdisjoint`` then walks the few needed characters, not the text)
    for needs, pattern, word in SLOTS:
        if not needs or not needs.isdisjoint(chars):
            text = pattern.sub(word, text)
    return text
