"""Plain typed domain data shared by every layer (imports nothing of the gateway)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

Entry = dict[str, Any]
"""A conversation log entry exactly as it goes on the wire (``seq``, ``ts``, ``type`` …)."""


PLATFORMS = ("doudian", "douyin", "pdd", "taobao")
"""The platforms whose buyers reach the gateway through adapters; their customer ids
are ``<platform>:<shop>:<buyer>``, a namespace no web client may name."""


def is_platform_customer(customer: str) -> bool:
    head, sep, _ = customer.partition(":")
    return bool(sep) and head.lower() in PLATFORMS


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
    feedback: dict[int, bool] = field(default_factory=dict)  # bot message seq -> the customer found it helpful
    # the agent's close (README "Customer history, follow-ups, reopening and reviews"); 0.0 / "": none
    resolution: str = ""  # resolved | unresolved | pending (set by an agent's close only)
    category: str = ""  # quality | logistics | usage | service | other, or [records] categories
    follow_up_at: float = 0.0  # pending: when the agent promised to come back (Unix seconds)
    follow_up_note: str = ""  # pending: the agent's note
    follow_up_done_at: float = 0.0  # when the owner ended the pending case (closed it resolved / unresolved)
    reopened_from: str = ""  # the customer's earlier conversation this one reopens
    prefer_agent: str = ""  # offered first to this agent at hand-off, when online with room (a reopen's previous agent)

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
            "feedback": {str(seq): v for seq, v in self.feedback.items()},  # JSON keys are strings
            "resolution": self.resolution,
            "category": self.category,
            "follow_up_at": self.follow_up_at,
            "follow_up_note": self.follow_up_note,
            "follow_up_done_at": self.follow_up_done_at,
            "reopened_from": self.reopened_from,
            "prefer_agent": self.prefer_agent,
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
            feedback={int(seq): bool(v) for seq, v in (d.get("feedback") or {}).items()},
            resolution=str(d.get("resolution", "")),
            category=str(d.get("category", "")),
            follow_up_at=float(d.get("follow_up_at", 0.0)),
            follow_up_note=str(d.get("follow_up_note", "")),
            follow_up_done_at=float(d.get("follow_up_done_at", 0.0)),
            reopened_from=str(d.get("reopened_from", "")),
            prefer_agent=str(d.get("prefer_agent", "")),
        )


def with_feedback(entries: list[Entry], feedback: dict[int, bool]) -> list[Entry]:
    """The log as agents and the admin API read it: ``"helpful"`` on every bot message the customer
    judged (``Conversation.feedback``; log entries themselves never change)."""
    if not feedback:
        return entries
    return [{**e, "helpful": feedback[e["seq"]]} if e.get("seq") in feedback else e for e in entries]


@dataclass(slots=True, frozen=True)
class MetaMerge:
    """Put ``items`` into the object at one meta key; keep at most ``keep`` items,
    dropping those with the smallest ``by`` field (a number every item carries)."""

    items: dict[str, Any]
    keep: int = 20
    by: str = "updated"


@dataclass(slots=True, frozen=True)
class MetaPatch:
    """A change to a conversation's ``meta``, merged inside one store step (never read-modify-write).

    ``set``: top-level keys replaced by these values (``None`` removes the key);
    ``union``: list keys that gain these items (order kept, no repeats);
    ``merge``: object keys that gain these items (see ``MetaMerge``).
    """

    set: dict[str, Any] = field(default_factory=dict)
    union: dict[str, tuple[str, ...]] = field(default_factory=dict)
    merge: dict[str, MetaMerge] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.set or self.union or self.merge)

    def apply(self, meta: dict[str, Any]) -> None:
        """Apply to ``meta`` in place (the memory store; the Lua scripts do the same)."""
        for k, v in self.set.items():
            if v is None:
                meta.pop(k, None)
            else:
                meta[k] = v
        for k, items in self.union.items():
            if not items:
                continue
            cur = meta.get(k)
            base = list(cur) if isinstance(cur, list) else []
            seen = set(base)
            for it in items:
                if it not in seen:
                    seen.add(it)
                    base.append(it)
            meta[k] = base
        for k, m in self.merge.items():
            cur = meta.get(k)
            obj = dict(cur) if isinstance(cur, dict) else {}
            obj.update(m.items)
            while len(obj) > max(m.keep, 0):
                # smallest ``by`` goes first; ties to the smaller key (as the Lua step does)
                oldest = min(obj, key=lambda key: (_num(obj[key], m.by), key))
                del obj[oldest]
            meta[k] = obj


def _num(item: Any, by: str) -> float:
    v = item.get(by) if isinstance(item, dict) else None
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0
