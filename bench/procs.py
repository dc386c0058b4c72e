"""The processes of a run: gateway, echo server, redis-server, a snapshot of the tree under test, and the
texts the customers send (checked by the bot of that tree)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.config import bench_config_text, toml_dumps, write_bench_config
from bench.proc_stats import tree_cpu_s
from bench.settings import PY, ROOT, Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60.0) -> None:
    """Until ``url`` answers 200; RuntimeError as soon as ``proc`` (if given) exits, TimeoutError after ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
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


def start_admin_gateway(tmp: Path, namespace: str, agents: int, capacity: int, admin_token: str,
                        extra: dict[str, Any] | None = None) -> tuple[Proc, Path, int]:
    """``gateway serve`` of this tree on the memory store, the bench config plus an admin token and
    ``extra`` tables (e.g. ``{"archive": {...}}``), ready on a free port: (process, config, port)."""
    import tomllib

    raw = tomllib.loads(bench_config_text(ROOT, "memory://", namespace, agents, capacity))
    raw.setdefault("server", {})["admin_token"] = admin_token
    raw.update(extra or {})
    cfg = tmp / "gateway.toml"
    cfg.write_text(toml_dumps(raw), encoding="utf-8")
    port = free_port()
    gw = Proc("gateway", [PY, "-m", "gateway", "serve", "--config", str(cfg), "--port", str(port),
                          "--host", "127.0.0.1"], tmp / "gateway.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc=gw.p, timeout=60)
    except Exception:
        gw.stop()
        raise
    return gw, cfg, port
