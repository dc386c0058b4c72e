"""The Redis store (``redis://host:port/db``): many gateway instances, one Redis.

Same semantics as the memory store (``tests/test_store_contract.py`` holds both
to them). Every step that changes routing state is one Lua script in
``gateway/store/lua/`` (loaded once, EVALSHA, reloaded on NOSCRIPT), so the
decision, the state change, the log entries and their bus rings happen
together or not at all. Keys: ``gateway/store/keys.py``.

Around the scripts this module owns three background jobs, started in
``start`` and cancelled in ``close``:

- the bus reader: one pub/sub subscription to the namespace's channel (the
  doorbell; the log stays the truth). After it reconnects it emits
  ``RESYNC`` so peers re-read their logs for the rings they missed;
- the heartbeat: ``hb:<instance>`` with a TTL, refreshed every second;
- the reaper: an instance whose heartbeat expired has its agents treated as
  disconnected (offline + ``grace:<agent>`` timer) and its in-flight timers
  put back, by exactly one survivor.

Connection errors and timeouts become ``StoreUnavailable``; commands are never
retried by the client library (a retried append could be stored twice), the
pool reconnects on the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from redis import exceptions as rex
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.errors import NotAssigned, NotFound, StoreUnavailable
from gateway.model import AgentProfile, AgentState, AgentStatus, Conversation, ConvState, Entry, Priority
from gateway.store import lua
from gateway.store.base import (
    AppendResult,
    BusListener,
    CloseResult,
    Guard,
    Placement,
    Store,
    TransferResult,
)
from gateway.store.keys import Keys

log = logging.getLogger("gateway.store.redis")

RESYNC = "_resync"  # gateway.service.delivery.RESYNC (the store does not import the service layer)

# Error replies that mean "Redis cannot take writes now": nothing was stored.
_UNAVAILABLE_REPLIES = ("LOADING", "OOM", "MISCONF", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY")

_UPDATABLE = ("customer_name", "meta", "rating", "rating_comment", "priority", "skill")


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _placement(p: Sequence[Any]) -> Placement:
    return Placement(_str(p[0]), _str(p[1]), agent=_str(p[2]), position=int(p[3]), from_queue=bool(int(p[4])))


def _placements(ps: Sequence[Sequence[Any]] | None) -> list[Placement]:
    return [_placement(p) for p in ps or ()]


def _conversation(fields: Any) -> Conversation:
    if not isinstance(fields, dict):  # a flat HGETALL reply from a script
        fields = {_str(fields[i]): fields[i + 1] for i in range(0, len(fields), 2)}
    d = {_str(k): _str(v) for k, v in fields.items()}
    meta: Any = orjson.loads(d.get("meta") or "{}")
    return Conversation.from_dict({**d, "meta": meta})


def _num(v: float | int) -> str:
    return repr(v) if isinstance(v, float) else str(v)


class RedisStore(Store):
    def __init__(
        self,
        url: str,
        namespace: str = "default",
        *,
        instance: str = "",
        agent_grace_s: float = 60.0,
        heartbeat_s: float = 1.0,
        instance_ttl_s: float = 3.0,
        socket_timeout_s: float = 2.0,
        connect_timeout_s: float = 1.0,
        pool_timeout_s: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        self.namespace = namespace
        self.keys = Keys(namespace)
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.agent_grace_s = agent_grace_s
        self.heartbeat_s = heartbeat_s
        self.instance_ttl_s = instance_ttl_s
        self.url = url
        no_retry = Retry(NoBackoff(), 0)
        # Bounded: a burst of requests waits for a free connection (a busy
        # instance queues here, not in Redis) instead of opening hundreds.
        self._pool = BlockingConnectionPool.from_url(
            url, decode_responses=True, socket_timeout=socket_timeout_s, socket_connect_timeout=connect_timeout_s,
            retry=no_retry, max_connections=max_connections, timeout=pool_timeout_s,
        )
        self._r: Redis = Redis(connection_pool=self._pool)
        # The bus connection blocks on reads by design: no read timeout, a health check instead.
        self._bus_pool = ConnectionPool.from_url(
            url, socket_timeout=None, socket_connect_timeout=connect_timeout_s, retry=no_retry,
            health_check_interval=5,
        )
        self._bus: Redis = Redis(connection_pool=self._bus_pool)
        self._scripts = {name: lua.load(name) for name in lua.names()}
        self._listener: BusListener | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._subscribed = asyncio.Event()
        self._sessions: dict[str, tuple[str, AgentStatus]] = {}  # agents bound through this instance
        self._connected_since: float | None = None  # monotonic, for the reaper's warm-up
        self.script_reloads = 0
        self.bus_reconnects = 0

    def configure(self, *, agent_grace_s: float) -> None:
        self.agent_grace_s = agent_grace_s

    @contextlib.asynccontextmanager
    async def _io(self, what: str) -> AsyncIterator[None]:
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
            if str(e).split(" ", 1)[0] in _UNAVAILABLE_REPLIES:
                raise StoreUnavailable(f"redis {what}: {e}") from e
            raise
        if task is not None and task.cancelling() > cancels:
            raise asyncio.CancelledError(f"cancelled during redis {what}")

    # lifecycle -------------------------------------------------------
    async def start(self, listener: BusListener) -> None:
        self._listener = listener
        async with self._io("start"):
            async with self._r.pipeline(transaction=False) as pipe:
                for s in self._scripts.values():
                    pipe.script_load(s.source)
                await pipe.execute()
        await self._beat()
        self._tasks = [
            asyncio.create_task(self._bus_loop(), name=f"redis-bus-{self.instance}"),
            asyncio.create_task(self._liveness_loop(), name=f"redis-liveness-{self.instance}"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 5.0)

    async def close(self) -> None:
        # The loops also watch ``_closing``: a cancel that lands inside a Redis
        # call can come out as a timeout (StoreUnavailable), which they survive.
        self._closing = True
        pending = set(self._tasks)
        for _ in range(3):
            for t in pending:
                t.cancel()
            if not pending:
                break
            _, pending = await asyncio.wait(pending, timeout=2.0)
        if pending:
            log.warning("event=store_tasks_stuck instance=%s tasks=%d", self.instance, len(pending))
        self._tasks = []
        self._listener = None
        try:
            # Leave as a dead instance would, but now: whatever is still bound
            # here is handed over (grace), claimed timers go back.
            async with self._io("close"):
                await self._r.delete(self.keys.heartbeat(self.instance))
            await self._reap(self.instance)
        except StoreUnavailable as e:
            log.warning("event=store_close_unclean instance=%s error=%r", self.instance, e)
        await self._r.aclose()
        await self._bus.aclose()
        await self._pool.aclose()
        await self._bus_pool.aclose()

    async def ping(self) -> bool:
        # Through the bus pool: a burst that has every command connection busy
        # is not an outage, and must not turn /readyz red.
        try:
            return bool(await asyncio.wait_for(self._bus.ping(), 1.0))
        except (rex.RedisError, OSError, TimeoutError):
            return False

    async def shared_secret(self) -> bytes:
        async with self._io("secret"):
            await self._r.set(self.keys.secret, os.urandom(32).hex(), nx=True)
            value = await self._r.get(self.keys.secret)
        return bytes.fromhex(_str(value))

    # scripts ---------------------------------------------------------
    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """EVALSHA ``name``; on NOSCRIPT (Redis restarted or flushed) load it and run it again."""
        script = self._scripts[name]
        all_keys = [self.keys.prefix, *keys]
        async with self._io(name):
            try:
                return await self._r.evalsha(script.sha, len(all_keys), *all_keys, *args)
            except rex.NoScriptError:
                self.script_reloads += 1
                log.info("event=script_reload script=%s", name)
                await self._r.script_load(script.source)
                return await self._r.evalsha(script.sha, len(all_keys), *all_keys, *args)

    # bus -------------------------------------------------------------
    def _emit(self, topic: str, payload: dict[str, Any]) -> None:
        if self._listener is None:
            return
        try:
            self._listener(topic, payload)
        except Exception:
            log.exception("event=bus_listener_failed topic=%s", topic)

    async def _bus_loop(self) -> None:
        """Deliver the namespace's bus messages in order; after a reconnect, RESYNC."""
        delay, ever = 0.05, False
        while not self._closing:
            pubsub = self._bus.pubsub()
            try:
                await pubsub.subscribe(self.keys.bus)
                while not self._closing:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is None:
                        continue
                    if msg["type"] == "subscribe":
                        # Confirmed: from here on no ring is missed. Anything
                        # published while we were away is in the logs.
                        self._subscribed.set()
                        delay = 0.05
                        if ever:
                            self.bus_reconnects += 1
                            log.info("event=bus_resubscribed instance=%s", self.instance)
                            await self._until_serving()
                            self._emit(RESYNC, {})
                        ever = True
                    elif msg["type"] == "message":
                        try:
                            topic, payload = orjson.loads(msg["data"])
                        except (orjson.JSONDecodeError, ValueError, TypeError):
                            log.warning("event=bus_bad_message data=%r", msg["data"][:200])
                            continue
                        self._emit(topic, payload)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._subscribed.clear()
                log.warning("event=bus_disconnected instance=%s error=%r retry_in=%.2f", self.instance, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), 1.0)  # type: ignore[no-untyped-call]

    async def _until_serving(self, timeout: float = 10.0) -> None:
        """Wait until Redis serves reads (a restarted Redis may still be loading its AOF)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                async with self._io("ready"):
                    await self._r.exists(self.keys.instances)
                return
            except StoreUnavailable:
                await asyncio.sleep(0.1)

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        async with self._io("publish"):
            await self._r.publish(self.keys.bus, orjson.dumps([topic, payload]))

    # liveness --------------------------------------------------------
    async def _beat(self) -> None:
        k = self.keys
        ttl_ms = int(self.instance_ttl_s * 1000)
        fresh = await self._run("heartbeat", [k.heartbeat(self.instance), k.instances], [self.instance, ttl_ms])
        if self._connected_since is None:
            self._connected_since = time.monotonic()
        if int(fresh) and self._sessions:
            await self._rebind()

    async def _rebind(self) -> None:
        """A survivor reaped us while we could not reach Redis: bind our live sessions again."""
        log.warning("event=instance_was_reaped instance=%s sessions=%d", self.instance, len(self._sessions))
        for agent, (session, status) in list(self._sessions.items()):
            res = await self._run("agent_connected", [self.keys.agent(agent)],
                                  [agent, session, status.value, self.instance, "1"])
            if _str(res[0]) != "ok":
                self._sessions.pop(agent, None)  # it lives elsewhere now
        self._emit(RESYNC, {})  # agents re-check what they hold

    async def _liveness_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.heartbeat_s)
            if self._closing:
                return
            try:
                await self._beat()
                assert self._connected_since is not None
                # Only reap once we have been connected for a whole TTL: after a
                # Redis restart every heartbeat is gone, and the others need a
                # beat of their own before they look dead.
                if time.monotonic() - self._connected_since >= self.instance_ttl_s:
                    await self._reap_dead()
            except StoreUnavailable as e:
                self._connected_since = None
                log.warning("event=heartbeat_failed instance=%s error=%r", self.instance, e)
            except Exception:
                log.exception("event=liveness_failed instance=%s", self.instance)

    async def _reap_dead(self) -> None:
        k = self.keys
        async with self._io("instances"):
            members = sorted(_str(m) for m in await self._r.smembers(k.instances))
            others = [m for m in members if m != self.instance]
            if not others:
                return
            async with self._r.pipeline(transaction=False) as pipe:
                for m in others:
                    pipe.exists(k.heartbeat(m))
                alive = await pipe.execute()
        for inst, beating in zip(others, alive, strict=True):
            if not int(beating):
                await self._reap(inst)

    async def _reap(self, instance: str) -> list[str] | None:
        k = self.keys
        res = await self._run(
            "reap_instance",
            [k.heartbeat(instance), k.instances, k.instance_agents(instance), k.inflight(instance), k.timers],
            [instance, repr(time.time()), repr(self.agent_grace_s)],
        )
        if res is None:
            return None
        agents = [_str(a) for a in res]
        if instance != self.instance:
            log.warning("event=instance_reaped instance=%s by=%s agents=%s", instance, self.instance, ",".join(agents))
        return agents

    # conversations ---------------------------------------------------
    async def create_conversation(self, conv: Conversation) -> None:
        k = self.keys
        d = conv.to_dict()
        args: list[Any] = [conv.id]
        for key, value in d.items():
            if key == "meta":
                args += [key, orjson.dumps(value)]
            else:
                args += [key, _num(value) if isinstance(value, int | float) else str(value)]
        await self._run("create_conversation",
                        [k.conv(conv.id), k.log(conv.id), k.dedupe(conv.id), k.customer(conv.customer_id)], args)

    async def get_conversation(self, conversation: str) -> Conversation | None:
        async with self._io("get_conversation"):
            fields = await self._r.hgetall(self.keys.conv(conversation))
        return _conversation(fields) if fields else None

    async def update_conversation(self, conversation: str, fields: dict[str, Any]) -> None:
        args: list[Any] = []
        for key in _UPDATABLE:
            if key not in fields:
                continue
            v = fields[key]
            if key == "meta":
                args += [key, orjson.dumps(v)]
            elif key == "priority":
                args += [key, Priority(v).value]
            else:
                args += [key, _num(v) if isinstance(v, int | float) and not isinstance(v, bool) else str(v)]
        if not int(await self._run("update_conversation", [self.keys.conv(conversation)], args)):
            raise NotFound(f"no conversation {conversation}")

    async def customer_conversation(self, customer: str) -> str | None:
        async with self._io("customer_conversation"):
            v = await self._r.get(self.keys.customer(customer))
        return _str(v) if v is not None else None

    # log -------------------------------------------------------------
    async def append(
        self,
        conversation: str,
        entry: Entry,
        *,
        client_id: str | None = None,
        guard: Guard | None = None,
        timer: tuple[str, float] | None = None,
    ) -> AppendResult:
        k = self.keys
        body = orjson.dumps({key: v for key, v in entry.items() if key not in ("seq", "ts")})[:-1]
        g = guard or Guard()
        res = await self._run(
            "append",
            [k.conv(conversation), k.log(conversation), k.dedupe(conversation)],
            [conversation, body,
             "0" if client_id is None else "1", client_id or "",
             g.state.value if g.state is not None else "",
             "0" if g.agent is None else "1", g.agent or "",
             "1" if g.open else "0",
             timer[0] if timer else "", _num(timer[1]) if timer else "0"],
        )
        status = _str(res[0])
        if status == "ok":
            return AppendResult(orjson.loads(res[1]), state=ConvState(_str(res[2])))
        if status == "dup":
            return AppendResult(orjson.loads(res[1]), duplicate=True)
        if status == "refused":
            return AppendResult({}, refused=True)
        raise NotFound(f"no conversation {conversation}")

    async def read_log(self, conversation: str, after: int = 0) -> list[Entry]:
        async with self._io("read_log"):
            rows = await self._r.xrange(self.keys.log(conversation), min=f"0-{max(after, 0) + 1}", max="+")
        return [orjson.loads(fields["e"]) for _, fields in rows or ()]  # type: ignore[index]

    # agents ----------------------------------------------------------
    async def register_agent(self, profile: AgentProfile) -> None:
        k = self.keys
        ref = orjson.dumps({"id": profile.id, "name": profile.name})
        await self._run(
            "register_agent", [k.agent(profile.id), k.agents],
            [profile.id, profile.name, orjson.dumps(list(profile.skills)), str(profile.capacity), ref],
        )

    def _agent_state(self, agent: str, h: dict[Any, Any], held: list[Any]) -> AgentState:
        d = {_str(key): _str(v) for key, v in h.items()}
        return AgentState(
            agent, d.get("name", agent), tuple(orjson.loads(d.get("skills", "[]"))), int(d.get("capacity", "0")),
            AgentStatus(d.get("status", "offline")), [_str(c) for c in held], float(d.get("last_assigned", "0")),
        )

    async def get_agent(self, agent: str) -> AgentState | None:
        k = self.keys
        async with self._io("get_agent"):
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hgetall(k.agent(agent))
                pipe.lrange(k.held(agent), 0, -1)
                h, held = await pipe.execute()
        if not h:
            return None
        return self._agent_state(agent, h, held)

    async def list_agents(self) -> list[AgentState]:
        k = self.keys
        async with self._io("list_agents"):
            ids = sorted(_str(a) for a in await self._r.smembers(k.agents))
            if not ids:
                return []
            async with self._r.pipeline(transaction=True) as pipe:
                for a in ids:
                    pipe.hgetall(k.agent(a))
                    pipe.lrange(k.held(a), 0, -1)
                rows = await pipe.execute()
        return [self._agent_state(a, rows[2 * i], rows[2 * i + 1]) for i, a in enumerate(ids) if rows[2 * i]]

    async def agent_connected(
        self, agent: str, session: str, status: AgentStatus, instance: str
    ) -> tuple[str, list[Placement]]:
        res = await self._run("agent_connected", [self.keys.agent(agent)],
                              [agent, session, status.value, instance, "0"])
        if _str(res[0]) == "not_found":
            raise NotFound(f"unknown agent {agent}")
        if instance == self.instance:
            self._sessions[agent] = (session, status)
        return _str(res[1]), _placements(res[2])

    async def agent_disconnected(self, agent: str, session: str) -> bool:
        res = await self._run("agent_disconnected", [self.keys.agent(agent)], [agent, session])
        mine = self._sessions.get(agent)
        if mine is not None and mine[0] == session:
            del self._sessions[agent]
        return bool(int(res))

    async def set_agent_status(self, agent: str, session: str, status: AgentStatus) -> list[Placement]:
        res = await self._run("set_agent_status", [self.keys.agent(agent)], [agent, session, status.value])
        if _str(res[0]) == "not_found":
            raise NotFound(f"unknown agent {agent}")
        mine = self._sessions.get(agent)
        if mine is not None and mine[0] == session:
            self._sessions[agent] = (session, status)
        return _placements(res[1])

    async def requeue_agent(self, agent: str) -> list[Placement]:
        k = self.keys
        res = await self._run("requeue_agent", [k.agent(agent), k.held(agent)], [agent])
        if _str(res[0]) == "not_found":
            raise NotFound(f"unknown agent {agent}")
        return _placements(res[1])

    # routing ---------------------------------------------------------
    async def assign_or_enqueue(self, conversation: str, skill: str, priority: Priority) -> Placement | None:
        k = self.keys
        res = await self._run("assign_or_enqueue", [k.conv(conversation), k.tickets],
                              [conversation, skill, Priority(priority).value])
        status = _str(res[0])
        if status == "not_found":
            raise NotFound(f"no conversation {conversation}")
        if status == "none":
            return None
        return _placement(res[1])

    async def transfer(
        self, conversation: str, from_agent: str, *, skill: str = "", to_agent: str = ""
    ) -> TransferResult:
        res = await self._run("transfer", [self.keys.conv(conversation)], [conversation, from_agent, skill, to_agent])
        status = _str(res[0])
        if status == "not_assigned":
            raise NotAssigned(f"{from_agent} does not hold {conversation}")
        if status == "not_found":
            raise NotFound(_str(res[1]))
        return TransferResult(_placement(res[1]), tuple(_placements(res[2])))

    async def close_conversation(self, conversation: str, reason: str, *, by_agent: str = "") -> CloseResult:
        res = await self._run("close_conversation", [self.keys.conv(conversation)], [conversation, reason, by_agent])
        status = _str(res[0])
        if status == "not_found":
            raise NotFound(f"no conversation {conversation}")
        if status == "not_assigned":
            raise NotAssigned(f"{by_agent} does not hold {conversation}")
        if status == "unchanged":
            return CloseResult(False, _conversation(res[1]))
        return CloseResult(True, _conversation(res[4]), _str(res[1]), tuple(_placements(res[3])), _str(res[2]))

    async def queue(self, skill: str) -> list[str]:
        async with self._io("queue"):
            return [_str(c) for c in await self._r.zrange(self.keys.queue(skill), 0, -1)]

    async def queue_lengths(self) -> dict[str, int]:
        k = self.keys
        async with self._io("queue_lengths"):
            skills = sorted(_str(s) for s in await self._r.smembers(k.queues))
            if not skills:
                return {}
            async with self._r.pipeline(transaction=True) as pipe:
                for s in skills:
                    pipe.zcard(k.queue(s))
                counts = await pipe.execute()
        return {s: int(n) for s, n in zip(skills, counts, strict=True)}

    # timers ----------------------------------------------------------
    async def schedule(self, key: str, due: float) -> None:
        async with self._io("schedule"):
            await self._r.zadd(self.keys.timers, {key: due})

    async def cancel(self, key: str) -> None:
        async with self._io("cancel"):
            await self._r.zrem(self.keys.timers, key)

    async def claim_due(self, now: float, limit: int = 100) -> list[str]:
        k = self.keys
        res = await self._run("claim_due", [k.timers, k.inflight(self.instance)], [repr(now), str(limit)])
        return [_str(x) for x in res or ()]

    # claims and dead letters -----------------------------------------
    async def claim_once(self, key: str, ttl_s: float, value: str = "1") -> bool:
        async with self._io("claim_once"):
            return bool(await self._r.set(self.keys.claim(key), value, nx=True, px=max(1, round(ttl_s * 1000))))

    async def get_claim(self, key: str) -> str | None:
        async with self._io("get_claim"):
            v = await self._r.get(self.keys.claim(key))
        return _str(v) if v is not None else None

    async def release_claim(self, key: str) -> None:
        async with self._io("release_claim"):
            await self._r.delete(self.keys.claim(key))

    async def add_dead_letter(self, record: dict[str, Any], keep: int) -> None:
        k = self.keys.dead_letters
        async with self._io("add_dead_letter"):
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.lpush(k, orjson.dumps(record))
                pipe.ltrim(k, 0, max(keep, 0) - 1)
                await pipe.execute()

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        async with self._io("dead_letters"):
            rows = await self._r.lrange(self.keys.dead_letters, 0, limit - 1)
        return [orjson.loads(r) for r in rows]
