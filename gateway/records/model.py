"""The archive record of a conversation, built from its stored state and log (pure: no I/O).

A record is written when a conversation closes and written again (same ``id``, replaced whole) when it
is rated, reopened or its follow-up is done: ``version`` grows with each write, and a backend keeps
the highest. Every field the search API returns (README, Archive and reports) is here, plus the
timings the reports need; ``messages`` is the whole log.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

RESOLUTIONS = ("resolved", "unresolved", "pending")
DEFAULT_CATEGORIES = ("quality", "logistics", "usage", "service", "other")


@dataclass(slots=True)
class Record:
    id: str
    customer_id: str
    customer_name: str = ""
    channel: str = "web"
    shop: str = ""  # platform conversations: the shop id; web: ""
    skill: str = ""
    priority: str = "normal"
    agents: tuple[str, ...] = ()  # every agent that held it, in order
    created_at: float = 0.0
    handoff_at: float | None = None  # first hand-off to people (None: bot only)
    assigned_at: float | None = None  # first assignment to an agent
    first_response_at: float | None = None  # first agent message after the hand-off
    first_response_s: float | None = None  # first_response_at - handoff_at
    closed_at: float = 0.0
    close_reason: str = ""  # the closed entry's reason: resolved, unresolved, pending, customer, idle, …
    resolution: str = ""  # resolved | unresolved | pending ("" when not closed by an agent)
    category: str = ""  # quality | logistics | usage | service | other | [records] categories
    follow_up_at: float | None = None  # pending: when the agent promised to come back
    follow_up_note: str = ""
    follow_up_done_at: float | None = None
    rating: int = 0  # 0: not rated
    comment: str = ""
    orders: tuple[str, ...] = ()
    bot_only: bool = True  # never handed off to people
    reopened_from: str = ""  # the conversation this one reopens
    transfers: int = 0
    customer_messages: int = 0
    agent_messages: int = 0
    response_times_s: tuple[float, ...] = ()  # customer message -> next agent message, while assigned
    first_customer_text: str = ""
    version: int = 1
    messages: list[dict[str, Any]] = field(default_factory=list)  # the whole log

    @property
    def handle_s(self) -> float | None:
        """Assigned to closed (handle time)."""
        return None if self.assigned_at is None or not self.closed_at else self.closed_at - self.assigned_at

    def item(self) -> dict[str, Any]:
        """The search API's item (README, Archive and reports)."""
        return {
            "id": self.id,
            "customer": {"id": self.customer_id, "name": self.customer_name},
            "channel": self.channel,
            "shop": self.shop,
            "skill": self.skill,
            "priority": self.priority,
            "agents": list(self.agents),
            "created_at": self.created_at,
            "handoff_at": self.handoff_at,
            "first_response_s": self.first_response_s,
            "closed_at": self.closed_at,
            "resolution": self.resolution,
            "category": self.category,
            "rating": self.rating or None,
            "comment": self.comment,
            "orders": list(self.orders),
            "bot_only": self.bot_only,
            "reopened_from": self.reopened_from or None,
        }

    def to_dict(self) -> dict[str, Any]:
        # as dataclasses.asdict (the messages deep-copied), without its field-by-field recursion: an
        # archive write calls this for every record, and asdict was most of a SQLite put's time
        d = {name: getattr(self, name) for name in self.__dataclass_fields__}
        d["agents"], d["orders"], d["response_times_s"] = list(self.agents), list(self.orders), list(
            self.response_times_s)
        d["messages"] = copy.deepcopy(self.messages)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("agents", "orders", "response_times_s"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)


@dataclass(slots=True, frozen=True)
class HistoryItem:
    """One of a customer's earlier conversations, as the agent's ``assigned`` object carries it."""

    id: str
    closed_at: float
    resolution: str
    category: str
    rating: int
    first_message: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "closed_at": self.closed_at, "resolution": self.resolution,
                "category": self.category, "rating": self.rating or None, "first_message": self.first_message}


@dataclass(slots=True, frozen=True)
class SearchFilters:
    """``GET /api/conversations`` query (all optional; ``q`` searches message text)."""

    customer: str = ""
    agent: str = ""
    order: str = ""
    channel: str = ""
    skill: str = ""
    category: str = ""
    resolution: str = ""
    rating_max: int | None = None
    from_ts: float | None = None  # created_at >= from_ts
    to_ts: float | None = None  # created_at < to_ts
    q: str = ""
