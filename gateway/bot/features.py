"""Features of candidate entries for one message (see ``FaqIndex``, step 2).

``FeatureRows`` is the part of ``FaqIndex`` that turns a prepared message (``Query``) and its
candidate entries into rows of ``scoring.Features``, in plain Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Indel

from gateway.bot.analyzer import Analyzed
from gateway.bot.scoring import Features


@dataclass(slots=True)
class Query:
    """A message prepared once for scoring against many candidates."""

    text: Analyzed
    ids: list[int]  # ids of the message's words and bigrams the FAQ knows (words first, message order)
    weight: dict[int, float]  # id -> its weight in the message: idf of words and bigrams, 1 per syllable pair
    term_w: dict[str, float]  # every message word and its weight (unknown words too)
    term_total: float  # sum of ``term_w``
    unknown_total: float  # the part of ``term_total`` from words the FAQ never uses
    masses: tuple[float, float]  # word mass, bigram mass (never 0)
    half_masses: tuple[float, float]


@dataclass(slots=True, frozen=True)
class _Block:
    """One entry as scoring reads it: rows = its texts, then the entry row."""

    post: dict[int, tuple[int, ...]]  # id -> "row * 3 + kind" of every row holding it
    first: int  # index row of the first text
    rows: tuple[tuple[int, float, float, float, float, float], ...]  # per text row: 3 * its row
    # within the entry, 1/mass of words, bigrams, syllable pairs, half the mass of words and bigrams
    size: int  # 3 * rows (with the entry row)
    texts: tuple[str, ...]  # compact string of each text row


class FeatureRows:
    """Feature rows of ``FaqIndex`` (mixed into it; reads the arrays its constructor builds)."""

    keywords: list[tuple[str, ...]]
    unknown_idf: float
    row_table: np.ndarray
    e_ids: list[np.ndarray]
    e_code: list[np.ndarray]
    e_rows: list[np.ndarray]
    e_text: list[list[str]]
    _blocks: list[_Block | None]

    def _block(self, e: int) -> _Block:
        """What scoring reads of entry ``e`` (built on its first use as a candidate)."""
        b = self._blocks[e]
        if b is None:
            post: dict[int, list[int]] = {}
            for i, c in zip(self.e_ids[e].tolist(), self.e_code[e].tolist(), strict=True):
                post.setdefault(i, []).append(c)
            rows = self.e_rows[e].tolist()
            table = self.row_table[rows].tolist()
            b = self._blocks[e] = _Block(
                {i: tuple(c) for i, c in post.items()},
                rows[0],
                tuple((3 * r, *table[r]) for r in range(len(rows) - 1)),
                3 * len(rows),
                tuple(self.e_text[e][:-1]),
            )
        return b

    def _feature_rows(
        self, query: Query, cands: Sequence[int], exclude_doc: int | None = None
    ) -> list[list[float]]:
        """``Features`` of each candidate, in plain Python (a handful of entries of a few rows each).

        Per row of an entry (one per text, then the entry row), the idf mass of the words and
        bigrams and the number of syllable pairs it shares with the message, each summed over
        the shared ids in ascending order; each entry keeps its best text per feature.
        """
        qc = query.text.compact
        weight = query.weight
        # the message's ids in ascending order, once: each candidate then looks up only these
        # (``post.keys() & ids`` would build a set of every id of the entry first)
        qids = sorted(weight)
        hqw, hqg = query.half_masses
        mqw, mqg = query.masses
        built = self._blocks
        blocks = [built[e] or self._block(e) for e in cands]
        # (rapidfuzz's ratio; its partial_ratio added nothing the shares do not say, for
        # five times the cost)
        choices = [t for b in blocks for t in b.texts]
        fz: list[float] = process.cdist([qc], choices, scorer=Indel.normalized_similarity, workers=1)[
            0
        ].tolist()
        uidf = self.unknown_idf
        # (words the FAQ uses elsewhere, and words it never uses: slot words such as colours
        # and places, or another topic)
        known = query.term_total - query.unknown_total
        unknown = min(query.unknown_total / uidf, 3.0)
        qlen = max(len(qc), 1)
        out: list[list[float]] = []
        pos = 0
        skip = -1 if exclude_doc is None else exclude_doc
        for e, b in zip(cands, blocks, strict=True):
            m = [0.0] * b.size
            post = b.post
            for i in qids:  # the ids both have, ascending
                cs = post.get(i)
                if cs is not None:
                    w = weight[i]
                    for c in cs:
                        m[c] += w
            w_dice = w_tcov = b_dice = b_tcov = sounds = best_mw = best_mg = 0.0
            ntext = len(b.rows)
            first = b.first
            if first <= skip < first + ntext:
                # a left-out text counts only for the share found in one text: as if it shared
                # nothing, after that
                j = 3 * (skip - first)
                best_mw, best_mg = m[j : j + 2]
                m[j : j + 3] = (0.0, 0.0, 0.0)
            for j, inv_w, inv_g, inv_s, hw, hg in b.rows:  # the text rows
                mw, mg, ms = m[j : j + 3]
                if not (mw or mg or ms):
                    continue  # shares nothing: every feature 0
                if mw > best_mw:
                    best_mw = mw
                if mg > best_mg:
                    best_mg = mg
                # dice 2m / (mq + md), the share of the text's weight, syllable pairs heard
                x = mw / (hqw + hw)
                if x > w_dice:
                    w_dice = x
                x = mw * inv_w
                if x > w_tcov:
                    w_tcov = x
                x = mg / (hqg + hg)
                if x > b_dice:
                    b_dice = x
                x = mg * inv_g
                if x > b_tcov:
                    b_tcov = x
                x = ms * inv_s
                if x > sounds:
                    sounds = x
            if first <= skip < first + ntext:
                r = skip - first
                fuzz = max([0.0, *fz[pos : pos + r], *fz[pos + r + 1 : pos + ntext]])
            else:
                fuzz = max(fz[pos : pos + ntext])
            pos += ntext
            # The share of the message's words and bigrams the entry explains (``whole``: the
            # entry row), and the rare message words it does not know ("过期", "纸质"): each
            # is a sign of another question. ``best_m*``: the share found in one text of the
            # entry (the entry as a whole may cover a message by a patchwork of its paraphrases).
            whole_w, whole_g = m[3 * ntext : 3 * ntext + 2]
            unmatched = min(max(known - whole_w, 0.0) / uidf, 3.0)
            # A keyword counts for the share of the message it explains: 运费险 alone is a
            # strong hint, 退款 inside 退款金额不对 only a weak one.
            kw = 0.0
            for word in self.keywords[e]:
                if word in qc and (x := min(1.0, len(word) / qlen)) > kw:
                    kw = x
            out.append(
                [
                    w_dice,
                    w_tcov,
                    whole_w / mqw,
                    b_dice,
                    b_tcov,
                    whole_g / mqg,
                    fuzz,
                    kw,
                    unmatched,
                    sounds,
                    unknown,
                    best_mw / mqw,
                    best_mg / mqg,
                ]
            )
        return out

    def feature_matrix(
        self, query: Query, cands: Sequence[int], *, exclude_doc: int | None = None
    ) -> np.ndarray:
        """One row of ``Features`` per candidate entry (``exclude_doc``: a text row to leave out)."""
        if not cands:
            return np.zeros((0, len(Features._fields)), dtype=np.float64)
        return np.array(self._feature_rows(query, cands, exclude_doc), dtype=np.float64)

    def features(self, query: Query, e: int) -> Features:
        return Features(*self._feature_rows(query, [e])[0])
