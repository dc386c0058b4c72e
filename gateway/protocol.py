"""Frames of PROTOCOL.md: parsing, validation and encoding. Pure: no sockets."""

from __future__ import annotations

import unicodedata
from typing import Any

import orjson

from gateway.errors import BadFrame, TooLarge, UnknownType

MAX_ID_CHARS = 64

CUSTOMER_TYPES = frozenset({"hello", "message", "close", "rate", "feedback", "typing"})
AGENT_TYPES = frozenset({"hello", "message", "status", "transfer", "close", "typing"})

# Log entries an agent is sent live; it learns of assignment changes only
# through its own ``assigned`` / ``unassigned`` frames.
AGENT_HIDDEN_ENTRIES = frozenset({"assigned", "transferred"})


def encode(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


def error_frame(code: str, message: str, frame_id: str | None = None) -> dict[str, Any]:
    f: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if frame_id is not None:
        f["id"] = frame_id
    return f


def parse_frame(data: str, allowed: frozenset[str]) -> dict[str, Any]:
    """Decode one client text frame into a dict with a known ``type``.

    Raises BadFrame (not JSON / not an object / bad ``type`` or ``id``) or
    UnknownType (carrying the frame's ``id`` when it had a valid one).
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise BadFrame("frame is not valid JSON") from e
    if not isinstance(obj, dict):
        raise BadFrame("frame must be a JSON object")
    fid = obj.get("id")
    if fid is not None and (not isinstance(fid, str) or not fid or len(fid) > MAX_ID_CHARS):
        raise BadFrame(f"id must be a non-empty string of at most {MAX_ID_CHARS} characters")
    t = obj.get("type")
    if not isinstance(t, str):
        raise BadFrame("frame needs a string field 'type'", frame_id=fid)
    if t not in allowed:
        raise UnknownType(f"unknown frame type {t[:40]!r}", frame_id=fid)
    return obj


_INVISIBLE = frozenset(("Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"))
"""Unicode categories that show nothing on their own: controls, format characters
(zero-width space and joiners, BOM, bidi marks), spaces, combining marks."""


def visible(text: str) -> bool:
    """True when ``text`` has at least one character that shows."""
    return any(unicodedata.category(ch) not in _INVISIBLE for ch in text)


def text_field(frame: dict[str, Any], max_chars: int, key: str = "text") -> str:
    text = frame.get(key)
    fid = frame.get("id")
    if not isinstance(text, str) or not text.strip():
        raise BadFrame(f"'{key}' must be a non-empty string", frame_id=fid)
    if not visible(text):
        raise BadFrame(f"'{key}' has nothing visible (only spaces, zero-width or format characters)", frame_id=fid)
    if len(text) > max_chars:
        raise TooLarge(f"'{key}' is longer than {max_chars} characters", frame_id=fid)
    return text


def str_field(frame: dict[str, Any], key: str, *, required: bool = True, max_chars: int = 128) -> str:
    v = frame.get(key)
    fid = frame.get("id")
    if v is None and not required:
        return ""
    if not isinstance(v, str) or not v or len(v) > max_chars:
        raise BadFrame(f"'{key}' must be a non-empty string of at most {max_chars} characters", frame_id=fid)
    return v


def agent_entry(entry: dict[str, Any], conversation: str) -> dict[str, Any]:
    """A log entry as an agent receives it live: the conversation id added."""
    return {**entry, "conversation": conversation}
