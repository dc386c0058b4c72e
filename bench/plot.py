"""latency.png: ack and bot-answer latency against offered load (the faq sweep)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.proc_stats import machine_info


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    points = [p for r in rows if r.get("scenario") == "faq" for p in r.get("sweep") or []]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), sharey=True)
    series: dict[str, list[dict[str, Any]]] = {}
    echo_store = next((p["store"] for p in points if p["target"] == "echo"), None)
    for p in points:
        if p["target"] == "echo" and p["store"] != echo_store:
            continue  # the same echo server measured again next to the other store: one line is enough
        series.setdefault(p["label"], []).append(p)
    colors = {"gateway memory://": "tab:blue", "gateway redis://": "tab:red", "echo baseline": "tab:gray"}
    for ax, (metric, title) in zip(axes, (("ack", "ack latency"), ("answer", "bot answer latency (echo: echo)")),
                                   strict=True):
        for label, ps in sorted(series.items()):
            ps = sorted(ps, key=lambda p: p["rate"])
            xs = [p["rate"] for p in ps]
            c = colors.get(label)
            for pct, style in (("p50", "--"), ("p99", "-")):
                ys = [p[f"{metric}_{pct}_ms"] for p in ps]
                if any(y is not None for y in ys):
                    ax.plot(xs, [y if y is not None else float("nan") for y in ys], style, marker="o",
                            color=c, label=f"{label} {pct}")
        limit = 20 if metric == "ack" else 30
        ax.axhline(limit, color="tab:green", linestyle=":", linewidth=1)
        ax.annotate(f"target p99 {limit} ms (mixed at 2000/s)", (0.01, limit), xycoords=("axes fraction", "data"),
                    fontsize=7, color="tab:green", va="bottom")
        ax.set_title(title)
        ax.set_xlabel("offered load (customer messages/s, open loop)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms from scheduled send (log)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    m = next((r["machine"] for r in rows if r.get("machine")), None) or machine_info()
    src = next(((r.get("run") or {}).get("source", "") for r in rows if r.get("run")), "")
    fig.suptitle(f"gateway vs bare aiohttp echo, faq scenario, {m['nproc']} CPU {m['cpu_model']}"
                 + (f" - {src}" if src else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
