"""What only the Redis store has: key layout, scripts, the bus, liveness, outages.

The shared semantics are in test_store_contract.py; these run the store
in-process against a real redis-server (the session one, or a private one for
the outage tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import ResponseError

from gateway.errors import StoreUnavailable
from gateway.model import AgentProfile, AgentStatus, Conversation, Priority
from gateway.store import lua
from gateway.store.base import Store
from gateway.store.keys import Keys
from gateway.store.redis import RESYNC, RedisStore
from gateway.store.redis_client import Client
from gateway.store.redis_conn import Connection, pack, parse_url
from tests.conftest import RedisServer
from tests.test_store_contract import _apply, _Story

pytestmark = pytest.mark.redis

ONLINE = AgentStatus.ONLINE

Events = list[tuple[str, dict[str, Any]]]


def ns() -> str:
    return f"r{uuid.uuid4().hex[:12]}"


@contextlib.asynccontextmanager
async def opened(url: str, namespace: str, events: Events | None = None, **kw: Any) -> AsyncIterator[RedisStore]:
    s = RedisStore(url, namespace, **kw)
    await s.start(lambda t, p: events.append((t, p)) if events is not None else None)
    try:
        yield s
    finally:
        await s.close()


async def until(cond: Callable[[], Awaitable[bool]], timeout: float = 5.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel until done: on Python 3.11 a cancel can be swallowed inside a Redis call."""
    end = time.monotonic() + 5
    while not all(t.done() for t in tasks):
        assert time.monotonic() < end, "background task would not stop"
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks, timeout=0.2)


async def crash(s: RedisStore) -> None:
    """Stop an instance's background work as a kill -9 would (no goodbye to Redis)."""
    s._closing = True
    await stop_tasks(s._tasks)


async def setup_agent(s: Store, aid: str, instance: str, cap: int = 2) -> None:
    await s.register_agent(AgentProfile(aid, aid, ("presale",), cap))
    await s.agent_connected(aid, f"sess-{aid}", ONLINE, instance)


async def handoff(s: Store, cid: str) -> None:
    await s.create_conversation(Conversation(cid, f"u-{cid}", created_at=time.time()))
    await s.assign_or_enqueue(cid, "presale", Priority.NORMAL)


# ------------------------------------------------------------------ layout and scripts


async def test_every_key_shares_the_namespace_hash_tag(redis_server: RedisServer) -> None:
    namespace = ns()
    async with opened(redis_server.url, namespace, instance="i1") as s:
        story = _Story(7)
        for aid, skills in (("a1", ("presale", "aftersale")), ("a2", ("logistics",)), ("a3", ("presale",))):
            await s.register_agent(AgentProfile(aid, aid, skills, 2))
        for _ in range(120):
            await _apply(s, await story.next(s))
        await s.schedule("idle:c0", time.time() + 60)
        await s.claim_once("dedupe:x", 60)
        await s.add_dead_letter({"x": 1}, keep=5)
        await s.shared_secret()
        r = Redis.from_url(redis_server.url)
        try:
            found = [k.decode() async for k in r.scan_iter(match=f"*{namespace}*", count=1000)]
        finally:
            await r.aclose()
    prefix = Keys(namespace).prefix
    assert len(found) > 20
    assert all(k.startswith(prefix) for k in found), [k for k in found if not k.startswith(prefix)]
    assert {key_slot(k.encode()) for k in found} == {key_slot(prefix.encode())}
    assert {k[len(prefix):].split(":")[0] for k in found} <= {
        "secret", "conv", "log", "dedupe", "cust", "agents", "agent", "held", "free", "queue", "queues",
        "tickets", "stamp", "timers", "inflight", "instances", "hb", "inst_agents", "claim", "dead",
        "outbox", "outbox_retry", "outbox_tries"}


def test_namespace_must_keep_its_hash_tag() -> None:
    from gateway.errors import ConfigError

    for bad in ("", "a{b", "a}b", "a b"):
        with pytest.raises(ConfigError):
            Keys(bad)
    assert Keys("shop-1").prefix == "gw:{shop-1}:"


