"""The Redis store's script runner: EVALSHA with NOSCRIPT reload, errors as ``StoreUnavailable``.

Every Lua script in ``gateway/store/lua/`` is loaded once and run by SHA; when
Redis answers NOSCRIPT (it restarted or was flushed) the script is loaded again
and the one call re-run. Connection errors, timeouts and the error replies that
mean "Redis cannot take writes now" become ``StoreUnavailable``; commands are
never retried by the client library (a retried append could be stored twice),
the pool reconnects on the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis import exceptions as rex
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.errors import StoreUnavailable
from gateway.store import lua

log = logging.getLogger("gateway.store.redis")

# Error replies that mean "Redis cannot take writes now": nothing was stored.
UNAVAILABLE_REPLIES = ("LOADING", "OOM", "MISCONF", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY")


def no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


class ScriptRunner:
    """One namespace's command connections: ``io`` for plain commands, ``run`` for scripts."""

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        socket_timeout_s: float,
        connect_timeout_s: float,
        pool_timeout_s: float,
        max_connections: int,
    ) -> None:
        self.prefix = prefix  # KEYS[1] of every script
        # Bounded: a burst of requests waits for a free connection (a busy
        # instance queues here, not in Redis) instead of opening hundreds.
        self._pool = BlockingConnectionPool.from_url(
            url, decode_responses=True, socket_timeout=socket_timeout_s, socket_connect_timeout=connect_timeout_s,
            retry=no_retry(), max_connections=max_connections, timeout=pool_timeout_s,
        )
        self.r: Redis = Redis(connection_pool=self._pool)
        self.scripts = {name: lua.load(name) for name in lua.names()}
        self.script_reloads = 0

    @contextlib.asynccontextmanager
    async def io(self, what: str) -> AsyncIterator[None]:
        """Turn Redis connection trouble into ``StoreUnavailable``.

        After a connection error the pool's idle connections are dropped too:
        they point at the same (dead or restarted) server, and each would fail
        one more request after Redis is back.

        It also gives back a cancellation the client library swallowed: on
        Python 3.11 ``asyncio.wait_for`` (used by redis-py to send every
        command) drops a cancel that lands just as the send completes, and the
        caller's loop would then run on after being told to stop.
        """
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        try:
            yield
        except (rex.TimeoutError, TimeoutError) as e:
            # Slow is not dead: under load a timeout must not drop the whole pool
            # (a reconnect storm on an instance that is already behind).
            raise StoreUnavailable(f"redis {what}: {e!r}") from e
        except (rex.ConnectionError, OSError) as e:
            with contextlib.suppress(Exception):
                await self._pool.disconnect(inuse_connections=False)
            raise StoreUnavailable(f"redis {what}: {e!r}") from e
        except rex.ResponseError as e:
            if str(e).split(" ", 1)[0] in UNAVAILABLE_REPLIES:
                raise StoreUnavailable(f"redis {what}: {e}") from e
            raise
        if task is not None and task.cancelling() > cancels:
            raise asyncio.CancelledError(f"cancelled during redis {what}")

    async def load_all(self) -> None:
        async with self.io("start"):
            async with self.r.pipeline(transaction=False) as pipe:
                for s in self.scripts.values():
                    pipe.script_load(s.source)
                await pipe.execute()

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """EVALSHA ``name`` with the prefix as ``KEYS[1]``; on NOSCRIPT load it and run it again."""
        script = self.scripts[name]
        all_keys = [self.prefix, *keys]
        async with self.io(name):
            try:
                return await self.r.evalsha(script.sha, len(all_keys), *all_keys, *args)
            except rex.NoScriptError:
                self.script_reloads += 1
                log.info("event=script_reload script=%s", name)
                await self.r.script_load(script.source)
                return await self.r.evalsha(script.sha, len(all_keys), *all_keys, *args)

    async def aclose(self) -> None:
        await self.r.aclose()
        await self._pool.aclose()
