"""A day of bench traffic for the gaps loop: customers ask, some say an answer did not help,
then ``gateway faq gaps`` is asked what the FAQ missed.

    .venv/bin/python -m bench.gaps_traffic [--customers 300] [--messages 6]

Starts ``gateway serve`` (memory store, the bench config of this tree plus an admin token),
and sends every customer's messages: the demo cases (tests/data/faq_cases.jsonl: answered,
suggested, out of scope, hand-offs) with the bench's greeting prefixes and particle suffixes,
no text twice. A customer says 没帮助 (``feedback``) to one bot answer in ten. Then it runs
``gateway faq gaps --url … --token …`` and prints its table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.procs import ROOT, start_admin_gateway
from bench.texts import PREFIXES, SUFFIXES

TOKEN = "gaps-bench-admin"


async def customer(url: str, texts: list[str], rng: random.Random) -> None:
    from websockets.asyncio.client import connect

    async with connect(url + "/ws/customer", compression=None, ping_interval=None, proxy=None) as ws:
        await ws.send('{"type":"hello"}')
        for i, text in enumerate(texts):
            await ws.send(json.dumps({"type": "message", "id": f"m{i}", "text": text}, ensure_ascii=False))
            while True:  # until the bot (or the hand-off notice) has replied to it
                f: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if f.get("from") in ("bot", "system") and f.get("type") == "message" and f.get("seq", 0) > 1:
                    break
            if f.get("from") == "bot" and f.get("faq") and rng.random() < 0.1:
                await ws.send(json.dumps({"type": "feedback", "id": f"f{i}", "seq": f["seq"], "helpful": False}))
            if f.get("from") == "system":
                return  # handed off: a person has it now


async def traffic(url: str, customers: int, per: int, seed: int) -> int:
    rng = random.Random(seed)
    cases = [json.loads(line)["text"] for line in (ROOT / "tests" / "data" / "faq_cases.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]
    seen: set[str] = set()
    batches: list[list[str]] = []
    for _ in range(customers):
        batch = []
        while len(batch) < per:
            t = rng.choice(PREFIXES) + rng.choice(cases) + rng.choice(SUFFIXES)
            if t not in seen:
                seen.add(t)
                batch.append(t)
        batches.append(batch)
    sem = asyncio.Semaphore(50)

    async def one(b: list[str]) -> None:
        async with sem:
            await customer(url, b, random.Random(rng.random()))

    await asyncio.gather(*(one(b) for b in batches))
    return len(seen)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--customers", type=int, default=300)
    p.add_argument("--messages", type=int, default=6, help="messages per customer (fewer if handed off)")
    p.add_argument("--seed", type=int, default=13)
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="gaps-"))
    gw, cfg, port = start_admin_gateway(tmp, "gaps", 4, 50, TOKEN)
    try:
        sent = asyncio.run(traffic(f"ws://127.0.0.1:{port}", args.customers, args.messages, args.seed))
        print(f"gaps_traffic: {args.customers} customers, {sent} distinct texts offered")
        out = subprocess.run([sys.executable, "-m", "gateway", "faq", "gaps", "--config", str(cfg), "--since", "1",
                              "--url", f"http://127.0.0.1:{port}", "--token", TOKEN],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        print(out.stdout or out.stderr)
        return out.returncode
    finally:
        gw.stop()


if __name__ == "__main__":
    raise SystemExit(main())
