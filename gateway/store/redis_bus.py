"""The Redis store's bus: one pub/sub subscription per instance, RESYNC after a reconnect.

The bus is the doorbell, the logs stay the truth: every script publishes the
entries it stored on the namespace's channel, and every instance's reader hands
them to the listener in publish order. After the subscription comes back
(Redis restarted, the connection dropped) the reader emits ``RESYNC`` once
Redis serves reads again (reading is paused until then, so RESYNC comes before
anything published after the reconnect), and the listener re-reads the logs for
the rings it missed.

Every instance receives every bus message of its namespace (with ``--workers``,
every worker does), so the reader is an asyncio protocol straight on the
socket: hiredis parses whatever arrived, and each message goes to the listener
from ``data_received``, with no task switch and no client library in between.
An idle subscription is pinged every ``health_s``; one that stays silent past
a second ping is dropped and made again.

In a Redis Cluster it subscribes on the node that holds the namespace's slot: a
classic PUBLISH reaches every node of the cluster, so any node would do, and
that one is the node a sharded subscription would need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import hiredis
import orjson

from gateway.errors import StoreUnavailable
from gateway.store.base import BusListener
from gateway.store.redis_client import Client
from gateway.store.redis_conn import Addr, ReplyError, Target, dial, hello_commands, pack
from gateway.store.redis_runner import ScriptRunner

log = logging.getLogger("gateway.store.redis")

RESYNC = "_resync"  # gateway.service.delivery.RESYNC (the store does not import the service layer)


class _Subscription(asyncio.Protocol):
    """SUBSCRIBE on one connection; messages go to the bus as they are parsed."""

    def __init__(self, bus: RedisBus, hello: list[bytes]) -> None:
        self.bus = bus
        self.hello = hello
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last_rx = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(b"".join([*self.hello, pack("SUBSCRIBE", self.bus.channel)]))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        reader = self.reader
        reader.feed(data)
        emit = self.bus.message
        try:
            while (m := reader.gets()) is not False:
                if type(m) is list:
                    kind = m[0]
                    if kind == b"message":
                        emit(m[2])
                    elif kind == b"subscribe" and not self.subscribed.done():
                        self.subscribed.set_result(None)
                elif type(m) is ReplyError:
                    raise StoreUnavailable(f"redis bus: {m}")
        except (hiredis.ProtocolError, StoreUnavailable) as e:
            self.drop(e)

    def connection_lost(self, exc: Exception | None) -> None:
        err = StoreUnavailable(f"redis bus: connection lost: {exc!r}")
        for f in (self.subscribed, self.lost):
            if not f.done():
                f.set_exception(err)
                f.exception()  # retrieved: whoever waits on it sees it

    def ping(self) -> None:
        if self.transport is not None:
            self.transport.write(pack("PING"))

    def drop(self, exc: BaseException) -> None:
        log.warning("event=bus_dropped instance=%s error=%r", self.bus.instance, exc)
        if self.transport is not None:
            self.transport.abort()


class RedisBus:
    def __init__(
        self,
        channel: str,
        runner: ScriptRunner,
        *,
        instance: str,
        ready_key: str,
        connect_timeout_s: float,
        closing: Callable[[], bool],
        health_s: float = 5.0,
    ) -> None:
        self.channel = channel
        self.instance = instance
        self._runner = runner
        self._ready_key = ready_key  # any key: EXISTS on it answers once Redis serves reads
        self._closing = closing
        self._connect_timeout_s = connect_timeout_s
        self.health_s = health_s
        self.listener: BusListener | None = None
        self.subscribed = asyncio.Event()
        self.reconnects = 0
        self._pinger: Client | None = None  # its own connection: a backed-up pipeline is no outage

    # receiving -------------------------------------------------------
    def emit(self, topic: str, payload: dict[str, Any]) -> None:
        if self.listener is None:
            return
        try:
            self.listener(topic, payload)
        except Exception:
            log.exception("event=bus_listener_failed topic=%s", topic)

    def message(self, data: bytes) -> None:
        try:
            topic, payload = orjson.loads(data)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            log.warning("event=bus_bad_message data=%r", data[:200])
            return
        self.emit(topic, payload)

    async def loop(self) -> None:
        """Deliver the namespace's bus messages in order; after a reconnect, RESYNC."""
        delay, ever = 0.05, False
        while not self._closing():
            sub: _Subscription | None = None
            try:
                sub = await self._subscribe()
                self.subscribed.set()  # confirmed: from here on no ring is missed
                delay = 0.05
                if ever:
                    # Anything published while we were away is in the logs: hold the new rings
                    # until Redis serves reads and RESYNC is out.
                    self.reconnects += 1
                    log.info("event=bus_resubscribed instance=%s", self.instance)
                    assert sub.transport is not None
                    sub.transport.pause_reading()
                    await self.until_serving()
                    self.emit(RESYNC, {})
                    sub.transport.resume_reading()
                ever = True
                await self._watch(sub)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.subscribed.clear()
                log.warning("event=bus_disconnected instance=%s error=%r retry_in=%.2f", self.instance, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            finally:
                if sub is not None and sub.transport is not None:
                    sub.transport.abort()

    async def _subscribe(self) -> _Subscription:
        target: Target = self._runner.target
        addr: Addr = self._runner.client.addr
        sub = _Subscription(self, hello_commands(target, select=False))
        try:
            async with asyncio.timeout(self._connect_timeout_s + 4.0):
                async with asyncio.timeout(self._connect_timeout_s):
                    await dial(target, addr, lambda: sub)
                await sub.subscribed
        except TimeoutError as e:
            sub.drop(e)
            raise StoreUnavailable(f"redis bus {addr}: no subscription: {e!r}") from e
        return sub

    async def _watch(self, sub: _Subscription) -> None:
        """Until the connection is lost (an exception) or the store closes; silence gets pinged."""
        while not self._closing():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(sub.lost), self.health_s)
            idle = time.monotonic() - sub.last_rx
            if idle >= 2 * self.health_s:
                sub.drop(TimeoutError(f"no answer to a ping in {idle:.1f}s"))
                raise StoreUnavailable("redis bus: silent")
            if idle >= self.health_s:
                sub.ping()

    async def until_serving(self, timeout: float = 10.0) -> None:
        """Wait until Redis serves reads (a restarted Redis may still be loading its AOF)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                await self._runner.call("EXISTS", self._ready_key)
                return
            except StoreUnavailable:
                await asyncio.sleep(0.1)

    # sending ---------------------------------------------------------
    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        await self._runner.call("PUBLISH", self.channel, orjson.dumps([topic, payload]))

    async def ping(self, timeout: float = 1.0) -> bool:
        """Redis answers PING within ``timeout``, on a connection of its own."""
        addr = self._runner.client.addr
        t = self._runner.target
        if self._pinger is None or self._pinger.addr != addr:
            if self._pinger is not None:
                await self._pinger.aclose()
            self._pinger = Client(Target((addr,), path=t.path, db=t.db, username=t.username, password=t.password,
                                         tls=t.tls, tls_verify=t.tls_verify),
                                  slot_key="", connect_timeout_s=timeout, read_timeout_s=timeout)
        try:
            async with asyncio.timeout(timeout):
                return bool(await self._pinger.execute(pack("PING")) == "PONG")
        except (StoreUnavailable, TimeoutError):
            return False

    async def aclose(self) -> None:
        if self._pinger is not None:
            await self._pinger.aclose()
            self._pinger = None
