"""One step of a run: the load-generator process, its progress bar, and the numbers it reports."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.procs import tail
from bench.settings import PY, ROOT


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

