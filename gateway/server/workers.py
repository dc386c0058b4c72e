"""``gateway serve --workers N``: N processes on one port, under one supervisor.

The supervisor serves nothing itself. It reserves the port (a bound, never
listening ``SO_REUSEPORT`` socket, which also settles ``--port 0``), starts N
workers (``python -m gateway serve ... --workers 1 --reuse-port`` plus hidden
worker flags), each with its own store instance, and the kernel spreads new
connections over the workers' listening sockets. It forwards SIGTERM, SIGINT
and SIGHUP to the workers, restarts a worker that dies unexpectedly (with
backoff), prints the listening line once all workers listen, and exits when
every worker has exited after a stop signal.

A worker that dies before all workers first listened is a failed start: the
others are stopped and the supervisor exits with the worker's status. If the
supervisor itself is killed (``kill -9``), its workers are killed with it
(Linux ``PR_SET_PDEATHSIG``): the same as a crash of a single-process gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import ConfigError

log = logging.getLogger("gateway.workers")

READY_MARK = "gateway-worker-ready "  # a worker's listening line starts with this on its stdout
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 30.0  # a worker that ran this long restarts without accumulated backoff
STOP_TIMEOUT_S = 25.0  # then workers still running after a stop signal are killed


def default_workers() -> int:
    """The CPUs this process may use: affinity, capped by a cgroup v2 CPU quota (containers)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError, IndexError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    return max(1, n)


def config_workers(path: str) -> int | None:
    """``[server] workers`` of the config file, if set."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # load_config has reported this already
    server = raw.get("server")
    value = server.get("workers") if isinstance(server, dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError("server.workers", f"must be an integer >= 1, got {value!r}")
    return value


def resolve_workers(flag: int | None, config_path: str, store_url: str) -> int:
    """``--workers``, else ``[server] workers``, else one per CPU (one on the memory store)."""
    explicit = flag if flag is not None else config_workers(config_path)
    memory = store_url == "memory" or store_url.startswith("memory://")
    if explicit is None:
        return 1 if memory else default_workers()
    if explicit > 1 and memory:
        raise ConfigError("server.workers", f"{explicit} workers need a shared store, but the memory store "
                                            "lives in one process: use [store] url = \"redis://...\" "
                                            "(or --store), or --workers 1")
    return explicit


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (never listen) with SO_REUSEPORT: holds the port for the workers, resolves port 0."""
    family, type_, proto, _, addr = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                       flags=socket.AI_PASSIVE)[0]
    s = socket.socket(family, type_, proto)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(addr)
    except OSError:
        s.close()
        raise
    return s


def die_with_parent(parent: int) -> None:
    """In a worker: be killed when the supervisor dies, however it dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    else:  # pragma: no cover - elsewhere: watch the parent
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the supervisor died before the line above
        os._exit(1)


@dataclass
class Slot:
    index: int
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False
    backoff: float = BACKOFF_FIRST_S


class Supervisor:
    def __init__(self, argv: Callable[[int], list[str]], n: int) -> None:
        self.argv = argv
        self.slots = [Slot(i) for i in range(n)]
        self.stopping = False
        self.stop_signal = signal.SIGTERM
        self.code = 0
        self.announced = False
        self.line = ""
        self._stopped = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        log.info("event=workers_starting workers=%d", len(self.slots))
        killer = asyncio.create_task(self._kill_after_stop())
        await asyncio.gather(*[self._keep(slot) for slot in self.slots])
        killer.cancel()
        log.info("event=workers_stopped code=%d", self.code)
        return self.code

    def stop(self, sig: int = signal.SIGTERM, code: int = 0) -> None:
        if not self.stopping:
            self.stopping, self.stop_signal, self.code = True, signal.Signals(sig), code
            log.info("event=workers_stopping signal=%s", signal.Signals(sig).name)
            self._stopped.set()
        self._forward(sig)

    def _forward(self, sig: int) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(sig)

    async def _kill_after_stop(self) -> None:
        await self._stopped.wait()
        await asyncio.sleep(STOP_TIMEOUT_S)
        log.warning("event=workers_stop_timeout timeout_s=%s", STOP_TIMEOUT_S)
        self.code = 1
        self._forward(signal.SIGKILL)

    async def _keep(self, slot: Slot) -> None:
        """Run the slot's worker until a stop; restart it when it dies."""
        while not self.stopping:
            started = time.monotonic()
            code = await self._run_once(slot)
            if self.stopping:
                if code not in (0, -self.stop_signal, -signal.SIGTERM):
                    self.code = self.code or 1
                return
            if not self.announced:  # a failed start: stop everything, report as a single process would
                log.error("event=worker_failed_start worker=%d code=%s", slot.index, code)
                self.stop(signal.SIGTERM, code=code if code in (1, 2) else 1)
                return
            if time.monotonic() - started >= STABLE_AFTER_S:
                slot.backoff = BACKOFF_FIRST_S
            delay, slot.backoff = slot.backoff, min(BACKOFF_MAX_S, slot.backoff * 2)
            log.warning("event=worker_died worker=%d code=%s restart_in_s=%.1f", slot.index, code, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)

    async def _run_once(self, slot: Slot) -> int:
        slot.ready = False
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(slot.index), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                limit=1 << 20)
        except OSError as e:
            log.error("event=worker_spawn_failed worker=%d error=%r", slot.index, e)
            return 1
        slot.proc = proc
        log.info("event=worker_started worker=%d pid=%d", slot.index, proc.pid)
        if self.stopping:  # a stop signal came while it was being spawned
            proc.send_signal(self.stop_signal)
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith(READY_MARK) and not slot.ready:
                slot.ready = True
                log.info("event=worker_ready worker=%d pid=%d", slot.index, proc.pid)
                self._ready(line[len(READY_MARK):])
            else:
                print(line, flush=True)
        return await proc.wait()

    def _ready(self, line: str) -> None:
        self.line = self.line or line
        if not self.announced and not self.stopping and all(s.ready for s in self.slots):
            self.announced = True
            print(f"{self.line}, {len(self.slots)} workers", flush=True)


def supervise(argv: Callable[[int], list[str]], n: int) -> int:
    """Run ``n`` workers until a stop signal; the exit status (0 after a clean stop)."""
    return asyncio.run(Supervisor(argv, n).run())
