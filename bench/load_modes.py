"""The load generator's modes: open loop (scheduled arrivals), closed loop (back to back), connections
(idle sessions, then a burst), and the result of a step."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable
from typing import Any

from websockets.asyncio.client import ClientConnection

from bench.load_clients import Clients, perf
from bench.load_model import Customer, Req, summary
from bench.proc_stats import CpuWindow, proc_rss_kb, tree_rss_kb


class LoadGen(Clients):
    """One step: connect, run the mode, report; ``bench.loadgen`` runs one per process."""

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

