"""The Redis store's bus: one pub/sub subscription per instance, RESYNC after a reconnect.

The bus is the doorbell, the logs stay the truth: every script publishes the
entries it stored on the namespace's channel, and every instance's reader hands
them to the listener in publish order. After the subscription comes back
(Redis restarted, the connection dropped) the reader emits ``RESYNC`` once
Redis serves reads again, so the listener re-reads the logs for the rings it
missed.

The subscription is a redis-py ``PubSub`` on its own connection (it blocks on
reads by design: no read timeout, a health check instead). In a Redis Cluster
it subscribes on the node that holds the namespace's slot: a classic PUBLISH
reaches every node of the cluster, so any node would do, and that one is the
node a sharded subscription would need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis import exceptions as rex
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.errors import StoreUnavailable
from gateway.store.base import BusListener
from gateway.store.redis_runner import ScriptRunner

log = logging.getLogger("gateway.store.redis")

RESYNC = "_resync"  # gateway.service.delivery.RESYNC (the store does not import the service layer)


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
    ) -> None:
        self.channel = channel
        self.instance = instance
        self._runner = runner
        self._ready_key = ready_key  # any key: EXISTS on it answers once Redis serves reads
        self._closing = closing
        self._connect_timeout_s = connect_timeout_s
        self._url = ""
        self._r: Redis | None = None
        self._pool: ConnectionPool | None = None
        self._old: list[tuple[Redis, ConnectionPool]] = []
        self.listener: BusListener | None = None
        self.subscribed = asyncio.Event()
        self.reconnects = 0

    def emit(self, topic: str, payload: dict[str, Any]) -> None:
        if self.listener is None:
            return
        try:
            self.listener(topic, payload)
        except Exception:
            log.exception("event=bus_listener_failed topic=%s", topic)

    @property
    def r(self) -> Redis:
        """A client for the node the commands go to (made again when that node changes)."""
        url = self._runner.node_url()
        if self._r is None or url != self._url:
            if self._r is not None and self._pool is not None:
                self._old.append((self._r, self._pool))
            self._url = url
            self._pool = ConnectionPool.from_url(
                url, socket_timeout=None, socket_connect_timeout=self._connect_timeout_s, retry=Retry(NoBackoff(), 0),
                health_check_interval=5)
            self._r = Redis(connection_pool=self._pool)
        return self._r

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        await self._runner.call("PUBLISH", self.channel, orjson.dumps([topic, payload]))

    async def ping(self) -> bool:
        # On the bus's own connection: a burst that has the command pipeline
        # backed up is not an outage, and must not turn /readyz red.
        try:
            return bool(await asyncio.wait_for(self.r.ping(), 1.0))
        except (rex.RedisError, OSError, TimeoutError):
            return False

    async def loop(self) -> None:
        """Deliver the namespace's bus messages in order; after a reconnect, RESYNC."""
        delay, ever = 0.05, False
        while not self._closing():
            pubsub = self.r.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while not self._closing():
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is None:
                        continue
                    if msg["type"] == "subscribe":
                        # Confirmed: from here on no ring is missed. Anything
                        # published while we were away is in the logs.
                        self.subscribed.set()
                        delay = 0.05
                        if ever:
                            self.reconnects += 1
                            log.info("event=bus_resubscribed instance=%s", self.instance)
                            await self.until_serving()
                            self.emit(RESYNC, {})
                        ever = True
                    elif msg["type"] == "message":
                        try:
                            topic, payload = orjson.loads(msg["data"])
                        except (orjson.JSONDecodeError, ValueError, TypeError):
                            log.warning("event=bus_bad_message data=%r", msg["data"][:200])
                            continue
                        self.emit(topic, payload)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.subscribed.clear()
                log.warning("event=bus_disconnected instance=%s error=%r retry_in=%.2f", self.instance, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), 1.0)  # type: ignore[no-untyped-call]

    async def until_serving(self, timeout: float = 10.0) -> None:
        """Wait until Redis serves reads (a restarted Redis may still be loading its AOF)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                await self._runner.call("EXISTS", self._ready_key)
                return
            except StoreUnavailable:
                await asyncio.sleep(0.1)

    async def aclose(self) -> None:
        if self._r is not None and self._pool is not None:
            self._old.append((self._r, self._pool))
        for r, pool in self._old:
            with contextlib.suppress(Exception):
                await r.aclose()
                await pool.aclose()
        self._old, self._r, self._pool = [], None, None
