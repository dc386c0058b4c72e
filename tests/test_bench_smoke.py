"""The bench's smoke run (``python -m bench.run --quick``), so the benchmark cannot rot.

Seconds and small numbers; it checks that every scenario ran and wrote sane
results, never how fast this machine is.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

SCENARIOS = ("faq", "handoff", "mixed", "connections")  # every store; "workers" runs on Redis only
QUICK_THINK_MS = 50
ISSUE11 = {"redis_cpu_vs_memory", "redis_us_per_msg", "redis_us_per_lifecycle", "ack_p99_2000", "handoff_within_30s",
           "mixed_within_30s", "memory_cpu_vs_echo", "idle_session_kb_memory", "idle_session_kb_redis", "workers"}
REQUIRED = ("scenario", "store", "offered_rate", "throughput", "ack_p50_ms", "ack_p99_ms", "answer_p99_ms",
            "first_response_p99_ms", "within_30s", "baseline_throughput", "ratio", "cpu_ms_per_msg", "workload")


def _redis_available() -> bool:
    return shutil.which("redis-server") is not None and importlib.util.find_spec("gateway.store.redis") is not None


def _has_workers() -> bool:
    return '"--workers"' in (ROOT / "gateway" / "cli.py").read_text(encoding="utf-8")


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Path, str]:
    out = tmp_path_factory.mktemp("bench")
    stores = "memory,redis" if _redis_available() else "memory"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--stores", stores, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, f"bench exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    rows = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    return rows, out, proc.stdout


@pytest.mark.timeout(300)
def test_smoke_run_writes_every_scenario(smoke: tuple[list[dict[str, Any]], Path, str]) -> None:
    rows, out, stdout = smoke
    assert isinstance(rows, list)
    got = {(r["scenario"], r["store"]) for r in rows}
    for s in SCENARIOS:
        assert (s, "memory") in got, f"no {s}/memory row in {sorted(got)}"
    if _redis_available():
        for s in (*SCENARIOS, "workers"):
            assert (s, "redis") in got, f"no {s}/redis row in {sorted(got)}"
    assert ("workers", "memory") not in got  # the memory store runs in one process
    assert (out / "README.md").is_file()
    md = (out / "README.md").read_text(encoding="utf-8")
    assert "| scenario |" in md
    assert "## Targets (issue 11)" in md and "## Earlier targets (issue 6)" in md
    png = out / "latency.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "scenario" in stdout and "wrote" in stdout  # the terminal table


@pytest.mark.timeout(300)
def test_smoke_rows_have_sane_values(smoke: tuple[list[dict[str, Any]], Path, str]) -> None:
    rows, _, _ = smoke
    for r in rows:
        if (r["store"] == "redis" and not _redis_available()) or r["scenario"] == "workers":
            continue
        where = f"{r['scenario']}/{r['store']}"
        assert r["status"] == "ok", f"{where}: {r.get('reason')}"
        for k in REQUIRED:
            assert k in r, f"{where}: missing {k}"
        assert r["offered_rate"] > 0
        assert r["throughput"] > 0 and r["baseline_throughput"] > 0, where
        # everything sent was stored and answered: no errors, no lost messages, no dropped sockets
        # (arrivals skipped for want of a free customer are load, not a fault: not asserted)
        for run in r["runs"]:
            assert run["sent"] > 0, where
            assert run["failed"] == {} and run["errors"] == {} and run["unexpected"] == {}, f"{where}: {run}"
            assert run["disconnect_codes"] == {}, f"{where}: {run['disconnect_codes']}"
        assert r["within_30s"] == 1.0, where
        assert _num(r["ack_p50_ms"]) and _num(r["ack_p99_ms"]), where
        assert 0 < r["ack_p50_ms"] <= r["ack_p99_ms"], where
        assert _num(r["ratio"]) and r["ratio"] > 0, where
        assert _num(r["cpu_ms_per_msg"]) and r["cpu_ms_per_msg"] > 0, where
        assert r["machine"]["nproc"] >= 1 and r["machine"]["python"]
        if r["scenario"] in ("faq", "mixed", "connections"):
            assert _num(r["answer_p99_ms"]) and r["answer_p99_ms"] > 0, where
        else:
            assert r["answer_p99_ms"] is None, where
        if r["scenario"] in ("handoff", "mixed"):
            assert _num(r["first_response_p99_ms"]), where
            # the agents' think time (0.05 s in the quick run) is part of the first response
            assert r["first_response_p99_ms"] >= QUICK_THINK_MS, where
        else:
            assert r["first_response_p99_ms"] is None, where
        if r["scenario"] == "faq":
            assert _num(r["capacity"]) and _num(r["baseline_capacity"]) and _num(r["capacity_ratio"])
            if r["store"] == "memory":
                assert {p["target"] for p in r["sweep"]} == {"gateway", "echo"}
        if r["scenario"] == "connections":
            assert r["sessions_held"] == r["customers"] > 0, where
            assert _num(r["rss_per_session_kb"]), where
        # fresh texts by default: no common text sent, none repeated within a gateway process
        if r["scenario"] != "handoff":
            assert r["fresh_texts"]["share"] == 1.0 and not r["fresh_texts"]["repeated"], where
            assert r["fresh_texts"]["walked"] > 0, where
            for run in r["runs"] + r["baseline_runs"]:
                assert run["common_sent"] == 0 and run["fresh_sent"] > 0, where
        if r["store"] == "redis":
            if r["scenario"] == "handoff":
                # redis-server CPU per completed hand-off lifecycle (request, agent reply, close)
                assert _num(r["redis_cpu_us_per_lifecycle"]) and r["lifecycles_in_window"] > 0, where
            else:
                assert _num(r["redis_cpu_us_per_msg"]), where


@pytest.mark.timeout(300)
def test_smoke_workers_row_compares_one_and_two(smoke: tuple[list[dict[str, Any]], Path, str]) -> None:
    rows, out, _ = smoke
    if not _redis_available():
        pytest.skip("redis-server or the Redis store is not available: no workers row")
    r = next(r for r in rows if r["scenario"] == "workers")
    if not _has_workers():
        assert r["status"] == "skipped" and "--workers" in r["reason"]
        return
    assert r["status"] == "ok", r.get("reason")
    got = {c["workers"]: c for c in r["workers_compared"]}
    assert set(got) == {1, 2}, got
    for c in got.values():
        assert c["status"] == "ok", c
        assert _num(c["capacity"]) and c["capacity"] > 0 and _num(c["ack_p99_ms"]), c
        # the CPU of a gateway of several processes is the supervisor's and all its workers'
        assert _num(c["cpu_ms_per_msg"]) and c["cpu_ms_per_msg"] > 0, c
    assert r["workers"] == 2 and r["throughput"] > 0
    for run in r["runs"]:
        assert run["failed"] == {} and run["errors"] == {} and run["disconnect_codes"] == {}, run
    assert "Every core: 1 and 2 workers" in (out / "README.md").read_text(encoding="utf-8")


@pytest.mark.timeout(300)
def test_smoke_issue11_targets_are_all_reported(smoke: tuple[list[dict[str, Any]], Path, str]) -> None:
    from bench.targets import issue11_targets

    rows, out, stdout = smoke
    targets = issue11_targets(rows)
    assert {t["key"] for t in targets} == ISSUE11
    md = (out / "README.md").read_text(encoding="utf-8")
    for t in targets:
        assert t["target"] in md, t
        # the smoke run is too short to judge: every target says n/a with a reason, none is met or missed
        assert t["ok"] is None and t["why"], t
        # measured, even if not judged (CPU ratios need a few 10 ms clock ticks: not asserted here)
        if t["key"] in ("ack_p99_2000", "handoff_within_30s", "mixed_within_30s", "idle_session_kb_memory",
                        "idle_session_kb_redis", "workers") and (t["store"] == "memory" or _redis_available()):
            if t["key"] != "workers" or _has_workers():
                assert t["shown"] != "-", t
    assert "issue 11:" in stdout
