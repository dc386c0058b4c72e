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

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import raise_nofile, tree_cpu_s, tree_rss_kb

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "README.md"  # its Benchmark section holds the latest results
PY = sys.executable
SCENARIOS = ("faq", "handoff", "mixed", "connections", "workers")
STORES = ("memory", "redis")


# ------------------------------------------------------------------ small helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor() or "unknown",
        "memory_gb": round(mem_kb / 1024 / 1024, 1) if mem_kb else None,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "hostname": platform.node(),
    }


def settle(pids: list[int], busy_below: float = 0.1, timeout: float = 90.0) -> float:
    """Wait until these processes use less than ``busy_below`` of a CPU (a backlog from the last step
    is worked off, closed sockets are cleaned up), so one step does not eat into the next. Returns the wait."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        before = [tree_cpu_s(p) or 0.0 for p in pids]
        time.sleep(0.3)
        after = [tree_cpu_s(p) or 0.0 for p in pids]
        if sum(b - a for a, b in zip(before, after, strict=True)) / 0.3 < busy_below:
            break
    return time.monotonic() - t0


def median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


def ratio(a: float | None, b: float | None, nd: int = 3) -> float | None:
    return round(a / b, nd) if a is not None and b else None


# ------------------------------------------------------------------ settings


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


# ------------------------------------------------------------------ processes


def bench_agents(n: int, capacity: int) -> list[dict[str, Any]]:
    return [{"id": f"b{i}", "name": f"压测客服{i}", "skills": ["presale", "aftersale", "logistics"],
             "capacity": capacity, "token": f"bench-token-{i}"} for i in range(1, n + 1)]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_dumps(d: dict[str, Any]) -> str:
    """Enough TOML for a gateway config: scalars, tables (nested ones inline), arrays of tables."""
    lines: list[str] = []
    tables = {k: v for k, v in d.items() if isinstance(v, dict)}
    arrays = {k: v for k, v in d.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)}
    lines += [f"{k} = {_toml_value(v)}" for k, v in d.items() if k not in tables and k not in arrays]
    for k, v in tables.items():
        lines.append(f"\n[{k}]")
        lines += [f"{json.dumps(kk)} = {_toml_value(vv)}" for kk, vv in v.items()]
    for k, items in arrays.items():
        for item in items:
            lines.append(f"\n[[{k}]]")
            lines += [f"{json.dumps(kk)} = {_toml_value(vv)}" for kk, vv in item.items()]
    return "\n".join(lines) + "\n"


def write_bench_config(tmp: Path, st: Settings, namespace: str) -> Path:
    """The demo config of the tree under test, with what a load test needs (README.md, Benchmark)."""
    src = st.src
    raw = tomllib.loads((src / "configs" / "gateway.toml").read_text(encoding="utf-8"))
    faq = raw.get("bot", {}).get("faq", "faq.toml")
    overrides = {
        "store": {"url": "memory://", "namespace": namespace},
        # the demo allows 10 messages / 10 s per connection; the bench sends far more per socket
        "limits": {"customer_messages": 1_000_000, "customer_window_s": 1, "agent_messages": 1_000_000,
                   "agent_window_s": 1, "hello_timeout_s": 60},
        "routing": {"agent_grace_s": 0},
        "texts": {"greeting": ""},
        "bot": {"faq": str((src / "configs" / faq).resolve())},
        "agents": bench_agents(st.agents, st.capacity),
    }
    path = tmp / f"gateway-{namespace}-{time.monotonic_ns()}.toml"
    path.write_text(toml_dumps(_merge(raw, overrides)), encoding="utf-8")
    return path


def gateway_env(st: Settings) -> dict[str, str]:
    """Run the gateway of the tree under test: a snapshot goes first on PYTHONPATH."""
    env = dict(os.environ)
    if st.src != ROOT:
        env["PYTHONPATH"] = str(st.src) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def snapshot(ref: str, dest: Path) -> tuple[Path, str]:
    """``git archive REF`` into ``dest``: the gateway as committed, whatever others are editing."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], check=True,
                            capture_output=True, text=True).stdout.strip()
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", ref], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {ref} failed")
    return dest, commit


def source_info(st: Settings) -> str:
    if st.snapshot:
        return f"git {st.snapshot} ({st.commit}), a clean snapshot"
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "gateway", "configs"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "working tree"
    return f"working tree at {commit}" + (" with uncommitted changes to gateway/ or configs/" if dirty else "")


class Proc:
    """A child process with its log file."""

    def __init__(self, name: str, cmd: list[str], log: Path, cwd: Path = ROOT,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        with open(log, "wb") as f:
            self.p = subprocess.Popen(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
                                      env=env)

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if self.p.poll() is not None:
            return
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.p.pid, signal.SIGKILL)  # its own session: workers included
            self.p.kill()
            self.p.wait(5)


def serve_has_workers(st: Settings) -> bool:
    """Whether ``gateway serve`` of the tree under test knows ``--workers`` (its CLI source says so)."""
    try:
        return '"--workers"' in (st.src / "gateway" / "cli.py").read_text(encoding="utf-8")
    except OSError:
        return False


def start_gateway(tmp: Path, st: Settings, store_url: str, tag: str, workers: int = 1) -> Proc:
    """``gateway serve`` with ``workers`` processes (passed explicitly where the tree knows ``--workers``:
    its default on Redis is one per CPU, and every scenario but ``workers`` measures one process)."""
    cfg = write_bench_config(tmp, st, f"bench-{tag}")
    port = free_port()
    cmd = [PY, "-m", "gateway", "serve", "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
           "--store", store_url, "--log-level", st.log_level]
    if serve_has_workers(st):
        cmd += ["--workers", str(workers)]
    elif workers > 1:
        raise RuntimeError("gateway serve of the tree under test has no --workers option")
    proc = Proc("gateway", cmd, tmp / f"gateway-{tag}.log", cwd=st.src, env=gateway_env(st))
    proc.port = port  # type: ignore[attr-defined]
    proc.config = cfg  # type: ignore[attr-defined]
    proc.workers = workers  # type: ignore[attr-defined]
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc.p)
        if workers > 1:  # one worker answering /readyz is not all: the supervisor says when all listen
            end = time.monotonic() + 90
            while f", {workers} workers" not in (proc.log.read_text(errors="replace") if proc.log.exists() else ""):
                if not proc.alive():
                    raise RuntimeError(f"exited with code {proc.p.returncode}")
                if time.monotonic() > end:
                    raise TimeoutError(f"not all {workers} workers listened within 90s")
                time.sleep(0.2)
    except (RuntimeError, TimeoutError) as e:
        proc.stop()
        msg = " / ".join(x.strip() for x in tail(proc.log, 3).splitlines()) or str(e)
        raise RuntimeError(f"gateway did not start ({e}): {msg}") from None
    return proc


