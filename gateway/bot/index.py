"""Analysis (segmentation, synonyms, stop words, homophone repair) and ranked retrieval.

Every FAQ text (question and paraphrases) becomes a ``Doc``; an inverted index
over words and character bigrams finds candidate entries; each candidate gets
features (idf-weighted word and bigram overlap in both directions, rapidfuzz
similarity of the normalized strings, keyword hits) that ``scoring.score``
turns into a 0..1 confidence.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz

from gateway.bot.faq import FaqEntry
from gateway.bot.normalize import FillerStripper, clauses
from gateway.bot.pinyin import HomophoneFixer, sound_bigrams
from gateway.bot.scoring import Features, score
from gateway.bot.segment import STOP_WORDS, Segmenter


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

    def learn(self, vocab: Iterable[str]) -> None:
        """Called once the FAQ is analyzed: enables query-only repairs."""
        self.vocab = frozenset(vocab)
        words = {w for w in self.surface | set(self.canon) | set(self.vocab) if len(w) >= 2}
        self._fixer = HomophoneFixer(words, self.segmenter.knows)

    def clauses(self, text: str) -> list[str]:
        out = []
        for c in clauses(text):
            c = self.fillers.strip(c)
            if c:
                out.append(c)
        return out

    def analyze_clauses(self, parts: Sequence[str], *, query: bool = False) -> Analyzed:
        words: list[str] = []
        pieces: list[str] = []
        fixes: list[str] = []
        for clause in parts:
            tokens = self.segmenter.cut(clause)
            if query:
                if self._fixer is not None:
                    tokens, fixed = self._fixer.fix(tokens)
                    fixes.extend(fixed)
                tokens = [p for t in tokens for p in self._split_unknown(t)]
            else:
                self.surface.update(tokens)
            piece = []
            for w in tokens:
                c = self.canon.get(w, w)
                if c in self.stop:
                    continue
                piece.append(c)
                words.append(c)
                words.extend(self._subwords(c))
            if piece:
                pieces.append("".join(piece))
        compact = "".join(pieces)
        grams: list[str] = []
        for p in pieces:
            grams.extend(p)
            grams.extend(p[i : i + 2] for i in range(len(p) - 1))
        return Analyzed(compact, tuple(dict.fromkeys(words)), tuple(dict.fromkeys(grams)), tuple(fixes))

    def _subwords(self, word: str) -> list[str]:
        """Dictionary words inside a long word (生产日期 → 生产, 日期), as jieba's search mode does."""
        n = len(word)
        if n < 3 or n > 8:
            return []
        out = []
        for size in range(2, n):
            for i in range(n - size + 1):
                sub = word[i : i + size]
                if self.segmenter.knows(sub) and sub not in self.stop:
                    out.append(self.canon.get(sub, sub))
        return out

    def analyze(self, text: str, *, query: bool = False) -> Analyzed:
        return self.analyze_clauses(self.clauses(text), query=query)

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


@dataclass(slots=True, frozen=True)
class Doc:
    entry: int
    raw: str
    text: Analyzed
    word_mass: float
    bigram_mass: float
    sounds: frozenset[str]
    term_set: frozenset[str]
    gram_set: frozenset[str]


@dataclass(slots=True, frozen=True)
class Query:
    """A message prepared once for scoring against many candidates."""

    text: Analyzed
    terms: frozenset[str]
    grams: frozenset[str]
    term_w: dict[str, float]
    gram_w: dict[str, float]
    word_mass: float
    gram_mass: float
    sounds: frozenset[str]


@dataclass(slots=True)
class Ranked:
    entry: int
    score: float
    features: Features = field(repr=False)


