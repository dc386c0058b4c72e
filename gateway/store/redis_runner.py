"""The Redis store's script runner: EVALSHA with NOSCRIPT reload, replies mapped to the store's errors.

Every Lua script in ``gateway/store/lua/`` is loaded once and run by SHA; when
Redis answers NOSCRIPT (it restarted, was flushed, or a cluster slot moved to a
node that never saw the script) the script is loaded again and that one call
re-run, both in one round trip. Plain commands go the same way (``call``).

Everything goes through one auto-pipelined connection (``redis_client.Client``):
the commands concurrent sessions issue in one event-loop tick reach Redis as one
write. Connection errors, timeouts and the error replies that mean "Redis cannot
take writes now" become ``StoreUnavailable``; other error replies raise
``redis.exceptions.ResponseError`` for their own command only. Nothing is
retried (a retried append could be stored twice); the next call reconnects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import redis
from redis import exceptions as rex

from gateway.errors import StoreUnavailable
from gateway.store import lua
from gateway.store.redis_client import Client
from gateway.store.redis_conn import Addr, ReplyError, Target, pack, pack_command, parse_url

log = logging.getLogger("gateway.store.redis")

# Error replies that mean "Redis cannot take writes now": nothing was stored.
UNAVAILABLE_REPLIES = frozenset(
    ("LOADING", "OOM", "MISCONF", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "MOVED", "ASK"))

Arg = str | bytes | int | float

# redis-py >= 7.2 looks its own version up (importlib.metadata: stats over sys.path) for every client and
# connection built without a DriverInfo, on the event loop; give it one, made once at import.
# Older redis-py reads the version once, at its own import, and has no DriverInfo.
try:
    from redis.driver_info import DriverInfo

    _DRIVER: dict[str, Any] = {"driver_info": DriverInfo(lib_version=redis.__version__)}
except ImportError:  # pragma: no cover - redis-py < 7.2
    _DRIVER = {}


def check(reply: Any, what: str) -> Any:
    """``reply`` itself, or the error it stands for."""
    if type(reply) is ReplyError:
        if reply.code in UNAVAILABLE_REPLIES:
            raise StoreUnavailable(f"redis {what}: {reply}")
        raise rex.ResponseError(f"{what}: {reply}")
    return reply


class ScriptRunner:
    """One namespace's commands: ``run`` for scripts, ``call`` / ``call_many`` for plain commands."""

    def __init__(self, url: str, prefix: str, *, socket_timeout_s: float, connect_timeout_s: float) -> None:
        self.url = url
        self.prefix = prefix  # KEYS[1] of every script; its hash tag picks the cluster slot
        self.target: Target = parse_url(url)
        self.connect_timeout_s = connect_timeout_s
        self.client = Client(self.target, slot_key=prefix, connect_timeout_s=connect_timeout_s,
                             read_timeout_s=socket_timeout_s,
                             discover=self._discover if self.target.cluster else None)
        self.scripts = {name: lua.load(name) for name in lua.names()}
        self.script_reloads = 0

    # scripts ---------------------------------------------------------
    async def load_all(self) -> None:
        replies = await self.client.execute_many([pack("SCRIPT", "LOAD", s.source) for s in self.scripts.values()])
        for r in replies:
            check(r, "script load")

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """EVALSHA ``name`` with the prefix as ``KEYS[1]``; on NOSCRIPT load it and run it again."""
        script = self.scripts[name]
        packed = pack_command(("EVALSHA", script.sha, len(keys) + 1, self.prefix, *keys, *args))
        reply = await self.client.execute(packed)
        if type(reply) is ReplyError and reply.code == "NOSCRIPT":
            self.script_reloads += 1
            log.info("event=script_reload script=%s", name)
            _, reply = await self.client.execute_many([pack("SCRIPT", "LOAD", script.source), packed])
        return check(reply, name)

    # plain commands --------------------------------------------------
    async def call(self, *args: Arg) -> Any:
        """One command, e.g. ``call("HGETALL", key)``: its RESP2 reply (strings decoded)."""
        return check(await self.client.execute(pack_command(args)), str(args[0]))

    async def call_many(self, commands: Sequence[Sequence[Arg]], *, transaction: bool = False) -> list[Any]:
        """Several commands in one go (MULTI/EXEC with ``transaction``); raises for the first error reply."""
        replies = await self.client.execute_many([pack_command(tuple(c)) for c in commands], transaction=transaction)
        return [check(r, str(c[0])) for r, c in zip(replies, commands, strict=True)]

    # cluster ---------------------------------------------------------
    async def _discover(self) -> Addr:
        """The primary that holds our slot, asked with redis-py's cluster client."""
        from redis.asyncio.cluster import ClusterNode, RedisCluster
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        t = self.target
        rc = RedisCluster(
            startup_nodes=[ClusterNode(h, p, **_DRIVER) for h, p in t.nodes], username=t.username or None,
            password=t.password or None, ssl=t.tls, ssl_cert_reqs="required" if t.tls_verify else "none",
            socket_connect_timeout=self.connect_timeout_s, socket_timeout=self.connect_timeout_s,
            require_full_coverage=False, retry=Retry(NoBackoff(), 0), **_DRIVER,
        )
        try:
            await rc.initialize()
            node = rc.get_node_from_key(self.prefix)
            if node is None:
                raise StoreUnavailable(f"redis cluster: no node serves {self.prefix!r}")
            return node.host, int(node.port)
        finally:
            await rc.aclose()

    def node_url(self) -> str:
        """A plain URL of the node the commands go to (the bus subscribes there)."""
        t = self.target
        if not t.cluster:
            return self.url
        host, port = self.client.addr
        auth = ""
        if t.password:
            auth = f"{quote(t.username)}:{quote(t.password)}@"
        query = "" if t.tls_verify else "?ssl_cert_reqs=none"
        return f"{'rediss' if t.tls else 'redis'}://{auth}{host}:{port}/0{query}"

    async def aclose(self) -> None:
        await self.client.aclose()
