"""Routing through Redis: assignments per second, pulls per second, acked appends per second.

    .venv/bin/python bench/bench_redis_routing.py [--url redis://127.0.0.1:6379/0] [--quick]
    .venv/bin/python bench/bench_redis_routing.py --micro [--url …]

``--micro``: N concurrent coroutines each running EVALSHA of a small script in a
loop, through three clients: redis-py one command per round trip (the store's
client before auto-pipelining), redis-py with the commands of one loop tick sent
as one ``pipeline(transaction=False)``, and the store's own client
(``gateway/store/redis_conn.py``: one connection, one write per tick, hiredis
parsing). Reports client CPU µs per command (this process), redis-server CPU µs
per command (``INFO cpu``) and EVALSHA ``usec_per_call`` (``INFO commandstats``).
Then the bus: another process publishes at 500 and 2,000 messages/s, and the
subscriber's CPU per message is measured for redis-py's ``PubSub`` and for the
store's subscription (``gateway/store/redis_bus.py``).

Without ``--url`` it starts its own redis-server on a free port (twice: AOF off,
then ``appendonly yes`` + ``appendfsync always``). Several RedisStore objects in
one process stand in for gateway instances (each has its own connection pool);
the memory store runs the same steps for reference. Prints a table and writes
bench/results/redis_routing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from gateway.model import AgentProfile, AgentStatus, Conversation, Priority  # noqa: E402
from gateway.store import MemoryStore, Store  # noqa: E402
from gateway.store.redis import RedisStore  # noqa: E402
from gateway.store.redis_client import Client  # noqa: E402
from gateway.store.redis_conn import pack_command, parse_url  # noqa: E402

SKILLS = ("presale", "aftersale", "logistics", "billing")
PRIORITIES = (Priority.NORMAL, Priority.NORMAL, Priority.NORMAL, Priority.HIGH, Priority.URGENT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(aof: bool) -> tuple[subprocess.Popen[bytes], str, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (or pass --url)")
    port, d = free_port(), tempfile.mkdtemp(prefix="gw-bench-redis-")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--save", "",
                             "--appendonly", "yes" if aof else "no", "--appendfsync", "always",
                             "--maxmemory-policy", "noeviction"], stdout=subprocess.DEVNULL)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0", d
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


class RedisCost:
    """Redis-side CPU per script call (INFO commandstats), to tell client cost from server cost."""

    def __init__(self, url: str | None) -> None:
        self.r = Redis.from_url(url, decode_responses=True) if url else None

    async def reset(self) -> None:
        if self.r is not None:
            await self.r.config_resetstat()

    async def us_per_call(self) -> float | None:
        if self.r is None:
            return None
        stats = await self.r.info("commandstats")
        ev = stats.get("cmdstat_evalsha")
        return round(float(ev["usec_per_call"]), 1) if ev else None

    async def close(self) -> None:
        if self.r is not None:
            await self.r.aclose()


async def run_all(stores: list[Store], jobs: list[Any], concurrency: int) -> float:
    """Run ``jobs`` (store -> awaitable factories) on ``concurrency`` workers round-robin over stores."""
    q: asyncio.Queue[Any] = asyncio.Queue()
    for j in jobs:
        q.put_nowait(j)

    async def worker(i: int) -> None:
        s = stores[i % len(stores)]
        while not q.empty():
            await q.get_nowait()(s)

    t0 = time.perf_counter()
    await asyncio.gather(*[worker(i) for i in range(concurrency)])
    return time.perf_counter() - t0


async def routing_round(make: Any, instances: int, agents: int, cap: int, convs: int, concurrency: int,
                        url: str | None = None) -> dict[str, Any]:
    ns = f"bench{uuid.uuid4().hex[:8]}"
    cost = RedisCost(url)
    stores: list[Store] = [make(ns, i) for i in range(instances)]
    for s in stores:
        await s.start(lambda t, p: None)
    s0 = stores[0]
    try:
        for i in range(agents):
            skills = (SKILLS[i % len(SKILLS)], SKILLS[(i + 1) % len(SKILLS)])
            await s0.register_agent(AgentProfile(f"a{i:04d}", f"客服{i}", skills, cap))
            await s0.agent_connected(f"a{i:04d}", f"s{i}", AgentStatus.ONLINE, "bench")
        ids = [f"c{i:06d}" for i in range(convs)]
        for cid in ids:
            await s0.create_conversation(Conversation(cid, f"u{cid}", created_at=time.time()))
        placements: list[Any] = []

        def handoff(i: int) -> Any:
            async def go(s: Store) -> None:
                placements.append(await s.assign_or_enqueue(ids[i], SKILLS[i % len(SKILLS)],
                                                            PRIORITIES[i % len(PRIORITIES)]))
            return go

        await cost.reset()
        t_handoff = await run_all(stores, [handoff(i) for i in range(convs)], concurrency)
        us_handoff = await cost.us_per_call()
        assigned = [p for p in placements if p is not None and p.agent]
        # every agent closes everything it holds at once; each close pulls the next waiting one
        pulls: list[int] = []

        def close(cid: str, aid: str) -> Any:
            async def go(s: Store) -> None:
                pulls.append(len((await s.close_conversation(cid, "resolved", by_agent=aid)).placements))
            return go

        await cost.reset()
        t_close = await run_all(stores, [close(p.conversation, p.agent) for p in assigned], concurrency)
        us_close = await cost.us_per_call()
        # appends (a customer message with a client id, as the websocket path does)
        n_app = min(convs, 4000)

        def append(i: int) -> Any:
            async def go(s: Store) -> None:
                await s.append(ids[i], {"type": "message", "from": "customer", "text": "你好，请问什么时候发货"},
                               client_id=f"m{i}")
            return go

        await cost.reset()
        t_append = await run_all(stores, [append(i) for i in range(n_app)], concurrency)
        us_append = await cost.us_per_call()
        return {
            "instances": instances, "agents": agents, "capacity": cap, "conversations": convs,
            "concurrency": concurrency,
            "handoffs_per_s": round(convs / t_handoff),
            "assigned": len(assigned),
            "close_and_pull_per_s": round(len(assigned) / t_close),
            "pulled": sum(pulls),
            "appends_per_s": round(n_app / t_append),
            # Redis CPU per script (microseconds): one Redis core could run 1e6/us of them per second
            "redis_us": {"assign_or_enqueue": us_handoff, "close_conversation": us_close, "append": us_append},
        }
    finally:
        for s in stores:
            await s.close()
        await cost.close()


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    agents, cap, convs = (50, 4, 1000) if args.quick else (200, 5, 5000)
    results: list[dict[str, Any]] = []
    setups: list[tuple[str, str | None, bool]] = [("memory", None, False)]
    servers: list[tuple[subprocess.Popen[bytes], str]] = []
    if args.url:
        setups.append(("redis", args.url, False))
    else:
        for aof in (False, True):
            proc, url, d = start_redis(aof)
            servers.append((proc, d))
            setups.append(("redis+aof-always" if aof else "redis", url, aof))
    try:
        for label, url, _ in setups:
            for instances in ((1,) if url is None else (1, 3)):
                def make(ns: str, i: int, url: str | None = url) -> Store:
                    return MemoryStore(ns) if url is None else RedisStore(url, ns, instance=f"bench-{ns}-{i}")
                r = await routing_round(make, instances, agents, cap, convs, args.concurrency, url)
                r["store"] = label
                results.append(r)
                print(f"{label:18} inst={instances} handoffs/s={r['handoffs_per_s']:>7} "
                      f"close+pull/s={r['close_and_pull_per_s']:>7} appends/s={r['appends_per_s']:>7} "
                      f"(assigned {r['assigned']}, pulled {r['pulled']}) redis µs/script={r['redis_us']}", flush=True)
    finally:
        for proc, d in servers:
            proc.terminate()
            proc.wait(10)
            shutil.rmtree(d, ignore_errors=True)
    return {"machine": machine(), "results": results}


# ------------------------------------------------------------------ micro: one EVALSHA, three clients

MICRO_SCRIPT = "redis.call('HSET', KEYS[1], 'f', ARGV[1]) return 1"


class _TickPipeline:
    """redis-py with auto-pipelining done by hand: one tick's commands go as one pipeline(transaction=False)."""

    def __init__(self, r: Redis) -> None:
        self.r = r
        self.pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self.scheduled = False
        self.tasks: set[asyncio.Task[None]] = set()

    def call(self, *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.pending.append((args, fut))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._spawn)
        return fut

    def _spawn(self) -> None:
        t = asyncio.ensure_future(self._flush())
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _flush(self) -> None:
        self.scheduled = False
        batch, self.pending = self.pending, []
        async with self.r.pipeline(transaction=False) as p:
            for args, _ in batch:
                p.execute_command(*args)
            res = await p.execute(raise_on_error=False)
        for (_, f), r in zip(batch, res, strict=True):
            if not f.done():
                f.set_result(r)


