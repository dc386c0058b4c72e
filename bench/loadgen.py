"""The load generator: one process of its own (uvloop, websockets client).

It reads a step description (JSON) and writes a result (JSON); ``bench.run``
starts one per step. While it runs it prints one JSON progress line per half
second on stdout.

Modes
- ``open``: customer messages arrive at ``rate`` per second (Poisson or fixed
  gaps), whatever the server does. Every latency is measured from the message's
  *scheduled* send time, so a server (or generator) that falls behind shows up
  as latency instead of as a silently lower rate.
- ``closed``: ``concurrency`` customers each send a message, wait for its answer,
  and send the next one at once: the highest rate the server sustains.
- ``connections``: open ``sessions`` idle customer sessions, hold them, measure
  the server's memory per session, then send a burst (one message per session,
  at ``burst_rate``).

Simulated agents (gateway only) sign in on ``/ws/agent``, answer every
conversation they are assigned after ``think_s`` and close it ``hold_s`` later.

Against the echo baseline (``target: echo``) the echoed frame stands for the
ack, the answer and the first response at once.

    python -m bench.loadgen --spec step.json --out result.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import orjson

from bench.load_clients import perf
from bench.load_modes import LoadGen
from bench.proc_stats import raise_nofile


async def amain(spec: dict[str, Any]) -> dict[str, Any]:
    gen = LoadGen(spec)
    t = perf()
    result = await gen.run()
    result["spec"] = {k: v for k, v in spec.items() if k not in ("agents", "pids")}
    result["wall_s"] = round(perf() - t, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="gateway bench load generator (one step)")
    p.add_argument("--spec", required=True, help="step description (JSON file)")
    p.add_argument("--out", required=True, help="where to write the result (JSON)")
    args = p.parse_args(argv)
    with open(args.spec, "rb") as f:
        spec = orjson.loads(f.read())
    nofile = raise_nofile()
    need = int(spec.get("sessions") or spec.get("customers") or 0) + 100
    if nofile < need:
        print(f"loadgen: open-files limit {nofile} < {need} sockets needed", file=sys.stderr)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        result = asyncio.run(amain(spec))
    else:
        result = uvloop.run(amain(spec))
    result["nofile_limit"] = nofile
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
