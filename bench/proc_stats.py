"""/proc readings: CPU time and RSS of a process and its descendants, the machine's busy share, the
open-files limit, and what the machine is."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
from pathlib import Path
from typing import Any

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

