"""What a held, idle customer session costs the gateway: RSS delta per session, and where the bytes go.

    .venv/bin/python -m bench.session_memory --sessions 10000          # RSS per session, like the bench
    .venv/bin/python -m bench.session_memory --sessions 5000 --trace   # + tracemalloc diff and object counts

Starts the gateway of this tree in a child process (memory store unless
``--store``, the bench's config: ``bench.config.bench_config_text``'s overrides),
opens ``--sessions`` customer sessions on loopback (hello, welcome; 100
handshakes in flight, like ``bench.loadgen``), waits ``--settle`` seconds and
reads the child's ``VmRSS`` before and after: ``(after - before) / sessions``
is the bench's "connections" figure. ``--warm N`` first opens and closes N
sessions, so one-time costs (lazy imports, first-use caches) are not counted.

With ``--trace`` the child starts tracemalloc just before the sessions open
(it costs memory itself, so the RSS figure of a traced run is not the one to
quote) and writes a snapshot and a count of gc-tracked objects by type; the parent prints
the difference per session, grouped by allocating line and by traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


# ------------------------------------------------------------------ child: the gateway


def _task_stack(task: asyncio.Task[Any]) -> str:
    """A task's await chain, outermost first: ``start > _handle_request > customer_ws > …``."""
    names = []
    coro: Any = task.get_coro()
    while coro is not None:
        names.append(getattr(coro, "__qualname__", type(coro).__qualname__))
        coro = getattr(coro, "cr_await", None)
        if coro is not None and not hasattr(coro, "cr_await"):
            names.append(type(coro).__qualname__)
            break
    return " > ".join(names)


def serve_child(config_path: str, port: int, dump_dir: str | None, frames: int) -> None:
    """Run the gateway like ``gateway serve`` (uvloop, info logs); SIGUSR1 dumps memory facts."""
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    import uvloop

    from gateway.config import load_config
    from gateway.server.app import serve

    config = load_config(config_path).with_overrides(host="127.0.0.1", port=port, store=None)
    n = 0

    def dump() -> None:
        nonlocal n
        n += 1
        gc.collect()
        counts: Counter[str] = Counter()
        sizes: Counter[str] = Counter()
        for o in gc.get_objects():
            name = type(o).__qualname__
            counts[name] += 1
            sizes[name] += sys.getsizeof(o)
        tasks = Counter(_task_stack(t) for t in asyncio.all_tasks())
        assert dump_dir is not None
        Path(dump_dir, f"types-{n}.json").write_text(json.dumps({"counts": counts, "sizes": sizes, "tasks": tasks}))
        import tracemalloc

        if not tracemalloc.is_tracing():  # from the first dump on: start-up is not traced (slow, irrelevant)
            tracemalloc.start(frames)
        tracemalloc.take_snapshot().dump(str(Path(dump_dir, f"snap-{n}.bin")))
        Path(dump_dir, f"done-{n}").write_text("")

    async def main() -> None:
        if dump_dir is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)
        await serve(config)

    uvloop.run(main())


# ------------------------------------------------------------------ parent: the clients


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def write_config(tmp: Path, store: str) -> Path:
    from bench.config import bench_config_text

    path = tmp / "gateway.toml"
    path.write_text(bench_config_text(ROOT, store, f"sessmem-{os.getpid()}", 30, 30), encoding="utf-8")
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def open_sessions(url: str, n: int, tag: str, concurrency: int = 100) -> list[Any]:
    import orjson
    from websockets.asyncio.client import connect

    sem = asyncio.Semaphore(concurrency)
    out: list[Any] = []

    async def one(i: int) -> None:
        async with sem:
            ws = await connect(url + "/ws/customer", compression=None, ping_interval=None, proxy=None,
                               open_timeout=60, close_timeout=2, max_size=2**22)
            await ws.send(orjson.dumps({"type": "hello", "customer": {"id": f"m-{tag}-{i}", "name": "压测顾客"},
                                        "channel": "web"}).decode())
            f = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
            if f.get("type") != "welcome":
                raise RuntimeError(f"refused: {f}")
            out.append(ws)

    await asyncio.gather(*(one(i) for i in range(n)))
    return out


class Child:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.port = free_port()
        self.dump_dir = tmp / "dumps" if args.trace else None
        cmd = [PY, "-m", "bench.session_memory", "--serve", str(write_config(tmp, args.store)), "--port",
               str(self.port), "--frames", str(args.frames)]
        if self.dump_dir is not None:
            self.dump_dir.mkdir()
            cmd += ["--dump-dir", str(self.dump_dir)]
        self.p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
        self.dumps = 0
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1).read()
                break
            except OSError:
                if self.p.poll() is not None or time.monotonic() > deadline:
                    self.p.kill()
                    self.p.wait(5)
                    raise RuntimeError("gateway did not start") from None
                time.sleep(0.2)

    async def dump(self) -> int:
        assert self.dump_dir is not None
        self.dumps += 1
        self.p.send_signal(signal.SIGUSR1)
        while not (self.dump_dir / f"done-{self.dumps}").exists():  # noqa: ASYNC110 (a file the child writes)
            await asyncio.sleep(0.2)
        return self.dumps

    def stop(self) -> None:
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()


