"""The Redis store (``redis://host:port/db``): many gateway instances, one Redis.

Or one Redis Cluster (``redis+cluster://host:port[,host:port…]``): a namespace
is one hash slot, so each store talks to one node, the slot's primary.

Same semantics as the memory store (``tests/test_store_contract.py`` holds both
to them). Every step that changes routing state is one Lua script in
``gateway/store/lua/`` (loaded once, EVALSHA, reloaded on NOSCRIPT), so the
decision, the state change, the log entries and their bus rings happen
together or not at all. Keys: ``gateway/store/keys.py``.

This module is the Store methods; the jobs around them live next to it:

- ``redis_runner``: the script runner (EVALSHA, NOSCRIPT reload) and the
  mapping of error replies and connection trouble to the store's errors;
- ``redis_client`` and ``redis_conn``: the RESP client under it: one
  connection, auto-pipelined (one write per event-loop tick); cluster redirects;
- ``redis_bus``: the pub/sub reader (RESYNC after a reconnect) and publish;
- ``redis_liveness``: heartbeat, reaping dead instances, rebinding sessions.

``start`` starts the bus reader and the liveness loop; ``close`` cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from gateway.errors import NotAssigned, NotFound, StoreUnavailable
from gateway.model import AgentProfile, AgentState, AgentStatus, Conversation, Entry, Priority
from gateway.store import redis_codec as codec
from gateway.store.base import (
    BusListener,
    Placement,
    Store,
    TransferResult,
)
from gateway.store.keys import Keys
from gateway.store.redis_bus import RESYNC, RedisBus
from gateway.store.redis_followups import FollowUpSteps
from gateway.store.redis_liveness import Liveness
from gateway.store.redis_outbox import OutboxSteps
from gateway.store.redis_runner import Arg, ScriptRunner
from gateway.store.redis_steps import ConversationSteps

__all__ = ["RESYNC", "RedisStore"]

log = logging.getLogger("gateway.store.redis")

_UPDATABLE = ("customer_name", "meta", "rating", "rating_comment", "priority", "skill")


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _placement(p: Sequence[Any]) -> Placement:
    return Placement(_str(p[0]), _str(p[1]), agent=_str(p[2]), position=int(p[3]), from_queue=bool(int(p[4])))


def _placements(ps: Sequence[Sequence[Any]] | None) -> list[Placement]:
    return [_placement(p) for p in ps or ()]


_conversation = codec.conversation


def _field(flat: Sequence[Any], name: str) -> Any:
    """``name``'s value in a flat [field, value, ...] reply."""
    for i in range(0, len(flat) - 1, 2):
        if flat[i] == name:
            return flat[i + 1]
    raise KeyError(name)


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis glob (MATCH)."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _num(v: float | int) -> str:
    return repr(v) if isinstance(v, float) else str(v)


