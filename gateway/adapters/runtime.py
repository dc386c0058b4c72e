"""Wires the adapters to their host: routes, outboxes, the outbound tap, clients, and their lifecycle.

Everything started here is owned here and cancelled on the app's cleanup:
the HTTP client session, the turn workers, the outbound router, one outbox per
shop, one PDD message-service client per PDD app and one TMC poller per Taobao
app. The host (``gateway.adapters.host``) is the only way to the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from gateway.adapters.base import OutboundMessage, SendError
from gateway.adapters.config import AdaptersConfig, ShopConfig
from gateway.adapters.doudian import DoudianApi, DoudianPush
from gateway.adapters.douyin import ROUTE as DOUYIN_ROUTE
from gateway.adapters.douyin import DouyinSender, DouyinWebhook
from gateway.adapters.forward import ForwardEndpoint, RelaySender
from gateway.adapters.host import Host
from gateway.adapters.ingest import Ingestor
from gateway.adapters.outbound import OutboundRouter, platform_binding
from gateway.adapters.outbox import Outbox
from gateway.adapters.pdd import PddApi, PddMessageClient
from gateway.adapters.taobao import TmcPoller, TopApi
from gateway.adapters.turns import TurnRunner
from gateway.adapters.web import answer, refused
from gateway.errors import NotFound
from gateway.model import MetaMerge, MetaPatch

log = logging.getLogger("gateway.adapters")

_KEEP_ORDER_DETAILS = 5


class OrderLookup(Protocol):
    async def order(self, order: str) -> dict[str, Any]: ...


class ShopSender:
    """A shop's outbox sender: picks the relay or the platform API by the message's route."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes

    async def send(self, msg: OutboundMessage) -> None:
        sender = self.routes.get(msg.route)
        if sender is None:
            raise SendError(f"shop {msg.platform}:{msg.shop} has no {msg.route!r} route configured", retryable=False)
        await sender.send(msg)


