"""The records API: ``GET /api/conversations`` (search the archive) and ``GET /api/conversations/{conv}``
(live from the store, else archived). Admin token, or a supervisor's (``require_records_access``).

Errors are JSON: 400 ``{"error":"bad_request","parameter":…,"message":…}`` naming the parameter,
401/403 as every admin endpoint, 404 ``not_found``, 503 ``unavailable`` while the archive's database
cannot be used (try again).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from aiohttp import web

from gateway.model import with_feedback
from gateway.records import text
from gateway.records.archive import Archive
from gateway.records.errors import ArchiveUnavailable
from gateway.records.model import Record
from gateway.records.query import BadParameter, parse_search
from gateway.server.context import Context
from gateway.server.http import require_records_access

log = logging.getLogger("gateway.records_api")


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)


def _unavailable(e: Exception) -> web.Response:
    log.warning("event=archive_unavailable error=%s", e)
    return _error(503, "unavailable", "the archive cannot be read now; try again later")


def _archive(ctx: Context) -> Archive:
    if ctx.archive is None:
        raise ArchiveUnavailable("no archive is open on this gateway")
    return ctx.archive


async def search_conversations(request: web.Request) -> web.Response:
    """``GET /api/conversations?…``: archived conversations, newest first, a page and the next page's cursor."""
    require_records_access(request)
    ctx: Context = request.app["ctx"]
    try:
        filters, limit, cursor = parse_search(request.query, Counter(k for k, _ in request.query.items()))
        if filters.q and not await asyncio.to_thread(text.query_words, filters.q):
            raise BadParameter("q", "has no word to search for")
    except BadParameter as e:
        return _error(400, "bad_request", e.message, parameter=e.name)
    try:
        records, after = await _archive(ctx).search(filters, limit, cursor)
    except ArchiveUnavailable as e:
        return _unavailable(e)
    return web.json_response({"items": [r.item() for r in records], "next": after or None})


def archived_body(rec: Record) -> dict[str, Any]:
    """An archived conversation: the search item, what only the record keeps, and the whole log."""
    return {**rec.item(), "archived": True, "close_reason": rec.close_reason, "follow_up_at": rec.follow_up_at,
            "follow_up_note": rec.follow_up_note, "follow_up_done_at": rec.follow_up_done_at,
            "transfers": rec.transfers, "version": rec.version, "messages": rec.messages}


async def conversation(request: web.Request) -> web.Response:
    """``GET /api/conversations/{conv}``: the live conversation and its log, or its archived record."""
    require_records_access(request)
    ctx: Context = request.app["ctx"]
    conv = await ctx.service.conversation(request.match_info["conv"])
    if conv is not None:
        body: dict[str, Any] = conv.to_dict()
        body["messages"] = with_feedback(await ctx.service.read_log(conv.id, 0), conv.feedback)
        return web.json_response(body)
    try:
        rec = await _archive(ctx).get(request.match_info["conv"])
    except ArchiveUnavailable as e:
        return _unavailable(e)
    if rec is None:
        return _error(404, "not_found", "no such conversation, live or archived")
    return web.json_response(archived_body(rec))


def add_records_routes(app: web.Application) -> None:
    app.router.add_get("/api/conversations", search_conversations)
    app.router.add_get("/api/conversations/{conv}", conversation)