class RedisStore(ConversationSteps, OutboxSteps, FollowUpSteps, Store):
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
    ) -> None:
        self.namespace = namespace
        self.keys = Keys(namespace)
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.url = url
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._runner = ScriptRunner(url, self.keys.prefix, socket_timeout_s=socket_timeout_s,
                                    connect_timeout_s=connect_timeout_s)
        self._bus = RedisBus(self.keys.bus, self._runner, instance=self.instance, ready_key=self.keys.instances,
                             connect_timeout_s=connect_timeout_s, closing=lambda: self._closing)
        self._liveness = Liveness(self._runner, self._bus, self.keys, instance=self.instance,
                                  agent_grace_s=agent_grace_s, heartbeat_s=heartbeat_s,
                                  instance_ttl_s=instance_ttl_s, closing=lambda: self._closing)
        self._sessions = self._liveness.sessions  # agents bound through this instance

    @property
    def agent_grace_s(self) -> float:
        return self._liveness.agent_grace_s

    def configure(self, *, agent_grace_s: float) -> None:
        self._liveness.agent_grace_s = agent_grace_s

    @property
    def script_reloads(self) -> int:
        return self._runner.script_reloads

    @property
    def bus_reconnects(self) -> int:
        return self._bus.reconnects

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """EVALSHA ``gateway/store/lua/<name>.lua`` with ``KEYS = [prefix, *keys]``, ``ARGV = args``."""
        return await self._runner.run(name, keys, args)

    async def _call(self, *args: Arg) -> Any:
        """One plain command (``await self._call("HGETALL", key)``): its RESP2 reply, strings decoded."""
        return await self._runner.call(*args)

    async def _call_many(self, commands: Sequence[Sequence[Arg]], *, transaction: bool = False) -> list[Any]:
        """Several commands in one go; ``transaction``: MULTI/EXEC (one slot, so fine in a cluster too)."""
        return await self._runner.call_many(commands, transaction=transaction)

    async def _beat(self) -> None:
        await self._liveness.beat()

    # lifecycle -------------------------------------------------------
    async def start(self, listener: BusListener) -> None:
        self._bus.listener = listener
        await self._runner.load_all()
        await self._liveness.beat()
        self._tasks = [
            asyncio.create_task(self._bus.loop(), name=f"redis-bus-{self.instance}"),
            asyncio.create_task(self._liveness.loop(), name=f"redis-liveness-{self.instance}"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._bus.subscribed.wait(), 5.0)

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
        self._bus.listener = None
        try:
            await self._liveness.leave()
        except StoreUnavailable as e:
            log.warning("event=store_close_unclean instance=%s error=%r", self.instance, e)
        await self._runner.aclose()
        await self._bus.aclose()

    async def ping(self) -> bool:
        return await self._bus.ping()

    async def shared_secret(self) -> bytes:
        k = self.keys.secret
        _, value = await self._call_many([("SET", k, os.urandom(32).hex(), "NX"), ("GET", k)])
        return bytes.fromhex(_str(value))

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        await self._bus.publish(topic, payload)

    # conversations ---------------------------------------------------
    async def get_conversation(self, conversation: str) -> Conversation | None:
        fields = await self._call("HGETALL", self.keys.conv(conversation))
        return _conversation(fields) if fields else None

    async def customer_conversation(self, customer: str) -> str | None:
        v = await self._call("GET", self.keys.customer(customer))
        return _str(v) if v is not None else None

    async def scan_conversations(
        self, cursor: str = "", count: int = 200, *, since: float = 0.0
    ) -> tuple[list[Conversation], str]:
        # SCAN inside one read-only script: about ``count`` keys of the database examined per call,
        # only the conversations in the window sent back. On a cluster this is the namespace's
        # node, which holds the whole namespace.
        pattern = _glob_escape(self.keys.conv("")) + "*"
        nxt, rows = await self._run("scan_conversations", [],
                                    [cursor or "0", str(max(count, 1)), repr(float(since)), pattern])
        nxt = _str(nxt)
        return [_conversation(fields) for fields in rows or ()], "" if nxt == "0" else nxt

    # log -------------------------------------------------------------
    async def read_log(self, conversation: str, after: int = 0) -> list[Entry]:
        rows = await self._call("XRANGE", self.keys.log(conversation), f"0-{max(after, 0) + 1}", "+")
        return [orjson.loads(_field(fields, "e")) for _, fields in rows or ()]

    # agents ----------------------------------------------------------
    async def register_agent(self, profile: AgentProfile) -> None:
        k = self.keys
        ref = orjson.dumps({"id": profile.id, "name": profile.name})
        await self._run(
            "register_agent", [k.agent(profile.id), k.agents],
            [profile.id, profile.name, orjson.dumps(list(profile.skills)), str(profile.capacity), ref],
        )

    def _agent_state(self, agent: str, h: list[Any], held: list[Any]) -> AgentState:
        d = {_str(h[i]): _str(h[i + 1]) for i in range(0, len(h), 2)}
        return AgentState(
            agent, d.get("name", agent), tuple(orjson.loads(d.get("skills", "[]"))), int(d.get("capacity", "0")),
            AgentStatus(d.get("status", "offline")), [_str(c) for c in held], float(d.get("last_assigned", "0")),
        )

    async def get_agent(self, agent: str) -> AgentState | None:
        k = self.keys
        h, held = await self._call_many([("HGETALL", k.agent(agent)), ("LRANGE", k.held(agent), 0, -1)],
                                        transaction=True)
        if not h:
            return None
        return self._agent_state(agent, h, held)

    async def list_agents(self) -> list[AgentState]:
        k = self.keys
        ids = sorted(_str(a) for a in await self._call("SMEMBERS", k.agents))
        if not ids:
            return []
        rows = await self._call_many([c for a in ids for c in (("HGETALL", k.agent(a)), ("LRANGE", k.held(a), 0, -1))],
                                     transaction=True)
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

    def _forget_session(self, agent: str, session: str) -> None:
        mine = self._sessions.get(agent)
        if mine is not None and mine[0] == session:
            del self._sessions[agent]

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

    async def queue(self, skill: str) -> list[str]:
        return [_str(c) for c in await self._call("ZRANGE", self.keys.queue(skill), 0, -1)]

    async def queue_lengths(self) -> dict[str, int]:
        k = self.keys
        skills = sorted(_str(s) for s in await self._call("SMEMBERS", k.queues))
        if not skills:
            return {}
        counts = await self._call_many([("ZCARD", k.queue(s)) for s in skills], transaction=True)
        return {s: int(n) for s, n in zip(skills, counts, strict=True)}

    # timers ----------------------------------------------------------
    async def schedule(self, key: str, due: float) -> None:
        await self._call("ZADD", self.keys.timers, _num(due), key)

    async def cancel(self, key: str) -> None:
        await self._call("ZREM", self.keys.timers, key)

    async def claim_due(
        self, now: float, limit: int = 100, *, done: tuple[str, ...] = (), retry_after: float | None = None
    ) -> list[str]:
        k = self.keys
        retry = "" if retry_after is None else repr(now - retry_after)
        res = await self._run("claim_due", [k.timers, k.inflight(self.instance)],
                              [repr(now), str(limit), retry, *done])
        return [_str(x) for x in res or ()]

    # claims and dead letters -----------------------------------------
    async def claim_once(self, key: str, ttl_s: float, value: str = "1") -> bool:
        reply = await self._call("SET", self.keys.claim(key), value, "NX", "PX", max(1, round(ttl_s * 1000)))
        return bool(reply == "OK")

    async def set_claim(self, key: str, ttl_s: float, value: str = "1") -> None:
        await self._call("SET", self.keys.claim(key), value, "PX", max(1, round(ttl_s * 1000)))

    async def get_claim(self, key: str) -> str | None:
        v = await self._call("GET", self.keys.claim(key))
        return _str(v) if v is not None else None

    async def release_claim(self, key: str) -> None:
        await self._call("DEL", self.keys.claim(key))

    async def add_dead_letter(self, record: dict[str, Any], keep: int) -> None:
        k = self.keys.dead_letters
        await self._call_many([("LPUSH", k, orjson.dumps(record)), ("LTRIM", k, 0, max(keep, 0) - 1)],
                              transaction=True)

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        rows = await self._call("LRANGE", self.keys.dead_letters, 0, limit - 1)
        return [orjson.loads(r) for r in rows]
