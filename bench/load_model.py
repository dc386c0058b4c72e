"""What the load generator tracks: one customer message and what came back for it, one customer session,
and latency percentiles."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from websockets.asyncio.client import ClientConnection


def summary(values_s: Iterable[float]) -> dict[str, float | int | None]:
    """Percentiles (nearest rank) of latencies given in seconds, reported in ms."""
    xs = sorted(values_s)
    n = len(xs)
    out: dict[str, float | int | None] = {"n": n}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
        out[name] = round(xs[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))] * 1000.0, 3) if n else None
    out["max"] = round(xs[-1] * 1000.0, 3) if n else None
    out["mean"] = round(sum(xs) / n * 1000.0, 3) if n else None
    return out


# ------------------------------------------------------------------ model


class Req:
    """One customer message and what came back for it (perf_counter seconds)."""

    __slots__ = ("error", "kind", "measured", "qpos", "t_ack", "t_answer", "t_assigned", "t_closed", "t_first",
                 "t_notice", "t_sched", "t_sent")

    def __init__(self, kind: str, t_sched: float, measured: bool) -> None:
        self.kind = kind  # "faq" | "handoff"
        self.t_sched = t_sched
        self.measured = measured
        self.t_sent = 0.0
        self.t_ack = 0.0
        self.t_answer = 0.0  # bot answer (faq)
        self.t_notice = 0.0  # the system "a person will take over" entry (handoff)
        self.t_assigned = 0.0  # the ``assigned`` log entry (handoff)
        self.t_first = 0.0  # first agent message (handoff)
        self.t_closed = 0.0  # the conversation closed after a handoff: the hand-off lifecycle is over
        self.error = ""
        self.qpos = 0  # highest queue position seen

    @property
    def t_final(self) -> float:
        """When the customer had a real response: the bot's answer or the agent's first message."""
        return self.t_answer if self.kind == "faq" else self.t_first

    @property
    def t_done(self) -> float:
        """When the message counts as handled for throughput: answered (faq) or acknowledged (handoff)."""
        return self.t_answer if self.kind == "faq" else self.t_ack

    @property
    def settled(self) -> bool:
        return bool(self.error) or self.t_final > 0.0


class Customer:
    __slots__ = ("conv", "fifo", "handoff", "i", "idle", "pending", "ws")

    def __init__(self, i: int, ws: ClientConnection, conv: str) -> None:
        self.i = i
        self.ws = ws
        self.conv = conv
        self.pending: dict[str, Req] = {}  # frame id -> waiting for its ack
        self.fifo: deque[Req] = deque()  # faq messages waiting for the bot's answer
        self.handoff: Req | None = None  # handed off, until the conversation closes
        self.idle = True

    @property
    def busy(self) -> bool:
        return bool(self.fifo) or self.handoff is not None

