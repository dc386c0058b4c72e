"""A bench day for the reports: customers, the bot, agents who answer, close and follow up; then
``gateway report`` over the archive it left.

    .venv/bin/python -m bench.report_day [--customers 400] [--agents 4]

Starts ``gateway serve`` (memory store, a SQLite archive in a temporary directory, the bench
config of this tree with an admin token). Each customer asks one demo question: most are answered
by the bot, the rest ask for a person (转人工, a complaint, a broken item). Simulated agents answer
each assigned conversation after a random 1-20 s think time (scaled by ``--speed``) and close it
resolved (70 %), unresolved (15 %) or pending with a follow-up (15 %), with a category; customers
still connected rate 1-5 when the survey comes. When the archive outbox is empty, the report of
the day is printed (table) and written as JSON next to it (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.procs import ROOT, start_admin_gateway

TOKEN = "report-day-admin"
QUESTIONS = ("什么时候发货", "运费多少", "怎么退货", "支持七天无理由吗", "发什么快递", "优惠券怎么用")
PEOPLE = ("转人工", "我要投诉，东西是坏的", "收到的衣服有破洞，找人工处理", "快递一直不动，帮我查一下，转人工")
CATEGORIES = ("quality", "logistics", "usage", "service", "other")


async def customer(url: str, i: int, rng: random.Random) -> None:
    from websockets.asyncio.client import connect

    async with connect(url + "/ws/customer", compression=None, ping_interval=None, proxy=None) as ws:
        await ws.send(json.dumps({"type": "hello", "customer": {"id": f"day-{i}", "name": f"顾客{i}"}}))
        text = rng.choice(PEOPLE) if rng.random() < 0.35 else rng.choice(QUESTIONS)
        await ws.send(json.dumps({"type": "message", "id": "m", "text": text}, ensure_ascii=False))
        end = time.monotonic() + 120
        while time.monotonic() < end:
            try:
                f: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
            except TimeoutError:
                continue
            if f.get("type") == "survey":
                if rng.random() < 0.8:  # most answer the survey
                    await ws.send(json.dumps({"type": "rate", "id": "r", "score": rng.choice((1, 2, 4, 5, 5, 5))}))
                    await ws.recv()  # its ack
                return
            if f.get("from") == "bot" and f.get("faq"):
                await ws.send('{"type":"close"}')  # answered: the customer ends the chat (the survey follows)


async def agent(url: str, n: int, rng: random.Random, speed: float, stop: asyncio.Event) -> None:
    from websockets.asyncio.client import connect

    async with connect(url + "/ws/agent", compression=None, ping_interval=None, proxy=None) as ws:
        await ws.send(json.dumps({"type": "hello", "agent": f"b{n}", "token": f"bench-token-{n}", "status": "online"}))
        tasks: set[asyncio.Task[None]] = set()

        async def handle(conv: str) -> None:
            await asyncio.sleep(rng.uniform(1, 20) / speed)
            await ws.send(json.dumps({"type": "message", "id": f"a-{conv}", "conversation": conv,
                                      "text": "您好，我来帮您处理"}, ensure_ascii=False))
            await asyncio.sleep(rng.uniform(2, 30) / speed)
            r = rng.random()
            close: dict[str, Any] = {"type": "close", "id": f"k-{conv}", "conversation": conv,
                                     "resolution": "resolved" if r < 0.7 else "unresolved" if r < 0.85 else "pending",
                                     "category": rng.choice(CATEGORIES)}
            if close["resolution"] == "pending":
                close["follow_up_at"] = int(time.time()) + 3600
            await ws.send(json.dumps(close))

        while not stop.is_set():
            try:
                f: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 1))
            except TimeoutError:
                continue
            if f.get("type") == "assigned":
                t = asyncio.create_task(handle(f["conversation"]["id"]))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
        for t in tasks:
            t.cancel()


def outbox_empty(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("gateway_archive_outbox_depth "):
                return float(line.split()[1]) == 0.0
    return False


async def day(url: str, port: int, args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    stop = asyncio.Event()
    agents = [asyncio.create_task(agent(url, n, random.Random(rng.random()), args.speed, stop))
              for n in range(1, args.agents + 1)]
    sem = asyncio.Semaphore(60)

    async def one(i: int) -> None:
        async with sem:
            await asyncio.sleep(rng.uniform(0, 2))
            await customer(url, i, random.Random(rng.random()))

    await asyncio.gather(*(one(i) for i in range(args.customers)))
    stop.set()
    await asyncio.gather(*agents, return_exceptions=True)
    end = time.monotonic() + 60
    while time.monotonic() < end and not await asyncio.to_thread(outbox_empty, port):  # noqa: ASYNC110
        await asyncio.sleep(0.5)  # (the gateway is another process: polled)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--customers", type=int, default=400)
    p.add_argument("--agents", type=int, default=4)
    p.add_argument("--speed", type=float, default=10.0, help="think and handle times divided by this")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "report_day.json"))
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="report-day-"))
    gw, cfg, port = start_admin_gateway(tmp, "reportday", args.agents, 5, TOKEN,
                                        {"archive": {"url": f"sqlite:///{tmp / 'archive.sqlite3'}"}})
    try:
        started = time.time()
        asyncio.run(day(f"ws://127.0.0.1:{port}", port, args))
        iso = lambda t: datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="seconds")  # noqa: E731
        period = ["--from", iso(started - 60), "--to", iso(time.time() + 60)]
        base = [sys.executable, "-m", "gateway", "report", "--config", str(cfg), *period]
        table = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, timeout=120)
        print(table.stdout or table.stderr)
        js = subprocess.run([*base, "--format", "json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        if js.returncode == 0:
            Path(args.out).write_text(js.stdout, encoding="utf-8")
        return table.returncode
    finally:
        gw.stop()


if __name__ == "__main__":
    raise SystemExit(main())