def test_each_lua_script_names_its_keys_args_and_returns() -> None:
    names = lua.names()
    assert {"append", "assign_or_enqueue", "close_conversation", "transfer", "requeue_agent", "agent_connected",
            "agent_disconnected", "set_agent_status", "claim_due", "reap_instance"} <= set(names)
    for name in names:
        text = (lua.HERE / f"{name}.lua").read_text(encoding="utf-8")
        lines = text.splitlines()
        header = "\n".join(lines[: next(i for i, line in enumerate(lines) if not line.startswith("--"))])
        assert header.startswith(f"-- {name}: "), name
        for word in ("KEYS[1]", "ARGV[", "Returns"):
            assert word in header, (name, word)
        script = lua.load(name)
        assert "@include" not in script.source.replace("-- (included", "")
        assert len(script.sha) == 40


async def test_scripts_reload_after_noscript(redis_server: RedisServer) -> None:
    async with opened(redis_server.url, ns()) as s:
        await s.create_conversation(Conversation("c1", "u1"))
        r = Redis.from_url(redis_server.url)
        try:
            await r.script_flush()
        finally:
            await r.aclose()
        before = s.script_reloads
        res = await s.append("c1", {"type": "message", "from": "customer", "text": "hi"}, client_id="m1")
        assert res.entry["seq"] == 1 and s.script_reloads == before + 1
        assert (await s.append("c1", {"type": "message", "text": "again"}, client_id="m1")).duplicate


# ------------------------------------------------------------------ bus


async def test_bus_rings_every_instance_in_order(redis_server: RedisServer) -> None:
    namespace = ns()
    seen_b: Events = []
    async with opened(redis_server.url, namespace) as a, opened(redis_server.url, namespace, seen_b):
        await a.create_conversation(Conversation("c1", "u1"))
        await asyncio.gather(*[a.append("c1", {"type": "message", "from": "customer", "text": str(i)})
                               for i in range(50)])
        await a.publish("a:x", {"type": "typing"})

        async def all_in() -> bool:
            return any(t == "a:x" for t, _ in seen_b)

        await until(all_in, what="bus messages on the other instance")
        seqs = [p["seq"] for t, p in seen_b if t == "c:c1"]
        assert seqs == list(range(1, 51))


# ------------------------------------------------------------------ auto-pipelining


def conn_of(s: RedisStore) -> Connection:
    c = s._runner.client.connection
    assert c is not None
    return c


async def test_one_tick_of_commands_is_one_write_and_each_gets_its_own_reply(redis_server: RedisServer) -> None:
    async with opened(redis_server.url, ns()) as s:
        for i in range(50):
            await s.create_conversation(Conversation(f"c{i}", f"u{i}"))
        c = conn_of(s)
        writes, sent = c.writes, c.sent
        # 50 sessions at once: an append (script), a read (plain command) and a pointer lookup each
        results = await asyncio.gather(
            *[s.append(f"c{i}", {"type": "message", "from": "customer", "text": f"t{i}"}) for i in range(50)],
            *[s.get_conversation(f"c{i}") for i in range(50)],
            *[s.customer_conversation(f"u{i}") for i in range(50)],
        )
        assert c.writes - writes == 1 and c.sent - sent == 150
        assert [r.entry["text"] for r in results[:50]] == [f"t{i}" for i in range(50)]  # type: ignore[union-attr]
        assert [r.id for r in results[50:100]] == [f"c{i}" for i in range(50)]  # type: ignore[union-attr]
        assert results[100:] == [f"c{i}" for i in range(50)]


async def test_an_error_reply_fails_only_its_own_command(redis_server: RedisServer) -> None:
    async with opened(redis_server.url, ns()) as s:
        await s.claim_once("k", 60, value="not a number")
        key = s.keys.claim("k")
        res = await asyncio.gather(s._call("SET", key + "2", "1"), s._call("INCR", key), s._call("GET", key),
                                   return_exceptions=True)
        assert res[0] == "OK" and res[2] == "not a number"
        assert isinstance(res[1], ResponseError) and "not an integer" in str(res[1])
        # an error inside a batch (MULTI/EXEC) is that command's own too
        out = await s._call_many([("INCR", key + "2"), ("GET", key)], transaction=True)
        assert out == [2, "not a number"]