class FaqIndex:
    """Inverted index and scorer over analyzed FAQ entries."""

    CANDIDATES = 8

    def __init__(self, entries: Sequence[FaqEntry], analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        self.n = len(entries)
        self.docs: list[list[Doc]] = []
        raw_docs: list[list[Analyzed]] = []
        self.entry_terms: list[frozenset[str]] = []
        self.entry_grams: list[frozenset[str]] = []
        self.keywords: list[tuple[str, ...]] = []
        word_df: dict[str, int] = defaultdict(int)
        bigram_df: dict[str, int] = defaultdict(int)
        for e in entries:
            analyzed = [analyzer.analyze(t) for t in e.texts]
            kws = [analyzer.analyze(k) for k in e.keywords]
            raw_docs.append(analyzed)
            terms = {t for a in analyzed for t in a.terms} | {t for k in kws for t in k.terms}
            grams = {g for a in analyzed for g in a.bigrams} | {g for k in kws for g in k.bigrams}
            self.entry_terms.append(frozenset(terms))
            self.entry_grams.append(frozenset(grams))
            self.keywords.append(tuple(k.compact for k in kws if k.compact))
            for t in terms:
                word_df[t] += 1
            for g in grams:
                bigram_df[g] += 1
        n = max(self.n, 1)
        self.word_idf = {t: _idf(n, df) for t, df in word_df.items()}
        self.bigram_idf = {g: _idf(n, df) for g, df in bigram_df.items()}
        self.unknown_idf = _idf(n, 0)
        self.word_post = _postings(word_df, self.entry_terms)
        self.bigram_post = _postings(bigram_df, self.entry_grams)
        for i, analyzed in enumerate(raw_docs):
            self.docs.append(
                [
                    Doc(
                        i,
                        raw,
                        a,
                        sum(self.word_weight(t) for t in a.terms),
                        sum(self.bigram_weight(g) for g in a.bigrams),
                        sound_bigrams(a.compact),
                        frozenset(a.terms),
                        frozenset(a.bigrams),
                    )
                    for raw, a in zip(entries[i].texts, analyzed, strict=True)
                    if a.compact
                ]
            )
        analyzer.learn(self.word_idf)

    def word_weight(self, term: str) -> float:
        w = self.word_idf.get(term)
        if w is None:
            w = self.unknown_idf
            if len(term) == 1:
                w *= 0.5  # a lone unknown character is usually a typo or noise
        return w

    def bigram_weight(self, gram: str) -> float:
        w = self.bigram_idf.get(gram)
        return self.unknown_idf if w is None else w

    def candidates(self, q: Analyzed) -> list[int]:
        """Entries sharing idf-weighted words or bigrams with ``q``, best first (at most ``CANDIDATES``)."""
        if self.n == 0:
            return []
        acc = np.zeros(self.n, dtype=np.float64)
        for t in q.terms:
            post = self.word_post.get(t)
            if post is not None:
                acc[post] += self.word_idf[t]
        for g in q.bigrams:
            post = self.bigram_post.get(g)
            if post is not None:
                acc[post] += 0.5 * self.bigram_idf[g]
        k = min(self.CANDIDATES, self.n)
        top = np.argpartition(-acc, k - 1)[:k] if self.n > k else np.arange(self.n)
        best = float(acc[top].max()) if len(top) else 0.0
        # Far behind the best candidate on shared words: cannot win, skip the costly features.
        floor = max(best * 0.3, 1e-9)
        return [int(i) for i in top if acc[i] >= floor]

    def prepare(self, q: Analyzed) -> Query:
        term_w = {t: self.word_weight(t) for t in q.terms}
        gram_w = {g: self.bigram_weight(g) for g in q.bigrams}
        return Query(
            q,
            frozenset(term_w),
            frozenset(gram_w),
            term_w,
            gram_w,
            sum(term_w.values()) or 1.0,
            sum(gram_w.values()) or 1.0,
            sound_bigrams(q.compact),
        )

    def features(self, query: Query, e: int) -> Features:
        q = query.text
        word_idf, bigram_idf = self.word_idf, self.bigram_idf
        w_dice = w_tcov = b_dice = b_tcov = fz = pfz = p_tcov = 0.0
        q_terms, q_grams, q_sounds, q_compact = query.terms, query.grams, query.sounds, q.compact
        q_word_mass, q_gram_mass = query.word_mass, query.gram_mass
        word_get, gram_get = word_idf.__getitem__, bigram_idf.__getitem__
        ratio, partial = fuzz.ratio, fuzz.partial_ratio
        for d in self.docs[e]:
            if d.sounds:
                v = len(d.sounds & q_sounds) / len(d.sounds)
                if v > p_tcov:
                    p_tcov = v
            if d.word_mass:
                mw = sum(map(word_get, d.term_set & q_terms))
                v = 2 * mw / (q_word_mass + d.word_mass)
                if v > w_dice:
                    w_dice = v
                v = mw / d.word_mass
                if v > w_tcov:
                    w_tcov = v
            if d.bigram_mass:
                mg = sum(map(gram_get, d.gram_set & q_grams))
                v = 2 * mg / (q_gram_mass + d.bigram_mass)
                if v > b_dice:
                    b_dice = v
                v = mg / d.bigram_mass
                if v > b_tcov:
                    b_tcov = v
            dc = d.text.compact
            v = ratio(q_compact, dc)
            if v > fz:
                fz = v
            if len(dc) >= 2:
                v = partial(dc, q_compact)
                if v > pfz:
                    pfz = v
        fz /= 100.0
        pfz /= 100.0
        matched = sum(query.term_w[t] for t in query.terms & self.entry_terms[e])
        w_qcov = matched / query.word_mass
        b_qcov = sum(query.gram_w[g] for g in query.grams & self.entry_grams[e]) / query.gram_mass
        # A keyword counts for the share of the message it explains: 运费险 alone is a
        # strong hint, 退款 inside 退款金额不对 only a weak one.
        kw = 0.0
        for k in self.keywords[e]:
            if k in q.compact:
                kw = max(kw, min(1.0, len(k) / max(len(q.compact), 1)))
        # Rare query words the entry does not know ("过期", "纸质"): each one is a sign
        # that the customer asks something else, whatever the share.
        unmatched = max(0.0, sum(query.term_w.values()) - matched) / self.unknown_idf
        return Features(
            w_dice, w_tcov, w_qcov, b_dice, b_tcov, b_qcov, fz, pfz, kw, min(unmatched, 3.0), p_tcov
        )

    def rank(self, q: Analyzed) -> list[Ranked]:
        """Candidate entries with their scores, best first."""
        if not q.compact:
            return []
        query = self.prepare(q)
        out = []
        for e in self.candidates(q):
            f = self.features(query, e)
            out.append(Ranked(e, score(f), f))
        out.sort(key=lambda r: r.score, reverse=True)
        return out


def _idf(n: int, df: int) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def _postings(df: dict[str, int], sets: list[frozenset[str]]) -> dict[str, np.ndarray]:
    lists: dict[str, list[int]] = {t: [] for t in df}
    for i, s in enumerate(sets):
        for t in s:
            lists[t].append(i)
    return {t: np.asarray(ids, dtype=np.int64) for t, ids in lists.items()}
