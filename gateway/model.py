"""Plain typed domain data shared by every layer (imports nothing of the gateway)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

Entry = dict[str, Any]
"""A conversation log entry exactly as it goes on the wire (``seq``, ``ts``, ``type`` …)."""


class Priority(enum.StrEnum):
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        """0 is served first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2}


class AgentStatus(enum.StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class ConvState(enum.StrEnum):
    BOT = "bot"  # the bot answers; no person involved yet
    QUEUED = "queued"  # handed off, waiting in a skill queue
    ASSIGNED = "assigned"  # held by exactly one agent
    CLOSED = "closed"


class EntryType(enum.StrEnum):
    MESSAGE = "message"
    ASSIGNED = "assigned"
    TRANSFERRED = "transferred"
    CLOSED = "closed"


class Sender(enum.StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


@dataclass(slots=True, frozen=True)
class AgentProfile:
    """An agent as configured: who it is and what it may take."""

    id: str
    name: str
    skills: tuple[str, ...]
    capacity: int


@dataclass(slots=True)
class AgentState:
    """An agent's routing state as the store keeps it."""

    id: str
    name: str
    skills: tuple[str, ...]
    capacity: int
    status: AgentStatus = AgentStatus.OFFLINE
    held: list[str] = field(default_factory=list)  # conversation ids, assignment order
    last_assigned: float = 0.0  # for the longest-idle tie-break

    @property
    def load(self) -> float:
        return len(self.held) / self.capacity if self.capacity > 0 else 1.0

    @property
    def room(self) -> int:
        return self.capacity - len(self.held)


@dataclass(slots=True)
class Conversation:
    """A conversation's state as the store keeps it (the log is kept apart)."""

    id: str
    customer_id: str
    customer_name: str = ""
    channel: str = "web"
    state: ConvState = ConvState.BOT
    skill: str = ""
    priority: Priority = Priority.NORMAL
    agent: str = ""  # holder while ASSIGNED
    ticket: int = 0  # arrival order in the queues; kept on requeue so it stays ahead
    created_at: float = 0.0
    closed_at: float = 0.0
    close_reason: str = ""
    had_agent: str = ""  # last agent that held it (for the survey and rating)
    rating: int = 0
    rating_comment: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # order numbers, handoff reason, platform keys

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "customer_name": self.customer_name,
            "channel": self.channel,
            "state": self.state.value,
            "skill": self.skill,
            "priority": self.priority.value,
            "agent": self.agent,
            "ticket": self.ticket,
            "created_at": self.created_at,
            "closed_at": self.closed_at,
            "close_reason": self.close_reason,
            "had_agent": self.had_agent,
            "rating": self.rating,
            "rating_comment": self.rating_comment,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Conversation:
        return cls(
            id=str(d["id"]),
            customer_id=str(d.get("customer_id", "")),
            customer_name=str(d.get("customer_name", "")),
            channel=str(d.get("channel", "web")),
            state=ConvState(d.get("state", "bot")),
            skill=str(d.get("skill", "")),
            priority=Priority(d.get("priority", "normal")),
            agent=str(d.get("agent", "")),
            ticket=int(d.get("ticket", 0)),
            created_at=float(d.get("created_at", 0.0)),
            closed_at=float(d.get("closed_at", 0.0)),
            close_reason=str(d.get("close_reason", "")),
            had_agent=str(d.get("had_agent", "")),
            rating=int(d.get("rating", 0)),
            rating_comment=str(d.get("rating_comment", "")),
            meta=dict(d.get("meta") or {}),
        )
