"""``GET /api/reports`` (the report's JSON, as ``gateway report --format json`` prints it), the ``/reports``
page and the chart library it loads from ``/static/vendor/`` (served by the gateway: no CDN)."""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from gateway.records.archive import Archive
from gateway.records.reports import config_reopen_s, options_from_query, read_report
from gateway.server.context import Context
from gateway.server.http import STATIC, require_records_access

log = logging.getLogger("gateway.reports")

VENDOR = STATIC / "vendor"
_VENDOR_NAMES = frozenset(p.name for p in VENDOR.iterdir() if p.is_file()) if VENDOR.is_dir() else frozenset()
_NO_CACHE = {"Cache-Control": "no-cache"}


def archive_of(ctx: Context) -> Archive | None:
    return ctx.archive


def _error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


async def reports(request: web.Request) -> web.Response:
    """``GET /api/reports?from=2026-11-01&to=2026-12-01[&by=day][&utc_offset_h=8]``: the admin token or a
    supervisor's (``require_records_access``)."""
    require_records_access(request)
    ctx: Context = request.app["ctx"]
    try:
        options = options_from_query(request.query, target_s=ctx.config.ack_target_s, reopen_s=config_reopen_s(ctx.config),
                                     now=time.time())
    except ValueError as e:
        return _error(400, "bad_request", str(e))
    archive = archive_of(ctx)
    if archive is None:
        return _error(503, "unavailable", "no archive is open on this gateway")
    try:
        body: dict[str, Any] = await read_report(archive, options)
    except Exception as e:  # the archive's database is down: say so, try again later
        log.warning("event=report_failed error=%r", e)
        return _error(503, "unavailable", "the archive cannot be read now; try again later")
    return web.json_response(body)


async def reports_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "reports.html", headers=_NO_CACHE)


async def vendor_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in _VENDOR_NAMES:  # only the files shipped in static/vendor/
        raise web.HTTPNotFound(text="no such file")
    return web.FileResponse(VENDOR / name, headers=_NO_CACHE)


def add_report_routes(app: web.Application) -> None:
    app.router.add_get("/api/reports", reports)
    app.router.add_get("/reports", reports_page)
    app.router.add_get("/static/vendor/{name:[A-Za-z0-9._-]+}", vendor_file)
