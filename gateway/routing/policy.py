"""The routing rules of PROTOCOL.md as pure functions.

The memory store applies these directly; the Redis Lua scripts mirror them and
the store contract tests hold both to the same outcomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gateway.model import AgentStatus, Priority

# A queue score orders by priority first, then by arrival ticket. Tickets come
# from one counter per namespace, so the score is exact in a double (< 2**53).
QUEUE_RANK_SPAN = 10**13


def queue_score(priority: Priority, ticket: int) -> int:
    """Lower is served first: urgent before high before normal, then arrival.

    A requeued conversation keeps its original ticket, which puts it ahead of
    newer arrivals of the same priority.
    """
    return priority.rank * QUEUE_RANK_SPAN + ticket


@dataclass(slots=True, frozen=True)
class AgentView:
    id: str
    status: AgentStatus
    skills: frozenset[str]
    held: int
    capacity: int
    last_assigned: float


@dataclass(slots=True, frozen=True)
class WaitingView:
    conversation: str
    skill: str
    score: int


def can_take(agent: AgentView, skill: str) -> bool:
    """Online, has the skill, and is below capacity."""
    return agent.status is AgentStatus.ONLINE and skill in agent.skills and agent.held < agent.capacity


def pick_agent(agents: Iterable[AgentView], skill: str, exclude: str = "") -> str | None:
    """The least-loaded agent that can take ``skill`` (held/capacity), ties to the longest idle.

    Remaining ties go to the smaller id so the choice is deterministic.
    """
    best: AgentView | None = None
    best_key: tuple[float, float, str] | None = None
    for a in agents:
        if a.id == exclude or not can_take(a, skill):
            continue
        key = (a.held / a.capacity, a.last_assigned, a.id)
        if best_key is None or key < best_key:
            best, best_key = a, key
    return best.id if best is not None else None


def pick_waiting(
    queues: Mapping[str, Sequence[WaitingView]], skills: Iterable[str]
) -> WaitingView | None:
    """The first waiting conversation among ``skills`` queues (each sorted by score)."""
    best: WaitingView | None = None
    for skill in skills:
        q = queues.get(skill)
        if not q:
            continue
        head = q[0]
        if best is None or (head.score, head.conversation) < (best.score, best.conversation):
            best = head
    return best