def report_trace(dump_dir: Path, a: int, b: int, n: int, top: int) -> None:
    import tracemalloc

    ja = json.loads((dump_dir / f"types-{a}.json").read_text())
    jb = json.loads((dump_dir / f"types-{b}.json").read_text())
    counts, sizes, tasks = Counter(jb["counts"]), Counter(jb["sizes"]), Counter(jb["tasks"])
    counts.subtract(ja["counts"])
    sizes.subtract(ja["sizes"])
    tasks.subtract(ja["tasks"])
    print(f"\ngc-tracked objects per session ({n} sessions; sys.getsizeof, not what they point to):")
    print(f"  {sum(sizes.values()) / n:7.0f} B in all")
    for name, size in sizes.most_common(30):
        if counts[name] / n >= 0.05:
            print(f"  {counts[name] / n:7.2f} x {name:<28} {size / n:6.0f} B")
    print("\ntasks per session, by await chain:")
    for chain, c in tasks.most_common(10):
        if c / n >= 0.05:
            print(f"  {c / n:5.2f}  {chain}")
    s0 = tracemalloc.Snapshot.load(str(dump_dir / f"snap-{a}.bin"))
    s1 = tracemalloc.Snapshot.load(str(dump_dir / f"snap-{b}.bin"))
    filt = [tracemalloc.Filter(False, tracemalloc.__file__)]
    s0, s1 = s0.filter_traces(filt), s1.filter_traces(filt)
    diff = s1.compare_to(s0, "lineno")
    total = sum(d.size_diff for d in diff)
    print(f"\ntracemalloc: {total / n / 1024:.2f} KB per session of Python allocations; by line:")
    for d in diff[:top]:
        if d.size_diff / n < 16:
            break
        fr = d.traceback[0]
        print(f"  {d.size_diff / n:8.0f} B {d.count_diff / n:6.2f} blk  {fr.filename.replace(str(ROOT) + '/', '')}"
              f":{fr.lineno}")
    owners: Counter[str] = Counter()
    for st in s1.compare_to(s0, "traceback"):
        frames = [fr.filename.replace(str(ROOT) + "/", "") + f":{fr.lineno}" for fr in st.traceback]
        mine = [f for f in frames if f.startswith("gateway/")]
        owner = mine[-1] if mine else (frames[-1] if frames else "?")  # innermost gateway frame
        owners[owner] += st.size_diff
    print("\nby innermost gateway frame (else the allocating line):")
    for owner, size in owners.most_common(top):
        if size / n < 32:
            break
        print(f"  {size / n:8.0f} B  {owner}")
    print("\nby traceback (innermost last):")
    for d in s1.compare_to(s0, "traceback")[: max(5, top // 2)]:
        if d.size_diff / n < 64:
            break
        print(f"  {d.size_diff / n:8.0f} B {d.count_diff / n:6.2f} blk")
        for fr in list(d.traceback)[-6:]:
            print(f"       {fr.filename.replace(str(ROOT) + '/', '')}:{fr.lineno}")


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="sessmem-"))
    child = Child(args, tmp)
    url = f"ws://127.0.0.1:{child.port}"
    try:
        if args.warm:
            warm = await open_sessions(url, args.warm, "warm")
            for ws in warm:
                await ws.close()
            await asyncio.sleep(1.0)
        a = await child.dump() if args.trace else 0
        rss0 = rss_kb(child.p.pid)
        t0 = time.perf_counter()
        held = await open_sessions(url, args.sessions, "held")
        connect_s = time.perf_counter() - t0
        await asyncio.sleep(args.settle)
        rss1 = rss_kb(child.p.pid)
        b = await child.dump() if args.trace else 0
        alive = sum(1 for ws in held if ws.close_code is None)
        result = {"sessions": args.sessions, "held": alive, "rss_before_kb": rss0, "rss_after_kb": rss1,
                  "kb_per_session": round((rss1 - rss0) / args.sessions, 2), "connect_s": round(connect_s, 2),
                  "traced": bool(args.trace)}
        print(json.dumps(result))
        if args.trace:
            assert child.dump_dir is not None
            report_trace(child.dump_dir, a, b, args.sessions, args.top)
        for ws in held:
            with contextlib.suppress(Exception):
                await ws.close()
        return result
    finally:
        child.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=10000)
    p.add_argument("--warm", type=int, default=0, help="open and close this many sessions first")
    p.add_argument("--settle", type=float, default=1.0, help="seconds between the last welcome and the reading")
    p.add_argument("--store", default="memory://")
    p.add_argument("--trace", action="store_true", help="tracemalloc diff and object counts (slower)")
    p.add_argument("--frames", type=int, default=12, help="tracemalloc frames per allocation")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--dump-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve_child(args.serve, args.port, args.dump_dir, args.frames)
        return 0
    from bench.proc_stats import raise_nofile

    raise_nofile()
    import uvloop

    uvloop.run(measure(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
