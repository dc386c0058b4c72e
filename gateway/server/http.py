"""Plain HTTP: health, readiness, metrics, admin API, and the static pages."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.bot.gaps import MAX_CLUSTERS
from gateway.server.context import Context
from gateway.service.gaps import GapLimits
from gateway.service.metrics import METRICS
from gateway.service.tokens import check_token_sha256

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("gateway.http")


def _bearer(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.startswith("Bearer ") else ""


def require_admin(request: web.Request) -> None:
    ctx: Context = request.app["ctx"]
    if not check_token_sha256(ctx.config.admin_token_sha256, _bearer(request)):
        raise web.HTTPUnauthorized(text='{"error":"unauthorized"}', content_type="application/json")


def require_agent_or_admin(request: web.Request) -> None:
    ctx: Context = request.app["ctx"]
    token = _bearer(request)
    if check_token_sha256(ctx.config.admin_token_sha256, token):
        return
    agent = ctx.config.agent(request.headers.get("X-Agent-Id", ""))
    if agent is None or not check_token_sha256(agent.token_sha256, token):
        raise web.HTTPUnauthorized(text='{"error":"unauthorized"}', content_type="application/json")


def require_records_access(request: web.Request) -> str:
    """The records API's callers (conversations, reviews, reports): the admin token, or a supervisor's agent
    token with ``X-Agent-Id`` (``[[agents]] role = "supervisor"``). Returns who called: ``"admin"`` or the
    supervisor's id. 401 without valid credentials, 403 for a plain agent's.
    """
    ctx: Context = request.app["ctx"]
    token = _bearer(request)
    if check_token_sha256(ctx.config.admin_token_sha256, token):
        return "admin"
    agent = ctx.config.agent(request.headers.get("X-Agent-Id", ""))
    if agent is None or not check_token_sha256(agent.token_sha256, token):
        raise web.HTTPUnauthorized(text='{"error":"unauthorized"}', content_type="application/json")
    if agent.role != "supervisor":
        raise web.HTTPForbidden(text='{"error":"forbidden","message":"supervisors only"}',
                                content_type="application/json")
    return agent.id


async def healthz(request: web.Request) -> web.Response:
    ctx: Context = request.app["ctx"]  # which process answered: several share a port with --workers
    return web.json_response({"ok": True, "instance": ctx.instance, "pid": os.getpid()})


async def readyz(request: web.Request) -> web.Response:
    ctx: Context = request.app["ctx"]
    guard = ctx.connections
    full = guard.full  # counts this probe's own connection: at the cap, no room for another
    body: dict[str, Any] = {"instance": ctx.instance,
                            "connections": {"open": guard.open, "max": guard.max_connections, "full": full}}
    try:
        ok = ctx.accepting and not full and await ctx.service.ready()
        if ok:  # still ready (this instance serves), but say which queues nobody can serve
            body["unserved_queues"] = await ctx.service.unserved_queues()
    except Exception:
        ok = False
    return web.json_response({"ready": ok, **body}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    ctx: Context = request.app["ctx"]
    wanted = ctx.config.metrics_token_sha256
    if wanted and not check_token_sha256(wanted, _bearer(request)):  # no [server] metrics_token: open
        raise web.HTTPUnauthorized(text='{"error":"unauthorized"}', content_type="application/json",
                                   headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    try:  # queue gauges are read at scrape time (any instance sees every queue of its namespace)
        lengths = await ctx.service.queue_lengths()
        unserved = await ctx.service.unserved_queues(lengths)
        for skill, n in lengths.items():
            METRICS.queue_length.labels(skill).set(n)
            METRICS.unserved_queue_length.labels(skill).set(unserved.get(skill, 0))
        depth, lag = await ctx.service.archive_outbox()  # the archive outbox, at scrape time too
        METRICS.archive_outbox_depth.set(depth)
        METRICS.archive_outbox_lag.set(lag)
        METRICS.follow_ups_due.set(await ctx.service.follow_ups_due())
    except Exception as e:  # the store is down: the counters still go out
        log.warning("event=metrics_queues_unavailable error=%r", e)
    return web.Response(body=generate_latest(METRICS.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def faq_reload(request: web.Request) -> web.Response:
    require_admin(request)
    ctx: Context = request.app["ctx"]
    ok, error, entries = await ctx.service.bot.reload()
    if not ok:
        return web.json_response({"ok": False, "error": error, "entries": entries}, status=422)
    return web.json_response({"ok": True, "entries": entries})


GAPS_MAX_DAYS = 365


async def faq_gaps(request: web.Request) -> web.Response:
    """``GET /api/faq/gaps?since_days=7&limit=50``: the gaps report (admin token)."""
    require_admin(request)
    ctx: Context = request.app["ctx"]
    q = request.query
    try:
        since_days = float(q.get("since_days", "7"))
        limit = int(q.get("limit", str(MAX_CLUSTERS)))
    except ValueError:
        since_days, limit = -1.0, -1
    if not 0 < since_days <= GAPS_MAX_DAYS or not 1 <= limit <= 500:
        return web.json_response({"error": "bad_request", "message": f"since_days must be a number of days in "
                                  f"(0, {GAPS_MAX_DAYS}] and limit an integer from 1 to 500"}, status=400)
    report = await ctx.service.faq_gaps(since_days, GapLimits(max_clusters=limit))
    return web.json_response(report)


async def stats(request: web.Request) -> web.Response:
    require_agent_or_admin(request)
    ctx: Context = request.app["ctx"]
    lengths = await ctx.service.queue_lengths()
    agents = await ctx.service.agents()
    return web.json_response({
        "queues": {s: lengths.get(s, 0) for s in sorted(set(ctx.config.skills) | set(lengths))},
        "agents_online": sum(1 for a in agents if a.status.value == "online"),
        "agents": [
            {"id": a.id, "name": a.name, "status": a.status.value, "held": len(a.held), "capacity": a.capacity}
            for a in agents
        ],
    })


# widget.js is embedded in shops' own pages and loads its modules with import(),
# which browsers only allow across origins with this header.
_PUBLIC = {"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"}


# The shipped pages and assets, listed once at import: no stat on the event loop per request.
_STATIC_NAMES = frozenset(p.name for p in STATIC.iterdir() if p.is_file())


def _page(name: str) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        if name not in _STATIC_NAMES:
            raise web.HTTPNotFound(text=f"{name} is not built into this gateway")
        return web.FileResponse(STATIC / name, headers=_PUBLIC)

    return handler


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in _STATIC_NAMES:  # only the files shipped in the directory: no path ever leaves it
        raise web.HTTPNotFound(text="no such file")
    return web.FileResponse(STATIC / name, headers=_PUBLIC)


# ------------------------------------------------------------ security headers and origins

# No inline script anywhere (the pages load only their own modules); inline styles stay
# allowed (index.html's layout block, the widget's and the reply box's style properties).
# connect-src 'self' covers the page's own ws:/wss: origin.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'")
# The customer page may be framed by shops; nothing else may (the console above all).
FRAMEABLE = frozenset({"/", "/static/index.html"})


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: on every HTTP response, errors included (not on websocket upgrades)."""
    if isinstance(response, web.WebSocketResponse):
        return
    h = response.headers
    h["X-Content-Type-Options"] = "nosniff"
    if request.path in FRAMEABLE:
        h["Content-Security-Policy"] = CSP
    else:
        h["Content-Security-Policy"] = CSP + "; frame-ancestors 'none'"
        h["X-Frame-Options"] = "DENY"


