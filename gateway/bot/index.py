"""Analysis (segmentation + synonyms + stop words) and the ranked retrieval over FAQ entries.

Every FAQ text (question and paraphrases) becomes a ``Doc``; an inverted index
over words and character bigrams finds candidates; each candidate entry gets a
score in 0..1 combining weighted word overlap (BM25-style idf), character
bigram overlap (robust to typos and segmentation), rapidfuzz similarity of the
normalized strings, how much of the query the entry explains, and keyword hits.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz

from gateway.bot.faq import FaqEntry
from gateway.bot.normalize import FillerStripper, clauses
from gateway.bot.segment import STOP_WORDS, Segmenter


@dataclass(slots=True, frozen=True)
class Analyzed:
    """One text after normalization: canonical compact string, word terms and char bigrams."""

    compact: str
    terms: tuple[str, ...]
    bigrams: tuple[str, ...]


class Analyzer:
    """Turns any text (FAQ or query) into ``Analyzed`` the same way."""

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
            folded = ["".join(clauses(w)) for w in group]
            folded = [w for w in folded if w]
            if not folded:
                continue
            for w in folded:
                self.canon.setdefault(w, folded[0])
                segmenter.add_word(w)

    def clauses(self, text: str) -> list[str]:
        out = []
        for c in clauses(text):
            c = self.fillers.strip(c)
            if c:
                out.append(c)
        return out

    def analyze_clauses(self, parts: Sequence[str]) -> Analyzed:
        words: list[str] = []
        pieces: list[str] = []
        for clause in parts:
            piece = []
            for w in self.segmenter.cut(clause):
                w = self.canon.get(w, w)
                if w in self.stop:
                    continue
                words.append(w)
                piece.append(w)
            if piece:
                pieces.append("".join(piece))
        compact = "".join(pieces)
        bigrams: list[str] = []
        for p in pieces:
            if len(p) == 1:
                bigrams.append(p)
            bigrams.extend(p[i : i + 2] for i in range(len(p) - 1))
        return Analyzed(compact, tuple(dict.fromkeys(words)), tuple(dict.fromkeys(bigrams)))

    def analyze(self, text: str) -> Analyzed:
        return self.analyze_clauses(self.clauses(text))


@dataclass(slots=True, frozen=True)
class Doc:
    entry: int
    text: Analyzed
    word_mass: float
    bigram_mass: float


@dataclass(slots=True)
class Ranked:
    entry: int
    score: float
    features: tuple[float, ...]


class FaqIndex:
    """Inverted index and scorer over analyzed FAQ entries."""

    CANDIDATES = 24

    def __init__(self, entries: Sequence[FaqEntry], analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        self.n = len(entries)
        self.docs: list[list[Doc]] = []
        raw_docs: list[list[Analyzed]] = []
        self.entry_terms: list[frozenset[str]] = []
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
        entry_grams = [frozenset(g for a in docs for g in a.bigrams) for docs in raw_docs]
        self.bigram_post = _postings(bigram_df, entry_grams)
        for i, analyzed in enumerate(raw_docs):
            self.docs.append(
                [
                    Doc(
                        i,
                        a,
                        sum(self.word_weight(t) for t in a.terms),
                        sum(self.bigram_weight(g) for g in a.bigrams),
                    )
                    for a in analyzed
                    if a.compact
                ]
            )

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
        if k == 0:
            return []
        top = np.argpartition(-acc, k - 1)[:k] if self.n > k else np.arange(self.n)
        return [int(i) for i in top if acc[i] > 0]

    def rank(self, q: Analyzed) -> list[Ranked]:
        """Candidate entries with their scores, best first."""
        if not q.compact:
            return []
        q_terms = set(q.terms)
        q_grams = set(q.bigrams)
        q_word_mass = sum(self.word_weight(t) for t in q.terms) or 1.0
        q_gram_mass = sum(self.bigram_weight(g) for g in q.bigrams) or 1.0
        out: list[Ranked] = []
        for e in self.candidates(q):
            best_word = best_gram = best_fuzz = 0.0
            for d in self.docs[e]:
                mw = sum(self.word_idf.get(t, 0.0) for t in d.text.terms if t in q_terms)
                mg = sum(self.bigram_idf.get(g, 0.0) for g in d.text.bigrams if g in q_grams)
                word = 2 * mw / (q_word_mass + d.word_mass) if d.word_mass else 0.0
                gram = 2 * mg / (q_gram_mass + d.bigram_mass) if d.bigram_mass else 0.0
                fz = fuzz.ratio(q.compact, d.text.compact) / 100.0
                best_word = max(best_word, word)
                best_gram = max(best_gram, gram)
                best_fuzz = max(best_fuzz, fz)
            covered = sum(self.word_weight(t) for t in q.terms if t in self.entry_terms[e]) / q_word_mass
            kw = 1.0 if any(k in q.compact for k in self.keywords[e]) else 0.0
            feats = (best_word, best_gram, best_fuzz, covered, kw)
            score = 0.35 * best_word + 0.25 * best_gram + 0.2 * best_fuzz + 0.1 * covered + 0.1 * kw
            out.append(Ranked(e, min(score, 1.0), feats))
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
