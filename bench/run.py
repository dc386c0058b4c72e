"""``make bench``: every scenario against the gateway and the bare echo baseline.

    .venv/bin/python -m bench.run                      # the full run (about 15-25 minutes)
    .venv/bin/python -m bench.run --quick              # the smoke run (well under a minute)
    .venv/bin/python -m bench.run --scenarios mixed --stores memory --rate 2000 --repeat 5

Each scenario runs against a fresh ``gateway serve`` process per store
(``memory://``, and ``redis://`` on a private redis-server started here), and
the same load-generator step runs against ``bench.echo_server`` right after it,
at the same rate. Writes ``latest.json``, ``latency.png`` and ``README.md``
to ``bench/results/`` (or ``--out``). See the Benchmark section of README.md.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.config import write_bench_config
from bench.figures import fmt, ratio
from bench.proc_stats import machine_info, raise_nofile, tree_rss_kb
from bench.procs import (
    Proc,
    pick_texts,
    redis_flush,
    serve_has_workers,
    settle,
    snapshot,
    source_info,
    start_echo,
    start_gateway,
    start_redis,
    tail,
)
from bench.report import render, write_outputs
from bench.scenarios import build_row, error_row, scenario_spec, worker_summary, workload_text
from bench.settings import Settings, parse_args
from bench.steps import Progress, flat, run_step, step_timeout
from bench.targets import check_targets


class Bench:
    def __init__(self, st: Settings) -> None:
        self.st = st
        self.tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
        self.rows: list[dict[str, Any]] = []
        self.echo: Proc | None = None
        self.redis: Proc | None = None
        self.texts: dict[str, Any] = {}
        self.note = ""
        self.steps = 0
        self.source = ""
        self.echo_runs: dict[str, list[dict[str, Any]]] = {}
        self.capacity_echo: dict[str, Any] = {}
        self.active_pids: list[int] = []  # every server this run started: steps wait for them to go quiet
        # the fresh-text walk: where the next gateway step starts (reset with each new gateway process,
        # so no fresh text repeats within one), and where the last gateway step started (its echo twin
        # sends the same texts)
        self.fresh_pos = 0
        self.fresh_last = 0

    def plan(self) -> int:
        st = self.st
        per = 2 if st.baseline else 1
        n = 0
        for store in st.stores:
            first = not st.quick or store == st.stores[0]  # the smoke run reuses the first store's echo steps
            p = per if first else 1
            for s in st.scenarios:
                if s == "workers":
                    n += self.workers_steps() if store == "redis" else 0
                    continue
                n += (1 if s == "connections" else st.repeat) * p
                if s == "faq":
                    n += p + (len(st.sweep) * per if first else 0)
        return n

    def workers_steps(self) -> int:
        """Steps of the workers scenario: open loop and capacity per worker count (one worker: the faq row's)."""
        st = self.st
        measured = [n for n in st.workers if not (n == 1 and "faq" in st.scenarios)]
        return len(measured) * (st.repeat + 1)

    def reuse_echo(self, name: str, store: str) -> list[dict[str, Any]] | None:
        """The smoke run measures the echo baseline with the first store only and reuses it."""
        if self.st.quick and store != self.st.stores[0]:
            return self.echo_runs.get(name)
        return None

    def step(self, spec: dict[str, Any], label: str, prog: Progress, pids: dict[str, int]) -> dict[str, Any]:
        self.steps += 1
        if spec.get("target") == "gateway":
            self.fresh_last = self.fresh_pos
        spec = {**spec, "pids": pids, "tag": f"s{self.steps}", "fresh_seed": 1, "fresh_start": self.fresh_last}
        settle(self.active_pids or [p for p in pids.values() if p])
        t0 = time.monotonic()
        r = run_step(spec, self.tmp, prog, label, step_timeout(spec))
        r["wall_s"] = round(time.monotonic() - t0, 1)
        if spec.get("target") == "gateway":
            self.fresh_pos = max(self.fresh_pos, int(r.get("fresh_next") or 0))
        f = flat(r)
        extra = ""
        if r.get("connections"):
            c = r["connections"]
            extra = f" held {c['held_after_idle']}/{c['requested']} {fmt(c['rss_per_session_kb'])} KB/session"
        if f.get("redis_cpu_ms_per_msg") is not None:
            extra += f" redis {f['redis_cpu_ms_per_msg'] * 1000:.0f} µs/msg"
        if f.get("redis_cpu_ms_per_lifecycle") is not None:
            extra += f" {f['redis_cpu_ms_per_lifecycle'] * 1000:.0f} µs/lifecycle"
        prog.step_done(label, f"thru {f['throughput']:.0f}/s ack p50 {fmt(f['ack_p50_ms'], 2)} p99 "
                              f"{fmt(f['ack_p99_ms'])} ms answer p99 {fmt(f['answer_p99_ms'])} 1st "
                              f"{fmt(f['first_response_p99_ms'], 0)} cpu {fmt(f['cpu_ms_per_msg'], 3)} ms/msg"
                              + extra + f" [{r['wall_s']:.0f}s]")
        return f

    def run(self) -> list[dict[str, Any]]:
        st = self.st
        nofile = raise_nofile()  # inherited by the gateway, echo server and load generators
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        info = machine_info()
        print(f"gateway bench: {info['nproc']} CPUs ({info['cpu_model']}), Python {info['python']}, "
              f"open files {nofile}; scenarios {','.join(st.scenarios)}; stores {','.join(st.stores)}"
              f"{' (quick)' if st.quick else ''}", flush=True)
        if st.snapshot:
            st.src, st.commit = snapshot(st.snapshot, self.tmp / "src")
        self.source = source_info(st)
        print(f"  gateway under test: {self.source}", flush=True)
        probe_cfg = write_bench_config(self.tmp, st, "probe")
        self.texts = pick_texts(probe_cfg, st)
        self.note = self.texts["note"]
        print(f"  texts: {self.note}", flush=True)
        prog = Progress(self.plan())
        try:
            if st.baseline:
                self.echo = start_echo(self.tmp, st.echo_compress)
            for store in st.stores:
                self.run_store(store, prog)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        finally:
            if self.echo is not None:
                self.echo.stop()
            if self.redis is not None:
                self.redis.stop()
        check_targets(self.rows, st.quick)
        for r in self.rows:
            r["machine"] = info
        self.write(info, started)
        return self.rows

    def run_store(self, store: str, prog: Progress) -> None:
        st = self.st
        url = "memory://"
        if store == "redis":
            try:
                self.redis = start_redis(self.tmp)
            except (FileNotFoundError, RuntimeError, TimeoutError) as e:
                print(f"  redis: skipped: {e}", flush=True)
                for s in st.scenarios:
                    self.rows.append(error_row(s, store, scenario_spec(s, st, self.texts), st,
                                               "skipped", str(e)))
                    prog.done += (1 if s == "connections" else st.repeat) * (2 if st.baseline else 1)
                return
            url = f"redis://127.0.0.1:{self.redis.port}/0"  # type: ignore[attr-defined]
        gateway: Proc | None = None
        try:
            for name in st.scenarios:
                if name == "workers":  # several processes need a shared store: Redis only
                    if store == "redis":
                        if gateway is not None:
                            gateway.stop()
                            gateway = None
                        self.rows.append(self.run_workers(url, prog))
                    continue
                spec = scenario_spec(name, st, self.texts)
                first = not st.quick or store == st.stores[0]
                per = (2 if first else 1) if st.baseline else 1
                n_steps = ((1 if name == "connections" else st.repeat) + (1 if name == "faq" else 0)) * per
                n_steps += len(st.sweep) * (2 if st.baseline else 1) if (name == "faq" and first) else 0
                # a fresh gateway per scenario (one per store in the quick run)
                if gateway is not None and (not st.quick or not gateway.alive()):
                    gateway.stop()
                    gateway = None
                if gateway is None:
                    if self.redis is not None and store == "redis":
                        redis_flush(self.redis.port)  # type: ignore[attr-defined]
                    try:
                        gateway = start_gateway(self.tmp, st, url, f"{store}-{name}")
                        self.fresh_pos = 0
                    except RuntimeError as e:
                        print(f"  {name}/{store}: error: {e}", flush=True)
                        self.rows.append(error_row(name, store, spec, st, "error", str(e)))
                        prog.done += n_steps
                        continue
                try:
                    self.rows.append(self.run_scenario(name, store, spec, gateway, prog))
                except RuntimeError as e:
                    print(f"\n  {name}/{store}: error: {e}", flush=True)
                    self.rows.append(error_row(name, store, spec, st, "error", str(e)))
        finally:
            if gateway is not None:
                gateway.stop()

    def run_scenario(self, name: str, store: str, spec: dict[str, Any], gateway: Proc, prog: Progress
                     ) -> dict[str, Any]:
        st = self.st
        gw_url = f"ws://127.0.0.1:{gateway.port}"  # type: ignore[attr-defined]
        pids = {"server": gateway.pid}
        if store == "redis" and self.redis is not None:
            pids["redis"] = self.redis.pid
        echo_pids = {"server": self.echo.pid} if self.echo else {}
        echo_url = f"ws://127.0.0.1:{self.echo.port}" if self.echo else ""  # type: ignore[attr-defined]
        self.active_pids = [gateway.pid, *([self.echo.pid] if self.echo else []),
                            *([self.redis.pid] if self.redis is not None and store == "redis" else [])]
        reps = 1 if name == "connections" else st.repeat
        gw_runs: list[dict[str, Any]] = []
        echo_runs: list[dict[str, Any]] = []
        for i in range(reps):
            rep = f" {i + 1}/{reps}" if reps > 1 else ""
            gw_runs.append(self.step({**spec, "url": gw_url, "target": "gateway", "seed": i + 1},
                                     f"{name}/{store} gateway{rep}", prog, pids))
            if not gateway.alive():
                raise RuntimeError(f"the gateway died: {tail(gateway.log, 3)}")
            if self.echo is not None and self.reuse_echo(name, store) is None:
                echo_runs.append(self.step({**spec, "url": echo_url, "target": "echo", "seed": i + 1},
                                           f"{name}/{store} echo{rep}", prog, echo_pids))
        echo_runs = self.reuse_echo(name, store) or echo_runs
        self.echo_runs[name] = echo_runs
        row = build_row(name, store, spec, st, gw_runs, echo_runs)
        row["server_rss_kb_end"] = tree_rss_kb(gateway.pid)
        if name == "faq":
            self.faq_extras(row, spec, gw_url, echo_url, store, prog, pids, echo_pids)
        self.fresh_note(row)
        return row

    def fresh_note(self, row: dict[str, Any]) -> None:
        """How far the fresh-text walk went in this gateway process, and whether any text repeated."""
        nv = len(self.texts["questions"]) * len(self.texts.get("prefixes") or [""]) * len(
            self.texts.get("suffixes") or [""])
        row["fresh_texts"] = {"share": self.st.fresh_share, "walked": self.fresh_pos, "variants": nv,
                              "repeated": self.fresh_pos > nv}

    def run_workers(self, url: str, prog: Progress) -> dict[str, Any]:
        """The faq workload on the Redis store against ``gateway serve --workers N``, for each N of
        ``--workers``: open loop at ``--rate`` (the repetitions) and closed-loop capacity. The CPU of a
        gateway is its supervisor's and all its workers'. One worker is the faq/redis row's gateway
        when this run measured it (the same steps on the same kind of gateway)."""
        st = self.st
        spec = scenario_spec("faq", st, self.texts)
        assert self.redis is not None
        if not serve_has_workers(st):
            prog.done += self.workers_steps()
            return error_row("workers", "redis", spec, st, "skipped",
                             f"gateway serve has no --workers option in the tree under test ({self.source})")
        faq = next((r for r in self.rows if r["scenario"] == "faq" and r["store"] == "redis"
                    and r.get("status") == "ok"), None)
        compared: list[dict[str, Any]] = []
        rows: dict[int, dict[str, Any]] = {}
        for n in st.workers:
            if n == 1 and faq is not None:
                rows[n] = faq
                compared.append(worker_summary(n, faq, "the faq/redis row (same steps, one process)"))
                continue
            if n == 1 and "faq" in st.scenarios:  # faq/redis failed: its steps were counted
                compared.append({"workers": n, "status": "error", "source": "the faq/redis row failed"})
                continue
            redis_flush(self.redis.port)  # type: ignore[attr-defined]
            try:
                gw = start_gateway(self.tmp, st, url, f"redis-workers{n}", workers=n)
            except RuntimeError as e:
                print(f"  workers/redis {n}: error: {e}", flush=True)
                prog.done += st.repeat + 1
                compared.append({"workers": n, "status": "error", "source": str(e).replace("\n", " / ")})
                continue
            self.fresh_pos = 0
            try:
                gw_url = f"ws://127.0.0.1:{gw.port}"  # type: ignore[attr-defined]
                pids = {"server": gw.pid, "redis": self.redis.pid}
                self.active_pids = [gw.pid, self.redis.pid, *([self.echo.pid] if self.echo else [])]
                runs = []
                for i in range(st.repeat):
                    rep = f" {i + 1}/{st.repeat}" if st.repeat > 1 else ""
                    runs.append(self.step({**spec, "url": gw_url, "target": "gateway", "seed": i + 1},
                                          f"workers/redis {n} workers{rep}", prog, pids))
                    if not gw.alive():
                        raise RuntimeError(f"the gateway died: {tail(gw.log, 3)}")
                r = build_row("workers", "redis", spec, st, runs, [])
                cap = {**spec, "mode": "closed", "concurrency": st.capacity_concurrency,
                       "warmup": min(1.0, st.warmup), "duration": st.capacity_duration,
                       "customers": st.capacity_concurrency}
                g = self.step({**cap, "url": gw_url, "target": "gateway"}, f"workers/redis {n} workers capacity",
                              prog, pids)
                r["capacity"] = g["throughput"]
                r["capacity_ack_p99_ms"] = g["ack_p99_ms"]
                r["capacity_cpu_ms_per_msg"] = g["cpu_ms_per_msg"]
                r["capacity_redis_cpu_ms_per_msg"] = g["redis_cpu_ms_per_msg"]
                r["capacity_machine_cpu_busy"] = g["machine_cpu_busy"]
                self.fresh_note(r)
                rows[n] = r
                compared.append(worker_summary(n, r, "measured"))
            except RuntimeError as e:
                print(f"\n  workers/redis {n}: error: {e}", flush=True)
                compared.append({"workers": n, "status": "error", "source": str(e).replace("\n", " / ")})
            finally:
                gw.stop()
        if not rows:
            row = error_row("workers", "redis", spec, st, "error",
                            "; ".join(f"{c['workers']} workers: {c['source']}" for c in compared))
            row["workers_compared"] = compared
            return row
        top = rows[max(rows)]
        row = {k: v for k, v in top.items() if k not in ("sweep", "targets", "targets11", "ack_p99_vs_memory",
                                                        "ack_p99_vs_memory_sweep")}
        row.update({"scenario": "workers", "store": "redis", "status": "ok", "reason": "",
                    "workload": workload_text("workers", spec, st), "workers": max(rows),
                    "workers_compared": compared})
        for k in ("baseline_throughput", "baseline_ack_p50_ms", "baseline_ack_p99_ms", "baseline_cpu_ms_per_msg",
                  "ratio", "ack_p99_ratio", "cpu_ratio", "baseline_capacity", "baseline_capacity_cpu_ms_per_msg",
                  "capacity_ratio"):
            row.pop(k, None)  # no echo steps here: the faq rows hold the baseline
        row["baseline_runs"] = []
        one = rows.get(1)
        if one is not None and top is not one:
            row["capacity_gain"] = ratio(top.get("capacity"), one.get("capacity"), 2)
            row["throughput_gain"] = ratio(top.get("throughput"), one.get("throughput"), 2)
        return row

    def faq_extras(self, row: dict[str, Any], spec: dict[str, Any], gw_url: str, echo_url: str, store: str,
                   prog: Progress, pids: dict[str, int], echo_pids: dict[str, int]) -> None:
        """Closed-loop capacity (the 40 % target) and the rate sweep for the plot."""
        st = self.st
        cap = {**spec, "mode": "closed", "concurrency": st.capacity_concurrency, "warmup": min(1.0, st.warmup),
               "duration": st.capacity_duration, "customers": st.capacity_concurrency}
        g = self.step({**cap, "url": gw_url, "target": "gateway"}, f"faq/{store} capacity gateway", prog, pids)
        row["capacity"] = g["throughput"]
        row["capacity_ack_p99_ms"] = g["ack_p99_ms"]
        row["capacity_cpu_ms_per_msg"] = g["cpu_ms_per_msg"]
        row["capacity_redis_cpu_ms_per_msg"] = g["redis_cpu_ms_per_msg"]
        row["capacity_machine_cpu_busy"] = g["machine_cpu_busy"]
        if echo_url:
            e = self.capacity_echo if (st.quick and self.capacity_echo) else self.step(
                {**cap, "url": echo_url, "target": "echo"}, f"faq/{store} capacity echo", prog, echo_pids)
            self.capacity_echo = e
            row["baseline_capacity"] = e["throughput"]
            row["baseline_capacity_cpu_ms_per_msg"] = e["cpu_ms_per_msg"]
            row["capacity_ratio"] = ratio(row["capacity"], e["throughput"])
        sweep: list[dict[str, Any]] = []
        if st.quick and store != st.stores[0]:
            row["sweep"] = sweep  # the smoke run draws the first store's sweep only
            return
        for rate in st.sweep:
            pt = {**spec, "rate": rate, "duration": st.sweep_duration, "warmup": min(1.0, st.warmup),
                  "customers": min(st.customers, max(50, int(rate / 2)))}
            targets = [("gateway", gw_url, pids, f"gateway {store}://")]
            if echo_url:
                targets.append(("echo", echo_url, echo_pids, "echo baseline"))
            for tgt, url, p, label in targets:
                f = self.step({**pt, "url": url, "target": tgt}, f"faq/{store} sweep {rate:g}/s {tgt}", prog, p)
                sweep.append({"label": label, "store": store, "target": tgt, "rate": rate,
                              "throughput": f["throughput"], "ack_p50_ms": f["ack_p50_ms"],
                              "ack_p99_ms": f["ack_p99_ms"], "answer_p50_ms": f["answer_p50_ms"],
                              "answer_p99_ms": f["answer_p99_ms"], "cpu_ms_per_msg": f["cpu_ms_per_msg"],
                              "redis_cpu_ms_per_msg": f["redis_cpu_ms_per_msg"]})
        row["sweep"] = sweep

    def write(self, info: dict[str, Any], started: str) -> None:
        for r in self.rows:
            r["run"] = {"started": started, "quick": self.st.quick, "texts": self.note, "source": self.source,
                        "command": "python -m bench.run " + " ".join(sys.argv[1:])}
        write_outputs(self.rows, self.st.out, self.st.plot, self.st.update_doc)
        shutil.rmtree(self.tmp, ignore_errors=True)



def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # run the cleanups: stop the gateway, echo server, redis-server


def main(argv: list[str] | None = None) -> int:
    st = parse_args(argv)
    if st.render is not None:
        return render(st.render, st.out if st.out_given else None)
    signal.signal(signal.SIGTERM, _terminated)
    bench = Bench(st)
    try:
        rows = bench.run()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0 if any(r.get("status") == "ok" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
