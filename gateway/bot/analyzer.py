"""Analysis of a text (FAQ or message): clauses, segmentation, synonyms, stop words, homophone repair.

A message is analyzed clause by clause, each clause's analysis cached (``Analyzer.analyze_clauses``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.bot.normalize import FillerStripper, clauses, clauses_many
from gateway.bot.pinyin import HomophoneFixer
from gateway.bot.segment import STOP_WORDS, Segmenter

_QUERY_CACHE_MAX = 20_000  # about 1 KB each

# a verb-object word with an aspect particle inside (付完款, 下了单, 发过货)
_SPLIT_WORD_RE = re.compile("([\u4e00-\u9fff])[了完过]([\u4e00-\u9fff])")


@dataclass(slots=True, frozen=True)
class Analyzed:
    """One text after analysis: canonical compact string, word terms and char bigrams."""

    compact: str
    terms: tuple[str, ...]
    bigrams: tuple[str, ...]
    fixes: tuple[str, ...] = ()


class Analyzer:
    """Turns any text (FAQ or query) into ``Analyzed`` the same way.

    Queries additionally get homophone repair and have words the FAQ never uses
    split into the FAQ words they contain (``发出来`` → ``发出`` + ``来``).
    """

    def __init__(
        self,
        segmenter: Segmenter,
        fillers: FillerStripper,
        synonyms: Sequence[Sequence[str]],
        stop_words: Iterable[str] = (),
    ) -> None:
        self.segmenter = segmenter
        self.fillers = fillers
        self.stop = frozenset(STOP_WORDS) | {w for w in stop_words if w}
        self.canon: dict[str, str] = {}
        for group in synonyms:
            folded = [w for w in ("".join(clauses(w)) for w in group) if w]
            for w in folded:
                self.canon.setdefault(w, folded[0])
                segmenter.add_word(w)
        # Groups may chain (FAQ file: 发货 = [发出]; settings: 发货 = [发]): resolve to one word.
        for w in list(self.canon):
            seen = {w}
            c = self.canon[w]
            while self.canon.get(c, c) != c and c not in seen:
                seen.add(c)
                c = self.canon[c]
            self.canon[w] = c
        self.surface: set[str] = set()  # every word form seen in the FAQ
        self.vocab: frozenset[str] = frozenset()  # canonical FAQ terms
        self._fixer: HomophoneFixer | None = None
        self._sub_cache: dict[str, list[str]] = {}
        self._tok_cache: dict[str, tuple[str, ...] | None] = {}
        self._tok_version = segmenter.version
        self._sub_version = segmenter.version
        # a query clause -> its analysis (a message is the sum of its clauses': see ``analyze_clauses``)
        self._query_cache: dict[str, Analyzed] = {}
        self._query_version = segmenter.version

    def learn(self, vocab: Iterable[str]) -> None:
        """Called once the FAQ is analyzed: enables query-only repairs."""
        self.vocab = frozenset(vocab)
        words = {w for w in self.surface | set(self.canon) | set(self.vocab) if len(w) >= 2}
        self._fixer = HomophoneFixer(words, self.segmenter.knows, self.segmenter.is_rare)
        self._query_cache.clear()

    def clear_caches(self) -> None:
        """Forget analyzed texts and words (benchmarks measuring cold queries)."""
        self._query_cache.clear()
        self._tok_cache.clear()
        self._sub_cache.clear()
        self.fillers.clear_cache()
        if self._fixer is not None:
            self._fixer.clear_cache()

    def clauses(self, text: str) -> list[str]:
        return self.strip(clauses(text))

    def strip(self, parts: Iterable[str]) -> list[str]:
        """Clauses (``normalize.clauses``) without their fillers; the ones left empty dropped."""
        out = []
        for c in parts:
            c = self.fillers.strip(c)
            if c:
                out.append(c)
        return out

    def analyze_clauses(self, parts: Sequence[str], *, query: bool = False) -> Analyzed:
        """``parts``: clauses without fillers (``clauses``). A query is analyzed clause by clause
        (each clause on its own is pure: its words, its pieces, its repairs), the clauses' results
        kept, so a message that repeats a clause of an earlier one (most add a greeting or a
        particle to a common question) only joins them."""
        if not query:
            self._query_cache.clear()  # the FAQ's own words (``surface``) change how queries split
            return self._analyze(parts, query=False)
        if self._query_version != self.segmenter.version:
            self._query_cache.clear()
            self._query_version = self.segmenter.version
        cache = self._query_cache
        done: list[Analyzed] = []
        for clause in parts:
            a = cache.get(clause)
            if a is None:
                a = self._analyze((clause,), query=True)
                if len(cache) >= _QUERY_CACHE_MAX:
                    cache.clear()
                cache[clause] = a
            done.append(a)
        if len(done) == 1:
            return done[0]
        # as if analyzed together: pieces and repairs in order, words and bigrams without repeats
        return Analyzed(
            "".join([a.compact for a in done]),
            tuple(dict.fromkeys([t for a in done for t in a.terms])),
            tuple(dict.fromkeys([g for a in done for g in a.bigrams])),
            tuple([f for a in done for f in a.fixes]),
        )

    def _analyze(self, parts: Sequence[str], *, query: bool) -> Analyzed:
        words: list[str] = []
        pieces: list[str] = []
        fixes: list[str] = []
        for clause in parts:
            tokens = self.segmenter.cut(self._rejoin(clause))
            if query:
                if self._fixer is not None:
                    tokens, fixed = self._fixer.fix(tokens)
                    fixes.extend(fixed)
                tokens = [p for t in tokens for p in self._split_unknown(t)]
            else:
                self.surface.update(tokens)
            piece = []
            for w in tokens:
                hit = self._token(w)
                if hit is not None:
                    piece.append(hit[0])
                    words.extend(hit)
            if piece:
                pieces.append("".join(piece))
        compact = "".join(pieces)
        grams: list[str] = []
        for p in pieces:
            grams.extend(p)
            grams.extend(map(str.__add__, p, p[1:]))
        return Analyzed(compact, tuple(dict.fromkeys(words)), tuple(dict.fromkeys(grams)), tuple(fixes))

    def _token(self, w: str) -> tuple[str, ...] | None:
        """A token's canonical word and the dictionary words inside it; None for a stop word."""
        if self._tok_version != self.segmenter.version:
            self._tok_cache.clear()
            self._tok_version = self.segmenter.version
        try:
            return self._tok_cache[w]
        except KeyError:
            pass
        c = self.canon.get(w, w)
        hit = None if c in self.stop else (c, *self._subwords(c))
        if len(self._tok_cache) > 100_000:
            self._tok_cache.clear()
        self._tok_cache[w] = hit
        return hit

    def _rejoin(self, clause: str) -> str:
        """Words split by an aspect particle read as the word: 付完款 -> 付款, 下了单 -> 下单."""
        if "了" not in clause and "完" not in clause and "过" not in clause:
            return clause
        return _SPLIT_WORD_RE.sub(self._join_if_word, clause)

    def _join_if_word(self, m: re.Match[str]) -> str:
        word = m.group(1) + m.group(2)
        return word if self.segmenter.knows(word) and word not in self.stop else m.group(0)

    def _subwords(self, word: str) -> list[str]:
        """Dictionary words inside a long word (生产日期 → 生产, 日期), as jieba's search mode does."""
        n = len(word)
        if n < 3 or n > 8:
            return []
        if self._sub_version != self.segmenter.version:
            self._sub_cache.clear()
            self._sub_version = self.segmenter.version
        hit = self._sub_cache.get(word)
        if hit is None:
            hit = []
            for size in range(2, n):
                for i in range(n - size + 1):
                    sub = word[i : i + size]
                    if self.segmenter.knows(sub) and sub not in self.stop:
                        hit.append(self.canon.get(sub, sub))
            if len(self._sub_cache) > 50_000:
                self._sub_cache.clear()
            self._sub_cache[word] = hit
        return hit

    def analyze(self, text: str, *, query: bool = False) -> Analyzed:
        return self.analyze_clauses(self.clauses(text), query=query)

    def clauses_many(self, texts: Sequence[str]) -> list[list[str]]:
        """``clauses`` of many FAQ texts (normalized in one pass)."""
        strip = self.fillers.strip
        return [[c for c in map(strip, parts) if c] for parts in clauses_many(texts)]

    def analyze_many(self, texts: Sequence[str]) -> list[Analyzed]:
        """``analyze`` of many FAQ texts (normalized in one pass)."""
        return [self.analyze_clauses(parts) for parts in self.clauses_many(texts)]

    def _split_unknown(self, word: str) -> list[str]:
        """A word the FAQ never uses, cut into FAQ words where it contains some."""
        if len(word) < 2 or word in self.canon or self.canon.get(word, word) in self.vocab:
            return [word]
        known = self.surface
        out: list[str] = []
        i = 0
        found = False
        while i < len(word):
            for j in range(len(word), i + 1, -1):
                if word[i:j] in known or word[i:j] in self.canon:
                    out.append(word[i:j])
                    i = j
                    found = True
                    break
            else:
                out.append(word[i])
                i += 1
        return out if found else [word]
