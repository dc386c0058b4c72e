"""Reading a report out of an archive: the period's records and the look-ahead, then ``figures.report``.

``gateway report`` and ``GET /api/reports`` both call ``read_report``, so they print the same JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config import Config
from gateway.records.archive import Archive
from gateway.records.figures import DEFAULT_REOPEN_S, GROUPS, ReportOptions, check_period, parse_day, report
from gateway.records.model import Record

FORMATS = ("json", "table", "csv")
MAX_OFFSET_H = 14.0


def config_reopen_s(config: Config) -> float:
    """The reopen window of the config (``[records] reopen_s`` when the config has it; 0: never), else the default."""
    records = getattr(config, "records", None)
    value = getattr(records, "reopen_s", None)
    return float(value) if isinstance(value, int | float) and value >= 0 else DEFAULT_REOPEN_S


async def read_report(archive: Archive, options: ReportOptions) -> dict[str, Any]:
    """The report of ``[from_ts, to_ts)``; records created up to ``reopen_s`` later are read too (they tell
    whether a conversation of the period was reopened or followed by a new one). Logs are dropped as
    records arrive: the figures never read them."""
    records: list[Record] = []
    async for rec in archive.between(options.from_ts, options.to_ts + options.reopen_s):
        rec.messages = []
        records.append(rec)
    return report(records, options)


def options_from_query(query: Mapping[str, str], *, target_s: float, reopen_s: float, now: float) -> ReportOptions:
    """``from``, ``to`` (``YYYY-MM-DD`` or ISO date-times; a date is midnight at the offset), ``by``
    and ``utc_offset_h`` (default 8: China), as the API and the CLI take them. ValueError names the problem."""
    unknown = sorted(set(query) - {"from", "to", "by", "utc_offset_h"})
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r} (known: from, to, by, utc_offset_h)")
    try:
        offset = float(query.get("utc_offset_h", "8"))
    except ValueError:
        raise ValueError("utc_offset_h must be a number of hours") from None
    if not -MAX_OFFSET_H <= offset <= MAX_OFFSET_H:
        raise ValueError(f"utc_offset_h must be within ±{MAX_OFFSET_H:g} hours")
    if not query.get("from") or not query.get("to"):
        raise ValueError("from and to are required (YYYY-MM-DD)")
    from_ts, to_ts = parse_day(query["from"], offset), parse_day(query["to"], offset)
    check_period(from_ts, to_ts)
    by = query.get("by", "")
    if by and by not in GROUPS:
        raise ValueError(f"by must be one of {', '.join(GROUPS)}, got {by[:40]!r}")
    return ReportOptions(from_ts=from_ts, to_ts=to_ts, by=by, target_s=target_s, reopen_s=reopen_s, now=now,
                         utc_offset_h=offset)