async def micro_round(url: str, kind: str, n: int, per: int) -> dict[str, Any]:
    from redis.asyncio import BlockingConnectionPool

    pool = BlockingConnectionPool.from_url(url, max_connections=64, decode_responses=True)
    r = Redis(connection_pool=pool)
    sha = await r.script_load(MICRO_SCRIPT)
    key = f"gw:{{micro{uuid.uuid4().hex[:6]}}}:h"
    client: Client | None = None
    if kind == "redis-py":
        async def one(i: int) -> Any:
            return await r.evalsha(sha, 1, key, str(i))
    elif kind == "redis-py tick pipeline":
        tp = _TickPipeline(r)

        async def one(i: int) -> Any:
            return await tp.call("EVALSHA", sha, 1, key, str(i))
    else:
        client = Client(parse_url(url), slot_key=key)

        async def one(i: int) -> Any:
            return await client.execute(pack_command(("EVALSHA", sha, 1, key, str(i))))

    async def worker() -> None:
        for i in range(per):
            await one(i)

    await worker()  # warm up: connections, script cache
    await r.config_resetstat()
    cpu0 = await r.info("cpu")
    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(n)])
    c1, t1 = time.process_time(), time.perf_counter()
    cpu1 = await r.info("cpu")
    stats = await r.info("commandstats")
    total = n * per
    server_s = sum(float(cpu1[k]) - float(cpu0[k]) for k in ("used_cpu_sys", "used_cpu_user"))
    ev = stats.get("cmdstat_evalsha", {})
    if client is not None:
        await client.aclose()
    await r.aclose()
    await pool.aclose()
    return {"client": kind, "concurrency": n, "commands": total,
            "client_cpu_us_per_cmd": round(1e6 * (c1 - c0) / total, 1),
            "wall_us_per_cmd": round(1e6 * (t1 - t0) / total, 1),
            "redis_cpu_us_per_cmd": round(1e6 * server_s / total, 1),
            "evalsha_usec_per_call": ev.get("usec_per_call"), "evalsha_calls": ev.get("calls")}


