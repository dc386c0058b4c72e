"""How match features become one 0..1 confidence: a small logistic model.

The weights were fitted with ``python -m gateway.bot.tune`` (logistic regression,
L2-regularized) on leave-one-out paraphrases of the demo FAQ plus
``tests/data/faq_cases.jsonl``; they are few and generic, so they carry over to
other FAQ files. Thresholds on the result live in ``BotSettings``.
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
    partial: float  # rapidfuzz partial_ratio (FAQ text inside a longer message)
    keyword: float  # an entry keyword occurs in the message (weighted by its share)
    unmatched: float  # idf mass of message words the entry lacks (but the FAQ uses), in rarest-word units
    sounds: float  # share of the FAQ text's syllable pairs heard in the message (homophones)
    unknown: float  # message words the FAQ never uses, in rarest-word units


WEIGHTS: tuple[float, ...] = (0.45, 0.79, 1.57, 0.61, 0.97, 1.80, 0.44, 0.17, 1.04, -0.72, 0.49, -0.72)
BIAS = -2.44


def score(f: Features) -> float:
    z = BIAS + sum(w * x for w, x in zip(WEIGHTS, f, strict=True))
    return 1.0 / (1.0 + math.exp(-z))


_W = np.asarray(WEIGHTS, dtype=np.float64)


def score_matrix(features: np.ndarray) -> np.ndarray:
    """``score`` of every row of a (candidates x features) matrix."""
    z = features @ _W + BIAS
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out
