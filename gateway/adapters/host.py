"""What the adapters need from the server that runs them: the host interface.

As nonebot2 adapters reach their driver, the adapters reach the gateway only
through a ``Host``: the conversation service (every conversation change), the
platform bookkeeping (claims, dead letters), the config, routes to mount, a tap
on the bus, and the server's token checks. They import neither
``gateway.server`` nor ``gateway.store`` (an import-linter contract holds them
to it); ``gateway/server/host.py`` implements this over the server's context.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from gateway.config import Config
from gateway.service.conversations import ConversationService
from gateway.service.platform import PlatformService

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Tap = Callable[[str, dict[str, Any]], None]
"""Called (synchronously, must not block) with every bus message's topic and payload on this instance."""


class Host(Protocol):
    @property
    def config(self) -> Config: ...

    @property
    def service(self) -> ConversationService:
        """Conversations: open, customer messages and their bot turns, notes, meta patches, hand-offs …"""

    @property
    def platform(self) -> PlatformService:
        """Once-only claims and the dead-letter list."""

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Mount ``handler`` on the server for ``method`` ``path`` (aiohttp path syntax)."""

    def tap(self, callback: Tap) -> None:
        """Observe every bus message on this instance (every log entry of every conversation, with Redis)."""

    def is_admin(self, request: web.Request) -> bool:
        """The request carries the admin bearer token."""

    def require_admin(self, request: web.Request) -> None:
        """Raise 401 unless the request carries the admin token."""

    def require_agent_or_admin(self, request: web.Request) -> None:
        """Raise 401 unless the request carries the admin token, or ``X-Agent-Id`` and that agent's token."""
