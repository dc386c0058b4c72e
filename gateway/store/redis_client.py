"""The store's client: commands to the node that holds the namespace, over ``redis_conn`` connections.

A Redis Cluster is the same with one twist: all of a namespace's keys share one
hash slot, so the client talks to that slot's primary (found with redis-py's
cluster client at the first connect, and again after that node fails) and
follows ``MOVED`` (the slot moved: switch nodes and send again) and ``ASK`` (the
slot is being migrated: ``ASKING`` + the command on the node named). While a
slot migrates, a multi-key command (every script: ``KEYS[1]`` is the bare
prefix, which never exists) gets ``TRYAGAIN`` and did not run; it is sent again
with a short backoff for up to ``migrate_wait_s`` (moving one namespace's keys
takes milliseconds), then ``StoreUnavailable``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gateway.errors import StoreUnavailable
from gateway.store.redis_conn import Addr, Connection, ReplyError, Target, dial, hello_commands, pack

log = logging.getLogger("gateway.store.redis")

MAX_REDIRECTS = 5
_CLUSTER_RETRY = frozenset(("MOVED", "ASK", "TRYAGAIN"))


class Client:
    """Commands to the node that holds the namespace (a single Redis, or one cluster slot's primary)."""

    def __init__(
        self,
        target: Target,
        *,
        slot_key: str,
        connect_timeout_s: float = 1.0,
        read_timeout_s: float = 2.0,
        discover: Callable[[], Awaitable[Addr]] | None = None,
        migrate_wait_s: float = 1.0,
    ) -> None:
        self.target = target
        self.slot_key = slot_key
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._discover = discover  # async () -> Addr: the slot's primary, asked of the cluster
        self.migrate_wait_s = migrate_wait_s  # how long TRYAGAIN (a slot mid-migration) is waited out
        self.addr: Addr = target.nodes[0]
        self._conns: dict[Addr, Connection] = {}
        self._connecting: dict[Addr, asyncio.Task[Connection]] = {}
        self._resolved = not target.cluster
        self.redirects = 0
        self._closed = False

    # public ----------------------------------------------------------
    async def execute(self, packed: bytes) -> Any:
        """One packed command; its reply (a ``ReplyError`` for an error reply)."""
        conn = self._conns.get(self.addr)
        if conn is None or conn.closed:
            conn = await self._connection(self.addr)
        reply = await conn.send(packed)
        if type(reply) is ReplyError and self.target.cluster:
            return await self._redirected(reply, packed)
        return reply

    async def execute_many(self, packed: Sequence[bytes], *, transaction: bool = False) -> list[Any]:
        """Several commands sent together, never interleaved with others; their replies in order.

        With ``transaction`` they run in MULTI/EXEC: the replies are EXEC's (an
        error reply inside stays a ``ReplyError`` value).
        """
        if not packed:
            return []
        body = [pack("MULTI"), *packed, pack("EXEC")] if transaction else list(packed)
        data = b"".join(body)
        moved, waited = 0, 0.0
        for _ in range(100):
            conn = await self._connection_to(self.addr)
            replies: list[Any] = await conn.send(data, len(body))
            if not self.target.cluster:
                break
            err = next((r for r in replies if type(r) is ReplyError and r.code in _CLUSTER_RETRY), None)
            if err is None:
                break
            if err.code == "MOVED" and moved < MAX_REDIRECTS:
                moved += 1
                self._follow(err)
                continue  # the slot has a new home: the whole batch again, there
            if err.code == "ASK" and not transaction:
                # The slot is being migrated and these keys already left: the batch once more on
                # the node named, each command behind its own ASKING. (A batch outside MULTI is
                # sent again whole after a redirect: keep such batches idempotent.)
                conn = await self._connection_to(self._follow(err))
                replies = (await conn.send(b"".join(pack("ASKING") + p for p in packed), 2 * len(packed)))[1::2]
                if not any(type(r) is ReplyError and r.code == "TRYAGAIN" for r in replies):
                    break
            # TRYAGAIN, or a transaction mid-migration: nothing ran; again shortly
            waited = await self._pause(waited)
            if waited < 0:
                break
        if not transaction:
            return replies
        last = replies[-1]
        if type(last) is ReplyError:
            queued = next((r for r in replies[1:-1] if type(r) is ReplyError), last)
            return [queued] * len(packed)
        return list(last) if last is not None else []

    @property
    def connection(self) -> Connection | None:
        """The live connection to the current node, if any (for stats and tests)."""
        c = self._conns.get(self.addr)
        return c if c is not None and not c.closed else None

    async def aclose(self) -> None:
        self._closed = True
        for t in list(self._connecting.values()):
            t.cancel()
        for c in list(self._conns.values()):
            c.close()
        self._conns.clear()

    # connections -----------------------------------------------------
    async def _connection_to(self, addr: Addr) -> Connection:
        conn = self._conns.get(addr)
        if conn is None or conn.closed:
            conn = await self._connection(addr)
        return conn

    async def _connection(self, addr: Addr) -> Connection:
        if self._closed:
            raise StoreUnavailable("redis: store closed")
        task = self._connecting.get(addr)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open(addr))
            self._connecting[addr] = task
            task.add_done_callback(self._opened)
        return await asyncio.shield(task)

    def _opened(self, task: asyncio.Task[Connection]) -> None:
        for addr, t in list(self._connecting.items()):
            if t is task:
                del self._connecting[addr]
        if not task.cancelled() and task.exception() is None:
            conn = task.result()
            self._conns[conn.addr] = conn

    async def _open(self, addr: Addr) -> Connection:
        if not self._resolved and addr == self.addr and self._discover is not None:
            addr = self.addr = await self._resolve()
        try:
            return await self._dial(addr)
        except StoreUnavailable:
            if self.target.cluster and self._discover is not None:
                self._resolved = False  # the node may be gone (failover): ask the cluster next time
            raise

    async def _resolve(self) -> Addr:
        assert self._discover is not None
        try:
            addr: Addr = await self._discover()
        except Exception as e:
            raise StoreUnavailable(f"redis cluster: cannot find the node for {self.slot_key!r}: {e!r}") from e
        self._resolved = True
        return addr

    async def _dial(self, addr: Addr) -> Connection:
        loop = asyncio.get_running_loop()
        t = self.target
        conn = Connection(loop, addr, self.read_timeout_s)
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await dial(t, addr, lambda: conn)
                hello = hello_commands(t)
                if hello:
                    for r in await conn.send(b"".join(hello), len(hello)):
                        if type(r) is ReplyError:
                            raise StoreUnavailable(f"redis {addr}: {r}")
        except (OSError, TimeoutError) as e:
            conn.abort(StoreUnavailable(f"redis {addr}: {e!r}"))
            raise StoreUnavailable(f"redis {addr}: cannot connect: {e!r}") from e
        except BaseException:
            conn.abort(StoreUnavailable(f"redis {addr}: connect abandoned"))
            raise
        return conn

    # cluster redirects -----------------------------------------------
    def _follow(self, err: ReplyError) -> Addr:
        """Where a MOVED or ASK reply points; after MOVED that node is where the commands go from now on."""
        parts = str(err).split(" ")
        host, _, port = parts[2].rpartition(":")
        to: Addr = (host or self.addr[0], int(port))
        self.redirects += 1
        if err.code == "MOVED" and to != self.addr:
            log.info("event=redis_slot_moved key=%s from=%s:%d to=%s:%d", self.slot_key, *self.addr, *to)
            old = self._conns.get(self.addr)
            self.addr = to
            if old is not None:
                old.retire = True
                if not old.owes:
                    old.close()
        return to

    async def _redirected(self, reply: ReplyError, packed: bytes) -> Any:
        moved, waited = 0, 0.0
        for _ in range(100):
            if type(reply) is not ReplyError:
                break
            code = reply.code
            if code == "MOVED" and moved < MAX_REDIRECTS:
                moved += 1
                reply = await (await self._connection_to(self._follow(reply))).send(packed)
            elif code == "ASK":
                # The slot is migrating and this command's keys already left: once, on the node named.
                _, reply = await (await self._connection_to(self._follow(reply))).send(pack("ASKING") + packed, 2)
            elif code == "TRYAGAIN" and (waited := await self._pause(waited)) >= 0:
                # A multi-key command while its slot migrates (some or all keys not where it ran;
                # a script's KEYS[1], the bare prefix, never exists): it did not run. Again shortly,
                # until the migration of the namespace's keys (milliseconds) is done and MOVED says where.
                reply = await (await self._connection_to(self.addr)).send(packed)
            else:
                break
        return reply

    async def _pause(self, waited: float) -> float:
        """Back off before trying a command the cluster did not run; -1 once ``migrate_wait_s`` is spent."""
        if waited >= self.migrate_wait_s:
            return -1.0
        delay = min(max(0.005, waited), 0.1)
        await asyncio.sleep(delay)
        return waited + delay
