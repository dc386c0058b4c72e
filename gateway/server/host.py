"""The server's side of the adapters' host interface (``gateway.adapters.host.Host``) over its context."""

from __future__ import annotations

from aiohttp import web

from gateway.adapters.host import Handler, Tap
from gateway.config import Config
from gateway.server.context import Context
from gateway.server.http import require_admin, require_agent_or_admin
from gateway.service.conversations import ConversationService
from gateway.service.platform import PlatformService
from gateway.service.tokens import check_token_sha256


class ServerHost:
    def __init__(self, ctx: Context, app: web.Application) -> None:
        self._ctx = ctx
        self._app = app
        self._platform = PlatformService(ctx.store)

    @property
    def config(self) -> Config:
        return self._ctx.config

    @property
    def service(self) -> ConversationService:
        return self._ctx.service

    @property
    def platform(self) -> PlatformService:
        return self._platform

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        self._app.router.add_route(method, path, handler)

    def tap(self, callback: Tap) -> None:
        self._ctx.hub.taps.append(callback)

    def is_admin(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.startswith("Bearer ") else ""
        return check_token_sha256(self._ctx.config.admin_token_sha256, token)

    def require_admin(self, request: web.Request) -> None:
        require_admin(request)

    def require_agent_or_admin(self, request: web.Request) -> None:
        require_agent_or_admin(request)
