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
import contextlib
import math
import os
import random
import resource
import sys
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

perf = time.perf_counter
loads = orjson.loads

# ------------------------------------------------------------------ /proc readings

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds (from /proc/<pid>/stat), None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _children() -> dict[int, list[int]]:
    """Every process's children, from the ppid field of /proc/<pid>/stat."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        ppid = int(data[data.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def proc_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (``gateway serve --workers N``: the supervisor and its workers)."""
    kids = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def tree_cpu_s(pid: int) -> float | None:
    """utime + stime of ``pid`` and its descendants, in seconds; None if ``pid`` is unreadable."""
    own = proc_cpu_s(pid)
    if own is None:
        return None
    return own + sum(proc_cpu_s(p) or 0.0 for p in proc_tree(pid)[1:])


def tree_rss_kb(pid: int) -> int | None:
    """RSS of ``pid`` and its descendants (KB); None if ``pid`` is unreadable."""
    own = proc_rss_kb(pid)
    if own is None:
        return None
    return own + sum(proc_rss_kb(p) or 0 for p in proc_tree(pid)[1:])


def proc_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    try:
        with open("/proc/stat", "rb") as f:
            parts = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return total - idle, total


def self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class CpuWindow:
    """CPU seconds used by the server (and redis, and this generator) between two marks; a server's
    children count as the server (several workers on one port)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {k: v for k, v in pids.items() if v}
        self.start: dict[str, float | None] = {}
        self.end: dict[str, float | None] = {}
        self.m0 = (0, 0)
        self.m1 = (0, 0)

    def _read(self) -> dict[str, float | None]:
        d: dict[str, float | None] = {k: tree_cpu_s(p) for k, p in self.pids.items()}
        d["generator"] = self_cpu_s()
        return d

    def begin(self) -> None:
        self.start = self._read()
        self.m0 = machine_jiffies()

    def finish(self) -> None:
        self.end = self._read()
        self.m1 = machine_jiffies()

    def used_ms(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for k, v0 in self.start.items():
            v1 = self.end.get(k)
            out[k] = None if v0 is None or v1 is None else round((v1 - v0) * 1000.0, 1)
        return out

    def machine_busy(self) -> float | None:
        busy = self.m1[0] - self.m0[0]
        total = self.m1[1] - self.m0[1]
        return round(busy / total, 3) if total > 0 else None

    def others_busy(self) -> float | None:
        """Share of the machine's CPU used by processes outside this step (server, redis, this generator):
        on a shared machine, what the neighbours took."""
        busy = self.m1[0] - self.m0[0]
        total = self.m1[1] - self.m0[1]
        if total <= 0:
            return None
        ours = sum(v for v in self.used_ms().values() if v is not None) / 1000.0 * CLK_TCK
        return round(max(0.0, busy - ours) / total, 3)


# ------------------------------------------------------------------ statistics


def summary(values_s: Iterable[float]) -> dict[str, float | int | None]:
    """Percentiles (nearest rank) of latencies given in seconds, reported in ms."""
    xs = sorted(values_s)
    n = len(xs)
    out: dict[str, float | int | None] = {"n": n}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
        out[name] = round(xs[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))] * 1000.0, 3) if n else None
    out["max"] = round(xs[-1] * 1000.0, 3) if n else None
    out["mean"] = round(sum(xs) / n * 1000.0, 3) if n else None
    return out


# ------------------------------------------------------------------ model


class Req:
    """One customer message and what came back for it (perf_counter seconds)."""

    __slots__ = ("error", "kind", "measured", "qpos", "t_ack", "t_answer", "t_assigned", "t_closed", "t_first",
                 "t_notice", "t_sched", "t_sent")

    def __init__(self, kind: str, t_sched: float, measured: bool) -> None:
        self.kind = kind  # "faq" | "handoff"
        self.t_sched = t_sched
        self.measured = measured
        self.t_sent = 0.0
        self.t_ack = 0.0
        self.t_answer = 0.0  # bot answer (faq)
        self.t_notice = 0.0  # the system "a person will take over" entry (handoff)
        self.t_assigned = 0.0  # the ``assigned`` log entry (handoff)
        self.t_first = 0.0  # first agent message (handoff)
        self.t_closed = 0.0  # the conversation closed after a handoff: the hand-off lifecycle is over
        self.error = ""
        self.qpos = 0  # highest queue position seen

    @property
    def t_final(self) -> float:
        """When the customer had a real response: the bot's answer or the agent's first message."""
        return self.t_answer if self.kind == "faq" else self.t_first

    @property
    def t_done(self) -> float:
        """When the message counts as handled for throughput: answered (faq) or acknowledged (handoff)."""
        return self.t_answer if self.kind == "faq" else self.t_ack

    @property
    def settled(self) -> bool:
        return bool(self.error) or self.t_final > 0.0


class Customer:
    __slots__ = ("conv", "fifo", "handoff", "i", "idle", "pending", "ws")

    def __init__(self, i: int, ws: ClientConnection, conv: str) -> None:
        self.i = i
        self.ws = ws
        self.conv = conv
        self.pending: dict[str, Req] = {}  # frame id -> waiting for its ack
        self.fifo: deque[Req] = deque()  # faq messages waiting for the bot's answer
        self.handoff: Req | None = None  # handed off, until the conversation closes
        self.idle = True

    @property
    def busy(self) -> bool:
        return bool(self.fifo) or self.handoff is not None


# ------------------------------------------------------------------ generator


class LoadGen:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.url: str = spec["url"].rstrip("/")
        self.echo = spec.get("target") == "echo"
        self.mode: str = spec.get("mode", "open")
        self.rate = float(spec.get("rate", 100))
        self.arrival = spec.get("arrival", "poisson")
        self.duration = float(spec.get("duration", 10))
        self.warmup = float(spec.get("warmup", 2))
        self.drain = float(spec.get("drain", 35))
        self.handoff_share = float(spec.get("handoff_share", 0.0))
        self.questions: list[str] = list(spec.get("faq_questions") or ["什么时候发货"])
        self.prefixes: list[str] = list(spec.get("prefixes") or [""])
        self.suffixes: list[str] = list(spec.get("suffixes") or [""])
        self.fresh_share = float(spec.get("fresh_share", 0.0))
        self.variants = len(self.questions) * len(self.prefixes) * len(self.suffixes)
        self._stride = self._coprime_stride(self.variants)
        # one walk per run (``fresh_seed``); each step goes on from ``fresh_start``, where the runner's last
        # step against the same gateway process stopped, so no fresh text repeats within that process
        self._vbase = random.Random(int(spec.get("fresh_seed", 1)) * 7919).randrange(max(1, self.variants))
        self.fresh_next = int(spec.get("fresh_start", 0))
        self.fresh_sent = 0
        self.common_sent = 0  # questions sent as one of the common texts (repeats)
        self.handoff_texts: list[str] = list(spec.get("handoff_texts") or ["转人工"])
        self.agent_specs: list[dict[str, str]] = [] if self.echo else list(spec.get("agents") or [])
        self.think_s = float(spec.get("think_s", 0.2))
        self.hold_s = float(spec.get("hold_s", 0.3))
        self.compression = "deflate" if spec.get("compression", True) else None
        self.connect_concurrency = int(spec.get("connect_concurrency", 100))
        self.tag = spec.get("tag") or f"{os.getpid()}"
        self.rng = random.Random(spec.get("seed", 1))
        self.cpu = CpuWindow(spec.get("pids") or {})
        self.server_pid = int((spec.get("pids") or {}).get("server") or 0)

        self.customers: list[Customer] = []
        self.idle: deque[Customer] = deque()
        self.reqs: list[Req] = []
        self.errors: dict[str, int] = {}
        self.agent_errors: dict[str, int] = {}
        self.unexpected: dict[str, int] = {}
        self.connect_lat: list[float] = []
        self.connect_failures: dict[str, int] = {}
        self.send_lag: list[float] = []
        self.skipped = 0  # arrivals with no customer free to send them
        self.disconnects = 0
        self.disconnect_codes: dict[str, int] = {}
        self.agents_closed = 0
        self.agent_replies = 0
        self.seq = 0
        self.running = False  # closed loop: keep sending
        self.m0 = 0.0  # measurement window (perf_counter)
        self.m1 = 0.0
        self.phase = "connect"
        self.fraction = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.agents: list[ClientConnection] = []

    # ------------------------------------------------------------ plumbing
    def spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def count(self, d: dict[str, int], key: str) -> None:
        d[key] = d.get(key, 0) + 1

    async def _connect(self, path: str) -> ClientConnection:
        return await connect(
            self.url + path, compression=self.compression, ping_interval=None, proxy=None,
            open_timeout=60, close_timeout=2, max_size=2**22, user_agent_header="gateway-bench",
        )

    async def progress_loop(self) -> None:
        while True:
            done = sum(1 for r in self.reqs if r.t_done)
            line = {"progress": round(min(1.0, self.fraction), 3), "phase": self.phase,
                    "sessions": len(self.customers), "sent": len(self.reqs), "done": done}
            sys.stdout.write(orjson.dumps(line).decode() + "\n")
            sys.stdout.flush()
            await asyncio.sleep(0.5)

    # ------------------------------------------------------------ agents
    async def open_agents(self) -> None:
        for a in self.agent_specs:
            ws = await self._connect("/ws/agent")
            await ws.send(orjson.dumps({"type": "hello", "agent": a["id"], "token": a["token"]}).decode())
            raw = await asyncio.wait_for(ws.recv(), 30)
            f = loads(raw)
            if f.get("type") != "welcome":
                raise RuntimeError(f"agent {a['id']} was refused: {f}")
            self.agents.append(ws)
            for conv in f.get("conversations") or []:  # left over from an earlier step
                self.spawn(self.agent_work(ws, conv["id"]))
            self.spawn(self.agent_reader(ws))

    async def agent_reader(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                f = loads(raw)
                t = f.get("type")
                if t == "assigned":
                    self.spawn(self.agent_work(ws, f["conversation"]["id"]))
                elif t == "error":
                    self.count(self.agent_errors, str(f.get("code")))

    async def agent_work(self, ws: ClientConnection, conv: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            if self.think_s > 0:
                await asyncio.sleep(self.think_s)
            self.seq += 1
            await ws.send(orjson.dumps({"type": "message", "id": f"r{self.seq}", "conversation": conv,
                                        "text": "您好，我是人工客服，请问有什么可以帮您？"}).decode())
            self.agent_replies += 1
            if self.hold_s > 0:
                await asyncio.sleep(self.hold_s)
            self.seq += 1
            await ws.send(orjson.dumps({"type": "close", "id": f"k{self.seq}", "conversation": conv,
                                        "resolution": "resolved"}).decode())
            self.agents_closed += 1

    # ------------------------------------------------------------ customers
    async def open_customers(self, n: int, frac0: float, frac1: float) -> None:
        sem = asyncio.Semaphore(self.connect_concurrency)
        done = 0

        async def one(i: int) -> None:
            nonlocal done
            async with sem:
                t = perf()
                try:
                    ws = await self._connect("/ws/customer")
                    hello = {"type": "hello", "customer": {"id": f"b-{self.tag}-{i}", "name": "压测顾客"},
                             "channel": "web"}
                    await ws.send(orjson.dumps(hello).decode())
                    f = loads(await asyncio.wait_for(ws.recv(), 60))
                except (OSError, TimeoutError, WebSocketException) as e:
                    self.count(self.connect_failures, type(e).__name__)
                    return
                self.connect_lat.append(perf() - t)
                c = Customer(i, ws, str(f.get("conversation", "")))
                self.customers.append(c)
                self.idle.append(c)
                self.spawn(self.reader(c))
                done += 1
                self.fraction = frac0 + (frac1 - frac0) * done / n

        await asyncio.gather(*(one(i) for i in range(n)))

    async def reader(self, c: Customer) -> None:
        try:
            async for raw in c.ws:
                self.on_frame(c, loads(raw), perf())
        except ConnectionClosed:
            pass
        finally:
            if self.running or self.phase in ("run", "burst", "drain", "idle"):
                self.disconnects += 1
                code, reason = c.ws.close_code, c.ws.close_reason
                self.count(self.disconnect_codes, f"{code} {reason or ''}".strip() if code else "no close frame")
            for r in [*c.pending.values(), *c.fifo, *([c.handoff] if c.handoff else [])]:
                if not r.settled:
                    r.error = r.error or "disconnected"

    def finished(self, c: Customer) -> None:
        """A customer has nothing outstanding: free for the next arrival (or next turn, closed loop)."""
        if c.busy or c.pending:
            return
        if self.mode == "closed":
            if self.running:
                self.spawn(self.send(c, "faq", perf(), self.m0 <= perf() < self.m1 if self.m1 else False))
            return
        if not c.idle:
            c.idle = True
            self.idle.append(c)

    def on_frame(self, c: Customer, f: dict[str, Any], t: float) -> None:
        typ = f.get("type")
        if self.echo:
            r = c.pending.pop(str(f.get("id")), None)
            if r is not None:
                r.t_ack = r.t_answer = r.t_first = t
                if c.fifo and c.fifo[0] is r:
                    c.fifo.popleft()
                if c.handoff is r:
                    c.handoff = None
                self.finished(c)
            return
        if typ == "ack":
            r = c.pending.pop(str(f.get("id")), None)
            if r is not None:
                r.t_ack = t
        elif typ == "message":
            who = f.get("from")
            if who == "bot":
                if c.fifo:
                    c.fifo.popleft().t_answer = t
                    self.finished(c)
                else:
                    self.count(self.unexpected, "bot_message_without_question")
            elif who == "system":
                h = c.handoff
                if h is None and c.fifo:  # the bot handed a question over instead of answering it
                    h = c.fifo.popleft()
                    h.kind = "handoff"
                    c.handoff = h
                    self.count(self.unexpected, "faq_question_handed_off")
                if h is not None and not h.t_notice:
                    h.t_notice = t
            elif who == "agent":
                h = c.handoff
                if h is not None and not h.t_first:
                    h.t_first = t
        elif typ == "assigned":
            if c.handoff is not None and not c.handoff.t_assigned:
                c.handoff.t_assigned = t
        elif typ == "queued":
            if c.handoff is not None:
                c.handoff.qpos = max(c.handoff.qpos, int(f.get("position") or 0))
        elif typ == "closed":
            h = c.handoff
            c.handoff = None
            if h is not None:
                h.t_closed = t
                if not h.t_first:
                    h.error = h.error or f"closed:{f.get('reason')}"
            self.finished(c)
        elif typ == "welcome":
            c.conv = str(f.get("conversation", ""))
        elif typ == "error":
            code = str(f.get("code"))
            self.count(self.errors, code)
            r = c.pending.pop(str(f.get("id")), None)
            if r is not None:
                r.error = code
                if r in c.fifo:
                    c.fifo.remove(r)
                if c.handoff is r:
                    c.handoff = None
                self.finished(c)

    async def send(self, c: Customer, kind: str, t_sched: float, measured: bool) -> None:
        r = Req(kind, t_sched, measured)
        self.reqs.append(r)
        self.seq += 1
        fid = f"m{self.seq}"
        c.pending[fid] = r
        c.idle = False
        if kind == "faq":
            c.fifo.append(r)
            text = self.question()
        else:
            c.handoff = r
            text = self.handoff_texts[self.seq % len(self.handoff_texts)]
        now = perf()
        self.send_lag.append(now - t_sched)
        try:
            await c.ws.send(orjson.dumps({"type": "message", "id": fid, "text": text}).decode())
        except ConnectionClosed:
            r.error = "disconnected"
            c.pending.pop(fid, None)
            return
        r.t_sent = now

    @staticmethod
    def _coprime_stride(n: int) -> int:
        stride = max(1, int(n * 0.618)) | 1
        while n > 1 and math.gcd(stride, n) != 1:
            stride += 2
        return stride

    def question(self) -> str:
        """A repeated common text, or (``fresh_share`` of the time) the next fresh variant.

        Fresh variants walk a permutation of prefix x question x suffix (step k of the walk is
        ``base + k * stride``), so none repeats before all of them were sent; the bare questions
        themselves are skipped there. bench/bench_faq.py ``fresh_variants`` walks the same way."""
        nq = len(self.questions)
        if self.variants > nq and self.rng.random() < self.fresh_share:
            while True:
                self.fresh_next += 1
                pos = (self._vbase + self.fresh_next * self._stride) % self.variants
                q, rest = pos % nq, pos // nq
                p, x = rest % len(self.prefixes), rest // len(self.prefixes)
                if self.prefixes[p] or self.suffixes[x]:
                    self.fresh_sent += 1
                    return self.prefixes[p] + self.questions[q] + self.suffixes[x]
        self.common_sent += 1
        return self.questions[self.seq % nq]

    def pick(self, kind: str) -> Customer | None:
        while self.idle:
            c = self.idle.popleft()
            c.idle = False
            if not c.busy and not c.pending:
                return c
        # nobody idle: a faq question may queue behind another one; a handoff needs a fresh customer
        for _ in range(32):
            c = self.customers[self.rng.randrange(len(self.customers))] if self.customers else None
            if c is not None and c.handoff is None and (kind == "faq" or not c.fifo):
                return c
        return None

    # ------------------------------------------------------------ arrivals
    async def arrivals(self, t0: float, end: float, n_max: int | None = None,
                       customers: list[Customer] | None = None) -> None:
        """Open loop: schedule arrivals from ``t0`` at ``self.rate`` until ``end`` (or ``n_max`` of them)."""
        next_t = t0
        n = 0
        span = max(1e-9, end - t0)
        while next_t < end and (n_max is None or n < n_max):
            now = perf()
            if next_t > now:
                await asyncio.sleep(next_t - now)
                continue
            while next_t <= now and next_t < end and (n_max is None or n < n_max):
                kind = "handoff" if self.handoff_share and self.rng.random() < self.handoff_share else "faq"
                c = customers[n] if customers is not None else self.pick(kind)
                if c is None:
                    self.skipped += 1
                else:
                    await self.send(c, kind, next_t, self.m0 <= next_t < self.m1)
                n += 1
                gap = self.rng.expovariate(self.rate) if self.arrival == "poisson" else 1.0 / self.rate
                next_t += gap
            self.fraction = self._f_run0 + (self._f_run1 - self._f_run0) * min(1.0, (now - t0) / span)

    _f_run0 = 0.15
    _f_run1 = 0.85

    async def wait_settled(self, timeout: float, f0: float, f1: float) -> None:
        end = perf() + timeout
        total = max(1, len(self.reqs))
        while perf() < end:
            left = sum(1 for r in self.reqs if not r.settled)
            self.fraction = f0 + (f1 - f0) * (1 - left / total)
            if left == 0:
                return
            await asyncio.sleep(0.05)

    async def close_all(self) -> None:
        self.phase = "close"
        sem = asyncio.Semaphore(500)

        async def one(ws: ClientConnection) -> None:
            async with sem:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 5)

        await asyncio.gather(*(one(c.ws) for c in self.customers), *(one(ws) for ws in self.agents))

    # ------------------------------------------------------------ modes
    async def run(self) -> dict[str, Any]:
        prog = asyncio.get_running_loop().create_task(self.progress_loop())
        try:
            if self.mode == "connections":
                return await self.run_connections()
            return await self.run_load()
        finally:
            prog.cancel()
            self.fraction = 1.0

    async def run_load(self) -> dict[str, Any]:
        n = int(self.spec.get("concurrency" if self.mode == "closed" else "customers", 100))
        if self.agent_specs and (self.handoff_share > 0 or self.mode == "open"):
            await self.open_agents()
        await self.open_customers(n, 0.0, 0.15)
        if not self.customers:
            raise RuntimeError(f"no customer could connect: {self.connect_failures}")
        self.phase = "run"
        t0 = perf() + 0.02
        self.m0, self.m1 = t0 + self.warmup, t0 + self.warmup + self.duration
        self.spawn(self._mark_window())
        if self.mode == "closed":
            self.running = True
            for c in list(self.customers):
                self.idle.clear()
                c.idle = False
                self.spawn(self.send(c, "faq", perf(), False))
            while perf() < self.m1:
                self.fraction = 0.15 + 0.7 * min(1.0, (perf() - t0) / (self.m1 - t0))
                await asyncio.sleep(0.1)
            self.running = False
        else:
            await self.arrivals(t0, self.m1)
        self.phase = "drain"
        await self.wait_settled(self.drain, 0.85, 0.98)
        if self.handoff_share and self.agents:
            await asyncio.sleep(self.hold_s + 0.3)  # let agents close what they hold
        result = self.report()
        await self.close_all()
        return result

    async def _mark_window(self) -> None:
        await asyncio.sleep(max(0.0, self.m0 - perf()))
        self.cpu.begin()
        await asyncio.sleep(max(0.0, self.m1 - perf()))
        self.cpu.finish()

    async def run_connections(self) -> dict[str, Any]:
        sessions = int(self.spec.get("sessions", 10000))
        idle_s = float(self.spec.get("idle_s", 5))
        burst_rate = float(self.spec.get("burst_rate", sessions))
        pid = self.server_pid
        rss0 = tree_rss_kb(pid) if pid else None
        gen_rss0 = proc_rss_kb(os.getpid())
        conn_cpu = CpuWindow(self.spec.get("pids") or {})
        conn_cpu.begin()
        t_c0 = perf()
        await self.open_customers(sessions, 0.0, 0.6)
        t_c1 = perf()
        conn_cpu.finish()
        connected = len(self.customers)
        self.phase = "idle"
        await asyncio.sleep(1.0)
        rss1 = tree_rss_kb(pid) if pid else None
        gen_rss1 = proc_rss_kb(os.getpid())
        t_idle = perf()
        while perf() < t_idle + idle_s:
            self.fraction = 0.6 + 0.1 * (perf() - t_idle) / max(idle_s, 1e-9)
            await asyncio.sleep(0.1)
        held = sum(1 for c in self.customers if c.ws.close_code is None)
        rss_idle = tree_rss_kb(pid) if pid else None
        # burst: one message per session, open loop at burst_rate
        self.phase = "burst"
        self.rate = burst_rate
        self.arrival = "fixed"
        order = list(self.customers)
        self.rng.shuffle(order)
        for c in order:
            c.idle = False
        self.idle.clear()
        t0 = perf() + 0.02
        span = len(order) / burst_rate
        self.m0, self.m1 = t0, t0 + span + 1e-6
        self.cpu.begin()
        self._f_run0, self._f_run1 = 0.7, 0.85
        await self.arrivals(t0, self.m1, n_max=len(order), customers=order)
        self.phase = "drain"
        await self.wait_settled(self.drain, 0.85, 0.98)
        t_end = max([r.t_done for r in self.reqs if r.t_done] or [perf()])
        self.cpu.finish()
        rss2 = tree_rss_kb(pid) if pid else None
        result = self.report(window=(t0, t_end))
        per_session = ((rss1 - rss0) / connected) if (rss0 is not None and rss1 is not None and connected) else None
        conn_used = conn_cpu.used_ms()
        result["connections"] = {
            "requested": sessions,
            "connected": connected,
            "held_after_idle": held,
            "failures": self.connect_failures,
            "connect_s": round(t_c1 - t_c0, 3),
            "connect_rate": round(connected / max(t_c1 - t_c0, 1e-9), 1),
            "handshake": summary(self.connect_lat),
            "server_rss_kb": {"before": rss0, "connected": rss1, "after_idle": rss_idle, "after_burst": rss2},
            "rss_per_session_kb": round(per_session, 2) if per_session is not None else None,
            "generator_rss_per_session_kb": (round((gen_rss1 - gen_rss0) / connected, 2)
                                             if gen_rss0 and gen_rss1 and connected else None),
            "server_cpu_ms_per_session": (round(conn_used["server"] / connected, 3)
                                          if conn_used.get("server") is not None and connected else None),
            "idle_s": idle_s,
            "burst_rate": burst_rate,
            "burst_s": round(t_end - t0, 3),
        }
        await self.close_all()
        return result

    # ------------------------------------------------------------ results
    def report(self, window: tuple[float, float] | None = None) -> dict[str, Any]:
        w0, w1 = window or (self.m0, self.m1)
        span = max(1e-9, w1 - w0)
        measured = [r for r in self.reqs if r.measured] if window is None else list(self.reqs)
        faq = [r for r in measured if r.kind == "faq"]
        hand = [r for r in measured if r.kind == "handoff"]

        def lat(rs: Iterable[Req], attr: str, base: str = "t_sched") -> list[float]:
            out = []
            for r in rs:
                v = getattr(r, attr)
                b = getattr(r, base)
                if v and b:
                    out.append(v - b)
            return out

        done_in_window = sum(1 for r in self.reqs if r.t_done and w0 <= r.t_done < w1)
        # hand-off lifecycles (request, agent reply, close) that ended in the window
        lifecycles = sum(1 for r in self.reqs if r.kind == "handoff" and r.t_first and w0 <= r.t_closed < w1)
        answers_in_window = sum(1 for r in self.reqs if r.kind == "faq" and r.t_answer and w0 <= r.t_answer < w1)
        within = sum(1 for r in measured if r.t_final and not r.error and r.t_final - r.t_sched <= 30.0)
        used = self.cpu.used_ms()
        n_msgs = len(measured)
        # CPU is divided by the messages the server *processed* in the window (acks received in it),
        # not by those offered: a server that falls behind does not look cheaper per message.
        acked_in_window = sum(1 for r in self.reqs if r.t_ack and w0 <= r.t_ack < w1)

        def per_msg(key: str) -> float | None:
            v = used.get(key)
            return round(v / acked_in_window, 4) if v is not None and acked_in_window else None

        def per_lifecycle(key: str) -> float | None:
            v = used.get(key)
            return round(v / lifecycles, 4) if v is not None and lifecycles else None

        errs: dict[str, int] = {}
        for r in measured:
            if r.error:
                errs[r.error] = errs.get(r.error, 0) + 1
        return {
            "target": "echo" if self.echo else "gateway",
            "mode": self.mode,
            "offered_rate": self.rate if self.mode != "closed" else None,
            "window_s": round(span, 3),
            "customers": len(self.customers),
            "sent": n_msgs,
            "sent_total": len(self.reqs),
            "acked_in_window": acked_in_window,
            "faq_sent": len(faq),
            "fresh_sent": self.fresh_sent,
            "fresh_next": self.fresh_next,
            "common_sent": self.common_sent,
            "fresh_variants": self.variants,
            "handoff_sent": len(hand),
            "skipped": self.skipped,
            "acked": sum(1 for r in measured if r.t_ack),
            "answered": sum(1 for r in faq if r.t_answer),
            "first_responses": sum(1 for r in hand if r.t_first),
            "failed": errs,
            "errors": self.errors,
            "agent_errors": self.agent_errors,
            "unexpected": self.unexpected,
            "disconnects": self.disconnects,
            "disconnect_codes": self.disconnect_codes,
            "agent_replies": self.agent_replies,
            "agent_closes": self.agents_closed,
            "throughput": round(done_in_window / span, 1),
            "answer_throughput": round(answers_in_window / span, 1),
            "ack": summary(lat(measured, "t_ack")),
            "answer": summary(lat(faq, "t_answer")),
            "first_response": summary(lat(hand, "t_first")),
            "assign": summary(lat(hand, "t_assigned")),
            "queue_wait": summary(lat(hand, "t_assigned", "t_notice")),
            "max_queue_position": max((r.qpos for r in hand), default=0),
            "within_30s": round(within / n_msgs, 5) if n_msgs else None,
            "send_lag": summary(self.send_lag),
            "cpu_ms": used,
            "cpu_ms_per_msg": per_msg("server"),
            "redis_cpu_ms_per_msg": per_msg("redis"),
            "lifecycles_in_window": lifecycles,
            "cpu_ms_per_lifecycle": per_lifecycle("server") if hand else None,
            "redis_cpu_ms_per_lifecycle": per_lifecycle("redis") if hand else None,
            "generator_cpu_ms_per_msg": per_msg("generator"),
            "machine_cpu_busy": self.cpu.machine_busy(),
            "others_cpu_busy": self.cpu.others_busy(),
            "server_rss_kb": tree_rss_kb(self.server_pid) if self.server_pid else None,
        }


def raise_nofile(want: int = 1 << 20) -> int:
    """Raise the soft open-files limit as far as the hard limit allows; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return int(soft)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return int(soft)


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
