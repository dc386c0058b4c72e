"""The bench's settings: paths, scenario and store names, and the command line (``python -m bench.run``)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "README.md"  # its Benchmark section holds the latest results
PY = sys.executable
SCENARIOS = ("faq", "handoff", "mixed", "connections", "workers")
STORES = ("memory", "redis")


@dataclass
class Settings:
    scenarios: list[str]
    stores: list[str]
    quick: bool
    duration: float
    warmup: float
    drain: float
    repeat: int
    rate: float | None
    handoff_rate: float | None
    customers: int
    sessions: int
    burst_rate: float | None
    idle_s: float
    agents: int
    capacity: int
    think_s: float
    hold_s: float
    arrival: str
    fresh_share: float
    sweep: list[float]
    sweep_duration: float
    capacity_concurrency: int
    capacity_duration: float
    workers: list[int]
    compression: bool
    log_level: str
    out: Path
    plot: bool
    update_doc: bool
    baseline: bool = True
    echo_compress: bool = False
    render: Path | None = None
    out_given: bool = False
    snapshot: str = ""  # a git ref run from a clean export, or "" for the working tree
    src: Path = ROOT  # the tree whose gateway is measured
    commit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> Settings:
    p = argparse.ArgumentParser(prog="python -m bench.run", description="Benchmark the gateway against a bare "
                                "aiohttp websocket echo server, scenario by scenario.")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma list of: " + ", ".join(SCENARIOS))
    p.add_argument("--stores", default="memory,redis", help="comma list of: memory, redis")
    p.add_argument("--quick", action="store_true", help="the smoke run: seconds, small numbers")
    p.add_argument("--duration", type=float, help="measured seconds per step (default 10; quick 1.5)")
    p.add_argument("--warmup", type=float, help="unmeasured seconds before each step's window (default 2)")
    p.add_argument("--drain", type=float, help="longest wait for outstanding answers after a step (default 35)")
    p.add_argument("--repeat", type=int, help="repetitions of each gateway+baseline step (default 3)")
    p.add_argument("--rate", type=float, help="customer messages/s offered in faq and mixed (default 2000)")
    p.add_argument("--handoff-rate", type=float, help="handoff requests/s in the handoff scenario (default 600)")
    p.add_argument("--customers", type=int, help="connected customers in faq/handoff/mixed (default 2000)")
    p.add_argument("--sessions", type=int, help="idle sessions held in connections (default 10000)")
    p.add_argument("--burst-rate", type=float, help="messages/s of the connections burst (default sessions/2s)")
    p.add_argument("--idle", type=float, help="seconds the sessions are held idle (default 5)")
    p.add_argument("--agents", type=int, help="simulated agents (default 30)")
    p.add_argument("--capacity", type=int, help="conversations per agent (default 30)")
    p.add_argument("--think", type=float, help="agent think time before the first reply, s (default 0.2)")
    p.add_argument("--hold", type=float, help="seconds an agent keeps a conversation after replying (default 0.3)")
    p.add_argument("--arrival", choices=("poisson", "fixed"), default="poisson", help="open-loop arrivals")
    p.add_argument("--fresh-share", type=float, default=1.0,
                   help="share of bot questions phrased in a way the gateway has not seen yet (default 1.0: none "
                   "repeats within a gateway process); the rest repeat common texts (a decision cache answers those)")
    p.add_argument("--sweep", help="offered rates for the latency plot, comma list, or 'none' "
                   "(default 100,250,500,1000,1500,2000,3000)")
    p.add_argument("--sweep-duration", type=float, help="seconds per sweep point (default 5)")
    p.add_argument("--concurrency", type=int, help="customers in the closed-loop capacity step (default 64)")
    p.add_argument("--workers", default="1,2", help="worker processes compared in the workers scenario "
                   "(`gateway serve --workers N` on the Redis store; default 1,2); every other scenario runs one")
    p.add_argument("--no-compression", action="store_true",
                   help="do not offer permessage-deflate (browsers offer it; the default does too)")
    p.add_argument("--no-baseline", action="store_true", help="skip the echo baseline steps")
    p.add_argument("--echo-compress", action="store_true",
                   help="let the echo server accept permessage-deflate (the gateway declines it)")
    p.add_argument("--log-level", default="info", help="gateway log level (default info, as deployed)")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results directory (default {RESULTS})")
    p.add_argument("--no-plot", action="store_true", help="do not draw latency.png")
    p.add_argument("--snapshot", nargs="?", const="HEAD", default="", metavar="REF",
                   help="measure the gateway as committed at REF (default HEAD), from a clean git archive, "
                   "instead of the working tree (which others may be editing)")
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="run nothing: redo the table, targets, plot and README from a saved latest.json")
    a = p.parse_args(argv)
    q = a.quick
    scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    stores = [s.strip() for s in a.stores.split(",") if s.strip()]
    for s in scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r} (known: {', '.join(SCENARIOS)})")
    for s in stores:
        if s not in STORES:
            p.error(f"unknown store {s!r} (known: {', '.join(STORES)})")
    if a.sweep is not None:
        sweep = [] if a.sweep.strip().lower() in ("", "none", "0") else [float(x) for x in a.sweep.split(",")]
    else:
        sweep = [100.0, 300.0] if q else [100.0, 250.0, 500.0, 1000.0, 1500.0, 2000.0, 3000.0]

    def pick(v: Any, full: Any, quick: Any) -> Any:
        return v if v is not None else (quick if q else full)

    out = a.out.resolve()
    return Settings(
        scenarios=scenarios, stores=stores, quick=q,
        duration=pick(a.duration, 10.0, 1.0), warmup=pick(a.warmup, 2.0, 0.2), drain=pick(a.drain, 35.0, 10.0),
        repeat=max(1, pick(a.repeat, 3, 1)), rate=a.rate, handoff_rate=a.handoff_rate,
        customers=pick(a.customers, 2000, 100), sessions=pick(a.sessions, 10000, 300),
        burst_rate=a.burst_rate, idle_s=pick(a.idle, 5.0, 0.5),
        agents=pick(a.agents, 30, 4), capacity=pick(a.capacity, 30, 10),
        think_s=pick(a.think, 0.2, 0.05), hold_s=pick(a.hold, 0.3, 0.05), arrival=a.arrival,
        fresh_share=min(1.0, max(0.0, a.fresh_share)),
        sweep=sweep, sweep_duration=pick(a.sweep_duration, 5.0, 1.0),
        capacity_concurrency=pick(a.concurrency, 64, 8), capacity_duration=pick(None, 5.0, 1.0),
        workers=sorted({max(1, int(x)) for x in a.workers.split(",") if x.strip()}) or [1, 2],
        compression=not a.no_compression, log_level=a.log_level, out=out, plot=not a.no_plot,
        update_doc=(not q and out == RESULTS.resolve()), baseline=not a.no_baseline,
        echo_compress=a.echo_compress, render=a.render, out_given=a.out.resolve() != RESULTS.resolve(), snapshot=a.snapshot,
    )