def start_echo(tmp: Path, compress: bool = False) -> Proc:
    port = free_port()
    proc = Proc("echo", [PY, "-m", "bench.echo_server", "--port", str(port), *(["--compress"] if compress else [])],
                tmp / "echo.log")
    proc.port = port  # type: ignore[attr-defined]
    wait_http(f"http://127.0.0.1:{port}/healthz", proc.p, 30)
    return proc


def start_redis(tmp: Path) -> Proc:
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    d = tmp / "redis"
    d.mkdir(exist_ok=True)
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d), "--save", "",
           "--appendonly", "no", "--protected-mode", "no", "--maxclients", "20000"]
    proc = Proc("redis", cmd, tmp / "redis.log")
    proc.port = port  # type: ignore[attr-defined]
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if not proc.alive():
            raise RuntimeError(f"redis-server exited: {tail(proc.log, 3)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            if s.recv(64).startswith(b"+PONG"):
                return proc
        time.sleep(0.05)
    proc.stop()
    raise TimeoutError("redis-server did not answer PING")


def redis_flush(port: int) -> None:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"FLUSHALL\r\n")
        s.recv(64)


# ------------------------------------------------------------------ the FAQ texts


def pick_texts(config_path: Path, st: Settings) -> dict[str, Any]:
    """What customers send (bench/texts.py, run against the gateway under test): questions the bot
    answers, prefixes/suffixes for fresh variants, handoff texts, and a note saying what was found."""
    cases = st.src / "tests" / "data" / "faq_cases.jsonl"
    try:
        out = subprocess.run([PY, str(ROOT / "bench" / "texts.py"), str(config_path), str(cases)], cwd=st.src,
                             env=gateway_env(st), capture_output=True, text=True, timeout=300)
        if out.returncode == 0:
            d: dict[str, Any] = json.loads(out.stdout)
            if d["questions"] and d["handoffs"]:
                return d
            note = "the bot answered none of the texts" if not d["questions"] else "no handoff text is handed off"
        else:
            note = (out.stderr.strip().splitlines() or ["?"])[-1]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        note = repr(e)
    # the FAQ is being edited by others: fall back, say so
    return {"questions": ["什么时候发货"], "handoffs": ["转人工"], "prefixes": [""], "suffixes": [""],
            "note": "fallback texts only (could not check the FAQ with the bot: " + note + ")"}


# ------------------------------------------------------------------ the progress bar


class Progress:
    def __init__(self, total_steps: int) -> None:
        self.total = max(1, total_steps)
        self.done = 0
        self.tty = sys.stdout.isatty()
        self.t0 = time.monotonic()

    def show(self, label: str, frac: float, info: str = "") -> None:
        if not self.tty:
            return
        overall = (self.done + min(1.0, frac)) / self.total
        width = 28
        fill = int(width * frac)
        bar = "█" * fill + "░" * (width - fill)
        el = time.monotonic() - self.t0
        line = (f"\r[{self.done + 1:>2}/{self.total}] {label:<34} {bar} {frac * 100:5.1f}%  {info:<36} "
                f"total {overall * 100:4.1f}% {el:5.0f}s")
        sys.stdout.write(line[: shutil.get_terminal_size((160, 20)).columns])
        sys.stdout.flush()

    def step_done(self, label: str, text: str) -> None:
        self.done += 1
        if self.tty:
            sys.stdout.write("\r\033[K")
        print(f"  [{self.done:>2}/{self.total}] {label:<34} {text}", flush=True)


# ------------------------------------------------------------------ one step


