"""The report's figures, computed from archive records (pure: no I/O, no clock).

``report(records, options)`` is what ``gateway report`` and ``GET /api/reports`` print. Every
figure is defined in the README (Archive and reports, "Reports and what each figure means"); the
short version is next to each one below. A share whose denominator is 0 is ``None`` (JSON
``null``), as is a percentile or an average of nothing.

``records`` may hold more than the period: the period is ``[from_ts, to_ts)`` of ``created_at``;
records created later (up to ``reopen_s`` after ``to_ts``; the readers fetch them) only serve to
tell whether a conversation of the period was reopened or followed by a new one (first-contact
resolution).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from gateway.records.model import Record

GROUPS = ("agent", "skill", "channel", "day", "category")
NONE_KEY = "-"  # the group of records without a value for it (no agent, no category, …)
HISTOGRAM_LE = (10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)  # first-response buckets (s); then "+Inf"
RATINGS = ("1", "2", "3", "4", "5")
MAX_DAYS = 366
DEFAULT_REOPEN_S = 7 * 86400.0  # without [records] reopen_s


@dataclass(slots=True, frozen=True)
class ReportOptions:
    from_ts: float
    to_ts: float
    by: str = ""  # "" (totals only) or one of GROUPS
    target_s: float = 30.0  # [sla] ack_target_s: the first-response target
    reopen_s: float = DEFAULT_REOPEN_S  # a new conversation of the same customer this soon after a close undoes FCR
    now: float = 0.0  # follow-ups due before ``now`` and not done are overdue
    utc_offset_h: float = 8.0  # days are calendar days at this offset (China: UTC+8)


def nearest_rank(values: list[float], p: float) -> float | None:
    """The p-th percentile by nearest rank: the ceil(p/100 * n)-th smallest value (None: no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def _share(num: int | float, den: int | float) -> float | None:
    return None if not den else round(num / den, 4)


def _secs(x: float | None) -> float | None:
    return None if x is None else round(float(x), 3)


def _mean(values: list[float]) -> float | None:
    return None if not values else round(math.fsum(values) / len(values), 3)


def local_day(ts: float, utc_offset_h: float) -> str:
    """``YYYY-MM-DD`` of ``ts`` at the offset."""
    tz = timezone(timedelta(hours=utc_offset_h))
    return datetime.fromtimestamp(ts, tz).date().isoformat()


def _days(options: ReportOptions) -> list[str]:
    """Every calendar day the period touches, in order (``by=day`` lists days without records too)."""
    tz = timezone(timedelta(hours=options.utc_offset_h))
    day = datetime.fromtimestamp(options.from_ts, tz).date()
    last = datetime.fromtimestamp(max(options.from_ts, options.to_ts - 1e-6), tz).date()
    out: list[str] = []
    while day <= last and len(out) < MAX_DAYS + 1:
        out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def _key(by: str, utc_offset_h: float) -> Callable[[Record], str]:
    if by == "agent":  # the last agent that held it (who closed it, or held it last)
        return lambda r: r.agents[-1] if r.agents else NONE_KEY
    if by == "day":
        return lambda r: local_day(r.created_at, utc_offset_h)
    if by in ("skill", "channel", "category"):
        return lambda r: str(getattr(r, by)) or NONE_KEY
    raise ValueError(f"by must be one of {', '.join(GROUPS)}, got {by!r}")


def _later_contact(period: list[Record], everything: list[Record], reopen_s: float) -> set[str]:
    """Ids of period records reopened, or followed by a new conversation of the same customer
    created within ``reopen_s`` after their close."""
    undone = {r.reopened_from for r in everything if r.reopened_from}
    by_customer: dict[str, list[float]] = {}
    for r in everything:
        by_customer.setdefault(r.customer_id, []).append(r.created_at)
    for r in period:
        if r.id in undone or not r.closed_at:
            continue
        for created in by_customer.get(r.customer_id, ()):
            if r.closed_at < created <= r.closed_at + reopen_s:
                undone.add(r.id)
                break
    return undone


def figures(records: list[Record], options: ReportOptions, undone: set[str]) -> dict[str, Any]:
    """The figures of one group (or of the whole period): README, "Reports and what each figure means"."""
    target = options.target_s
    n = len(records)
    bot_only = sum(1 for r in records if r.bot_only)
    handed = [r for r in records if r.handoff_at is not None]
    answered = [r.first_response_s for r in handed if r.first_response_s is not None]
    within = sum(1 for s in answered if s <= target)
    # an unanswered hand-off counts against the target once the customer waited past it
    unanswered_late = sum(1 for r in handed if r.first_response_s is None and r.handoff_at is not None
                          and r.closed_at and r.closed_at - r.handoff_at > target)
    histogram = [0] * (len(HISTOGRAM_LE) + 1)
    for s in answered:
        histogram[next((i for i, le in enumerate(HISTOGRAM_LE) if s <= le), len(HISTOGRAM_LE))] += 1
    responses = [t for r in records for t in r.response_times_s]
    handles = [h for h in (r.handle_s for r in records) if h is not None]
    by_agent = [r for r in records if r.resolution]
    resolved = [r for r in by_agent if r.resolution == "resolved"]
    fcr = sum(1 for r in resolved if not r.reopened_from and r.id not in undone)
    transfers = sum(r.transfers for r in records)
    surveyed = [r for r in records if r.agents or r.rating]
    ratings = [r.rating for r in surveyed if 1 <= r.rating <= 5]
    follow = [r for r in records if r.follow_up_at is not None]
    done = sum(1 for r in follow if r.follow_up_done_at is not None)
    open_ = [r for r in follow if r.follow_up_done_at is None]
    return {
        "conversations": n,
        "bot_only": bot_only,
        "bot_only_share": _share(bot_only, n),
        "handoffs": len(handed),
        "first_response": {
            "answered": len(answered),
            "p50_s": _secs(nearest_rank(answered, 50)),
            "p90_s": _secs(nearest_rank(answered, 90)),
            "target_s": target,
            "within_target": within,
            "unanswered_late": unanswered_late,
            "within_target_share": _share(within, len(answered) + unanswered_late),
            "histogram": [{"le": le, "count": c} for le, c in
                          zip([*HISTOGRAM_LE, "+Inf"], histogram, strict=True)],
        },
        "response_time": {"responses": len(responses), "avg_s": _mean(responses)},
        "handle_time": {"count": len(handles), "avg_s": _mean(handles),
                        "p50_s": _secs(nearest_rank(handles, 50)), "p90_s": _secs(nearest_rank(handles, 90))},
        "resolution": {
            "closed_by_agent": len(by_agent),
            "resolved": len(resolved),
            "unresolved": sum(1 for r in by_agent if r.resolution == "unresolved"),
            "pending": sum(1 for r in by_agent if r.resolution == "pending"),
            "rate": _share(len(resolved), len(by_agent)),
        },
        "fcr": {"count": fcr, "rate": _share(fcr, len(by_agent))},
        "transfers": {"total": transfers, "per_conversation": _share(transfers, len(handed))},
        "satisfaction": {
            "surveyed": len(surveyed),
            "rated": len(ratings),
            "response_rate": _share(len(ratings), len(surveyed)),
            "average": _share(sum(ratings), len(ratings)),
            "distribution": {k: sum(1 for x in ratings if str(x) == k) for k in RATINGS},
        },
        "follow_ups": {
            "open": len(open_),
            "overdue": sum(1 for r in open_ if r.follow_up_at is not None and r.follow_up_at < options.now),
            "done": done,
        },
    }


def _iso(ts: float, utc_offset_h: float) -> str:
    return datetime.fromtimestamp(ts, timezone(timedelta(hours=utc_offset_h))).isoformat()


def report(records: Iterable[Record], options: ReportOptions) -> dict[str, Any]:
    """The whole report: the period, the options, ``totals`` and (with ``by``) ``rows``, one per group."""
    everything = list(records)
    period = [r for r in everything if options.from_ts <= r.created_at < options.to_ts]
    undone = _later_contact(period, everything, options.reopen_s)
    out: dict[str, Any] = {
        "from": _iso(options.from_ts, options.utc_offset_h),
        "to": _iso(options.to_ts, options.utc_offset_h),
        "from_ts": options.from_ts,
        "to_ts": options.to_ts,
        "by": options.by or None,
        "target_s": options.target_s,
        "reopen_s": options.reopen_s,
        "now": options.now,
        "utc_offset_h": options.utc_offset_h,
        "totals": figures(period, options, undone),
    }
    if options.by:
        key = _key(options.by, options.utc_offset_h)
        groups: dict[str, list[Record]] = {d: [] for d in _days(options)} if options.by == "day" else {}
        for r in period:
            groups.setdefault(key(r), []).append(r)
        names = list(groups) if options.by == "day" else sorted(groups, key=lambda k: (k == NONE_KEY, k))
        out["rows"] = [{"key": k, **figures(groups[k], options, undone)} for k in names]
    return out


def parse_day(text: str, utc_offset_h: float = 8.0) -> float:
    """``2026-11-01`` (midnight at the offset), an ISO date-time (without a zone: at the offset) or Unix
    seconds (as ``gateway export`` and the records API take them) -> epoch s."""
    t = text.strip()
    if t.isascii() and t.replace(".", "", 1).isdigit() and len(t) <= 20:
        return float(t)
    try:
        dt = datetime.fromisoformat(t)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone(timedelta(hours=utc_offset_h)))
        ts = dt.astimezone(UTC).timestamp()
        datetime.fromtimestamp(ts, timezone(timedelta(hours=utc_offset_h)))  # printable at the offset too
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"not a date (YYYY-MM-DD), an ISO date-time or Unix seconds: {text[:40]!r}") from None
    return ts


def check_period(from_ts: float, to_ts: float) -> None:
    """A period must run forwards and span at most ``MAX_DAYS`` days (ValueError otherwise)."""
    if not to_ts > from_ts:
        raise ValueError("to must be after from")
    if to_ts - from_ts > MAX_DAYS * 86400:
        raise ValueError(f"a report spans at most {MAX_DAYS} days")
