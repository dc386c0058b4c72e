"""The gateway config a bench run uses: the demo config of the tree under test plus what a load test needs."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import Any

from bench.settings import Settings


def bench_agents(n: int, capacity: int) -> list[dict[str, Any]]:
    return [{"id": f"b{i}", "name": f"压测客服{i}", "skills": ["presale", "aftersale", "logistics"],
             "capacity": capacity, "token": f"bench-token-{i}"} for i in range(1, n + 1)]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_dumps(d: dict[str, Any]) -> str:
    """Enough TOML for a gateway config: scalars, tables (nested ones inline), arrays of tables."""
    lines: list[str] = []
    tables = {k: v for k, v in d.items() if isinstance(v, dict)}
    arrays = {k: v for k, v in d.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)}
    lines += [f"{k} = {_toml_value(v)}" for k, v in d.items() if k not in tables and k not in arrays]
    for k, v in tables.items():
        lines.append(f"\n[{k}]")
        lines += [f"{json.dumps(kk)} = {_toml_value(vv)}" for kk, vv in v.items()]
    for k, items in arrays.items():
        for item in items:
            lines.append(f"\n[[{k}]]")
            lines += [f"{json.dumps(kk)} = {_toml_value(vv)}" for kk, vv in item.items()]
    return "\n".join(lines) + "\n"


def bench_config_text(src: Path, store_url: str, namespace: str, agents: int, capacity: int) -> str:
    """The demo config of the tree ``src``, with what a load test needs (README.md, Benchmark), as TOML."""
    raw = tomllib.loads((src / "configs" / "gateway.toml").read_text(encoding="utf-8"))
    faq = raw.get("bot", {}).get("faq", "faq.toml")
    overrides = {
        "store": {"url": store_url, "namespace": namespace},
        # the demo allows 10 messages / 10 s per connection; the bench sends far more per socket
        # and every bench customer comes from one address: the per-address limits are raised alike
        "limits": {"customer_messages": 1_000_000, "customer_window_s": 1, "agent_messages": 1_000_000,
                   "agent_window_s": 1, "hello_timeout_s": 60, "address_messages": 1_000_000,
                   "address_window_s": 1, "address_hellos": 1_000_000, "address_hello_window_s": 1,
                   "max_connections_per_address": 1_000_000},
        "routing": {"agent_grace_s": 0},
        "texts": {"greeting": ""},
        "bot": {"faq": str((src / "configs" / faq).resolve())},
        "agents": bench_agents(agents, capacity),
    }
    return toml_dumps(_merge(raw, overrides))


def write_bench_config(tmp: Path, st: Settings, namespace: str) -> Path:
    """The bench config of the tree under test (the store URL is given on the command line)."""
    path = tmp / f"gateway-{namespace}-{time.monotonic_ns()}.toml"
    path.write_text(bench_config_text(st.src, "memory://", namespace, st.agents, st.capacity), encoding="utf-8")
    return path
