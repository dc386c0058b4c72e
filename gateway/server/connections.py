"""Connections that cannot pile up: caps per client address and per instance, and a header deadline.

Every accepted TCP connection passes through a ``Guarded`` protocol in front of
aiohttp's request handler. It is counted against ``[limits] max_connections``
(the instance) and ``[limits] max_connections_per_address`` (its peer address;
trusted proxies are exempt), and it must complete a request's headers within
``[limits] header_timeout_s`` of opening, or it is closed (a slowloris that
sends nothing, or one header line now and then). Between requests on a
keep-alive connection, aiohttp's keep-alive timeout (``[limits]
keepalive_timeout_s``, counted from the end of the last response, not reset by
partial data) closes it.

When the instance is full, the oldest connection that has not yet completed a
request is closed to make room: a flood of silent connections cannot keep a
real request, ``/healthz`` or a customer's websocket out. Only when every
connection is busy with a request (or is a websocket) is a new one refused,
with a plain ``503`` and ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.config import Limits
from gateway.server.addresses import is_trusted, trusted_networks
from gateway.service.metrics import METRICS

log = logging.getLogger("gateway.connections")

# File descriptors kept back from the automatic instance cap: the store's
# connections, the listening sockets, log and data files, adapters' clients.
FD_RESERVE = 128

_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Retry-After: 1\r\nConnection: close\r\nContent-Length: 21\r\n\r\ntoo many connections\n")


def instance_cap(configured: int) -> int:
    """``[limits] max_connections``, or with 0, what the process's file-descriptor limit allows."""
    if configured > 0:
        return configured
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(64, soft - FD_RESERVE)


class Guard:
    """The counts and the order of connections still waiting for their first request."""

    def __init__(self, limits: Limits) -> None:
        self.max_connections = instance_cap(limits.max_connections)
        self.per_address = limits.max_connections_per_address
        self.header_timeout = limits.header_timeout_s
        self._trusted = trusted_networks(limits.trusted_proxies)
        self.open = 0
        self.by_address: dict[str, int] = {}
        # connections that have not completed a request's headers, oldest first: the ones to close when full
        self.waiting: OrderedDict[Guarded, None] = OrderedDict()

    @property
    def full(self) -> bool:
        return self.open >= self.max_connections

    def admit(self, conn: Guarded) -> str:
        """'' when admitted (counted), else why not: 'address' or 'instance'."""
        address = conn.address
        if not is_trusted(address, self._trusted) and self.by_address.get(address, 0) >= self.per_address:
            return "address"
        if self.open >= self.max_connections:
            if not self.waiting:
                return "instance"
            oldest = next(iter(self.waiting))
            oldest.close("evicted")  # leaves ``waiting`` and the counts at once
        self.open += 1
        self.by_address[address] = self.by_address.get(address, 0) + 1
        self.waiting[conn] = None
        return ""

    def started(self, conn: Guarded) -> None:
        self.waiting.pop(conn, None)

    def release(self, conn: Guarded) -> None:
        self.waiting.pop(conn, None)
        self.open -= 1
        n = self.by_address.get(conn.address, 0) - 1
        if n > 0:
            self.by_address[conn.address] = n
        else:
            self.by_address.pop(conn.address, None)

    def protocol_factory(self, server: Callable[[], RequestHandler]) -> Callable[[], Guarded]:
        return lambda: Guarded(self, server())


class Guarded(asyncio.Protocol):
    """aiohttp's request handler behind the caps and the header deadline; everything else passes through."""

    __slots__ = ("_deadline", "_guard", "_inner", "_transport", "address", "counted")

    def __init__(self, guard: Guard, inner: RequestHandler) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self.address = ""
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        refused = self._guard.admit(self)
        if refused:
            METRICS.connections_refused.labels(refused).inc()
            self._transport.write(_REFUSAL)
            self._transport.close()
            self._inner = None  # type: ignore[assignment]  # never started: nothing to tell it
            return
        self.counted = True
        METRICS.connections_open.inc()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.header_timeout, self._header_deadline)
        self._inner.connection_made(transport)

    def _header_deadline(self) -> None:
        self._deadline = None
        if self.counted and self._inner is not None and self._inner._request_count == 0:
            self.close("header_timeout")

    def close(self, reason: str) -> None:
        """Close a connection that never completed a request (evicted or too slow)."""
        METRICS.connections_closed.labels(reason).inc()
        self._stop_counting()
        if self._transport is not None:
            self._transport.abort()  # nothing was asked, so nothing is owed: no lingering close

    def _stop_counting(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self.counted:
            self.counted = False
            METRICS.connections_open.dec()
            self._guard.release(self)

    def data_received(self, data: bytes) -> None:
        inner = self._inner
        if inner is None:  # refused: the 503 is on its way out
            return
        inner.data_received(data)
        if self.counted and self._deadline is not None and inner._request_count:
            self._deadline.cancel()
            self._deadline = None
            self._guard.started(self)

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            self._inner.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_counting()
        inner, self._inner = self._inner, None  # type: ignore[assignment]
        self._transport = None
        if inner is not None:
            inner.connection_lost(exc)
            # A websocket's reader callback (set by aiohttp's set_parser) refers back through the
            # websocket and its request to this handler: a cycle only a full collection would free.
            # No data arrives after the connection is lost, so it goes now.
            inner._data_received_cb = None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class GuardedSite(web.TCPSite):
    """``web.TCPSite`` whose connections pass through a ``Guard``."""

    __slots__ = ("guard",)

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int, guard: Guard, **kw: Any) -> None:
        super().__init__(runner, host, port, **kw)
        self.guard = guard

    async def start(self) -> None:
        self._runner._reg_site(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self.guard.protocol_factory(server), self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
