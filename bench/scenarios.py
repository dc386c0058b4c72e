"""The scenarios: the load-generator spec of each, its workload in words, and a row from its steps."""

from __future__ import annotations

import statistics
from typing import Any

from bench.config import bench_agents
from bench.figures import median, ratio
from bench.settings import Settings


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

