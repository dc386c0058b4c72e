"""Ranked retrieval over the analyzed FAQ (analysis itself: ``analyzer``).

Every FAQ text (question and paraphrases) becomes a ``Doc``; an inverted index
over words and character bigrams finds candidate entries; each candidate gets
features (idf-weighted word and bigram overlap in both directions, rapidfuzz
similarity of the normalized strings, keyword hits: ``features``) that ``scoring.score``
turns into a 0..1 confidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gateway.bot.analyzer import Analyzed, Analyzer
from gateway.bot.faq import FaqEntry
from gateway.bot.features import FeatureRows, Query, _Block
from gateway.bot.pinyin import sound_bigrams
from gateway.bot.scoring import score_rows

__all__ = ["GRAM", "SOUND", "WORD", "Analyzed", "Analyzer", "Doc", "FaqIndex", "Query", "Ranked"]


@dataclass(slots=True, frozen=True)
class Doc:
    """One FAQ text (question or paraphrase) of entry ``entry``, analyzed."""

    entry: int
    raw: str
    text: Analyzed


# Kinds of index terms. All three share one id space: words first, then character
# unigrams/bigrams, then syllable pairs, so one array lookup serves them all.
WORD, GRAM, SOUND = 0, 1, 2


@dataclass(slots=True)
class Ranked:
    entry: int
    score: float


class FaqIndex(FeatureRows):
    """Inverted index and scorer over analyzed FAQ entries.

    The index is built with numpy (flat arrays over every FAQ text); a message is
    ranked in plain Python, because it touches little of it: a few dozen ids, a
    few dozen postings, a handful of candidate entries of a few texts each, sizes
    at which numpy's per-call overhead costs more than the arithmetic.

    1. lexical pre-score: entry postings of the message's words and character
       bigrams give every entry its idf-weighted overlap (a ``bincount`` when the
       postings are long, in a large FAQ); the ``CANDIDATES`` best entries go on;
    2. features of the candidates: each entry is a block of "rows", one per FAQ
       text plus one for the entry as a whole (all its words, bigrams and
       keywords). Per row, the idf mass of the words and bigrams and the number of
       syllable pairs it shares with the message; rapidfuzz scores all texts in one
       ``cdist`` call; each entry keeps its best text per feature;
    3. the logistic score of ``scoring.py``.

    Every sum is taken in the same order as the array version took it (postings in
    message order, row masses in ascending id order), so the scores are the same floats.
    """

    CANDIDATES = 4
    # Lexical pre-scoring in plain Python up to this many entries and postings of a
    # message's ids, with numpy above.
    SMALL_FAQ = 256
    SMALL_POSTINGS = 2000

    def __init__(
        self,
        entries: Sequence[FaqEntry],
        analyzer: Analyzer,
        parts: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """``parts``: ``analyzer.clauses`` of the entries' texts and keywords, if already known."""
        self.analyzer = analyzer
        self.n = len(entries)
        # every distinct text (questions, paraphrases, keywords) normalized and analyzed once
        unique = list(dict.fromkeys(t for e in entries for t in (*e.texts, *e.keywords)))
        if parts is None:
            parts = dict(zip(unique, analyzer.clauses_many(unique), strict=True))
        self.parts = parts
        analyze = {t: analyzer.analyze_clauses(parts[t]) for t in unique}.__getitem__

        self.docs: list[list[Doc]] = []
        self.keywords: list[tuple[str, ...]] = []
        # Rows: per entry its texts (a placeholder row when it has none), then the entry row
        # (all words and bigrams of its texts and keywords).
        row_text: list[str] = []
        # words, bigrams and syllable pairs of every row, flat, with each row's counts
        words: list[str] = []
        grams: list[str] = []
        sounds: list[str] = []
        counts: list[tuple[int, int, int]] = []
        self.row_start: list[int] = []
        sounds_of: dict[str, frozenset[str]] = {}
        kw_rows: list[int] = []
        for i, e in enumerate(entries):
            self.row_start.append(len(row_text))
            docs = []
            for raw in e.texts:
                a = analyze(raw)
                if not a.compact:
                    continue
                docs.append(Doc(i, raw, a))
                snd = sounds_of.get(a.compact)
                if snd is None:
                    snd = sounds_of[a.compact] = sound_bigrams(a.compact)
                row_text.append(a.compact)
                words.extend(a.terms)
                grams.extend(a.bigrams)
                sounds.extend(snd)
                counts.append((len(a.terms), len(a.bigrams), len(snd)))
            if not docs:
                row_text.append("")
                counts.append((0, 0, 0))
            kws = [analyze(k) for k in e.keywords]
            kw_words = [t for k in kws for t in k.terms]
            kw_grams = [g for k in kws for g in k.bigrams]
            words.extend(kw_words)
            grams.extend(kw_grams)
            kw_rows.append(len(row_text))
            row_text.append("")
            counts.append((len(kw_words), len(kw_grams), 0))
            self.keywords.append(tuple(k.compact for k in kws if k.compact))
            self.docs.append(docs)
        self.row_start.append(len(row_text))
        nrows = len(row_text)
        rs = np.asarray(self.row_start, dtype=np.int64)
        row_entry = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(rs))
        # ids: words, then bigrams, then syllable pairs
        word_id = {t: i for i, t in enumerate(dict.fromkeys(words))}
        gram_id = {g: i for i, g in enumerate(dict.fromkeys(grams), len(word_id))}
        sound_id = {p: i for i, p in enumerate(dict.fromkeys(sounds), len(word_id) + len(gram_id))}
        self.word_id, self.gram_id, self.sound_id = word_id, gram_id, sound_id
        nv = self.n_ids = len(word_id) + len(gram_id) + len(sound_id)
        kind = np.repeat(np.array([WORD, GRAM, SOUND]), [len(word_id), len(gram_id), len(sound_id)])
        self.kind = kind
        cnt = np.asarray(counts, dtype=np.int64).reshape(nrows, 3)
        rows = np.arange(nrows, dtype=np.int64)
        # every element as (row, kind, id), ordered by row then kind
        e_row = np.concatenate([np.repeat(rows, cnt[:, j]) for j in range(3)])
        e_id = np.concatenate(
            [
                np.fromiter(map(d.__getitem__, items), dtype=np.int64, count=len(items))
                for d, items in ((word_id, words), (gram_id, grams), (sound_id, sounds))
            ]
        )
        # the entry row gets the words and bigrams of the entry's texts too
        ent_rows = np.asarray(kw_rows, dtype=np.int64)
        is_text = np.ones(nrows, dtype=bool)
        is_text[ent_rows] = False
        is_entry = np.zeros(nrows, dtype=bool)
        is_entry[ent_rows] = True
        text_elem = (kind[e_id] != SOUND) & is_text[e_row]
        e_row = np.concatenate((e_row, ent_rows[row_entry[e_row[text_elem]]]))
        e_id = np.concatenate((e_id, e_id[text_elem]))
        key = np.sort(e_row * nv + e_id)  # unique (row, id), by row then id (ids grouped by kind)
        key = key[np.concatenate((key[:1] == key[:1], key[1:] != key[:-1]))]
        elem_row, ids = np.divmod(key, nv)
        elem_kind = kind[ids]
        lengths = np.bincount(elem_row, minlength=nrows)
        # postings: entry rows only
        sel = is_entry[elem_row]
        sel_ids = ids[sel]
        order = np.argsort(sel_ids, kind="stable")
        post_entries = row_entry[elem_row[sel]][order]
        df = np.bincount(sel_ids, minlength=nv)
        post_ptr = np.zeros(nv + 1, dtype=np.int64)
        np.cumsum(df, out=post_ptr[1:])
        self.posts = [post_entries[post_ptr[i] : post_ptr[i + 1]] for i in range(nv)]
        self.post_len = df
        n = max(self.n, 1)
        # idf of words and bigrams; syllable pairs count 1 each (their share is a plain proportion)
        self.idf = np.where(kind == SOUND, 1.0, _idf(n, df))
        self.idf_list: list[float] = self.idf.tolist()
        # weight in the lexical pre-score: words full, bigrams half
        self.lex_w = np.where(kind == GRAM, 0.5, 1.0) * self.idf
        self.unknown_idf = float(_idf(n, np.zeros(1))[0])
        # per row: idf mass of its words, of its bigrams, and its number of syllable pairs
        mass = np.bincount(elem_row * 3 + elem_kind, weights=self.idf[ids], minlength=3 * nrows)
        self.row_mass = mass.reshape(nrows, 3)
        self.row_mass[ent_rows] = 0.0  # the entry row is not a text
        with np.errstate(divide="ignore"):
            self.row_inv_mass = np.where(self.row_mass > 0, 1.0 / self.row_mass, 0.0)
        # what ranking reads per row, in one table (one gather per message):
        # 1/mass of words, bigrams, syllable pairs; half the mass of words and bigrams
        self.row_table = np.concatenate((self.row_inv_mass, self.row_mass[:, :2] / 2.0), axis=1)
        # Per entry, slices of what ranking reads for a candidate: its rows' element ids and
        # "row within the entry * 3 + kind" codes, its row numbers and texts.
        code = (elem_row - rs[row_entry[elem_row]]) * 3 + elem_kind
        eptr = np.zeros(nrows + 1, dtype=np.int64)
        np.cumsum(lengths, out=eptr[1:])
        bounds = eptr[rs].tolist()
        self.e_ids = [ids[bounds[i] : bounds[i + 1]] for i in range(self.n)]
        self.e_code = [code[bounds[i] : bounds[i + 1]] for i in range(self.n)]
        self.e_nelem = [bounds[i + 1] - bounds[i] for i in range(self.n)]
        self.e_nrows = np.diff(rs).tolist()
        self.e_rows = [rows[self.row_start[i] : self.row_start[i + 1]] for i in range(self.n)]
        self.e_text = [row_text[self.row_start[i] : self.row_start[i + 1]] for i in range(self.n)]
        # word -> idf, for callers that want it by name (and the analyzer's vocabulary)
        self.word_idf: dict[str, float] = dict(zip(word_id, self.idf_list[: len(word_id)], strict=True))
        analyzer.learn(self.word_idf)
        # ranking state read as plain Python (see ``candidates`` and ``_feature_rows``)
        self._lex_w: list[float] = self.lex_w.tolist()
        self._post_len: list[int] = df.tolist()
        self._postings: list[list[int] | None] = [None] * nv
        self._blocks: list[_Block | None] = [None] * self.n
        self._pair_sound: dict[str, int] = {}  # two characters -> their syllable pair's id (or -1)

    def doc_row(self, entry: int, j: int) -> int:
        """Row of ``self.docs[entry][j]``."""
        return self.row_start[entry] + j

    def word_weight(self, term: str) -> float:
        w = self.word_idf.get(term)
        if w is not None:
            return w
        # a lone unknown character is usually a typo or noise
        return self.unknown_idf * (0.5 if len(term) == 1 else 1.0)

    def bigram_weight(self, gram: str) -> float:
        i = self.gram_id.get(gram)
        return self.unknown_idf if i is None else self.idf_list[i]

    def prepare(self, q: Analyzed) -> Query:
        word_idf = self.word_idf
        uidf = self.unknown_idf
        # (``word_weight`` inlined: this runs for every message)
        term_w = {
            t: w if (w := word_idf.get(t)) is not None else uidf * (0.5 if len(t) == 1 else 1.0)
            for t in q.terms
        }
        word_get = self.word_id.get
        weight: dict[int, float] = {}
        ids: list[int] = []
        unknown_w: list[float] = []  # words the FAQ never uses
        for t, w in term_w.items():
            i = word_get(t)
            if i is None:
                unknown_w.append(w)
            else:
                ids.append(i)
                weight[i] = w
        idf = self.idf_list
        gids = [i for i in map(self.gram_id.get, q.bigrams) if i is not None]
        gram_w = [idf[i] for i in gids]
        gram_mass = sum(gram_w) + (len(q.bigrams) - len(gids)) * uidf
        weight.update(zip(gids, gram_w, strict=True))
        ids.extend(gids)
        # syllable pairs (``sound_bigrams``), looked up by their two characters
        pair_sound = self._pair_sound
        if len(pair_sound) > 50_000:
            pair_sound.clear()
        qc = q.compact
        for j in range(len(qc) - 1):
            pair = qc[j : j + 2]
            i = pair_sound.get(pair)
            if i is None:
                i = pair_sound[pair] = self._sound_of_pair(pair)
            if i >= 0:
                weight[i] = 1.0
        total = sum(term_w.values())
        unknown = sum(unknown_w)
        mw, mg = total or 1.0, gram_mass or 1.0
        return Query(q, ids, weight, term_w, total, unknown, (mw, mg), (mw / 2.0, mg / 2.0))

    def clear_caches(self) -> None:
        """Forget looked-up character pairs (benchmarks measuring cold messages)."""
        self._pair_sound.clear()

    def _sound_of_pair(self, pair: str) -> int:
        """Id of the syllable pair of two characters, -1 if the FAQ has none such."""
        (p,) = sound_bigrams(pair)
        return self.sound_id.get(p, -1)

    def lexical(self, query: Query) -> np.ndarray:
        """Idf-weighted words (and half-weighted bigrams) each entry shares with the message."""
        ids = query.ids
        if not ids:
            return np.zeros(self.n, dtype=np.float64)
        posts = self.posts
        return np.bincount(
            np.concatenate([posts[i] for i in ids]),
            weights=np.repeat(self.lex_w[ids], self.post_len[ids]),
            minlength=self.n,
        )

    def _lexical_small(self, ids: list[int]) -> list[float]:
        """``lexical`` as a list, summed in the same order (the same floats)."""
        acc = [0.0] * self.n
        lex_w = self._lex_w
        postings = self._postings
        for i in ids:
            w = lex_w[i]
            entries = postings[i]
            if entries is None:
                entries = postings[i] = self.posts[i].tolist()
            for e in entries:
                acc[e] += w
        return acc

    def candidates(self, q: Analyzed | Query) -> list[int]:
        """Entries sharing idf-weighted words or bigrams with ``q``, best first (at most ``CANDIDATES``)."""
        n = self.n
        if n == 0:
            return []
        query = q if isinstance(q, Query) else self.prepare(q)
        ids = query.ids
        k = self.CANDIDATES
        small = self.SMALL_POSTINGS
        post_len = self._post_len
        if n > self.SMALL_FAQ or (n * len(ids) > small and sum([post_len[i] for i in ids]) > small):
            # a large FAQ, long postings: one ``bincount``
            acc = self.lexical(query)
            best = float(acc.max())
            if best <= 0.0:
                return []
            # Far behind the best candidate on shared words: cannot win, skip the costly features.
            near = np.flatnonzero(acc >= best * 0.3)
            if len(near) > k:
                near = near[np.argpartition(acc[near], len(near) - k)[len(near) - k :]]
            pairs = sorted(zip(acc[near].tolist(), near.tolist(), strict=True), key=lambda p: -p[0])
            return [e for _, e in pairs]
        # a small FAQ: plain Python, no array overhead (the same sums, the same order)
        shared = self._lexical_small(ids)
        best = max(shared)
        if best <= 0.0:
            return []
        floor = best * 0.3
        near_l = [e for e in range(n) if shared[e] >= floor]
        if len(near_l) > k:
            vals = np.asarray([shared[e] for e in near_l], dtype=np.float64)
            cut = np.argpartition(vals, len(near_l) - k)[len(near_l) - k :]
            near_l = np.asarray(near_l, dtype=np.int64)[cut].tolist()
        pairs = sorted([(shared[e], e) for e in near_l], key=lambda p: -p[0])
        return [e for _, e in pairs]

    def rank(self, q: Analyzed) -> list[Ranked]:
        """Candidate entries with their scores, best first."""
        if not q.compact or self.n == 0:
            return []
        query = self.prepare(q)
        cands = self.candidates(query)
        if not cands:
            return []
        scores = score_rows(self._feature_rows(query, cands))
        out = [Ranked(e, sc) for e, sc in zip(cands, scores, strict=True)]
        out.sort(key=lambda r: r.score, reverse=True)
        return out


def _idf(n: int, df: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
    return out
