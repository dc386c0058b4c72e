"""The issues' targets: issue 6's per row (``targets``) and issue 11's (``targets11``), judged from a run's rows."""

from __future__ import annotations

from typing import Any

from bench.figures import fmt


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

