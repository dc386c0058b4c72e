"""Platform adapters: Douyin, Pinduoduo, Taobao and signed relays into the same conversations."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.server.context import Context


async def setup(ctx: Context, app: web.Application) -> None:
    """Register the adapters' routes and clients for the configured ``[[shops]]``."""
    return None
