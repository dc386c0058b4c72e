"""Small HTTP helpers shared by the push endpoints: JSON answers and body parsing."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.adapters.base import BadPayload


def answer(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def refused(status: int, code: str, message: str) -> web.Response:
    """An error answer: ``{"ok": false, "error": code, "message": …}``."""
    return answer({"ok": False, "error": code, "message": message}, status)


JSON_TYPE = "application/json"
UTF8 = ("utf-8", "utf8")


def wrong_content_type(request: web.Request, expected: str = JSON_TYPE) -> str | None:
    """Why the request's Content-Type is not ``expected`` (a UTF-8 charset is allowed), or None.

    Checked from the headers alone, before the body is read: the handlers answer 415.
    """
    got = request.headers.get("Content-Type", "").strip()
    charset = (request.charset or "").lower()
    if got and request.content_type == expected and charset in ("", *UTF8):
        return None
    return f"Content-Type must be {expected} (charset utf-8 allowed), got {got[:100] or 'none'!r}"


class BodyTooLarge(Exception):
    """A body past the application's ``client_max_size``: answered 413, nothing read or stored."""


async def read_body(request: web.Request) -> bytes:
    """The raw body; ``BodyTooLarge`` past the app's limit (aiohttp's own 413 is plain text)."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as e:
        raise BodyTooLarge(f"body larger than {request.client_max_size} bytes") from e


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadPayload(f"body is not valid JSON: {e}") from e


def json_field(value: Any, what: str) -> Any:
    """A field that platforms send either as an object or as a JSON string."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as e:
            raise BadPayload(f"{what} is not valid JSON") from e
    return value


def text_id(value: Any, what: str, *, required: bool = True, max_chars: int = 128) -> str:
    """An id that may come as a string or a number (64-bit ids often do)."""
    if value is None or value == "":
        if required:
            raise BadPayload(f"{what} is required")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadPayload(f"{what} must be a string or an integer")
    s = str(value).strip()
    if required and not s:
        raise BadPayload(f"{what} is required")
    if len(s) > max_chars:
        raise BadPayload(f"{what} is longer than {max_chars} characters")
    return s


def seconds(value: Any) -> float:
    """A timestamp in seconds from seconds or milliseconds (anything else: 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) / 1000.0 if value > 1e11 else float(value)
