"""Slot values read as their class (``data/slots.toml``): 一米六八 -> 身高, 5斤 -> 斤, 西藏 -> 地区.

Applied by ``normalize`` to FAQ texts and messages alike, after NFKC, lower case, simplified
script and Chinese numerals before units, before punctuation splits clauses (1.68m keeps its dot).
One compiled alternation: a text is scanned once.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

DATA = Path(__file__).with_name("data") / "slots.toml"


def _load(path: Path) -> tuple[re.Pattern[str], dict[str, str], frozenset[str]]:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    numbers: dict[str, str] = raw.get("numbers", {})
    alts: list[str] = []
    words: dict[str, str] = {}
    for i, slot in enumerate(raw.get("slot", [])):
        word = slot["word"]
        for j, pattern in enumerate(slot["patterns"]):
            for name, value in numbers.items():
                pattern = pattern.replace("{" + name + "}", value)
            group = f"s{i}_{j}"
            re.compile(pattern)  # a bad pattern names itself here
            alts.append(f"(?P<{group}>{pattern})")
            words[group] = word
    return re.compile("|".join(alts) or "(?!)"), words, frozenset(words.values())


_PATTERN, _WORDS, CLASS_WORDS = _load(DATA)


def _word(m: re.Match[str]) -> str:
    return _WORDS[m.lastgroup or ""]


def read_slots(text: str) -> str:
    """``text`` with every slot value replaced by its class word (a folded text: lower, simplified)."""
    return _PATTERN.sub(_word, text)
