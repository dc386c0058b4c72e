"""Soak: 10,000 customer sessions churning for 10 minutes; the gateway's RSS at the start and the end.

    .venv/bin/python -m bench.soak                                   # 10,000 sessions, 600 s, Redis store
    .venv/bin/python -m bench.soak --sessions 2000 --seconds 60      # a quick look

One gateway process (the bench config of this tree), ``--sessions`` customer
sockets held open, ``--churn`` of them replaced every second. A replaced
session leaves (half with a close frame, half by dropping the TCP connection)
and its replacement is, at random: a new customer who says nothing (its
conversation is discarded when it leaves: 50 %), a new customer who asks a
question and gets the bot's answer (30 %), or a returning customer who resumes
an earlier conversation and writes in it (20 %). Texts carry random order
numbers: no two repeat.

RSS is read from ``/proc/<pid>/status`` after ``--warm`` seconds of churn
(start) and when the run ends (end); "flat" means end/start <= 1.10. With the
Redis store (default when redis-server is installed) the conversations live in
Redis, whose RSS is reported apart as data; with ``--store memory://`` they live
in the gateway and its RSS grows with them by design.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.config import bench_config_text
from bench.procs import ROOT, Proc, free_port, start_redis, wait_http
from bench.session_memory import rss_kb

TEMPLATES = ("我的订单{n}什么时候发货", "订单{n}能不能改地址", "{n}这个单号查不到物流", "退款{n}什么时候到账",
             "订单{n}发票怎么开", "请问{n}可以退货吗")


@dataclass
class Session:
    ws: Any
    conversation: str
    token: str


@dataclass
class Tally:
    opened: int = 0
    silent: int = 0
    asked: int = 0
    resumed: int = 0
    failed: int = 0
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, gateway RSS KB, redis RSS KB)


class Soak:
    def __init__(self, url: str, rng: random.Random, tally: Tally) -> None:
        self.url, self.rng, self.tally = url, rng, tally
        self.known: list[tuple[str, str]] = []  # (conversation, token) of conversations written in: resumable

    def text(self) -> str:
        return self.rng.choice(TEMPLATES).format(n=self.rng.randrange(10**11, 10**12))

    async def _recv(self, ws: Any, want: str) -> dict[str, Any]:
        while True:
            f: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
            if f.get("type") == want or (want == "bot" and f.get("from") == "bot"):
                return f
            if f.get("type") == "error":
                raise RuntimeError(f"error frame: {f}")

    async def open(self, kind: str) -> Session:
        from websockets.asyncio.client import connect

        ws = await connect(self.url + "/ws/customer", compression=None, ping_interval=None, proxy=None,
                           open_timeout=60, close_timeout=2)
        hello: dict[str, Any] = {"type": "hello"}
        if kind == "resume" and self.known:
            conv, token = self.rng.choice(self.known)
            hello["resume"] = {"conversation": conv, "token": token, "after": 10**6}
        await ws.send(orjson.dumps(hello).decode())
        w = await self._recv(ws, "welcome")
        s = Session(ws, w["conversation"], w["token"])
        self.tally.opened += 1
        if kind == "silent":
            self.tally.silent += 1
            return s
        await ws.send(orjson.dumps({"type": "message", "id": "m", "text": self.text()}).decode())
        await self._recv(ws, "ack")
        if kind == "resume":
            self.tally.resumed += 1
        else:
            await self._recv(ws, "bot")
            self.tally.asked += 1
            if len(self.known) < 20_000:
                self.known.append((s.conversation, s.token))
        return s

    async def replace(self, pool: list[Session], i: int) -> None:
        old = pool[i]
        if self.rng.random() < 0.5:
            await old.ws.close()
        else:
            old.ws.transport.abort()
        r = self.rng.random()
        kind = "silent" if r < 0.5 else "ask" if r < 0.8 else "resume"
        try:
            pool[i] = await self.open(kind)
        except Exception:
            self.tally.failed += 1
            pool[i] = await self.open("silent")


async def run(url: str, gw_pid: int, redis_pid: int | None, args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    soak = Soak(url, random.Random(args.seed), tally)
    sem = asyncio.Semaphore(200)

    async def first(_: int) -> Session:
        async with sem:
            return await soak.open("silent")

    began = time.monotonic()
    pool = list(await asyncio.gather(*(first(i) for i in range(args.sessions))))
    print(f"soak: {len(pool)} sessions open in {time.monotonic() - began:.1f} s", flush=True)

    def sample(t0: float) -> tuple[float, int, int]:
        s = (time.monotonic() - t0, rss_kb(gw_pid), rss_kb(redis_pid) if redis_pid else 0)
        tally.samples.append(s)
        return s

    t0 = time.monotonic()
    start: tuple[float, int, int] | None = None
    next_sample = 0.0
    tick = 0.1
    per_tick = max(1, round(args.churn * tick))
    end_at = t0 + args.warm + args.seconds
    while (now := time.monotonic()) < end_at:
        if start is None and now - t0 >= args.warm:
            start = sample(t0)
            print(f"soak: start  t={start[0]:6.0f} s  gateway RSS {start[1] / 1024:7.1f} MB", flush=True)
        if now - t0 >= next_sample:
            s = sample(t0)
            next_sample += args.sample
            print(f"soak:        t={s[0]:6.0f} s  gateway RSS {s[1] / 1024:7.1f} MB  redis {s[2] / 1024:6.1f} MB  "
                  f"replaced {tally.opened - args.sessions}", flush=True)
        idx = soak.rng.sample(range(len(pool)), per_tick)
        await asyncio.gather(*(soak.replace(pool, i) for i in idx))
        await asyncio.sleep(max(0.0, tick - (time.monotonic() - now)))
    end = sample(t0)
    for s in pool:
        s.ws.transport.abort()
    assert start is not None
    ratio = end[1] / start[1]
    return {"sessions": args.sessions, "seconds": args.seconds, "warm_s": args.warm, "churn_per_s": args.churn,
            "store": args.store, "rss_start_kb": start[1], "rss_end_kb": end[1], "rss_ratio": round(ratio, 3),
            "flat": ratio <= 1.10, "redis_rss_start_kb": start[2], "redis_rss_end_kb": end[2],
            "replaced": tally.opened - args.sessions, "silent": tally.silent, "asked": tally.asked,
            "resumed": tally.resumed, "failed": tally.failed,
            "samples": tally.samples}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=600.0, help="measured churn, after --warm")
    p.add_argument("--warm", type=float, default=60.0, help="churn before the start reading")
    p.add_argument("--churn", type=float, default=50.0, help="sessions replaced per second")
    p.add_argument("--sample", type=float, default=30.0, help="seconds between RSS readings")
    p.add_argument("--store", default="", help="memory:// or a redis:// URL (default: a redis-server of its own)")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--out", help="write the result as JSON here")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    procs: list[Proc] = []
    try:
        redis_pid = None
        if not args.store:
            if shutil.which("redis-server") is None:
                args.store = "memory://"
            else:
                redis = start_redis(tmp)
                procs.append(redis)
                args.store, redis_pid = f"redis://127.0.0.1:{redis.port}/0", redis.pid  # type: ignore[attr-defined]
        cfg = tmp / "gateway.toml"
        cfg.write_text(bench_config_text(ROOT, args.store, "soak", 4, 50), encoding="utf-8")
        port = free_port()
        gw = Proc("gateway", [sys.executable, "-m", "gateway", "serve", "--config", str(cfg), "--port", str(port),
                              "--host", "127.0.0.1", "--workers", "1"], tmp / "gateway.log")
        procs.append(gw)
        wait_http(f"http://127.0.0.1:{port}/readyz", proc=gw.p, timeout=60)
        result = asyncio.run(run(f"ws://127.0.0.1:{port}", gw.pid, redis_pid, args))
        time.sleep(2)  # the last sessions' closes reach the gateway
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            result["connections_after"] = json.loads(r.read()).get("connections")
        print(f"soak: {result['sessions']} sessions, {result['replaced']} replaced in {args.seconds:.0f} s "
              f"({args.store.split('://')[0]} store): gateway RSS {result['rss_start_kb'] / 1024:.1f} MB -> "
              f"{result['rss_end_kb'] / 1024:.1f} MB ({(result['rss_ratio'] - 1) * 100:+.1f} %, "
              f"{'flat' if result['flat'] else 'NOT flat'}); failed replacements {result['failed']}")
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        return 0 if result["flat"] else 1
    finally:
        for pr in reversed(procs):
            pr.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
