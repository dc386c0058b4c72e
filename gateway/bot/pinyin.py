"""Homophone repair: customers type with pinyin input methods, so typos are mostly homophones.

A query substring that is not a FAQ word but sounds like one (发漂 → 发票, 积份 → 积分,
法货 → 发货) is replaced by that word. Uses ``pypinyin`` when it is installed; without
it this step is skipped and matching falls back to characters only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from itertools import pairwise
from typing import Any

_lazy_pinyin: Callable[..., list[str]] | None
try:  # optional dependency
    from pypinyin import lazy_pinyin as _imported

    _lazy_pinyin = _imported
except ImportError:  # pragma: no cover - exercised only where pypinyin is missing
    _lazy_pinyin = None

AVAILABLE = _lazy_pinyin is not None


@lru_cache(maxsize=65536)
def syllable(ch: str) -> str:
    """Toneless pinyin of one CJK character ('' if not CJK or unknown).

    Exact syllables only: folding zh/z, -ng/-n … made real words collide (赠品 ~ 正品).
    """
    if _lazy_pinyin is None or not ("\u3400" <= ch <= "\u9fff"):
        return ""
    py = str(_lazy_pinyin(ch)[0])
    return "" if py == ch else py


def sound(word: str) -> str:
    """Pinyin key of a word, '' when any character has none."""
    parts = []
    for ch in word:
        s = syllable(ch)
        if not s:
            return ""
        parts.append(s)
    return " ".join(parts)


def sound_bigrams(text: str) -> frozenset[str]:
    """Pairs of adjacent syllables (characters where pinyin is unavailable): 开发漂 ~ 开发票."""
    syl = [syllable(ch) or ch for ch in text]
    return frozenset(f"{a} {b}" for a, b in pairwise(syl))


class HomophoneFixer:
    """Replaces unknown substrings by the FAQ word (2 to 4 characters) they sound like."""

    def __init__(
        self,
        vocabulary: Iterable[str],
        is_word: Callable[[str], Any] = lambda w: False,
        is_rare: Callable[[str], bool] = lambda ch: True,
    ) -> None:
        self.vocabulary = frozenset(vocabulary)
        self._is_word = is_word
        self._is_rare = is_rare
        by_sound: dict[str, set[str]] = {}
        if AVAILABLE:
            for w in self.vocabulary:
                if 2 <= len(w) <= 4:
                    key = sound(w)
                    if key:
                        by_sound.setdefault(key, set()).add(w)
        # A sound shared by two FAQ words is ambiguous: leave such typos alone.
        self._by_sound = {k: next(iter(v)) for k, v in by_sound.items() if len(v) == 1}
        self._lengths = sorted({len(w) for w in self._by_sound.values()}, reverse=True)
        self._sounds: dict[str, str] = {}  # token -> ``sound(token)``

    def clear_cache(self) -> None:
        self._sounds.clear()

    def fix(self, tokens: list[str]) -> tuple[list[str], list[str]]:
        """Repair a segmented clause; returns the new tokens and the repairs (``'发漂>发票'``).

        Only spans aligned to token boundaries whose tokens are not FAQ words are
        replaced, so a correct word is never broken (一包/有 does not become 一/包邮).
        """
        if not self._by_sound:
            return tokens, []
        vocabulary = self.vocabulary
        by_sound = self._by_sound
        sounds = self._sounds
        if len(sounds) > 50_000:
            sounds.clear()
        out: list[str] = []
        fixes: list[str] = []
        i = 0
        n = len(tokens)
        while i < n:
            replaced = False
            if tokens[i] not in vocabulary:
                span = ""
                # ``sound(span)``, built token by token (the sound of a span is its tokens' sounds
                # joined, "" when one has none)
                key = ""
                best: tuple[int, str] | None = None
                for j in range(i, min(n, i + 4)):
                    # A FAQ word ends the span, unless it follows one stray character that
                    # may be a typo of its first syllable (冲/电器 -> 充电器).
                    tok = tokens[j]
                    if tok in vocabulary and not (j == i + 1 and len(tokens[i]) == 1):
                        break
                    span += tok
                    if len(span) > 4:
                        break
                    if j == i and len(span) >= 2 and self._is_word(span):
                        break  # a real word of its own (赠品), not a typo
                    ts = sounds.get(tok)
                    if ts is None:
                        ts = sounds[tok] = sound(tok)
                    if not ts:
                        break  # no span from here on has a sound
                    key = f"{key} {ts}" if key else ts
                    if len(span) >= 2:
                        word = by_sound.get(key)
                        if word is not None and word != span:
                            best = (j, word)
                if best is not None:
                    j, word = best
                    fixes.append(f"{''.join(tokens[i : j + 1])}>{word}")
                    out.append(word)
                    i = j + 1
                    replaced = True
                elif len(tokens[i]) == 1 and out and len(out[-1]) >= 2 and self._is_rare(tokens[i]):
                    # A stray rare character that the tokenizer could not attach: with the last
                    # character of the word before, it may be a typo (开发/漂 -> 开/发票; not
                    # 自己/出, 出 being a common word of its own).
                    span = out[-1][-1] + tokens[i]
                    word = by_sound.get(sound(span))
                    if word is not None and word != span and len(word) == 2:
                        fixes.append(f"{out[-1]}{tokens[i]}>{out[-1][:-1]}{word}")
                        out[-1] = out[-1][:-1]
                        out.append(word)
                        i += 1
                        replaced = True
            if not replaced:
                out.append(tokens[i])
                i += 1
        return out, fixes
