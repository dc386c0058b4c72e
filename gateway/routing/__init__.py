"""Routing policy: pure functions over plain data (no sockets, no store)."""

from gateway.routing.policy import (
    QUEUE_RANK_SPAN,
    AgentView,
    WaitingView,
    can_take,
    pick_agent,
    pick_waiting,
    queue_score,
)

__all__ = [
    "QUEUE_RANK_SPAN",
    "AgentView",
    "WaitingView",
    "can_take",
    "pick_agent",
    "pick_waiting",
    "queue_score",
]