BUS_PAYLOAD = [
    "c:c-000001",
    {"type": "message", "seq": 2, "from": "bot", "text": "现货商品付款后48小时内发货，预售商品以页面时间为准。",
     "ts": 1764280000.1, "faq": "ship_time"},
]
PUBLISHER = """
import sys, time, redis
r = redis.Redis.from_url(sys.argv[1])
n, rate, data = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4].encode()
t0 = time.monotonic()
for i in range(n):
    r.publish(sys.argv[5], data)
    d = t0 + (i + 1) / rate - time.monotonic()
    if d > 0:
        time.sleep(d)
"""


async def bus_round(url: str, kind: str, n: int, rate: float) -> dict[str, Any]:
    """CPU of one subscriber per bus message, published by another process at ``rate``/s."""
    from gateway.store.redis_bus import RedisBus
    from gateway.store.redis_runner import ScriptRunner

    channel = f"gw:{{micro{uuid.uuid4().hex[:6]}}}:bus"
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    got = 0

    def on(topic: str, payload: dict[str, Any]) -> None:
        nonlocal got
        got += 1
        if got == n and not done.done():
            done.set_result(None)

    stop: Any
    if kind == "redis-py PubSub":
        r = Redis.from_url(url)
        ps = r.pubsub()
        await ps.subscribe(channel)

        async def read() -> None:
            while not done.done():
                m = await ps.get_message(timeout=1.0)
                if m is not None and m["type"] == "message":
                    on(*orjson.loads(m["data"]))

        task = asyncio.create_task(read())

        async def stop() -> None:
            await task
            await ps.aclose()  # type: ignore[no-untyped-call]
            await r.aclose()
    else:
        runner = ScriptRunner(url, "gw:{micro}:", socket_timeout_s=2.0, connect_timeout_s=1.0)
        bus = RedisBus(channel, runner, instance="micro", ready_key="gw:{micro}:x", connect_timeout_s=1.0,
                       closing=lambda: done.done())
        bus.listener = on
        task = asyncio.create_task(bus.loop())
        await bus.subscribed.wait()

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await runner.aclose()
    await asyncio.sleep(0.2)
    c0 = time.process_time()
    pub = await asyncio.create_subprocess_exec(sys.executable, "-c", PUBLISHER, url, str(n), str(rate),
                                               json.dumps(BUS_PAYLOAD, ensure_ascii=False), channel)
    await asyncio.wait_for(done, 60)
    c1 = time.process_time()
    await pub.wait()
    await stop()
    return {"subscriber": kind, "messages": n, "rate": rate, "client_cpu_us_per_msg": round(1e6 * (c1 - c0) / n, 1)}


