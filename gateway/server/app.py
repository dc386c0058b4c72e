"""The aiohttp application and its lifecycle: start, timers, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import time
import uuid
from typing import Any

from aiohttp import web

from gateway.config import Config
from gateway.errors import StoreUnavailable
from gateway.records.errors import ArchiveUnavailable
from gateway.records.open import open_archive
from gateway.server.agent import agent_ws
from gateway.server.connections import GuardedSite
from gateway.server.context import Context
from gateway.server.customer import customer_ws
from gateway.server.http import add_routes, install_security
from gateway.server.openapi import add_openapi_route
from gateway.server.records_api import add_records_routes
from gateway.server.records_http import add_review_routes
from gateway.server.reports_http import add_report_routes
from gateway.service.archiver import Archiver, ArchiverSettings
from gateway.service.botholder import BotHolder
from gateway.service.conversations import ConversationService
from gateway.service.delivery import Hub
from gateway.store import open_store

log = logging.getLogger("gateway.server")


def settle_heap() -> None:
    """Move what start-up built (jieba's dictionary, the FAQ index) out of the GC's reach.

    Full collections otherwise walk those millions of objects again and again:
    the bench measured 70-370 ms pauses every ~1.4 s under load.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


async def timer_loop(ctx: Context, interval: float = 0.1) -> None:
    """Claim due timers (grace, idle close, SLA, unfinished bot turns) and fire them; any instance may claim any.

    A key is reported done only after its fire succeeded: one that failed stays
    claimed and comes back (``ConversationService.due_timers``), never dropped.
    """
    done: list[str] = []
    while True:
        try:
            keys = await ctx.service.due_timers(time.time(), tuple(done))
            done = []
            for key in keys:
                try:
                    await ctx.service.fire(key)
                    done.append(key)
                except Exception:
                    log.exception("event=timer_failed key=%s", key)
        except (StoreUnavailable, ConnectionError, OSError) as e:
            log.warning("event=timer_loop_store_unavailable error=%r", e)
            await asyncio.sleep(1.0)
        await asyncio.sleep(interval)


async def build_app(config: Config, instance: str | None = None) -> web.Application:
    instance = instance or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    hub = Hub()
    store = open_store(config.store_url, config.namespace, instance=instance)
    store.configure(agent_grace_s=config.routing.agent_grace_s)
    bot = BotHolder(config.faq_path, config.bot)
    service = ConversationService(config, store, bot, instance)
    ctx = Context(config, store, service, hub, instance)
    archive = ctx.archive = open_archive(config.archive.url)
    archiver = ctx.archiver = Archiver(store, archive, ArchiverSettings(keep_hot_s=config.archive.keep_hot_s))
    app = web.Application(client_max_size=1024 * 1024)
    app["ctx"] = ctx
    service.archive = archive  # reopening a case the store has let go (gateway/service/followups.py)
    install_security(app)  # security headers on every response; [server] allowed_origins
    app.router.add_get("/ws/customer", customer_ws)
    app.router.add_get("/ws/agent", agent_ws)
    add_routes(app)
    add_records_routes(app)  # /api/conversations, /api/conversations/{conv}
    add_openapi_route(app)  # /api/openapi.json: every endpoint (gateway/server/openapi.py)
    add_review_routes(app)  # /api/reviews, /api/reviews/{conv}
    add_report_routes(app)  # /api/reports, /reports, /static/vendor/
    from gateway.adapters import setup as setup_adapters
    from gateway.server.host import ServerHost

    await setup_adapters(ServerHost(ctx, app), app)

    tasks: list[asyncio.Task[None]] = []

    async def on_startup(app: web.Application) -> None:
        await bot.load()
        settle_heap()
        await store.start(hub.on_bus)
        try:  # migrations run here; a database that is down is retried on its first use, chat goes on
            await archive.start()
        except ArchiveUnavailable as e:
            log.error("event=archive_unavailable_at_start error=%s", e)
        await service.start()
        tasks.append(asyncio.create_task(timer_loop(ctx)))
        tasks.append(asyncio.create_task(archiver.run()))  # the archive outbox, drained by every instance
        log.info("event=started instance=%s store=%s faq_entries=%d", instance, config.store_url, bot.faq_count)

    async def on_shutdown(app: web.Application) -> None:
        await drain(ctx)

    async def on_cleanup(app: web.Application) -> None:
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await store.close()
        await archive.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def make_runner(app: web.Application, **kw: Any) -> web.AppRunner:
    """The runner with the gateway's keep-alive timeout (``[limits] keepalive_timeout_s``)."""
    ctx: Context = app["ctx"]
    return web.AppRunner(app, keepalive_timeout=ctx.config.limits.keepalive_timeout_s, **kw)


async def start_site(runner: web.AppRunner, host: str, port: int, *, reuse_port: bool = False) -> GuardedSite:
    """Listen on host:port with the connection caps and the header deadline (``connections.Guard``)."""
    ctx: Context = runner.app["ctx"]
    site = GuardedSite(runner, host, port, ctx.connections, reuse_address=True, reuse_port=reuse_port)
    await site.start()
    return site


async def drain(ctx: Context, timeout: float = 5.0) -> None:
    """Stop accepting; tell every client to reconnect elsewhere (1012).

    Agent sockets closing run the normal disconnect path (grace, then requeue),
    so their conversations are handed over as if the agent had dropped.
    """
    ctx.accepting = False
    peers = list(ctx.peers)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*[p.outlet.close(1012, "server restarting, reconnect") for p in peers],
                           return_exceptions=True),
            timeout,
        )
    log.info("event=drained sockets=%d", len(peers))


async def serve(config: Config, *, reuse_port: bool = False, instance: str | None = None,
                ready_prefix: str = "") -> None:
    """Run until SIGTERM/SIGINT; SIGHUP reloads the FAQ.

    ``reuse_port`` binds with SO_REUSEPORT, so several processes share the port
    (``gateway serve --workers N``); the listening line on stdout starts with
    ``ready_prefix`` (how a worker tells its supervisor it listens).
    """
    app = await build_app(config, instance)
    runner = make_runner(app, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    await start_site(runner, config.host, config.port, reuse_port=reuse_port)
    ctx: Context = app["ctx"]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    reloads: set[asyncio.Task[tuple[bool, str, int]]] = set()

    def reload() -> None:
        t = loop.create_task(ctx.service.bot.reload())
        reloads.add(t)
        t.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    host, port = config.host, config.port
    if runner.addresses:  # the bound port, when port=0 asked for any
        host, port = runner.addresses[0][:2]
    log.info("event=listening url=http://%s:%s", host, port)
    print(f"{ready_prefix}gateway listening on http://{host}:{port}  (customer chat: http://{host}:{port}/ , "
          f"agent console: http://{host}:{port}/console)", flush=True)
    await stop.wait()
    log.info("event=stopping")
    try:
        await asyncio.wait_for(runner.cleanup(), 10.0)
    except TimeoutError:
        log.warning("event=stop_timeout")
