"""The review list: ``GET /api/reviews`` (cases rated 1-2 or closed unresolved) and ``POST /api/reviews/{id}``
(mark one reviewed, with a note). Admin token, or a supervisor's (``require_records_access``).

Errors are JSON, as the records API's: 400 ``bad_request`` naming the parameter, 401/403, 404 ``not_found``
(no such case on the list), 503 ``unavailable`` while the archive's database cannot be used.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from gateway.records.errors import ArchiveUnavailable
from gateway.server.context import Context
from gateway.server.http import require_records_access

log = logging.getLogger("gateway.records_api")

STATES = ("open", "reviewed", "all")
MAX_LIMIT = 500
MAX_NOTE_CHARS = 2000
MAX_BODY_BYTES = 16 * 1024


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)


def _unavailable(e: Exception) -> web.Response:
    log.warning("event=archive_unavailable error=%s", e)
    return _error(503, "unavailable", "the archive cannot be used now; try again later")


async def list_reviews(request: web.Request) -> web.Response:
    """``GET /api/reviews?state=open|reviewed|all&limit=100``: newest first (``state`` defaults to open)."""
    require_records_access(request)
    ctx: Context = request.app["ctx"]
    unknown = sorted(set(request.query) - {"state", "limit"})
    if unknown:
        return _error(400, "bad_request", "unknown parameter (known: limit, state)", parameter=unknown[0])
    state = request.query.get("state", "open")
    if state not in STATES:
        return _error(400, "bad_request", f"must be one of {', '.join(STATES)}", parameter="state")
    raw_limit = request.query.get("limit", "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        return _error(400, "bad_request", f"must be an integer from 1 to {MAX_LIMIT}", parameter="limit")
    if ctx.archive is None:
        return _unavailable(ArchiveUnavailable("no archive is open on this gateway"))
    try:
        items = await ctx.archive.reviews(state, int(raw_limit))
    except ArchiveUnavailable as e:
        return _unavailable(e)
    return web.json_response({"state": state, "items": items})


async def mark_reviewed(request: web.Request) -> web.Response:
    """``POST /api/reviews/{id}`` with ``{"note": "…"}``: the case is reviewed (by the caller), note kept."""
    who = require_records_access(request)
    ctx: Context = request.app["ctx"]
    conversation = request.match_info["conv"]
    body = await request.content.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _error(400, "bad_request", f"the body is larger than {MAX_BODY_BYTES} bytes", parameter="body")
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        return _error(400, "bad_request", "the body must be a JSON object", parameter="body")
    if not isinstance(data, dict):
        return _error(400, "bad_request", "the body must be a JSON object", parameter="body")
    unknown = sorted(set(data) - {"note"})
    if unknown:
        return _error(400, "bad_request", "unknown field (known: note)", parameter=unknown[0])
    note = data.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        return _error(400, "bad_request", f"must be a string of at most {MAX_NOTE_CHARS} characters",
                      parameter="note")
    if ctx.archive is None:
        return _unavailable(ArchiveUnavailable("no archive is open on this gateway"))
    try:
        done = await ctx.archive.mark_reviewed(conversation, note, who)
    except ArchiveUnavailable as e:
        return _unavailable(e)
    if not done:
        return _error(404, "not_found", "no such case on the review list (rated 1-2 or closed unresolved)")
    log.info("event=case_reviewed conversation=%s by=%s", conversation, who)
    return web.json_response({"id": conversation, "state": "reviewed", "note": note, "by": who})


def add_review_routes(app: web.Application) -> None:
    app.router.add_get("/api/reviews", list_reviews)
    app.router.add_post("/api/reviews/{conv}", mark_reviewed)
