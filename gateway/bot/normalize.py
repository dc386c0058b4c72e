"""Text normalization shared by FAQ texts and customer messages.

NFKC (full-width to half-width), lower case, traditional to simplified (zhconv:
on our traditional test phrases it matched OpenCC's t2s on every word the FAQ
cares about, is pure Python and already a dependency), punctuation and emoji
to spaces, runs of a repeated character collapsed, polite fillers stripped at
the edges of each clause.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from operator import methodcaller

import zhconv
import zhconv.zhconv as _zhconv_tables

from gateway.bot.slots import read_slots

_zhconv_tables.getdict("zh-cn")
# Characters that exist only in traditional script: text without any needs no conversion
# (zhconv costs ~40 µs a call; most messages are simplified already).
_TRAD_ONLY: frozenset[str] = frozenset(_zhconv_tables.zhcdicts.get("TRADONLY") or ())

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Everything that is not a CJK ideograph, a latin letter or a digit separates clauses.
_NOISE_RE = re.compile(rf"[^{_CJK}a-z0-9]+")
_NOISE_KEEP_NL_RE = re.compile(rf"[^{_CJK}a-z0-9\n]+")
_REPEAT_RE = re.compile(r"(\D)\1{2,}")  # 3+ of the same char (not digits: order numbers)
_PARTICLE_REPEAT_RE = re.compile(r"([啊呀吗呢吧哦噢嘛哈啦呐哇额嗯])\1+")
_SPACES_RE = re.compile(r"\s+")
# Small Chinese numbers before a unit read as digits (七天 = 7天, 两件 = 2件).
_NUMERAL_RE = re.compile(
    "([一二两三四五六七八九十]{1,3})(?=(?:个月|小时|分钟|天|周|月|年|件|斤|箱|期|次|号|克|公斤))"
)
_DIGIT = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def _numeral(m: re.Match[str]) -> str:
    s = m.group(1)
    if "十" not in s:
        return str(_DIGIT[s]) if len(s) == 1 else s
    tens, _, ones = s.partition("十")
    if len(tens) > 1 or len(ones) > 1 or "十" in ones:
        return s
    return str((_DIGIT[tens] if tens else 1) * 10 + (_DIGIT[ones] if ones else 0))


# "A不A" / "A没A" questions (能不能, 有没有, 送不送, 包不包邮, 可不可以) ask the same as "A".
_A_NOT_A_RE = re.compile(rf"([{_CJK}])[不没]\1")

# The replacement "\1" as a callable: a template string makes every ``sub`` call go through
# Python-level ``re._subx`` first, even when nothing matches.
_GROUP_1: Callable[[re.Match[str]], str] = methodcaller("group", 1)

TRAILING_PARTICLES = "啊呀吗么呢吧哦噢嘛哈啦呐哇额嗯捏滴"


@lru_cache(maxsize=4096)
def to_simplified(text: str) -> str:
    return str(zhconv.convert(text, "zh-cn"))


def _ranges(cps: Iterable[int]) -> str:
    """A regex character class body matching exactly the code points ``cps``."""
    out: list[str] = []
    run: list[int] = []
    for cp in sorted(cps):
        if run and cp == run[-1] + 1:
            run.append(cp)
            continue
        if run:
            out.append(re.escape(chr(run[0])) + ("-" + re.escape(chr(run[-1])) if len(run) > 1 else ""))
        run = [cp]
    if run:
        out.append(re.escape(chr(run[0])) + ("-" + re.escape(chr(run[-1])) if len(run) > 1 else ""))
    return "".join(out)


# Text made only of these characters needs no Unicode normalization pass: full-width ASCII
# forms and the ideographic space map to ASCII, everything else (ASCII, CJK ideographs, the
# CJK and general punctuation, symbols and emoji that NFKC keeps as they are) stays, and none
# of them combines with a neighbour (no combining marks, no second halves of compositions).
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_WIDE = {chr(a): chr(b) for a, b in _FULLWIDTH.items()}
_WIDE_CHARS = frozenset(_WIDE)
_NFKC_STABLE = [
    cp
    for lo, hi in ((0x3001, 0x3040), (0x2000, 0x2070), (0x2190, 0x2200), (0x2600, 0x27C0), (0x1F300, 0x1FB00))
    for cp in range(lo, hi)
    if unicodedata.normalize("NFKC", chr(cp)) == chr(cp) and not unicodedata.combining(chr(cp))
]
_NFKC_SIMPLE_RE = re.compile(
    "["
    + _ranges([*range(0x80), *range(0x3400, 0x4DC0), *range(0x4E00, 0xA000), *_FULLWIDTH, *_NFKC_STABLE])
    + "]*"
)


def nfkc(text: str) -> str:
    """``unicodedata.normalize("NFKC", text)``, without its cost for the usual message."""
    if text.isascii():
        return text
    if _NFKC_SIMPLE_RE.fullmatch(text) is not None:
        for ch in _WIDE_CHARS.intersection(text):  # (``str.translate`` costs a dict lookup per character)
            text = text.replace(ch, _WIDE[ch])
        return text
    return unicodedata.normalize("NFKC", text)


def fold(text: str) -> str:
    """NFKC + lower + simplified; keeps punctuation (used for phrase and order matching)."""
    return _fold_nfkc(nfkc(text))


def _fold_nfkc(text: str) -> str:
    """``fold`` of a text already in NFKC (NFKC is idempotent)."""
    text = text.lower()
    if not _TRAD_ONLY or not _TRAD_ONLY.isdisjoint(text):
        text = to_simplified(text)
    return text


def clauses(text: str) -> list[str]:
    """``fold`` the text and split it into clauses at punctuation, emoji and spaces."""
    return list(_clauses(nfkc(text)))


def clauses_of_nfkc(text: str) -> list[str]:
    """``clauses`` of a text already in NFKC (``orders.split_orders`` returns it so)."""
    return list(_clauses(text))


# Two equal characters in a row: without any, neither repeat rule below can apply.
_DOUBLE_RE = re.compile(r"(.)\1", re.DOTALL)


@lru_cache(maxsize=8192)
def _clauses(text: str) -> tuple[str, ...]:
    """``clauses`` of an NFKC text. Each rule runs only when the text has what it looks for."""
    text = _fold_nfkc(text)
    if _DOUBLE_RE.search(text) is not None:
        text = _REPEAT_RE.sub(_GROUP_1, text)
        text = _PARTICLE_REPEAT_RE.sub(_GROUP_1, text)
    if "不" in text or "没" in text:
        text = _A_NOT_A_RE.sub(_GROUP_1, text)
    text = read_slots(_NUMERAL_RE.sub(_numeral, text))
    return tuple(c for c in _NOISE_RE.split(text) if c)


def clear_text_caches() -> None:
    """Forget normalized texts (benchmarks measuring cold messages)."""
    _clauses.cache_clear()
    to_simplified.cache_clear()


def clauses_many(texts: Sequence[str]) -> list[list[str]]:
    """``clauses`` of many texts (a FAQ file) at once: one pass of each step over all of them."""
    if not texts:
        return []
    # Every step maps a text on its own ("\n" is noise, so no rule crosses from one to the next),
    # except a run of repeated "\n" (empty texts): those are handled one by one.
    if any(not t or "\n" in t for t in texts):
        return [clauses(t) for t in texts]
    joined = unicodedata.normalize("NFKC", "\n".join(texts)).lower()
    parts = joined.split("\n")
    if len(parts) != len(texts):  # NFKC made a line break: do it the slow way
        return [clauses(t) for t in texts]
    if _TRAD_ONLY and not _TRAD_ONLY.isdisjoint(joined):
        parts = [to_simplified(t) if not _TRAD_ONLY.isdisjoint(t) else t for t in parts]
        joined = "\n".join(parts)
    joined = _REPEAT_RE.sub(_GROUP_1, joined)
    joined = _PARTICLE_REPEAT_RE.sub(_GROUP_1, joined)
    joined = _A_NOT_A_RE.sub(_GROUP_1, joined)
    joined = read_slots(_NUMERAL_RE.sub(_numeral, joined))
    out = [t.split() for t in _NOISE_KEEP_NL_RE.sub(" ", joined).split("\n")]
    if len(out) != len(texts):
        return [clauses(t) for t in texts]
    return out


class FillerStripper:
    """Strips polite fillers (亲, 请问, 你好, 在吗 …) at the start and end of each clause."""

    def __init__(self, fillers: Iterable[str]) -> None:
        words = sorted({fold(f).strip() for f in fillers if f.strip()}, key=len, reverse=True)
        alt = "|".join(re.escape(w) for w in words) or "(?!)"
        self._lead = re.compile(rf"^(?:{alt})+")
        # "能退不", "发了没有": a trailing 不/没/没有 only turns the clause into a question.
        self._trail = re.compile(rf"(?:{alt}|没有|[{TRAILING_PARTICLES}不没])+$")
        self._cache: dict[str, str] = {}  # clause -> stripped (greetings and questions recur)

    def strip(self, clause: str) -> str:
        hit = self._cache.get(clause)
        if hit is not None:
            return hit
        text = clause
        prev = None
        while prev != text:
            prev = text
            text = self._lead.sub("", text)
            text = self._trail.sub("", text)
        if len(self._cache) >= 20_000:
            self._cache.clear()
        self._cache[clause] = text
        return text

    def clear_cache(self) -> None:
        self._cache.clear()


def compact(parts: Iterable[str]) -> str:
    """Join clauses: no space between CJK, one space between latin/digit runs."""
    out = ""
    for p in parts:
        if out and p and out[-1].isascii() and p[0].isascii():
            out += " "
        out += p
    return _SPACES_RE.sub(" ", out).strip()
