"""The load generator's websocket side: its state, the customer and agent sessions, the frames they receive,
the messages customers send and which text each one carries."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import sys
import time
from collections import deque
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench.load_model import Customer, Req
from bench.proc_stats import CpuWindow

perf = time.perf_counter
loads = orjson.loads


class Clients:
    """State and sessions of one load-generator step; ``bench.load_modes.LoadGen`` drives them."""

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