def _console_side(path: str) -> bool:
    """What ``[server] allowed_origins`` guards: the agent socket and the API the console calls."""
    return path == "/ws/agent" or path.startswith("/api/")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def origin_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse (403, before any websocket upgrade) a browser ``Origin`` not in ``[server] allowed_origins``.

    Empty list: any origin. Requests without ``Origin`` (curl, servers) pass; the customer
    socket, the pages, the widget and the webhooks are never checked.
    """
    ctx: Context = request.app["ctx"]
    allowed = ctx.config.allowed_origins
    if allowed and _console_side(request.path):
        origin = request.headers.get("Origin")
        if origin is not None and origin.strip().lower().rstrip("/") not in allowed:
            log.warning("event=origin_refused path=%s origin=%r", request.path, origin[:200])
            raise web.HTTPForbidden(text='{"error":"forbidden_origin"}', content_type="application/json")
    return await handler(request)


def install_security(app: web.Application) -> None:
    app.middlewares.append(origin_guard)
    app.on_response_prepare.append(security_headers)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/api/faq/reload", faq_reload)
    app.router.add_get("/api/faq/gaps", faq_gaps)
    app.router.add_get("/api/stats", stats)
    app.router.add_get("/", _page("index.html"))
    app.router.add_get("/console", _page("console.html"))
    app.router.add_get("/widget.js", _page("widget.js"))
    app.router.add_get("/static/{name:[A-Za-z0-9._-]+}", static_file)