async def test_noscript_in_the_middle_of_a_batch_reloads_and_reruns_just_those(redis_server: RedisServer) -> None:
    async with opened(redis_server.url, ns()) as s:
        for i in range(20):
            await s.create_conversation(Conversation(f"c{i}", f"u{i}"))
        r = Redis.from_url(redis_server.url)
        try:
            await r.script_flush()
        finally:
            await r.aclose()
        res = await asyncio.gather(*[s.append(f"c{i}", {"type": "message", "text": "x"}, client_id="m")
                                     for i in range(20)], *[s.queue("presale") for _ in range(5)])
        assert [r.entry["seq"] for r in res[:20]] == [1] * 20  # type: ignore[union-attr]  # each stored once
        assert s.script_reloads >= 1


async def test_a_call_cancelled_before_the_flush_is_never_sent(redis_server: RedisServer) -> None:
    async with opened(redis_server.url, ns()) as s:
        key = s.keys.claim("n")
        await s._call("SET", key, "0")
        t = asyncio.create_task(s._call("INCR", key))
        await asyncio.sleep(0)  # it ran up to its future; the flush is still to come
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert await s._call("GET", key) == "0"
        # cancelled after it went out: it ran, its reply is dropped, the next caller gets its own reply
        t = asyncio.create_task(s._call("INCR", key))
        for _ in range(3):
            await asyncio.sleep(0)
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await t
        assert await s._call("INCR", key) == 2
        assert await s._call("GET", key) == "2"