class AdapterRuntime:
    def __init__(self, host: Host, cfg: AdaptersConfig) -> None:
        self.host = host
        self.cfg = cfg
        s = cfg.settings
        self.turns = TurnRunner(s.turn_workers, s.turn_queue)
        self.outbound = OutboundRouter(host.service, host.platform, host.config, cfg)
        self.ingest = Ingestor(host.service, host.platform, cfg, self.turns, self.outbound)
        self._session: aiohttp.ClientSession | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.pdd_clients: list[PddMessageClient] = []
        self.tmc_pollers: list[TmcPoller] = []
        self.lookups: dict[str, OrderLookup] = {}
        for shop in cfg.shops:
            routes: dict[str, Any] = {}
            if shop.relay:
                routes["relay"] = RelaySender(shop, self.http)
            if shop.platform == "douyin" and shop.native:
                routes[DOUYIN_ROUTE] = DouyinSender(shop, self.http)
            if routes:
                self.outbound.outboxes[shop.key] = Outbox(shop.key, ShopSender(routes), s, self.outbound.on_result,
                                                          rate=shop.send_rate, burst=shop.send_burst)
            lookup = _order_api(shop, self.http)
            if lookup is not None:
                self.lookups[shop.key] = lookup
        for shops in _by_app(cfg, "pdd"):
            self.pdd_clients.append(PddMessageClient(self, shops))
        for shops in _by_app(cfg, "taobao"):
            self.tmc_pollers.append(TmcPoller(self, shops))

    def http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the adapters are not started")
        return self._session

    # ------------------------------------------------------------ lifecycle
    async def start(self, app: web.Application) -> None:
        timeout = aiohttp.ClientTimeout(total=self.cfg.settings.request_timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self.turns.start()
        self.outbound.start()
        for box in self.outbound.outboxes.values():
            box.start()
        loop = asyncio.get_running_loop()
        # Event-stream clients only store events and hand-offs (no bot turn), so starting them
        # alongside the core's own start-up is safe: a store not yet up is retried.
        for c in self.pdd_clients:
            self.tasks.append(loop.create_task(c.run(), name=f"pdd:{c.app.app_key}"))
        for p in self.tmc_pollers:
            self.tasks.append(loop.create_task(p.run(), name=f"tmc:{p.app.app_key}"))
        log.info("event=adapters_started shops=%d outboxes=%d pdd=%d tmc=%d", len(self.cfg.shops),
                 len(self.outbound.outboxes), len(self.pdd_clients), len(self.tmc_pollers))

    async def stop(self, app: web.Application) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.tasks = []
        for box in self.outbound.outboxes.values():
            await box.stop()
        await self.outbound.stop()
        await self.turns.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------ routes
    def add_routes(self) -> None:
        add = self.host.add_route
        add("POST", "/adapters/doudian/events", DoudianPush(self).handle)
        add("POST", "/adapters/douyin/webhook", DouyinWebhook(self).handle)
        add("POST", "/adapters/forward/{platform}", ForwardEndpoint(self).handle)
        add("GET", "/api/adapters/failures", self.failures)
        add("GET", "/api/adapters/orders/{conversation}/{order}", self.order_lookup)

    async def failures(self, request: web.Request) -> web.Response:
        """The dead-letter list, newest first (admin token)."""
        self.host.require_admin(request)
        try:
            limit = max(1, min(1000, int(request.query.get("limit", "100"))))
        except ValueError:
            return refused(400, "bad_request", "limit must be an integer")
        items = await self.host.platform.dead_letters(limit)
        pending = {k: b.pending for k, b in self.outbound.outboxes.items()}
        return answer({"failures": items, "pending": pending})

    async def order_lookup(self, request: web.Request) -> web.Response:
        """An agent holding the conversation (or an admin) fetches an order from the platform's API."""
        self.host.require_agent_or_admin(request)
        service = self.host.service
        conv = await service.conversation(request.match_info["conversation"])
        if conv is None:
            return refused(404, "not_found", "no such conversation")
        if not self.host.is_admin(request) and conv.agent != request.headers.get("X-Agent-Id", ""):
            return refused(403, "not_assigned", "you do not hold this conversation")
        binding = platform_binding(conv.meta)
        lookup = self.lookups.get(f"{binding['platform']}:{binding['shop']}") if binding else None
        if binding is None or lookup is None:
            return refused(404, "not_found", "no order API for this conversation's shop")
        order = request.match_info["order"]
        try:
            data = await lookup.order(order)
        except SendError as e:
            return refused(502, "platform_error", e.message)
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            return refused(502, "platform_unreachable", repr(e))
        # merged in one step (the newest _KEEP_ORDER_DETAILS by fetch time), never read-modify-write
        patch = MetaPatch(merge={"order_details": MetaMerge({order: {"fetched": time.time(), "data": data}},
                                                            keep=_KEEP_ORDER_DETAILS, by="fetched")})
        with contextlib.suppress(NotFound):
            await service.patch_meta(conv.id, patch)
        return answer({"ok": True, "platform": binding["platform"], "shop": binding["shop"], "order": order,
                       "data": data})


def _by_app(cfg: AdaptersConfig, platform: str) -> list[list[ShopConfig]]:
    """Native shops grouped by app_key: one connection (PDD) or consumer (TMC) per app."""
    apps: dict[str, list[ShopConfig]] = {}
    for s in cfg.native(platform):
        apps.setdefault(s.app_key, []).append(s)
    return list(apps.values())


def _order_api(shop: ShopConfig, http: Callable[[], aiohttp.ClientSession]) -> OrderLookup | None:
    if not shop.native:
        return None
    if shop.platform == "pdd":
        return PddApi(shop, http)
    if shop.platform == "taobao":
        return TopApi(shop, http)
    if shop.platform == "doudian":
        return DoudianApi(shop, http)
    return None
