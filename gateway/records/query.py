"""Reading a search: the query parameters of ``GET /api/conversations``, times, and the page cursor (pure).

A cursor is opaque to clients: URL-safe base64 of ``[created_at, id]`` of the last item of a page; the
next page holds what sorts after it (``created_at`` descending, then ``id`` descending), so pages
neither repeat nor skip records written while a client pages.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import math
from collections.abc import Mapping

import orjson

from gateway.records.model import RESOLUTIONS, SearchFilters

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_TEXT = 200  # characters of a text parameter
MAX_TIME = 40  # characters of a time parameter
MAX_TS = 253402300799.0  # 9999-12-31T23:59:59Z
DEFAULT_UTC_OFFSET_H = 8.0  # bare dates are days in China (UTC+8), as in gateway report and /api/reports
MAX_OFFSET_H = 14.0

TEXT_PARAMS = ("customer", "agent", "order", "channel", "skill", "category", "q")
PARAMS = (*TEXT_PARAMS, "resolution", "rating_max", "from", "to", "utc_offset_h", "limit", "cursor")


class BadParameter(ValueError):
    """A query parameter that cannot be used; ``name`` is the parameter."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def _clean(text: str) -> bool:
    """No control characters and no lone surrogates (which no database can store)."""
    return not any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def encode_cursor(created_at: float, record_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, record_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """``(created_at, id)``; raises BadParameter("cursor", …) for anything this module did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise BadParameter("cursor", "not a cursor this API returned") from None
    if (not isinstance(value, list) or len(value) != 2 or isinstance(value[0], bool)
            or not isinstance(value[0], int | float) or not isinstance(value[1], str)
            or not math.isfinite(value[0]) or not _clean(value[1])):
        raise BadParameter("cursor", "not a cursor this API returned")
    return float(value[0]), value[1]


def parse_time(text: str, name: str, utc_offset_h: float = DEFAULT_UTC_OFFSET_H) -> float:
    """Unix seconds, ``YYYY-MM-DD`` (midnight at ``utc_offset_h``: China by default, as ``gateway report``)
    or an ISO 8601 time (without a zone: at ``utc_offset_h``). A ``to`` bound is exclusive: ``from=2026-11-01
    &to=2026-12-01`` is November.
    """
    t = text.strip()
    if not t or len(text) > MAX_TIME:
        raise BadParameter(name, f"must be 1 to {MAX_TIME} characters")
    try:
        value = float(t)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or not 0 <= value <= MAX_TS:
            raise BadParameter(name, f"Unix seconds must be between 0 and {MAX_TS:.0f}")
        return value
    try:
        when = dt.datetime.fromisoformat(t)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone(dt.timedelta(hours=utc_offset_h)))
        return min(max(when.timestamp(), 0.0), MAX_TS)
    except (ValueError, OverflowError):
        raise BadParameter(name, "must be Unix seconds, YYYY-MM-DD or an ISO 8601 time") from None


def parse_offset(text: str, name: str) -> float:
    """Hours east of UTC, within ±14."""
    try:
        v = float(text.strip())
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or abs(v) > MAX_OFFSET_H:
        raise BadParameter(name, f"must be a number of hours from -{MAX_OFFSET_H:g} to {MAX_OFFSET_H:g}")
    return v


def _int(text: str, name: str, lo: int, hi: int) -> int:
    try:
        v = int(text.strip())
    except ValueError:
        raise BadParameter(name, f"must be an integer from {lo} to {hi}") from None
    if not lo <= v <= hi:
        raise BadParameter(name, f"must be an integer from {lo} to {hi}, got {v}")
    return v


def parse_search(query: Mapping[str, str], repeated: Mapping[str, int] | None = None
                 ) -> tuple[SearchFilters, int, str]:
    """``(filters, limit, cursor)`` from a query string's parameters.

    Raises BadParameter naming the first parameter that is unknown, repeated (``repeated``: counts
    per name) or not valid. The cursor is checked here too, so a backend only sees good ones.
    """
    for name in query:
        if name not in PARAMS:
            raise BadParameter(name, f"unknown parameter (known: {', '.join(PARAMS)})")
        if repeated and repeated.get(name, 1) > 1:
            raise BadParameter(name, "given more than once")
    text: dict[str, str] = {}
    for name in TEXT_PARAMS:
        v = query.get(name, "").strip()
        if len(v) > MAX_TEXT:
            raise BadParameter(name, f"at most {MAX_TEXT} characters")
        if not _clean(v):
            raise BadParameter(name, "control characters are not allowed")
        text[name] = v
    resolution = query.get("resolution", "").strip()
    if resolution and resolution not in RESOLUTIONS:
        raise BadParameter("resolution", f"must be one of {', '.join(RESOLUTIONS)}")
    rating_max = _int(query["rating_max"], "rating_max", 1, 5) if "rating_max" in query else None
    offset = parse_offset(query["utc_offset_h"], "utc_offset_h") if "utc_offset_h" in query else DEFAULT_UTC_OFFSET_H
    from_ts = parse_time(query["from"], "from", offset) if "from" in query else None
    to_ts = parse_time(query["to"], "to", offset) if "to" in query else None
    if from_ts is not None and to_ts is not None and to_ts < from_ts:
        raise BadParameter("to", "must not be before from")
    limit = _int(query["limit"], "limit", 1, MAX_LIMIT) if "limit" in query else DEFAULT_LIMIT
    cursor = query.get("cursor", "")
    if cursor:
        decode_cursor(cursor)
    filters = SearchFilters(
        customer=text["customer"], agent=text["agent"], order=text["order"], channel=text["channel"],
        skill=text["skill"], category=text["category"], resolution=resolution, rating_max=rating_max,
        from_ts=from_ts, to_ts=to_ts, q=text["q"])
    return filters, limit, cursor


def add_period_arguments(p: argparse.ArgumentParser, default_config: str) -> None:
    """The arguments ``gateway export`` and ``gateway report`` share: the config, the period and its
    time zone, and an archive URL overriding the config's."""
    p.add_argument("--config", default=default_config, help=f"TOML config (default {default_config})")
    p.add_argument("--from", dest="from_", required=True, metavar="DATE",
                   help="first day, YYYY-MM-DD (midnight at --utc-offset), an ISO date-time or Unix seconds")
    p.add_argument("--to", required=True, metavar="DATE", help="end, not included (as --from)")
    p.add_argument("--utc-offset", default="8", metavar="HOURS", help="the days' time zone (default 8: China)")
    p.add_argument("--archive", metavar="URL", help="read this archive (overrides [archive] url)")
