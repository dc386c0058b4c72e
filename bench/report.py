"""The results: terminal table, markdown tables, targets, bench/results/README.md, the README's results section,
latest.json and the plot; ``--render`` redoes them from a saved run."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

from bench.figures import fmt
from bench.plot import plot
from bench.proc_stats import machine_info
from bench.settings import DOC, RESULTS
from bench.targets import check_targets, issue11_targets


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

