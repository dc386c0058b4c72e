"""Developer tool: refit the scoring weights (``scoring.WEIGHTS``/``BIAS``).

``python -m gateway.bot.tune --faq FAQ.toml CASES.jsonl [--faq FAQ2.toml CASES2.jsonl ...]``

Training pairs: every candidate entry of every case (positive when it is the
expected entry), plus leave-one-out paraphrases: each ``similar`` text of the
FAQ asked as a query while that very text is hidden from its entry. Prints the
fitted weights to paste into ``scoring.py``; nothing is written.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from gateway.bot.engine import FaqBot
from gateway.bot.eval import read_cases
from gateway.bot.faq import load_faq
from gateway.bot.index import FaqIndex
from gateway.bot.scoring import Features


def _pairs(
    index: FaqIndex, text: str, expect: int | None, exclude_doc: int | None = None
) -> list[tuple[Features, int]]:
    q = index.analyzer.analyze(text, query=True)
    if not q.compact:
        return []
    query = index.prepare(q)
    cands = index.candidates(query)
    fm = index.feature_matrix(query, cands, exclude_doc=exclude_doc)
    return [(Features(*row), int(e == expect)) for e, row in zip(cands, fm.tolist(), strict=True)]


def collect(faq_path: str, cases_path: str) -> tuple[np.ndarray, np.ndarray]:
    entries = load_faq(faq_path)
    index = FaqBot.build(entries)._index
    ids = {e.id: i for i, e in enumerate(entries)}
    rows: list[tuple[Features, int]] = []
    for c in read_cases(cases_path):
        rows.extend(_pairs(index, c.text, ids.get(c.expect) if c.expect else None))
    # leave-one-out paraphrases: each one asked while it is hidden from its entry
    for i, docs in enumerate(index.docs):
        if len(docs) < 3:
            continue
        for j in range(1, len(docs)):
            rows.extend(_pairs(index, docs[j].raw, i, exclude_doc=index.doc_row(i, j)))
    x = np.array([list(f) for f, _ in rows], dtype=np.float64)
    y = np.array([label for _, label in rows], dtype=np.float64)
    return x, y


def fit(x: np.ndarray, y: np.ndarray, l2: float = 0.03, steps: int = 4000) -> np.ndarray:
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    pos = y.sum()
    # balance classes so the many negatives do not drown the positives
    sw = np.where(y > 0, len(y) / (2 * pos), len(y) / (2 * (len(y) - pos)))
    for _ in range(steps):
        p = 1 / (1 + np.exp(-xb @ w))
        g = xb.T @ ((p - y) * sw) / len(y) + l2 * np.r_[w[:-1], 0]
        h = (xb * (p * (1 - p) * sw)[:, None]).T @ xb / len(y) + l2 * np.eye(len(w))
        w -= np.linalg.solve(h, g)
        if np.abs(g).max() < 1e-9:
            break
    return w


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m gateway.bot.tune")
    ap.add_argument("pairs", nargs="+", help="FAQ file and cases file, alternating")
    ap.add_argument("--l2", type=float, default=0.03)
    args = ap.parse_args(argv)
    if len(args.pairs) % 2:
        ap.error("give FAQ and CASES files in pairs")
    xs, ys = [], []
    for faq_path, cases_path in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        x, y = collect(faq_path, cases_path)
        xs.append(x)
        ys.append(y)
    x, y = np.vstack(xs), np.concatenate(ys)
    w = fit(x, y, args.l2)
    names = Features._fields
    sys.stdout.write(f"pairs={len(y)} positives={int(y.sum())}\n")
    sys.stdout.write("WEIGHTS = (" + ", ".join(f"{v:.3f}" for v in w[:-1]) + f")\nBIAS = {w[-1]:.3f}\n")
    for n, v in zip(names, w[:-1], strict=True):
        sys.stdout.write(f"  {n:<8} {v:+.2f}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
