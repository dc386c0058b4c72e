"""Platform adapters: Douyin, Pinduoduo, Taobao and signed relays into the same conversations.

Layout: ``host`` (what the adapters need from the server: the service, routes,
a bus tap, token checks), ``base`` (records, events, the sender interface),
``signing`` (every signature), ``config`` (``[[shops]]``/``[adapters]``),
``ingest`` (into the conversation service), ``turns`` (bot turns after the
acknowledgement), ``outbound`` + ``outbox`` (replies out, retries, dead
letters), one module per platform (``forward``, ``douyin``, ``doudian``,
``pdd``, ``taobao``), and ``runtime`` wiring them together. The adapters reach
the gateway only through the ``Host``; they import neither ``gateway.server``
nor ``gateway.store``. See README.md (Platform adapters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.adapters.host import Host


async def setup(host: Host, app: web.Application) -> None:
    """Mount the adapters' routes and clients for the configured ``[[shops]]`` on ``host``.

    ``app`` only carries the lifecycle (start and stop with it) and the runtime
    (``app["adapters"]``). Raises ConfigError (naming the key) for a bad
    ``[[shops]]`` or ``[adapters]``.
    """
    from gateway.adapters.config import parse_adapters
    from gateway.adapters.runtime import AdapterRuntime

    rt = AdapterRuntime(host, parse_adapters(host.config))
    rt.add_routes()
    host.tap(rt.outbound.tap)
    app["adapters"] = rt
    app.on_startup.append(rt.start)
    app.on_cleanup.append(rt.stop)
