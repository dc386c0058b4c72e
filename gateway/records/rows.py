"""What both archive backends store and return besides the search text (pure)."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.records.model import HistoryItem, Record

REVIEW_STATES = ("open", "reviewed")
PAGE = 200  # records read per round trip by ``between``


def review_condition(state: str) -> str:
    """The SQL condition (both backends: ``reviews`` joined as ``v``) for ``state``: open, reviewed or all."""
    conditions = {"open": "AND (v.id IS NULL OR v.state = 'open')", "reviewed": "AND v.state = 'reviewed'", "all": ""}
    if state not in conditions:
        raise ValueError(f"review state must be one of {', '.join(conditions)}, got {state!r}")
    return conditions[state]


def needs_review(rec: Record) -> bool:
    """Rated 1 or 2, or closed unresolved: the case is on the review list (open until marked reviewed)."""
    return 1 <= rec.rating <= 2 or rec.resolution == "unresolved"


def review_reasons(rec: Record) -> list[str]:
    out = []
    if 1 <= rec.rating <= 2:
        out.append("low_rating")
    if rec.resolution == "unresolved":
        out.append("unresolved")
    return out


def dump_record(rec: Record) -> bytes:
    """The record's JSON without its messages (stored apart: searches never load a log)."""
    d = rec.to_dict()
    d.pop("messages", None)
    return orjson.dumps(d)


def dump_messages(rec: Record) -> bytes:
    return orjson.dumps(rec.messages)


def load_record(record: bytes | str, messages: bytes | str | None = None) -> Record:
    d: dict[str, Any] = orjson.loads(record)
    d["messages"] = orjson.loads(messages) if messages is not None else []
    return Record.from_dict(d)


def history_item(rec: Record) -> HistoryItem:
    return HistoryItem(rec.id, rec.closed_at, rec.resolution, rec.category, rec.rating, rec.first_customer_text)


def review(rec: Record, state: str | None, note: str | None, by: str | None, at: float | None) -> dict[str, object]:
    """A review list entry: the search item plus the review's ``state``, ``note``, who and when, and why."""
    return {**rec.item(), "review": {"state": state or "open", "note": note or "", "by": by or "",
                                     "at": at, "reasons": review_reasons(rec)}}