def run_step(spec: dict[str, Any], tmp: Path, progress: Progress, label: str, timeout: float) -> dict[str, Any]:
    """One load-generator process; returns its result (or raises RuntimeError)."""
    n = time.monotonic_ns()
    spec_path, out_path = tmp / f"step-{n}.json", tmp / f"result-{n}.json"
    spec_path.write_text(json.dumps(spec, ensure_ascii=False))
    errlog = tmp / f"loadgen-{n}.log"
    with open(errlog, "wb") as ef:
        p = subprocess.Popen([PY, "-m", "bench.loadgen", "--spec", str(spec_path), "--out", str(out_path)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=ef, start_new_session=True)
        deadline = time.monotonic() + timeout
        assert p.stdout is not None
        try:
            for raw in p.stdout:
                with contextlib.suppress(ValueError):
                    d = json.loads(raw)
                    progress.show(label, float(d.get("progress", 0)),
                                  f"{d.get('phase', '')} sessions {d.get('sessions', 0)} sent {d.get('sent', 0)}")
                if time.monotonic() > deadline:
                    p.kill()
                    break
            p.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        except BaseException:  # interrupted: do not leave the generator running
            p.kill()
            p.wait(5)
            raise
    if p.returncode != 0 or not out_path.exists():
        raise RuntimeError(f"load generator failed (code {p.returncode}): {tail(errlog, 4)}")
    result: dict[str, Any] = json.loads(out_path.read_text())
    return result


# ------------------------------------------------------------------ the scenarios


def scenario_spec(name: str, st: Settings, texts: dict[str, Any]) -> dict[str, Any]:
    rate = st.rate or (200.0 if st.quick else 2000.0)
    agents = [{"id": a["id"], "token": a["token"]} for a in bench_agents(st.agents, st.capacity)]
    base: dict[str, Any] = {
        "arrival": st.arrival, "duration": st.duration, "warmup": st.warmup, "drain": st.drain,
        "customers": st.customers, "faq_questions": texts["questions"], "handoff_texts": texts["handoffs"],
        "prefixes": texts.get("prefixes") or [""], "suffixes": texts.get("suffixes") or [""],
        "fresh_share": st.fresh_share,
        "agents": agents, "think_s": st.think_s, "hold_s": st.hold_s, "compression": st.compression,
    }
    if name == "faq":
        return {**base, "mode": "open", "rate": rate, "handoff_share": 0.0}
    if name == "handoff":
        hr = st.handoff_rate or (60.0 if st.quick else 600.0)
        return {**base, "mode": "open", "rate": hr, "handoff_share": 1.0}
    if name == "mixed":
        return {**base, "mode": "open", "rate": rate, "handoff_share": 0.3}
    burst = st.burst_rate or max(1.0, st.sessions / 2.0)
    return {**base, "mode": "connections", "sessions": st.sessions, "idle_s": st.idle_s, "burst_rate": burst,
            "rate": burst, "handoff_share": 0.0, "connect_concurrency": 100}


def workload_text(name: str, spec: dict[str, Any], st: Settings) -> str:
    arr = "Poisson" if spec["arrival"] == "poisson" else "evenly spaced"
    comp = "clients offer permessage-deflate, as browsers do" if st.compression else "clients offer no compression"
    common = (f"latency from each message's scheduled send time; {st.repeat} repetition(s) of "
              f"{spec['warmup']:g} s warm-up + {spec['duration']:g} s measured; {comp}")
    agents = (f"{st.agents} agents x capacity {st.capacity} (all skills), reply after {spec['think_s']:g} s "
              f"think time, close {spec['hold_s']:g} s later")
    nq = len(spec["faq_questions"])
    nv = nq * (len(spec["prefixes"]) * len(spec["suffixes"]) - 1)
    fresh = (f"fresh variants the gateway has not seen (prefix+question+suffix, one of {nv}, walked so that none "
             "repeats within a gateway process)")
    mix = (f"every question is one of the {fresh}" if spec["fresh_share"] >= 1.0 else
           f"{spec['fresh_share']:.0%} of the questions are {fresh}, the rest repeat one of {nq} common texts")
    if name == "workers":
        ns = ", ".join(str(n) for n in st.workers)
        return (f"the faq workload (open loop, {arr} arrivals at {spec['rate']:g} msg/s over {spec['customers']} "
                f"customers; {mix}; {common}; capacity: closed loop, {st.capacity_concurrency} customers for "
                f"{st.capacity_duration:g} s) against `gateway serve --workers N` on the Redis store, N = {ns}; "
                "a gateway's CPU is its supervisor's and all its workers' (/proc, children by ppid); one worker is "
                "the faq/redis row's gateway when the run has it; no echo steps (the faq rows have them)")
    if name == "faq":
        return (f"open loop, {arr} arrivals at {spec['rate']:g} msg/s over {spec['customers']} connected "
                f"customers; every message is a question the bot answers (customer phrasings from the FAQ eval "
                f"cases and the FAQ's questions, checked with the bot before the run): {mix}; {common}. "
                f"Capacity: closed loop, {st.capacity_concurrency} customers sending back to back for "
                f"{st.capacity_duration:g} s")
    if name == "handoff":
        return (f"open loop, {arr} arrivals at {spec['rate']:g} handoff requests/s ('{spec['handoff_texts'][0]}') "
                f"over {spec['customers']} customers; {agents}; first response = the agent's first message; {common}")
    if name == "mixed":
        return (f"open loop, {arr} arrivals at {spec['rate']:g} customer msg/s over {spec['customers']} customers: "
                f"70% questions answered by the bot ({mix}), 30% handoff requests; {agents}; {common}")
    return (f"{spec['sessions']} customer sessions opened (hello/welcome, 100 handshakes in flight), held idle "
            f"{spec['idle_s']:g} s, memory per session from the server's RSS delta; then a burst of one FAQ "
            f"question per session at {spec['burst_rate']:g} msg/s; {comp}")


def step_timeout(spec: dict[str, Any]) -> float:
    n = int(spec.get("sessions") or spec.get("customers") or 100)
    return 120.0 + n / 50.0 + float(spec["warmup"]) + float(spec["duration"]) + float(spec["drain"]) * 1.5


def flat(r: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one step that the table and the JSON report."""
    c = r.get("connections") or {}
    return {
        "target": r["target"], "throughput": r["throughput"], "answer_throughput": r["answer_throughput"],
        "sent": r["sent"], "ack_p50_ms": r["ack"]["p50"], "ack_p99_ms": r["ack"]["p99"],
        "answer_p50_ms": r["answer"]["p50"], "answer_p99_ms": r["answer"]["p99"],
        "first_response_p50_ms": r["first_response"]["p50"], "first_response_p99_ms": r["first_response"]["p99"],
        "assign_p99_ms": r["assign"]["p99"], "queue_wait_p99_ms": r["queue_wait"]["p99"],
        "within_30s": r["within_30s"], "cpu_ms_per_msg": r["cpu_ms_per_msg"],
        "redis_cpu_ms_per_msg": r["redis_cpu_ms_per_msg"], "generator_cpu_ms_per_msg": r["generator_cpu_ms_per_msg"],
        "total_cpu_ms_per_msg": (round(r["cpu_ms_per_msg"] + (r["redis_cpu_ms_per_msg"] or 0.0), 4)
                                 if r["cpu_ms_per_msg"] is not None else None),
        "lifecycles_in_window": r.get("lifecycles_in_window"), "cpu_ms_per_lifecycle": r.get("cpu_ms_per_lifecycle"),
        "redis_cpu_ms_per_lifecycle": r.get("redis_cpu_ms_per_lifecycle"),
        "window_s": r.get("window_s"), "fresh_sent": r.get("fresh_sent"), "fresh_next": r.get("fresh_next"),
        "common_sent": r.get("common_sent"),
        "machine_cpu_busy": r["machine_cpu_busy"], "others_cpu_busy": r.get("others_cpu_busy"),
        "send_lag_p99_ms": r["send_lag"]["p99"],
        "failed": r["failed"], "errors": r["errors"], "unexpected": r["unexpected"], "skipped": r["skipped"],
        "wall_s": r.get("wall_s"), "disconnects": r["disconnects"], "disconnect_codes": r.get("disconnect_codes", {}),
        **({"sessions_held": c.get("held_after_idle"), "rss_per_session_kb": c.get("rss_per_session_kb"),
            "connect_rate": c.get("connect_rate"), "handshake_p99_ms": (c.get("handshake") or {}).get("p99"),
            "server_cpu_ms_per_session": c.get("server_cpu_ms_per_session")} if c else {}),
    }


def aggregate(runs: list[dict[str, Any]], key: str) -> float | None:
    return median([r.get(key) for r in runs])


def spread(runs: list[dict[str, Any]], key: str) -> list[float] | None:
    xs = [r.get(key) for r in runs if r.get(key) is not None]
    return [min(xs), max(xs)] if xs else None


KEYS = ("throughput", "answer_throughput", "ack_p50_ms", "ack_p99_ms", "answer_p50_ms", "answer_p99_ms",
        "first_response_p50_ms", "first_response_p99_ms", "assign_p99_ms", "queue_wait_p99_ms", "within_30s",
        "cpu_ms_per_msg", "redis_cpu_ms_per_msg", "generator_cpu_ms_per_msg", "machine_cpu_busy",
        "total_cpu_ms_per_msg", "others_cpu_busy", "lifecycles_in_window", "cpu_ms_per_lifecycle", "redis_cpu_ms_per_lifecycle",
        "send_lag_p99_ms", "sessions_held", "rss_per_session_kb", "connect_rate", "handshake_p99_ms",
        "server_cpu_ms_per_session")


def build_row(name: str, store: str, spec: dict[str, Any], st: Settings, gw: list[dict[str, Any]],
              echo: list[dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "scenario": name, "store": store, "status": "ok", "reason": "",
        "workload": workload_text(name, spec, st),
        "offered_rate": spec["rate"], "duration_s": spec["duration"], "repeats": len(gw),
        "customers": spec.get("sessions") if name == "connections" else spec["customers"],
    }
    for k in KEYS:
        if any(k in r for r in gw):
            row[k] = aggregate(gw, k)
    if name != "connections":
        # within_30s must hold in every repetition: report the worst one, not the median
        row["within_30s"] = min((r["within_30s"] for r in gw if r.get("within_30s") is not None), default=None)
    row["ack_p99_ms_range"] = spread(gw, "ack_p99_ms")
    row["answer_p99_ms_range"] = spread(gw, "answer_p99_ms")
    row["first_response_p99_ms_range"] = spread(gw, "first_response_p99_ms")
    row["cpu_ms_per_msg_range"] = spread(gw, "cpu_ms_per_msg")
    row["baseline_throughput"] = aggregate(echo, "throughput")
    row["baseline_ack_p50_ms"] = aggregate(echo, "ack_p50_ms")
    row["baseline_ack_p99_ms"] = aggregate(echo, "ack_p99_ms")
    row["baseline_cpu_ms_per_msg"] = aggregate(echo, "cpu_ms_per_msg")
    if name == "connections":
        row["baseline_rss_per_session_kb"] = aggregate(echo, "rss_per_session_kb")
    # redis-server CPU in µs: per bot-answered message (faq), per customer message (mixed, connections),
    # per completed hand-off lifecycle (handoff: request, one agent reply, close)
    if row.get("redis_cpu_ms_per_msg") is not None:
        row["redis_cpu_us_per_msg"] = round(row["redis_cpu_ms_per_msg"] * 1000.0, 1)
    if row.get("redis_cpu_ms_per_lifecycle") is not None:
        row["redis_cpu_us_per_lifecycle"] = round(row["redis_cpu_ms_per_lifecycle"] * 1000.0, 1)
    if row.get("lifecycles_in_window") is not None and name == "handoff":
        windows = [r.get("window_s") for r in gw if r.get("window_s")]
        if windows:
            row["lifecycles_per_s"] = round(row["lifecycles_in_window"] / statistics.median(windows), 1)
    row["ratio"] = ratio(row.get("throughput"), row["baseline_throughput"])
    row["ack_p99_ratio"] = ratio(row.get("ack_p99_ms"), row["baseline_ack_p99_ms"], 2)
    row["cpu_ratio"] = ratio(row.get("cpu_ms_per_msg"), row["baseline_cpu_ms_per_msg"], 2)
    failed: dict[str, int] = {}
    for r in gw:
        for k, v in {**r["failed"], **{f"error:{k}": v for k, v in r["errors"].items()},
                     **{f"unexpected:{k}": v for k, v in r["unexpected"].items()}}.items():
            failed[k] = failed.get(k, 0) + v
        for k, v in r.get("disconnect_codes", {}).items():
            failed[f"closed:{k}"] = failed.get(f"closed:{k}", 0) + v
        if r["skipped"]:
            failed["no_free_customer"] = failed.get("no_free_customer", 0) + r["skipped"]
    row["problems"] = failed
    row["runs"] = gw
    row["baseline_runs"] = echo
    return row


def worker_summary(n: int, r: dict[str, Any], source: str) -> dict[str, Any]:
    """One worker count's numbers in the workers row."""
    keys = ("throughput", "ack_p50_ms", "ack_p99_ms", "ack_p99_ms_range", "answer_p99_ms", "within_30s",
            "cpu_ms_per_msg", "redis_cpu_us_per_msg", "total_cpu_ms_per_msg", "machine_cpu_busy", "others_cpu_busy",
            "capacity",
            "capacity_ack_p99_ms", "capacity_cpu_ms_per_msg", "capacity_redis_cpu_ms_per_msg",
            "capacity_machine_cpu_busy", "problems")
    return {"workers": n, "status": "ok", "source": source, **{k: r.get(k) for k in keys}}


def error_row(name: str, store: str, spec: dict[str, Any] | None, st: Settings, status: str, reason: str
              ) -> dict[str, Any]:
    reason = " / ".join(x.strip() for x in reason.splitlines() if x.strip())  # one line: it goes into tables
    return {"scenario": name, "store": store, "status": status, "reason": reason,
            "workload": workload_text(name, spec, st) if spec else "",
            "offered_rate": spec["rate"] if spec else None}


# ------------------------------------------------------------------ targets


def check_targets(rows: list[dict[str, Any]], quick: bool | None = None) -> None:
    """Attach the issues' targets to the rows they concern: issue 6's as ``targets`` ({name: {target, value,
    ok}}), issue 11's as ``targets11`` ({key: entry of issue11_targets})."""
    by = {(r["scenario"], r["store"]): r for r in rows if r.get("status") == "ok"}
    for t in issue11_targets(rows, quick):
        if (t["scenario"], t["store"]) in by:
            by[(t["scenario"], t["store"])].setdefault("targets11", {})[t["key"]] = t

    def put(r: dict[str, Any], name: str, target: str, value: Any, ok: bool | None) -> None:
        r.setdefault("targets", {})[name] = {"target": target, "value": value, "ok": ok}

    for r in by.values():
        s = r["scenario"]
        if s == "workers":
            continue
        if s == "connections":
            held = r.get("sessions_held")
            enough = (r.get("customers") or 0) >= 10000
            put(r, "sessions_held", ">= 10000", held, (held or 0) >= 10000 if enough else None)
            kb = r.get("rss_per_session_kb")
            put(r, "rss_per_session_kb", "<= 20 (aim)", kb, kb is not None and kb <= 20)
        if s == "mixed":
            at = (r.get("offered_rate") or 0) >= 2000
            for k, lim in (("ack_p99_ms", 20), ("answer_p99_ms", 30), ("first_response_p99_ms", 1000)):
                v = r.get(k)
                put(r, k, f"<= {lim} at 2000 msg/s", v, (v is not None and v <= lim) if at else None)
            w = r.get("within_30s")
            put(r, "within_30s", "= 1.0", w, w == 1.0)
        if s == "faq":
            cr = r.get("capacity_ratio")
            put(r, "capacity_ratio", ">= 0.40 of echo", cr, cr is not None and cr >= 0.4)
        if r["store"] == "redis":
            mem = by.get((s, "memory"))
            if mem and mem.get("ack_p99_ms") and r.get("ack_p99_ms") is not None:
                x = round(r["ack_p99_ms"] / mem["ack_p99_ms"], 2)
                r["ack_p99_vs_memory"] = x
                # two backlogs compare nothing: only judged where both stores kept up with the rate
                both = kept_up(r) and kept_up(mem)
                put(r, "ack_p99_vs_memory", "<= 2.0" + ("" if both else " (n/a: a store fell behind at this rate)"),
                    x, x <= 2.0 if both else None)
            if s == "faq" and mem:
                cmp = sweep_compare(mem.get("sweep") or [], r.get("sweep") or [])
                if cmp:
                    r["ack_p99_vs_memory_sweep"] = cmp
                    rate, x = max(cmp, key=lambda c: c[0])
                    put(r, "ack_p99_vs_memory_sweep", f"<= 2.0 at the highest swept rate both kept up ({rate:g}/s)",
                        x, x <= 2.0)
                else:
                    put(r, "ack_p99_vs_memory_sweep", "<= 2.0 at a rate both keep up", None, False)


def unavailable(r: dict[str, Any]) -> int:
    """``unavailable`` errors of every repetition (a refused message, as the customer sees it)."""
    p = r.get("problems") or {}
    # error frames with the code (every one the server sent), else the messages they failed
    return int(p.get("error:unavailable") or p.get("unavailable") or 0)


def issue11_targets(rows: list[dict[str, Any]], quick: bool | None = None) -> list[dict[str, Any]]:
    """Issue 11, item 3 (and item 4's workers row): one entry per target, judged where this run measured
    it at the target's load with fresh texts, n/a with the reason otherwise."""
    by = {(r["scenario"], r["store"]): r for r in rows if r.get("status") == "ok"}
    ran = {(r["scenario"], r["store"]): r for r in rows}
    if quick is None:
        quick = any((r.get("run") or {}).get("quick") for r in rows)
    out: list[dict[str, Any]] = []

    def entry(key: str, scenario: str, store: str, target: str, wanted: str, value: Any, shown: str,
              ok: bool | None, why: str = "") -> None:
        out.append({"key": key, "scenario": scenario, "store": store, "target": target, "wanted": wanted,
                    "value": value, "shown": shown, "ok": ok, "why": why})

    def missing(scenario: str, store: str) -> str:
        r = ran.get((scenario, store))
        if r is None:
            return f"{scenario}/{store} was not run"
        return f"{scenario}/{store} {r.get('status')}: {str(r.get('reason') or '')[:120]}"

    def judged(r: dict[str, Any], ok: bool, *, fresh: bool = True, rate: float | None = None) -> tuple[bool | None, str]:
        if quick:
            return None, "the smoke run is too short and too light to judge"
        if rate is not None and (r.get("offered_rate") or 0) < rate:
            return None, f"offered {r.get('offered_rate'):g} msg/s, below the target's {rate:g}"
        ft = r.get("fresh_texts") or {}
        if fresh and (ft.get("share", 1.0) < 1.0 or ft.get("repeated")):
            return None, "not all texts were fresh (--fresh-share below 1, or the walk wrapped)"
        return ok, ""

    us = "µs"
    mem, red = by.get(("faq", "memory")), by.get(("faq", "redis"))
    # Redis: server CPU (gateway + redis-server) per bot-answered message, against the memory store's
    t, w = "server CPU per bot-answered message, gateway + redis-server (faq)", "<= 1.3x the memory store's"
    if mem and red and mem.get("cpu_ms_per_msg") and red.get("total_cpu_ms_per_msg") is not None:
        x = round(red["total_cpu_ms_per_msg"] / mem["cpu_ms_per_msg"], 2)
        shown = (f"{x}x: {red['total_cpu_ms_per_msg'] * 1000:.0f} {us} (gateway {red['cpu_ms_per_msg'] * 1000:.0f} "
                 f"+ redis-server {(red.get('redis_cpu_ms_per_msg') or 0) * 1000:.0f}) vs memory "
                 f"{mem['cpu_ms_per_msg'] * 1000:.0f} {us}")
        if red.get("offered_rate") != mem.get("offered_rate"):
            entry("redis_cpu_vs_memory", "faq", "redis", t, w, x, shown, None, "the stores ran at different rates")
        else:
            entry("redis_cpu_vs_memory", "faq", "redis", t, w, x, shown, *judged(red, x <= 1.3))
    else:
        entry("redis_cpu_vs_memory", "faq", "redis", t, w, None, "-", None,
              missing("faq", "memory") if not mem else missing("faq", "redis"))
    # redis-server alone per bot-answered message
    t, w = "redis-server CPU per bot-answered message (faq)", f"<= 40 {us}"
    if red and red.get("redis_cpu_us_per_msg") is not None:
        v = red["redis_cpu_us_per_msg"]
        entry("redis_us_per_msg", "faq", "redis", t, w, v, f"{v:.1f} {us}", *judged(red, v <= 40))
    else:
        entry("redis_us_per_msg", "faq", "redis", t, w, None, "-", None, missing("faq", "redis"))
    # redis-server per hand-off lifecycle
    t, w = "redis-server CPU per hand-off lifecycle: request, one agent reply, close (handoff)", f"<= 250 {us}"
    h = by.get(("handoff", "redis"))
    if h and h.get("redis_cpu_us_per_lifecycle") is not None:
        v = h["redis_cpu_us_per_lifecycle"]
        shown = f"{v:.1f} {us} ({fmt(h.get('lifecycles_per_s'), 0)} lifecycles/s completed)"
        entry("redis_us_per_lifecycle", "handoff", "redis", t, w, v, shown, *judged(h, v <= 250, fresh=False))
    else:
        entry("redis_us_per_lifecycle", "handoff", "redis", t, w, None, "-", None,
              missing("handoff", "redis") if not h else "no hand-off lifecycle completed in the measured window")
    # ack p99 at 2000 msg/s, no unavailable
    t, w = "ack p99 of bot-answered messages at 2,000 msg/s (faq)", "<= 20 ms, 0 `unavailable`"
    if red and red.get("ack_p99_ms") is not None:
        v, n_un = red["ack_p99_ms"], unavailable(red)
        rng = red.get("ack_p99_ms_range")
        shown = (f"{v:.1f} ms" + (f" ({rng[0]:.1f}-{rng[1]:.1f})" if rng else "") + f", {n_un} unavailable "
                 f"at {red.get('offered_rate'):g} msg/s")
        entry("ack_p99_2000", "faq", "redis", t, w, v, shown, *judged(red, v <= 20 and n_un == 0, rate=2000))
    else:
        entry("ack_p99_2000", "faq", "redis", t, w, None, "-", None, missing("faq", "redis"))
    # handoff and mixed: every customer answered within 30 s
    for sc in ("handoff", "mixed"):
        t, w = f"customers with a response within 30 s ({sc})", "100 %"
        r = by.get((sc, "redis"))
        if r and r.get("within_30s") is not None:
            v = r["within_30s"]
            entry(f"{sc}_within_30s", sc, "redis", t, w, v, f"{v * 100:.2f} % (worst repetition)",
                  *judged(r, v >= 1.0, fresh=sc == "mixed"))
        else:
            entry(f"{sc}_within_30s", sc, "redis", t, w, None, "-", None, missing(sc, "redis"))
    # memory: the bot-answered path against the echo, CPU per message
    t, w = "CPU per bot-answered message against the echo's (faq)", "<= 2.5x the echo's (>= 0.4 of it)"
    if mem and mem.get("cpu_ratio") is not None:
        x = mem["cpu_ratio"]
        shown = (f"{x}x: {mem['cpu_ms_per_msg'] * 1000:.0f} {us} vs echo {mem['baseline_cpu_ms_per_msg'] * 1000:.0f} "
                 f"{us} ({1 / x:.2f} of the echo)")
        entry("memory_cpu_vs_echo", "faq", "memory", t, w, x, shown, *judged(mem, x <= 2.5))
    else:
        entry("memory_cpu_vs_echo", "faq", "memory", t, w, None, "-", None,
              missing("faq", "memory") if not mem else "no echo steps in this run")
    # idle sessions
    for store in ("memory", "redis"):
        t, w = "memory per idle session, 10,000 held (connections)", "<= 20 KB"
        r = by.get(("connections", store))
        if r and r.get("rss_per_session_kb") is not None:
            v = r["rss_per_session_kb"]
            held = r.get("sessions_held") or 0
            shown = f"{v:.1f} KB, {held} held"
            if held < 10000:
                entry(f"idle_session_kb_{store}", "connections", store, t, w, v, shown, None,
                      f"{held} sessions held, not 10,000")
            else:
                entry(f"idle_session_kb_{store}", "connections", store, t, w, v, shown,
                      *judged(r, v <= 20, fresh=False))
        else:
            entry(f"idle_session_kb_{store}", "connections", store, t, w, None, "-", None, missing("connections", store))
    # every core: the workers row (reported, no threshold in the issue)
    t, w = "faq on Redis, 1 against 2 workers (workers)", "reported"
    r = by.get(("workers", "redis"))
    cmp = [c for c in (r or {}).get("workers_compared") or [] if c.get("status") == "ok"]
    if r and len(cmp) >= 2:
        parts = [f"{c['workers']}w: capacity {fmt(c.get('capacity'), 0)}/s, ack p99 {fmt(c.get('ack_p99_ms'))} ms "
                 f"at {r.get('offered_rate'):g}/s" for c in cmp]
        entry("workers", "workers", "redis", t, w, r.get("capacity_gain"),
              "; ".join(parts) + f"; capacity x{fmt(r.get('capacity_gain'), 2)}", None, "reported")
    else:
        why = missing("workers", "redis") if not r else "fewer than two worker counts measured"
        entry("workers", "workers", "redis", t, w, None, "-", None, why)
    return out


def kept_up(r: dict[str, Any]) -> bool:
    """Throughput within 5 % of the echo baseline's at the same offered rate, and nothing refused."""
    refused = any(k.startswith(("error:", "unavailable", "closed:")) for k in r.get("problems") or {})
    return (r.get("ratio") or 0) >= 0.95 and not refused


def sweep_compare(mem: list[dict[str, Any]], red: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(rate, redis ack p99 / memory ack p99) at each swept rate where both gateways kept up."""
    def ok(p: dict[str, Any]) -> bool:
        return p["target"] == "gateway" and p.get("ack_p99_ms") is not None and p["throughput"] >= 0.95 * p["rate"]

    m = {p["rate"]: p for p in mem if ok(p)}
    out = []
    for p in red:
        if ok(p) and p["rate"] in m and m[p["rate"]]["ack_p99_ms"]:
            out.append((p["rate"], round(p["ack_p99_ms"] / m[p["rate"]]["ack_p99_ms"], 2)))
    return sorted(out)


# ------------------------------------------------------------------ output


def fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def row_notes(r: dict[str, Any], md: bool) -> list[str]:
    """The notes column of one row (terminal table and markdown)."""
    b = "**" if md else ""
    notes = []
    if r["scenario"] == "faq" and r.get("capacity") is not None:
        notes.append(f"capacity {r['capacity']:.0f}/s vs echo {fmt(r.get('baseline_capacity'), 0)}/s "
                     f"= {b}{fmt(r.get('capacity_ratio'), 2)}{b}")
    if r["scenario"] == "workers":
        for c in r.get("workers_compared") or []:
            if c.get("status") != "ok":
                notes.append(f"{c['workers']} workers: {c.get('status')} ({str(c.get('source'))[:80]})")
                continue
            notes.append(f"{c['workers']} worker{'s' if c['workers'] > 1 else ''}: capacity "
                         f"{b}{fmt(c.get('capacity'), 0)}/s{b}, ack p99 {fmt(c.get('ack_p99_ms'))} ms, cpu "
                         f"{fmt(c.get('total_cpu_ms_per_msg'), 3)} ms/msg with redis-server")
        if r.get("capacity_gain") is not None:
            notes.append(f"capacity x{r['capacity_gain']}")
    if r["scenario"] == "connections":
        notes.append(f"{r.get('sessions_held')} held, {b}{fmt(r.get('rss_per_session_kb'))} KB/session{b} "
                     f"(echo {fmt(r.get('baseline_rss_per_session_kb'))})")
    if r["scenario"] in ("handoff", "mixed"):
        notes.append(f"assign p99 {fmt(r.get('assign_p99_ms'), 0)} ms, queue wait p99 "
                     f"{fmt(r.get('queue_wait_p99_ms'), 0)} ms")
    if r.get("ack_p99_vs_memory") is not None:
        notes.append(f"ack p99 = {r['ack_p99_vs_memory']}x memory")
    if r.get("ack_p99_vs_memory_sweep"):
        notes.append("sweep ack p99 vs memory: " + ", ".join(f"{x}x at {rate:g}/s"
                                                             for rate, x in r["ack_p99_vs_memory_sweep"]))
    if r["scenario"] == "handoff" and r.get("redis_cpu_us_per_lifecycle") is not None:
        notes.append(f"redis-server {b}{r['redis_cpu_us_per_lifecycle']:.0f} µs/lifecycle{b} "
                     f"({fmt(r.get('lifecycles_per_s'), 0)} lifecycles/s completed)")
    elif r.get("redis_cpu_us_per_msg") is not None and r["scenario"] != "workers":
        what = "bot-answered msg" if r["scenario"] == "faq" else "customer msg"
        notes.append(f"redis-server {b}{r['redis_cpu_us_per_msg']:.0f} µs/{what}{b}")
    if r["scenario"] == "handoff" and r.get("cpu_ms_per_lifecycle") is not None:
        notes.append(f"gateway {r['cpu_ms_per_lifecycle']:.3f} ms/lifecycle")
    if md and r.get("machine_cpu_busy") is not None:
        notes.append(f"machine busy {r['machine_cpu_busy']:.0%}"
                     + (f" (other processes {r['others_cpu_busy']:.0%})" if r.get("others_cpu_busy") else ""))
    ft = r.get("fresh_texts") or {}
    if ft.get("repeated"):
        notes.append(f"fresh texts repeated: {ft.get('walked')} walked of {ft.get('variants')}")
    if r.get("problems"):
        notes.append("problems: " + ", ".join(f"{k}={v}" for k, v in r["problems"].items()))
    return notes


def _cells(r: dict[str, Any]) -> list[str]:
    return [r["scenario"] + (f" ({r['workers']}w)" if r["scenario"] == "workers" and r.get("workers") else ""),
            r["store"], fmt(r.get("offered_rate"), 0), fmt(r.get("throughput"), 0),
            fmt(r.get("baseline_throughput"), 0), fmt(r.get("ratio"), 2), fmt(r.get("ack_p50_ms"), 2)]


def table(rows: list[dict[str, Any]]) -> str:
    head = ["scenario", "store", "offered/s", "thru/s", "echo/s", "ratio", "ack p50", "ack p99", "ack p99 range",
            "answer p99", "1st resp p99", "≤30s", "cpu ms/msg", "echo cpu", "notes"]
    lines = [head]
    for r in rows:
        if r.get("status") != "ok":
            lines.append([r["scenario"], r["store"], fmt(r.get("offered_rate"), 0), "", "", "", "", "", "", "", "",
                          "", "", "", f"{r['status']}: {r['reason'][:90]}"])
            continue
        rng = r.get("ack_p99_ms_range")
        lines.append([
            *_cells(r), fmt(r.get("ack_p99_ms"), 1), f"{rng[0]:.1f}-{rng[1]:.1f}" if rng else "-",
            fmt(r.get("answer_p99_ms"), 1), fmt(r.get("first_response_p99_ms"), 0),
            f"{r['within_30s'] * 100:.2f}%" if r.get("within_30s") is not None else "-",
            fmt(r.get("cpu_ms_per_msg"), 3), fmt(r.get("baseline_cpu_ms_per_msg"), 3), "; ".join(row_notes(r, False)),
        ])
    widths = [max(len(str(x[i])) for x in lines) for i in range(len(head) - 1)]
    out = []
    for i, ln in enumerate(lines):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(ln[:-1], widths, strict=True)) + "  " + ln[-1])
        if i == 0:
            out.append("-" * (sum(widths) + 2 * len(widths) + 5))
    return "\n".join(out)


def md_table(rows: list[dict[str, Any]]) -> str:
    head = ["scenario", "store", "offered msg/s", "throughput/s", "echo/s", "ratio", "ack p50 ms",
            "ack p99 ms (range)", "answer p99 ms", "1st response p99 ms", "within 30 s", "server cpu ms/msg",
            "echo cpu ms/msg", "notes"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r.get("status") != "ok":
            out.append(f"| {r['scenario']} | {r['store']} | {fmt(r.get('offered_rate'), 0)} | | | | | | | | | | | "
                       f"{r['status']}: {r['reason'].replace('|', '/')[:160]} |")
            continue
        rng = r.get("ack_p99_ms_range")
        out.append("| " + " | ".join([
            *_cells(r), f"{fmt(r.get('ack_p99_ms'), 1)}" + (f" ({rng[0]:.1f}-{rng[1]:.1f})" if rng else ""),
            fmt(r.get("answer_p99_ms"), 1), fmt(r.get("first_response_p99_ms"), 0),
            f"{r['within_30s'] * 100:.2f}%" if r.get("within_30s") is not None else "-",
            fmt(r.get("cpu_ms_per_msg"), 3), fmt(r.get("baseline_cpu_ms_per_msg"), 3),
            "; ".join(row_notes(r, True)).replace("|", "/"),
        ]) + " |")
    return "\n".join(out)


def mark11(t: dict[str, Any]) -> str:
    if t["ok"] is None:
        return "reported" if t["why"] == "reported" else f"n/a: {t['why']}"
    return "met" if t["ok"] else "**missed**"


def targets11_md(rows: list[dict[str, Any]], quick: bool) -> str:
    out = ["| target | scenario / store | wanted | measured | |", "|---|---|---|---|---|"]
    for t in issue11_targets(rows, quick):
        out.append(f"| {t['target']} | {t['scenario']} / {t['store']} | {t['wanted']} | "
                   f"{t['shown'].replace('|', '/')} | {mark11(t).replace('|', '/')} |")
    return "\n".join(out)


def workers_md(rows: list[dict[str, Any]]) -> str:
    r = next((r for r in rows if r["scenario"] == "workers" and r.get("status") == "ok"), None)
    if r is None:
        return ""
    out = ["| workers | offered msg/s | throughput/s | ack p50 ms | ack p99 ms (range) | answer p99 ms | "
           "gateway cpu ms/msg | redis-server µs/msg | capacity/s | capacity ack p99 ms | capacity cpu ms/msg | "
           "machine busy | measured |", "|" + "---|" * 13]
    for c in r.get("workers_compared") or []:
        if c.get("status") != "ok":
            out.append(f"| {c['workers']} | | | | | | | | | | | | {c.get('status')}: "
                       f"{str(c.get('source')).replace('|', '/')[:120]} |")
            continue
        rng = c.get("ack_p99_ms_range")
        busy = c.get("machine_cpu_busy")
        out.append("| " + " | ".join([
            str(c["workers"]), fmt(r.get("offered_rate"), 0), fmt(c.get("throughput"), 0), fmt(c.get("ack_p50_ms"), 2),
            fmt(c.get("ack_p99_ms"), 1) + (f" ({rng[0]:.1f}-{rng[1]:.1f})" if rng else ""),
            fmt(c.get("answer_p99_ms"), 1), fmt(c.get("cpu_ms_per_msg"), 3), fmt(c.get("redis_cpu_us_per_msg"), 0),
            fmt(c.get("capacity"), 0), fmt(c.get("capacity_ack_p99_ms"), 1), fmt(c.get("capacity_cpu_ms_per_msg"), 3),
            f"{busy:.0%}" if busy is not None else "-", str(c.get("source")),
        ]) + " |")
    return "\n".join(out)


def targets_md(rows: list[dict[str, Any]]) -> str:
    out = ["| scenario | store | target | wanted | measured | |", "|---|---|---|---|---|---|"]
    for r in rows:
        for name, t in (r.get("targets") or {}).items():
            mark = "n/a (not at the target's load)" if t["ok"] is None else ("met" if t["ok"] else "**missed**")
            out.append(f"| {r['scenario']} | {r['store']} | {name} | {t['target']} | {fmt(t['value'], 3)} | {mark} |")
    return "\n".join(out) if len(out) > 2 else "(no target applies to this run)"


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    points = [p for r in rows if r.get("scenario") == "faq" for p in r.get("sweep") or []]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), sharey=True)
    series: dict[str, list[dict[str, Any]]] = {}
    echo_store = next((p["store"] for p in points if p["target"] == "echo"), None)
    for p in points:
        if p["target"] == "echo" and p["store"] != echo_store:
            continue  # the same echo server measured again next to the other store: one line is enough
        series.setdefault(p["label"], []).append(p)
    colors = {"gateway memory://": "tab:blue", "gateway redis://": "tab:red", "echo baseline": "tab:gray"}
    for ax, (metric, title) in zip(axes, (("ack", "ack latency"), ("answer", "bot answer latency (echo: echo)")),
                                   strict=True):
        for label, ps in sorted(series.items()):
            ps = sorted(ps, key=lambda p: p["rate"])
            xs = [p["rate"] for p in ps]
            c = colors.get(label)
            for pct, style in (("p50", "--"), ("p99", "-")):
                ys = [p[f"{metric}_{pct}_ms"] for p in ps]
                if any(y is not None for y in ys):
                    ax.plot(xs, [y if y is not None else float("nan") for y in ys], style, marker="o",
                            color=c, label=f"{label} {pct}")
        limit = 20 if metric == "ack" else 30
        ax.axhline(limit, color="tab:green", linestyle=":", linewidth=1)
        ax.annotate(f"target p99 {limit} ms (mixed at 2000/s)", (0.01, limit), xycoords=("axes fraction", "data"),
                    fontsize=7, color="tab:green", va="bottom")
        ax.set_title(title)
        ax.set_xlabel("offered load (customer messages/s, open loop)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms from scheduled send (log)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    m = next((r["machine"] for r in rows if r.get("machine")), None) or machine_info()
    src = next(((r.get("run") or {}).get("source", "") for r in rows if r.get("run")), "")
    fig.suptitle(f"gateway vs bare aiohttp echo, faq scenario, {m['nproc']} CPU {m['cpu_model']}"
                 + (f" - {src}" if src else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def neighbours_note(rows: list[dict[str, Any]]) -> list[str]:
    """A warning when processes outside the bench used a noticeable share of the machine in the windows."""
    xs = sorted(x["others_cpu_busy"] for r in rows for x in (r.get("runs") or []) + (r.get("baseline_runs") or [])
                if x.get("others_cpu_busy") is not None)
    if not xs or xs[-1] < 0.15:
        return []
    return [f"**Shared machine:** processes outside the bench used {xs[0]:.0%}-{xs[-1]:.0%} of the machine's CPU "
            f"during the measured windows (median {statistics.median(xs):.0%}; `others_cpu_busy` per step). Where "
            "they left the gateway too little CPU, latency and throughput say more about them than about the "
            "gateway; CPU per message holds up better (a starved process handles more messages per wake-up, "
            "so it also reads somewhat low, the echo's most).", ""]


def readme(rows: list[dict[str, Any]], quick: bool, info: dict[str, Any], plotted: bool, started: str,
           note: str, source: str = "", command: str = "") -> str:
    m = info
    lines = [
        "# Benchmark results (latest run)",
        "",
        f"Generated by `{command or 'python -m bench.run' + (' --quick' if quick else '')}` on {started}. "
        "How to run it and what each number means: [README.md, Benchmark](../../README.md#benchmark).",
        "",
        f"**Machine:** {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB RAM, "
        f"Python {m['python']} ({m['implementation']}), Linux {m['kernel']}. Gateway, load generator, "
        "echo server and redis-server share these CPUs." + (f" Gateway under test: {source}." if source else ""),
        "",
        *neighbours_note(rows),
        md_table(rows),
        "",
        "Medians over the repetitions; `range` is the lowest and highest p99 of the repetitions. "
        "`ratio` = gateway throughput / echo throughput at the same offered rate (1.00 = kept up like bare "
        "websockets); the server CPU time per message comes from /proc/<pid>/stat and is the steadiest number "
        "on a shared machine.",
        "",
        "## Targets (issue 11)",
        "",
        "Judged only where this run measured them at the target's load with fresh texts; redis-server CPU "
        "from /proc/<pid>/stat (utime+stime) over the measured window, per bot-answered message in faq and "
        "per completed hand-off lifecycle (request, one agent reply, close) in handoff.",
        "",
        targets11_md(rows, quick),
        "",
    ]
    wm = workers_md(rows)
    if wm:
        lines += ["## Every core: 1 and 2 workers (faq on Redis)", "", wm, ""]
    lines += [
        "## Earlier targets (issue 6)",
        "",
        targets_md(rows),
        "",
    ]
    if plotted:
        lines += ["## Latency against offered load (faq scenario)", "", "![latency](latency.png)", ""]
    lines += ["## Workloads", ""]
    for r in rows:
        if r.get("workload"):
            lines.append(f"- **{r['scenario']} / {r['store']}**: {r['workload']}.")
    if note:
        lines += ["", f"Texts: {note}."]
    return "\n".join(lines) + "\n"


def update_doc(md: str) -> None:
    """Replace the results section of README.md (between its markers)."""
    start, end = "<!-- bench-results:start -->", "<!-- bench-results:end -->"
    if not DOC.exists():
        return
    text = DOC.read_text(encoding="utf-8")
    if start not in text or end not in text:
        return
    body = md.split("\n", 2)[2] if md.startswith("# ") else md
    # links written for bench/results/README.md, made relative to the document they land in
    image = os.path.relpath(RESULTS / "latency.png", DOC.parent)
    body = body.replace("](latency.png)", f"]({image})")
    body = body.replace("[README.md, Benchmark](../../README.md#benchmark)", "[the benchmark section](#benchmark)")
    # the results sit under "### Latest results" of the Benchmark section: one heading level down
    body = "\n".join("#" + line if line.startswith("## ") else line for line in body.splitlines())
    new = text[: text.index(start) + len(start)] + "\n" + body.strip() + "\n" + text[text.index(end):]
    DOC.write_text(new, encoding="utf-8")


# ------------------------------------------------------------------ the run


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


def write_outputs(rows: list[dict[str, Any]], out: Path, want_plot: bool, doc: bool) -> None:
    """latest.json, latency.png, README.md (and the doc's results section), then the terminal table."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "latest.json.tmp"
    tmp.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, out / "latest.json")
    plotted = False
    if want_plot:
        try:
            plotted = plot(rows, out / "latency.png")
        except Exception as e:  # a plot must not lose the numbers
            print(f"  plot failed: {e!r}", flush=True)
    run = next((r["run"] for r in rows if r.get("run")), {})
    info = next((r["machine"] for r in rows if r.get("machine")), machine_info())
    md = readme(rows, bool(run.get("quick")), info, plotted, run.get("started", "?"), run.get("texts", ""),
                run.get("source", ""), run.get("command", "").strip())
    (out / "README.md").write_text(md, encoding="utf-8")
    if doc:
        update_doc(md)
    print()
    print(table(rows))
    print()
    run0 = next((r["run"] for r in rows if r.get("run")), {})
    print("issue 11:")
    for t in issue11_targets(rows, bool(run0.get("quick"))):
        mark = ("info" if t["why"] == "reported" else "n/a ") if t["ok"] is None else ("ok  " if t["ok"] else "MISS")
        print(f"  {mark} {t['scenario']}/{t['store']} {t['key']} {t['wanted']}: {t['shown']}"
              + (f" ({t['why']})" if t["ok"] is None and t["why"] != "reported" else ""))
    print("issue 6:")
    for r in rows:
        for name, t in (r.get("targets") or {}).items():
            mark = "n/a " if t["ok"] is None else ("ok  " if t["ok"] else "MISS")
            print(f"  {mark} {r['scenario']}/{r['store']} {name} {t['target']}: {fmt(t['value'], 3)}")
    print(f"\nwrote {out / 'latest.json'}" + (f", {out / 'latency.png'}" if plotted else "")
          + f", {out / 'README.md'}", flush=True)


def render(path: Path, out: Path | None) -> int:
    """``--render latest.json``: redo targets, table, plot and README from a saved run."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    for r in rows:
        r.pop("targets", None)
        r.pop("targets11", None)
    check_targets(rows)
    dest = (out or path.parent).resolve()
    quick = any((r.get("run") or {}).get("quick") for r in rows)
    write_outputs(rows, dest, True, dest == RESULTS.resolve() and not quick)
    return 0


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
