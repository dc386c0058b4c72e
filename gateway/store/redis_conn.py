"""A small RESP client for the store's commands: one multiplexed connection per node, auto-pipelined.

Every command a coroutine issues is packed (``hiredis.pack_command``) and put on
the node's connection with a future; the first one in an event-loop tick
schedules a flush (``loop.call_soon``), and the flush writes everything queued
in that tick with one ``transport.write``. Redis answers in order, so replies
(parsed by ``hiredis.Reader``) resolve the futures first in, first out. Many
concurrent sessions thus cost one write and one read batch per tick instead of a
round trip (and a pool checkout) each: ioredis calls it auto-pipelining.

Rules kept from the redis-py pool this replaces:

- Error replies are values (``ReplyError``), so one failing command never
  touches the others of its batch; the caller decides (NOSCRIPT, MOVED, ...).
- Connection trouble fails every command in flight on that connection with
  ``StoreUnavailable``; nothing is retried here (a retried append could be
  stored twice). The next command connects again.
- Timeouts: a connection that owes replies and has received nothing for
  ``read_timeout_s`` is declared dead (``StoreUnavailable``) and dropped. A busy
  Redis that keeps answering is slow, not dead: nothing times out while bytes
  arrive.
- Cancellation: a caller cancelled before the flush is not sent at all; one
  cancelled after is sent, and its reply is read and dropped. A cancel always
  comes out as ``CancelledError`` (no library in between can swallow it).

The client that routes commands to the right node (and follows a cluster's
redirects) is ``redis_client.Client``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_mod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis

from gateway.errors import StoreUnavailable

log = logging.getLogger("gateway.store.redis")

# ((name, *args)) -> the RESP request; args are str (sent as UTF-8), bytes, int or float
pack_command: Callable[[tuple[str | bytes | int | float, ...]], bytes] = hiredis.pack_command  # type: ignore[assignment]


def pack(*args: str | bytes | int | float) -> bytes:
    return pack_command(args)



class ReplyError(Exception):
    """An error reply from Redis (``-NOSCRIPT ...``), handed back as a value."""

    @property
    def code(self) -> str:
        return str(self).split(" ", 1)[0]


Addr = tuple[str, int]  # (host, port); ("", 0) with ``path`` for a unix socket


@dataclass(slots=True, frozen=True)
class Target:
    """Where and how to connect: parsed from a store URL."""

    nodes: tuple[Addr, ...]  # one node, or a cluster's seed nodes
    cluster: bool = False
    path: str = ""  # unix socket
    db: int = 0
    username: str = ""
    password: str = ""
    tls: bool = False
    tls_verify: bool = True


CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def _addr(part: str) -> Addr:
    if part.startswith("["):  # [::1]:6379
        host, _, rest = part[1:].partition("]")
        return host, int(rest.lstrip(":") or 6379)
    host, sep, port = part.rpartition(":")
    return (host, int(port)) if sep else (part, 6379)


def parse_url(url: str) -> Target:
    """``redis://[user:pass@]host:port/db``, ``rediss://…``, ``unix:///path?db=N``,
    ``redis+cluster://[user:pass@]host:port[,host:port…]`` (``rediss+cluster://`` for TLS)."""
    u = urlsplit(url)
    scheme = u.scheme.lower()
    query = dict(p.split("=", 1) for p in u.query.split("&") if "=" in p)
    username, password = unquote(u.username or ""), unquote(u.password or "")
    verify = query.get("ssl_cert_reqs", "required").lower() not in ("none", "optional")
    if scheme == "unix":
        return Target((("", 0),), path=unquote(u.path), db=int(query.get("db", "0")), username=username,
                      password=password)
    if scheme not in ("redis", "rediss", *CLUSTER_SCHEMES):
        raise ValueError(f"unsupported Redis URL scheme {u.scheme!r}")
    nodes = [_addr(part) for part in u.netloc.rsplit("@", 1)[-1].split(",") if part] or [("127.0.0.1", 6379)]
    cluster = scheme in CLUSTER_SCHEMES
    db = 0 if cluster else int(u.path.strip("/") or query.get("db", "0"))
    return Target(tuple(nodes), cluster=cluster, db=db, username=username, password=password,
                  tls=scheme.startswith("rediss"), tls_verify=verify)


class _Group:
    """Several replies that resolve one future together (a pipeline or MULTI/EXEC)."""

    __slots__ = ("fut", "n", "replies")

    def __init__(self, fut: asyncio.Future[Any], n: int) -> None:
        self.fut = fut
        self.n = n
        self.replies: list[Any] = []

    def done(self) -> bool:
        return self.fut.done()