async def micro_async(args: argparse.Namespace) -> dict[str, Any]:
    servers: list[tuple[subprocess.Popen[bytes], str]] = []
    url = args.url
    if not url:
        proc, url, d = start_redis(False)
        servers.append((proc, d))
    results = []
    try:
        for n in (1, 16, 64, 256):
            per = 2000 if n == 1 else max(4000 // n, 20)
            if args.quick:
                per = max(per // 4, 10)
            for kind in ("redis-py", "redis-py tick pipeline", "store client"):
                row = await micro_round(url, kind, n, per)
                results.append(row)
                print(f"{kind:24} N={n:<4} client CPU {row['client_cpu_us_per_cmd']:6.1f} µs/cmd  "
                      f"wall {row['wall_us_per_cmd']:6.1f} µs/cmd  redis-server CPU "
                      f"{row['redis_cpu_us_per_cmd']:5.1f} µs/cmd  EVALSHA usec_per_call "
                      f"{row['evalsha_usec_per_call']}", flush=True)
        bus = []
        for rate in (500.0, 2000.0):
            for kind in ("redis-py PubSub", "store subscription"):
                row = await bus_round(url, kind, int(rate * (1 if args.quick else 3)), rate)
                bus.append(row)
                print(f"bus {kind:20} {rate:6.0f} msg/s  subscriber CPU {row['client_cpu_us_per_msg']:6.1f} µs/msg",
                      flush=True)
    finally:
        for proc, d in servers:
            proc.terminate()
            proc.wait(10)
            shutil.rmtree(d, ignore_errors=True)
    return {"machine": machine(), "micro": results, "bus": bus}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", help="an existing Redis (default: start redis-server twice, AOF off and on)")
    p.add_argument("--quick", action="store_true", help="smaller run")
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight (all instances together)")
    p.add_argument("--micro", action="store_true", help="EVALSHA micro benchmark of three clients (see above)")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop, as `gateway serve` does")
    p.add_argument("--out", default="")
    args = p.parse_args()
    if not args.out:
        name = "redis_client_micro.json" if args.micro else "redis_routing.json"
        args.out = str(ROOT / "bench" / "results" / name)
    run = asyncio.run
    if args.uvloop:
        import uvloop

        run = uvloop.run
    out = run(micro_async(args) if args.micro else main_async(args))
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
