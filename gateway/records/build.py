"""``build_record``: the archive record of a conversation, from its stored state and its log (pure).

The conversation gives who, where and how it ended; the log gives when things happened:

- ``handoff_at``: the hand-off step's ``meta.queued_at`` (the first response is measured from it, as
  the live ``gateway_first_response_seconds`` is); without one, the first ``assigned`` entry;
- ``assigned_at``: the first ``assigned`` entry; ``agents``: every agent an ``assigned`` entry names,
  in order, once each; ``transfers``: the ``transferred`` entries;
- ``first_response_at``: the first agent message at or after the hand-off;
- ``response_times_s``: for each customer message written while an agent held the conversation and
  not yet answered, the time to the next agent message;
- ``orders``: ``meta.orders``; ``shop``: ``meta.platform.shop`` (platform conversations).

The agent's close and the closed loop (``resolution``, ``category``, ``follow_up_at``,
``follow_up_note``, ``follow_up_done_at``, ``reopened_from``) are read from the conversation's
fields, else from ``meta`` keys of the same names, else left empty.
"""

from __future__ import annotations

from typing import Any

from gateway.model import Conversation, Entry, with_feedback
from gateway.records.model import Record


def build_record(conv: Conversation, entries: list[Entry], version: int) -> Record:
    handoff_at = _number(conv.meta.get("queued_at"))
    assigned_at: float | None = None
    first_response_at: float | None = None
    agents: list[str] = []
    transfers = customer_messages = agent_messages = 0
    response_times: list[float] = []
    waiting_since: float | None = None  # an unanswered customer message, written while an agent held it
    held = False
    first_text = ""
    for e in entries:
        kind, ts = e.get("type"), _number(e.get("ts")) or 0.0
        if kind == "assigned":
            held = True
            if assigned_at is None:
                assigned_at = ts
            agent = _agent_id(e.get("agent"))
            if agent and agent not in agents:
                agents.append(agent)
        elif kind == "transferred":
            transfers += 1
            held = False
        elif kind == "closed":
            held = False
        elif kind == "message" and e.get("from") == "customer":
            customer_messages += 1
            if not first_text:
                first_text = str(e.get("text", ""))
            if held and waiting_since is None:
                waiting_since = ts
        elif kind == "message" and e.get("from") == "agent":
            agent_messages += 1
            if first_response_at is None and (handoff_at is None or ts >= handoff_at):
                first_response_at = ts
            if waiting_since is not None:
                response_times.append(round(max(0.0, ts - waiting_since), 6))
                waiting_since = None
    if handoff_at is None:
        handoff_at = assigned_at
    first_response_s = None
    if first_response_at is not None and handoff_at is not None:
        first_response_s = round(max(0.0, first_response_at - handoff_at), 6)
    return Record(
        id=conv.id,
        customer_id=conv.customer_id,
        customer_name=conv.customer_name,
        channel=conv.channel,
        shop=_shop(conv.meta),
        skill=conv.skill,
        priority=conv.priority.value,
        agents=tuple(agents),
        created_at=conv.created_at,
        handoff_at=handoff_at,
        assigned_at=assigned_at,
        first_response_at=first_response_at,
        first_response_s=first_response_s,
        closed_at=conv.closed_at,
        close_reason=conv.close_reason,
        resolution=_text(conv, "resolution"),
        category=_text(conv, "category"),
        follow_up_at=_when(conv, "follow_up_at"),
        follow_up_note=_text(conv, "follow_up_note"),
        follow_up_done_at=_when(conv, "follow_up_done_at"),
        rating=conv.rating,
        comment=conv.rating_comment,
        orders=tuple(str(o) for o in conv.meta.get("orders") or () if o),
        bot_only=handoff_at is None and not agents,
        reopened_from=_text(conv, "reopened_from"),
        transfers=transfers,
        customer_messages=customer_messages,
        agent_messages=agent_messages,
        response_times_s=tuple(response_times),
        first_customer_text=first_text,
        version=version,
        messages=[dict(e) for e in with_feedback(entries, conv.feedback)],
    )


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _agent_id(ref: Any) -> str:
    return str(ref.get("id") or "") if isinstance(ref, dict) else ""


def _shop(meta: dict[str, Any]) -> str:
    binding = meta.get("platform")
    return str(binding.get("shop") or "") if isinstance(binding, dict) else ""


def _text(conv: Conversation, name: str) -> str:
    """A closed-loop field: the conversation's own, else ``meta``'s, else ""."""
    v = getattr(conv, name, None) or conv.meta.get(name)
    return str(v) if v else ""


def _when(conv: Conversation, name: str) -> float | None:
    """A closed-loop time (0 or absent: None)."""
    v = _number(getattr(conv, name, None)) or _number(conv.meta.get(name))
    return v or None
