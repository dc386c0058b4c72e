"""How match features become one 0..1 confidence: a small logistic model.

The weights were fitted with ``python -m gateway.bot.tune configs/faq.toml
tests/data/faq_cases.jsonl`` (logistic regression, L2 0.03) on the demo FAQ's cases and
leave-one-out paraphrases only; the two other check sets (``tests/data/heldout_*``,
``tests/data/third_*``, other shops) were not used for fitting. The features are
shares and counts normalized per message, so they carry over to other FAQ files.
Thresholds on the result (``BotSettings``) are compared on log-odds for the margin.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class Features(NamedTuple):
    w_dice: float  # idf-weighted word overlap, symmetric (best FAQ text)
    w_tcov: float  # share of the FAQ text's word weight found in the query
    w_qcov: float  # share of the query's word weight the entry explains
    b_dice: float  # same three on character bigrams
    b_tcov: float
    b_qcov: float
    fuzz: float  # rapidfuzz ratio of normalized strings
    keyword: float  # an entry keyword occurs in the message (weighted by its share)
    unmatched: float  # idf mass of message words the entry lacks (but the FAQ uses), in rarest-word units
    sounds: float  # share of the FAQ text's syllable pairs heard in the message (homophones)
    unknown: float  # message words the FAQ never uses, in rarest-word units
    w_qcov_text: float  # share of the message's word weight found in the best single FAQ text
    b_qcov_text: float  # same on character bigrams


WEIGHTS: tuple[float, ...] = (
    0.206, 0.474, 0.785, 0.316, 0.561, 0.954, 0.249, 0.696, -0.962, 0.406, 0.070, 0.725, 0.908,
)  # fmt: skip
BIAS = -2.768


def score(f: Features) -> float:
    z = BIAS + sum(w * x for w, x in zip(WEIGHTS, f, strict=True))
    return 1.0 / (1.0 + math.exp(-z))


_W = np.asarray(WEIGHTS, dtype=np.float64)


def score_matrix(features: np.ndarray) -> np.ndarray:
    """``score`` of every row of a (candidates x features) matrix."""
    z = features @ _W + BIAS
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out


def score_rows(rows: list[list[float]]) -> list[float]:
    """``score`` of a few feature rows, in plain Python: for the handful of candidates of one
    message, building arrays costs more than the arithmetic (same sums as ``score_matrix`` up to
    the last bit of rounding)."""
    exp = math.exp
    pairs = tuple(enumerate(WEIGHTS))
    out = []
    for row in rows:
        z = BIAS
        for i, w in pairs:
            z += w * row[i]
        out.append(1.0 / (1.0 + exp(-z)))
    return out
