"""Platform adapters: Douyin, Pinduoduo, Taobao and signed relays into the same conversations.

Layout: ``base`` (records, events, the sender interface), ``signing`` (every
signature), ``config`` (``[[shops]]``/``[adapters]``), ``ingest`` (into the
conversation service), ``outbound`` + ``outbox`` (replies out, retries, dead
letters), one module per platform (``forward``, ``douyin``, ``doudian``,
``pdd``, ``taobao``), and ``runtime`` wiring them into the app.
See README.md (Platform adapters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.server.context import Context


async def setup(ctx: Context, app: web.Application) -> None:
    """Register the adapters' routes and clients for the configured ``[[shops]]``.

    Raises ConfigError (naming the key) for a bad ``[[shops]]`` or ``[adapters]``.
    """
    from gateway.adapters.config import parse_adapters
    from gateway.adapters.runtime import AdapterRuntime

    rt = AdapterRuntime(ctx, parse_adapters(ctx.config))
    rt.add_routes(app)
    ctx.hub.taps.append(rt.outbound.tap)
    app["adapters"] = rt
    app.on_startup.append(rt.start)
    app.on_cleanup.append(rt.stop)
