"""Profile the gateway under one bench workload with py-spy, and summarize where the time goes.

    .venv/bin/pip install py-spy          # a developer tool: not a project dependency
    .venv/bin/python -m bench.profile --scenario faq --rate 1500 --seconds 15
    .venv/bin/python -m bench.profile --scenario mixed --store redis --rate 1000

Starts a gateway (and a redis-server for ``--store redis``), drives it with the
bench load generator, records the gateway with ``py-spy record`` during the
measured window, and prints the functions with the largest share of samples:
self time (the frame on top of the stack) and inclusive time (anywhere on it).
Writes the collapsed stacks (``profile.txt``, for flamegraph tools) and the
summary (``profile-summary.txt``) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.config import write_bench_config
from bench.proc_stats import raise_nofile
from bench.procs import pick_texts, snapshot, start_gateway, start_redis
from bench.scenarios import scenario_spec
from bench.settings import ROOT, parse_args

FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    """``fn (path/to/file.py:12)`` -> ``fn (pkg/file.py)``: one entry per function, not per line."""
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        with_root = str(ROOT) + "/"
        path = path[len(with_root):] if path.startswith(with_root) else path
    return f"{m.group('fn')} ({path})"


def summarize(collapsed: Path, top: int = 30) -> str:
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = idle = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = [short(f) for f in stack.split(";") if f]
        if not frames:
            continue
        if frames[-1].startswith("_worker (concurrent/futures/thread.py"):
            idle += count  # an executor thread waiting for work: py-spy counts it as active
            continue
        total += count
        self_t[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    if not total:
        return "no samples"
    out = [f"{total} samples ({idle} of idle executor threads left out)", "",
           f"top {top} by self time (share of all samples):"]
    out += [f"  {n / total * 100:5.1f}%  {f}" for f, n in self_t.most_common(top)]
    out += ["", f"top {top} by inclusive time:"]
    out += [f"  {n / total * 100:5.1f}%  {f}" for f, n in incl.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="faq", choices=("faq", "handoff", "mixed"))
    p.add_argument("--store", default="memory", choices=("memory", "redis"))
    p.add_argument("--rate", type=float, default=1500.0, help="offered customer messages/s")
    p.add_argument("--seconds", type=float, default=15.0, help="profiled seconds")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--rate-hz", type=int, default=100, help="py-spy samples per second")
    p.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    p.add_argument("--idle", action="store_true", help="py-spy --idle (count waiting threads too)")
    p.add_argument("--no-compression", action="store_true")
    p.add_argument("--snapshot", nargs="?", const="HEAD", default="", metavar="REF",
                   help="profile the gateway as committed at REF (default HEAD), not the working tree")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "gateway-profile")
    p.add_argument("--summarize", type=Path, metavar="PROFILE_TXT", help="only summarize a recorded profile.txt")
    a = p.parse_args(argv)
    if a.summarize:
        print(summarize(a.summarize))
        return 0
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    raise_nofile()
    a.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="gw-prof-"))
    flags = ["--rate", str(a.rate), "--handoff-rate", str(a.rate), "--customers", str(a.customers), "--warmup", "3",
             "--duration", str(a.seconds + 2), "--repeat", "1"]
    if a.no_compression:
        flags.append("--no-compression")
    st = parse_args(flags)
    if a.snapshot:
        st.src, st.commit = snapshot(a.snapshot, tmp / "src")
    texts = pick_texts(write_bench_config(tmp, st, "probe"), st)
    print(f"texts: {texts['note']}")
    redis = None
    gateway = None
    try:
        url = "memory://"
        if a.store == "redis":
            redis = start_redis(tmp)
            url = f"redis://127.0.0.1:{redis.port}/0"  # type: ignore[attr-defined]
        gateway = start_gateway(tmp, st, url, "profile")
        spec: dict[str, Any] = {**scenario_spec(a.scenario, st, texts),
                                "url": f"ws://127.0.0.1:{gateway.port}", "target": "gateway",  # type: ignore[attr-defined]
                                "pids": {"server": gateway.pid, **({"redis": redis.pid} if redis else {})},
                                "tag": "prof"}
        spec_path, res_path = tmp / "spec.json", tmp / "result.json"
        spec_path.write_text(json.dumps(spec, ensure_ascii=False))
        gen = subprocess.Popen([sys.executable, "-m", "bench.loadgen", "--spec", str(spec_path), "--out",
                                str(res_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert gen.stdout is not None
        for line in gen.stdout:  # wait for the open-loop phase
            if '"phase":"run"' in line.replace(" ", ""):
                break
        time.sleep(float(spec["warmup"]))
        collapsed = a.out / "profile.txt"
        cmd = [pyspy, "record", "--pid", str(gateway.pid), "--duration", str(int(a.seconds)), "--rate",
               str(a.rate_hz), "--format", "raw", "--output", str(collapsed)]
        if a.native:
            cmd.append("--native")
        if a.idle:
            cmd.append("--idle")
        subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for _ in gen.stdout:
            pass
        gen.wait()
        res = json.loads(res_path.read_text()) if res_path.exists() else {}
        head = (f"gateway {a.scenario}/{a.store} at {a.rate:g} msg/s: throughput {res.get('throughput')}/s, "
                f"ack p50/p99 {res.get('ack', {}).get('p50')}/{res.get('ack', {}).get('p99')} ms, "
                f"answer p99 {res.get('answer', {}).get('p99')} ms, server cpu {res.get('cpu_ms_per_msg')} ms/msg, "
                f"machine busy {res.get('machine_cpu_busy')}")
        text = head + "\n\n" + (summarize(collapsed) if collapsed.exists() else "py-spy wrote nothing")
        (a.out / "profile-summary.txt").write_text(text + "\n")
        print(text)
        print(f"\nwrote {collapsed} and {a.out / 'profile-summary.txt'}")
    finally:
        if gateway is not None:
            gateway.stop()
        if redis is not None:
            redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