async def _slow_resp_server(delay: float, replies: int) -> tuple[asyncio.Server, int]:
    """A fake Redis: takes ``replies`` PINGs, then answers ``+OK`` once every ``delay`` seconds, then goes silent."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            got = b""
            while got.count(b"PING") < replies:
                got += await reader.read(4096)
            for _ in range(replies):
                await asyncio.sleep(delay)
                writer.write(b"+OK\r\n")
                await writer.drain()
            await asyncio.sleep(5)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_slow_is_not_dead_but_silence_is_a_timeout() -> None:
    # replies trickle in every 0.3 s for 1.8 s, read timeout 0.5 s: none times out
    server, port = await _slow_resp_server(0.3, 6)
    client = Client(parse_url(f"redis://127.0.0.1:{port}/0"), slot_key="", read_timeout_s=0.5)
    try:
        t0 = time.monotonic()
        assert await asyncio.gather(*[client.execute(pack("PING")) for _ in range(6)]) == ["OK"] * 6
        assert time.monotonic() - t0 > 1.5
        # then it goes silent: the next command times out, after ~the read timeout
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable, match="timeout"):
            await client.execute(pack("PING"))
        assert 0.4 < time.monotonic() - t0 < 1.5
    finally:
        await client.aclose()
        server.close()


SPIN_100MS = ("local s = redis.call('TIME') while true do local n = redis.call('TIME') "
              "if (n[1] - s[1]) * 1000000 + (n[2] - s[2]) > 100000 then return 1 end end")


async def _stalled(url: str) -> list[Any]:
    """Commands go out; while Redis works on them, another socket's callback blocks the loop past the
    read timeout, and their replies wait in the socket."""
    import socket as socket_mod

    loop = asyncio.get_running_loop()

    class Stall(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            time.sleep(0.5)

    client = Client(parse_url(url), slot_key="", read_timeout_s=0.3)
    rsock, wsock = socket_mod.socketpair()
    transport, _ = await loop.create_connection(Stall, sock=rsock)
    try:
        await client.execute(pack("PING"))
        conn = client.connection
        assert conn is not None
        out = []
        for _ in range(2):
            futs = [conn.send(pack("EVAL", SPIN_100MS, 0)), conn.send(pack("PING"))]
            await asyncio.sleep(0.01)  # on the wire; Redis is busy for 100 ms
            wsock.send(b"x")  # the stall, in an I/O callback; the replies arrive meanwhile
            out.append(await asyncio.gather(*futs))
        return out
    finally:
        transport.close()
        wsock.close()
        await client.aclose()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_a_stalled_event_loop_is_not_mistaken_for_a_dead_redis(redis_server: RedisServer, loop: str) -> None:
    # uvloop runs due timers before it polls for I/O: the watchdog takes a second look before it gives up
    import uvloop

    run = uvloop.run if loop == "uvloop" else asyncio.run
    assert await asyncio.to_thread(run, _stalled(redis_server.url)) == [[1, "PONG"]] * 2


async def test_commands_in_flight_when_redis_dies_fail_fast(redis_factory: Callable[..., RedisServer]) -> None:
    srv = redis_factory()
    async with opened(srv.url, ns(), socket_timeout_s=5.0) as s:
        await s.create_conversation(Conversation("c1", "u1"))
        assert srv.proc is not None
        os.kill(srv.proc.pid, signal.SIGSTOP)
        conn = s._runner.client.connection
        assert conn is not None
        sent = conn.sent
        calls = [asyncio.create_task(s.read_log("c1")) for _ in range(10)]

        async def on_the_wire() -> bool:
            return conn.sent >= sent + 10

        await until(on_the_wire, 5, "the 10 calls written to the socket")  # in flight, not merely queued
        t0 = time.monotonic()
        srv.proc.kill()
        await asyncio.to_thread(srv.proc.wait, 5)
        res = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, StoreUnavailable) for r in res), res
        assert time.monotonic() - t0 < 1.0  # the connection's end, not the 5 s timeout
        srv.start()
        await s.create_conversation(Conversation("c2", "u2"))  # the next call connects again


def test_store_urls_parse() -> None:
    t = parse_url("redis://u:p%40ss@10.0.0.1:6380/3")
    assert (t.nodes, t.db, t.username, t.password, t.cluster, t.tls) == ((("10.0.0.1", 6380),), 3, "u", "p@ss",
                                                                        False, False)
    assert parse_url("rediss://h/0?ssl_cert_reqs=none").tls_verify is False
    assert parse_url("unix:///run/redis.sock?db=2").path == "/run/redis.sock"
    c = parse_url("redis+cluster://:pw@n1:7000,n2:7001,[::1]:7002")
    assert c.cluster and c.password == "pw" and c.nodes == (("n1", 7000), ("n2", 7001), ("::1", 7002))
    assert parse_url("rediss+cluster://n1").tls


# ------------------------------------------------------------------ outages


async def test_outage_unavailable_fast_then_reconnects_and_resyncs(redis_factory: Callable[..., RedisServer]) -> None:
    srv = redis_factory(appendonly=True)
    events: Events = []
    async with opened(srv.url, ns(), events) as s:
        await s.create_conversation(Conversation("c1", "u1"))
        acked = await s.append("c1", {"type": "message", "text": "before"}, client_id="m1")
        assert srv.proc is not None
        srv.proc.kill()  # SIGKILL: appendfsync always kept what was acked
        await asyncio.to_thread(srv.proc.wait, 5)
        t0 = time.monotonic()
        assert await s.ping() is False
        with pytest.raises(StoreUnavailable):
            await s.append("c1", {"type": "message", "text": "during"}, client_id="m2")
        with pytest.raises(StoreUnavailable):
            await s.read_log("c1")
        with pytest.raises(StoreUnavailable):
            await s.claim_due(time.time())
        assert time.monotonic() - t0 < 2.0
        srv.start()

        async def ready() -> bool:
            return await s.ping()

        await until(ready, 10, "ping after restart")
        res = await s.append("c1", {"type": "message", "text": "during"}, client_id="m2")
        assert res.entry["seq"] == 2 and not res.duplicate
        again = await s.append("c1", {"type": "message", "text": "before"}, client_id="m1")
        assert again.duplicate and again.entry == acked.entry  # dedupe survived the restart

        async def resynced() -> bool:
            return any(t == RESYNC for t, _ in events)

        await until(resynced, 10, "RESYNC after the bus reconnected")
        n = len(events)
        await s.append("c1", {"type": "message", "text": "after"})

        async def rung() -> bool:
            return any(t == "c:c1" and p.get("seq") == 3 for t, p in events[n:])

        await until(rung, 5, "ring after the reconnect")


async def test_ping_answers_fast_when_redis_hangs(redis_factory: Callable[..., RedisServer]) -> None:
    srv = redis_factory()
    async with opened(srv.url, ns()) as s:
        assert srv.proc is not None
        await s.create_conversation(Conversation("c1", "u1"))
        os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            assert await s.ping() is False
            assert time.monotonic() - t0 < 1.6
            with pytest.raises(StoreUnavailable):
                await s.append("c1", {"type": "message", "text": "x"})
            assert time.monotonic() - t0 < 4.5  # socket timeouts, not a hang
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)

        async def ready() -> bool:
            return await s.ping()

        await until(ready, 10, "ping after SIGCONT")


async def test_a_silent_bus_is_pinged_then_made_again(redis_factory: Callable[..., RedisServer]) -> None:
    srv = redis_factory()
    events: Events = []
    s = RedisStore(srv.url, ns(), instance="A")
    s._bus.health_s = 0.2
    await s.start(lambda t, p: events.append((t, p)))
    try:
        await s.create_conversation(Conversation("c1", "u1"))
        assert srv.proc is not None
        os.kill(srv.proc.pid, signal.SIGSTOP)  # the subscription's socket stays open, and says nothing

        async def dropped() -> bool:
            return not s._bus.subscribed.is_set()

        await until(dropped, 5, "the silent subscription dropped (pinged, no answer)")
        os.kill(srv.proc.pid, signal.SIGCONT)

        async def resynced() -> bool:
            return any(t == RESYNC for t, _ in events)

        await until(resynced, 5, "RESYNC after the silent bus was made again")
        assert s.bus_reconnects >= 1
        n = len(events)
        await s.append("c1", {"type": "message", "text": "after"})

        async def rung() -> bool:
            return any(t == "c:c1" and p.get("text") == "after" for t, p in events[n:])

        await until(rung, 5, "ring on the new subscription")
    finally:
        await s.close()


# ------------------------------------------------------------------ liveness


FAST = {"heartbeat_s": 0.1, "instance_ttl_s": 0.5, "agent_grace_s": 0.3}


async def test_dead_instance_agents_get_grace_and_its_claimed_timers_come_back(redis_server: RedisServer) -> None:
    namespace = ns()
    keys = Keys(namespace)
    async with opened(redis_server.url, namespace, instance="A", **FAST) as a:
        await setup_agent(a, "ka", "A")
        await setup_agent(a, "kb", "A")
        await handoff(a, "c1")  # -> ka
        now = time.time()
        await a.schedule("sla:c1", now - 1)
        assert await a.claim_due(now) == ["sla:c1"]  # A has it in hand when it dies
        await a.schedule("idle:c1", now + 30)  # a timer A set: it lives in Redis
        await crash(a)
        # kb reconnected to another instance before anyone noticed: not A's any more
        async with opened(redis_server.url, namespace, instance="B", **FAST) as b:
            await b.agent_connected("kb", "sess-kb2", ONLINE, "B")

            async def reaped() -> bool:
                ka = await b.get_agent("ka")
                return ka is not None and ka.status is AgentStatus.OFFLINE

            t0 = time.monotonic()
            await until(reaped, 5, "A's agent marked offline")
            assert time.monotonic() - t0 < 2.5
            r = Redis.from_url(redis_server.url, decode_responses=True)
            try:
                assert "A" not in await r.smembers(keys.instances)
                assert not await r.exists(keys.inflight("A"), keys.instance_agents("A"))
            finally:
                await r.aclose()
            assert (await b.get_agent("ka")).held == ["c1"]  # type: ignore[union-attr]  # kept during grace
            assert (await b.get_agent("kb")).status is ONLINE  # type: ignore[union-attr]
            due = await b.claim_due(time.time() + 1)
            assert sorted(due) == ["grace:ka", "sla:c1"]  # the grace timer, and A's unfinished claim
            assert await b.claim_due(time.time() + 60) == ["idle:c1"]
            placed = await b.requeue_agent("ka")  # what the grace timer does
            assert [(p.conversation, p.agent) for p in placed] == [("c1", "kb")]
    await a.close()


async def test_an_instance_reaped_while_alive_binds_its_sessions_again(redis_server: RedisServer) -> None:
    namespace = ns()
    events: Events = []
    async with opened(redis_server.url, namespace, events, instance="A", **FAST) as a, \
            opened(redis_server.url, namespace, instance="B", **FAST) as b:
        await setup_agent(a, "ka", "A")
        await setup_agent(a, "kb", "A")
        await a.agent_connected("kb", "sess-elsewhere", ONLINE, "B")  # kb moved to B meanwhile
        # A stalls past its TTL (say a long GC pause or a partition): B reaps it
        await stop_tasks([t for t in a._tasks if "liveness" in t.get_name()])

        async def reaped() -> bool:
            ka = await b.get_agent("ka")
            return ka is not None and ka.status is AgentStatus.OFFLINE

        await until(reaped, 5, "A reaped")
        await a._beat()  # A comes back: it sees it was reaped and binds its live sessions again
        ka = await b.get_agent("ka")
        assert ka is not None and ka.status is ONLINE
        assert any(t == RESYNC for t, _ in events)
        kb = await b.get_agent("kb")
        assert kb is not None and kb.status is ONLINE
        # the newer session on B is untouched (A only rebinds agents nobody else holds)
        assert await b.agent_disconnected("kb", "sess-elsewhere") is True


async def test_graceful_close_hands_over_what_is_still_bound(redis_server: RedisServer) -> None:
    namespace = ns()
    async with opened(redis_server.url, namespace, instance="B", **FAST) as b:
        a = RedisStore(redis_server.url, namespace, instance="A", **FAST)
        await a.start(lambda t, p: None)
        await setup_agent(a, "ka", "A")
        await a.close()
        ka = await b.get_agent("ka")
        assert ka is not None and ka.status is AgentStatus.OFFLINE
        assert await b.claim_due(time.time() + 1) == ["grace:ka"]


async def test_free_sets_mirror_agent_state(redis_server: RedisServer) -> None:
    """free:<skill> holds exactly the online agents with room, scored held/capacity."""
    namespace = ns()
    keys = Keys(namespace)
    async with opened(redis_server.url, namespace, instance="i1") as s:
        for aid, skills, cap in (("a1", ("presale", "aftersale"), 2), ("a2", ("aftersale",), 1),
                                 ("a3", ("logistics", "presale"), 3), ("a4", ("logistics",), 1)):
            await s.register_agent(AgentProfile(aid, aid, skills, cap))
        story = _Story(11)
        r = Redis.from_url(redis_server.url, decode_responses=True)
        try:
            for step in range(200):
                await _apply(s, await story.next(s))
                if step % 10:
                    continue
                agents = await s.list_agents()
                for skill in ("presale", "aftersale", "logistics"):
                    members = await r.zrange(keys.free(skill), 0, -1, withscores=True)
                    want = {a.id: len(a.held) / a.capacity for a in agents
                            if skill in a.skills and a.status is ONLINE and len(a.held) < a.capacity}
                    assert {m.split(":", 1)[1]: score for m, score in members} == want, (step, skill)
                    # the zset's order is the policy's order: load, then longest idle, then id
                    by_policy = sorted((a for a in agents if a.id in want),
                                       key=lambda a: (len(a.held) / a.capacity, a.last_assigned, a.id))
                    assert [m.split(":", 1)[1] for m, _ in members] == [a.id for a in by_policy], (step, skill)
        finally:
            await r.aclose()


def test_lua_sources_exist_as_package_files() -> None:
    assert (Path(lua.__file__).parent / "includes" / "routing.lua").is_file()


def test_open_store_and_resync_topic_match_the_service() -> None:
    from gateway.service.delivery import RESYNC as SERVICE_RESYNC
    from gateway.store import open_store

    assert RESYNC == SERVICE_RESYNC  # the store cannot import the service layer; keep them equal
    s = open_store("redis://127.0.0.1:1/0", "ns", instance="i-1")
    assert isinstance(s, RedisStore) and s.instance == "i-1" and s.keys.prefix == "gw:{ns}:"
    s.configure(agent_grace_s=7.5)
    assert s.agent_grace_s == 7.5