class Connection(asyncio.Protocol):
    """One connection to one node: writes buffered per tick, replies matched first in, first out."""

    def __init__(self, loop: asyncio.AbstractEventLoop, addr: Addr, read_timeout_s: float) -> None:
        self.loop = loop
        self.addr = addr
        self.read_timeout_s = read_timeout_s
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.retire = False  # close once it owes nothing (the slot moved elsewhere)
        self._reader = hiredis.Reader(replyError=ReplyError, encoding="utf-8")
        self._out: list[bytes] = []
        self._out_waiters: list[asyncio.Future[Any] | _Group] = []
        self._waiting: deque[asyncio.Future[Any] | _Group] = deque()
        self._flush_scheduled = False
        self._since = 0.0  # loop time it started owing replies
        self._last_rx = 0.0
        self._rx = 0  # data_received calls, for the watchdog's second look
        self._watchdog: asyncio.TimerHandle | None = None
        self._suspect_rx = -1
        self.error: BaseException | None = None
        self.writes = 0  # transport writes (one per tick with anything to send)
        self.sent = 0  # requests written (a group counts once)

    # asyncio.Protocol ------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is no subclass)

    def data_received(self, data: bytes) -> None:
        self._last_rx = self.loop.time()
        self._rx += 1
        reader = self._reader
        waiting = self._waiting
        try:
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                w = waiting[0]
                if type(w) is _Group:
                    w.replies.append(reply)
                    if len(w.replies) < w.n:
                        continue
                    waiting.popleft()
                    if not w.fut.done():
                        w.fut.set_result(w.replies)
                else:
                    waiting.popleft()
                    if not w.done():
                        w.set_result(reply)  # type: ignore[union-attr]
        except (hiredis.ProtocolError, IndexError) as e:  # garbage, or a reply nobody asked for
            self.abort(StoreUnavailable(f"redis {self.addr}: bad reply stream: {e!r}"))
            return
        if not waiting and self.retire:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(StoreUnavailable(f"redis {self.addr}: connection lost: {exc!r}"))

    # sending ---------------------------------------------------------
    def send(self, packed: bytes, n: int = 0) -> asyncio.Future[Any]:
        """Queue one command; the future gets its reply. With ``n``: ``n`` commands packed together,
        the future gets the list of their ``n`` replies."""
        fut: asyncio.Future[Any] = self.loop.create_future()
        if self.closed:
            fut.set_exception(self.error or StoreUnavailable(f"redis {self.addr}: connection closed"))
            return fut
        self._out.append(packed)
        self._out_waiters.append(_Group(fut, n) if n else fut)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, waiters = self._out, self._out_waiters
        self._out, self._out_waiters = [], []
        if self.closed or self.transport is None:
            return  # _fail already failed them
        chunks = []
        for packed, w in zip(out, waiters, strict=True):
            if w.done():  # cancelled before it went out: never sent
                continue
            chunks.append(packed)
            self._waiting.append(w)
        if not chunks:
            return
        if len(self._waiting) == len(chunks):  # it owed nothing until now
            self._since = self.loop.time()
            self._arm(self.read_timeout_s)
        self.writes += 1
        self.sent += len(chunks)
        self.transport.write(b"".join(chunks))

    # timeouts --------------------------------------------------------
    def _arm(self, delay: float) -> None:
        if self._watchdog is None:
            self._watchdog = self.loop.call_later(delay, self._check)

    def _check(self) -> None:
        self._watchdog = None
        if self.closed or not self._waiting:
            self._suspect_rx = -1
            return
        idle = self.loop.time() - max(self._since, self._last_rx)
        if idle < self.read_timeout_s:
            self._suspect_rx = -1
            self._arm(self.read_timeout_s - idle)
        elif self._suspect_rx != self._rx:
            # Before declaring it dead, give the loop one pass over its I/O: after
            # a long stall of our own, the replies may be sitting in the socket.
            self._suspect_rx = self._rx
            self._arm(0.01)
        else:
            self.abort(StoreUnavailable(f"redis {self.addr}: no reply for {idle:.1f}s (timeout)"))

    # closing ---------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        if self.closed:
            return
        self.closed = True
        self.error = exc
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        pending = [*self._waiting, *self._out_waiters]
        self._waiting.clear()
        self._out, self._out_waiters = [], []
        for w in pending:
            fut = w.fut if isinstance(w, _Group) else w
            if not fut.done():
                fut.set_exception(exc)

    def abort(self, exc: BaseException) -> None:
        self._fail(exc)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self._fail(StoreUnavailable(f"redis {self.addr}: connection closed"))
        if self.transport is not None:
            self.transport.close()

    @property
    def owes(self) -> int:
        return len(self._waiting) + len(self._out_waiters)


def _tls_context(target: Target) -> ssl_mod.SSLContext | None:
    if not target.tls:
        return None
    ctx = ssl_mod.create_default_context()
    if not target.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl_mod.CERT_NONE
    return ctx


async def dial(target: Target, addr: Addr, factory: Callable[[], asyncio.Protocol]) -> asyncio.BaseTransport:
    """Open a connection to ``addr`` (or the target's unix socket, with TLS if it says so)."""
    loop = asyncio.get_running_loop()
    if target.path:
        transport, _ = await loop.create_unix_connection(factory, target.path)
    else:
        transport, _ = await loop.create_connection(factory, addr[0], addr[1], ssl=_tls_context(target),
                                                    server_hostname=addr[0] if target.tls else None)
    return transport


def hello_commands(target: Target, *, select: bool = True) -> list[bytes]:
    """What a new connection sends first: AUTH, and SELECT for a database other than 0."""
    out: list[bytes] = []
    if target.password:
        out.append(pack("AUTH", target.username, target.password) if target.username else pack("AUTH", target.password))
    if target.db and select:
        out.append(pack("SELECT", target.db))
    return out
