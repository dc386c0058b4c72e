"""The report as a table (``gateway report``) or CSV (``--format csv``): pure, from ``figures.report``'s dict."""

from __future__ import annotations

import csv
import io
from typing import Any

TOTAL_KEY = "total"


def flatten(figs: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"first_response": {"p50_s": 12}}`` -> ``{"first_response.p50_s": 12}``; the histogram's buckets
    become ``first_response.histogram.le_10`` … ``le_+Inf``."""
    out: dict[str, Any] = {}
    for k, v in figs.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        elif isinstance(v, list):
            for item in v:
                out[f"{name}.le_{item['le']:g}" if isinstance(item["le"], float) else f"{name}.le_{item['le']}"] = (
                    item["count"])
        else:
            out[name] = v
    return out


def _rows(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = [(str(r["key"]), {k: v for k, v in r.items() if k != "key"}) for r in report.get("rows") or ()]
    return [*rows, (TOTAL_KEY, report["totals"])]


def to_csv(report: dict[str, Any]) -> str:
    """One line per group, then ``total``; columns: ``group`` and every figure, flattened (empty: null)."""
    rows = [(key, flatten(figs)) for key, figs in _rows(report)]
    columns = list(rows[-1][1])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([report.get("by") or "group", *columns])
    for key, flat in rows:
        w.writerow([key, *("" if flat.get(c) is None else flat[c] for c in columns)])
    return buf.getvalue()


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _s(x: Any) -> str:
    return "-" if x is None else f"{x:.1f}s"


def _num(x: Any) -> str:
    return "-" if x is None else f"{x:.2f}"


COLUMNS: tuple[tuple[str, Any], ...] = (
    ("conv", lambda f: str(f["conversations"])),
    ("bot only", lambda f: _pct(f["bot_only_share"])),
    ("handoffs", lambda f: str(f["handoffs"])),
    ("1st resp p50", lambda f: _s(f["first_response"]["p50_s"])),
    ("p90", lambda f: _s(f["first_response"]["p90_s"])),
    ("in target", lambda f: _pct(f["first_response"]["within_target_share"])),
    ("resp avg", lambda f: _s(f["response_time"]["avg_s"])),
    ("handle avg", lambda f: _s(f["handle_time"]["avg_s"])),
    ("resolved", lambda f: _pct(f["resolution"]["rate"])),
    ("FCR", lambda f: _pct(f["fcr"]["rate"])),
    ("transfers", lambda f: _num(f["transfers"]["per_conversation"])),
    ("CSAT", lambda f: _num(f["satisfaction"]["average"])),
    ("rated", lambda f: _pct(f["satisfaction"]["response_rate"])),
    ("follow-ups o/d/late", lambda f: "{open}/{done}/{overdue}".format(**f["follow_ups"])),
)


def to_table(report: dict[str, Any]) -> str:
    """A fixed-width table: one line per group, then ``total`` (the headline figures; JSON/CSV have all)."""
    head = [report.get("by") or "", *(name for name, _ in COLUMNS)]
    lines = [[key, *(cell(figs) for _, cell in COLUMNS)] for key, figs in _rows(report)]
    widths = [max(_width(row[i]) for row in [head, *lines]) for i in range(len(head))]
    title = (f"{report['from']} .. {report['to']}  (first-response target {report['target_s']:g}s, "
             f"reopen window {report['reopen_s']:g}s)")
    out = [title]
    for row in [head, *lines]:
        out.append("  ".join(_pad(cell, widths[i], left=i == 0) for i, cell in enumerate(row)).rstrip())
    return "\n".join(out) + "\n"


def _width(text: str) -> int:
    """Display width: CJK characters take two columns."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _pad(text: str, width: int, *, left: bool) -> str:
    gap = " " * (width - _width(text))
    return text + gap if left else gap + text
