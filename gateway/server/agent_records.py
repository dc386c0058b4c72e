"""The agent socket's part of issue 14: the ``close`` frame's outcome, the customer's history on a
conversation object, and the agent's follow-ups (README "Customer history, follow-ups, reopening and
reviews")."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from gateway.errors import BadFrame
from gateway.model import Conversation
from gateway.records.archive import Archive
from gateway.service.followups import MAX_FOLLOW_UP_S

log = logging.getLogger("gateway.agent")

RESOLUTIONS = ("resolved", "unresolved", "pending")
HISTORY_LIMIT = 5  # earlier conversations on an agent's conversation object
HISTORY_TIMEOUT_S = 0.3  # the archive's answer, at most; slower (or failing): an empty history, logged
MAX_NOTE_CHARS = 500


@dataclass(slots=True, frozen=True)
class CloseFrame:
    resolution: str
    category: str = ""
    follow_up_at: float = 0.0
    note: str = ""


def parse_close(frame: dict[str, Any], categories: tuple[str, ...], now: float | None = None) -> CloseFrame:
    """``{"type":"close","conversation","resolution"?,"category"?,"follow_up_at"?,"note"?}``, validated:
    anything wrong is ``bad_frame`` with the frame's id."""
    fid = frame.get("id")
    resolution = frame.get("resolution", "resolved")
    if resolution not in RESOLUTIONS:
        raise BadFrame("resolution must be resolved, unresolved or pending", frame_id=fid)
    category = frame.get("category", "")
    if category is None:
        category = ""
    if not isinstance(category, str) or (category and category not in categories):
        raise BadFrame(f"category must be one of {', '.join(categories)}", frame_id=fid)
    at, note = frame.get("follow_up_at"), frame.get("note")
    if resolution != "pending":
        if at is not None or note is not None:
            raise BadFrame("follow_up_at and note go with resolution pending only", frame_id=fid)
        return CloseFrame(str(resolution), category)
    now = time.time() if now is None else now
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise BadFrame("pending needs follow_up_at: when you will follow up (Unix seconds)", frame_id=fid)
    if at <= now:
        raise BadFrame("follow_up_at is in the past", frame_id=fid)
    if at > now + MAX_FOLLOW_UP_S:
        raise BadFrame(f"follow_up_at is more than {MAX_FOLLOW_UP_S / 86400:.0f} days ahead", frame_id=fid)
    if note is None:
        note = ""
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise BadFrame(f"note must be a string of at most {MAX_NOTE_CHARS} characters", frame_id=fid)
    return CloseFrame("pending", category, float(at), note)


async def customer_history(archive: Archive | None, conv: Conversation) -> list[dict[str, Any]]:
    """The customer's last five archived conversations (this one left out), newest first; [] when there
    is no archive, or it fails or takes longer than ``HISTORY_TIMEOUT_S`` (logged): never holds up an
    assignment for long."""
    if archive is None:
        return []
    try:
        items = await asyncio.wait_for(archive.history(conv.customer_id, HISTORY_LIMIT, before=conv.id),
                                       HISTORY_TIMEOUT_S)
    except TimeoutError:
        log.warning("event=history_slow conversation=%s timeout_s=%s", conv.id, HISTORY_TIMEOUT_S)
        return []
    except Exception as e:  # the archive is down or broken: the agent still gets the conversation
        log.warning("event=history_failed conversation=%s error=%r", conv.id, e)
        return []
    return [item.to_dict() for item in items]


def follow_up_item(conv: Conversation, now: float | None = None) -> dict[str, Any]:
    """One of the agent's pending cases, as ``welcome.follow_ups`` and the ``follow_up`` frame carry it."""
    now = time.time() if now is None else now
    return {
        "conversation": conv.id,
        "customer": {"id": conv.customer_id, "name": conv.customer_name},
        "channel": conv.channel,
        "skill": conv.skill,
        "category": conv.category,
        "closed_at": conv.closed_at,
        "follow_up_at": conv.follow_up_at,
        "note": conv.follow_up_note,
        "due": conv.follow_up_at <= now,
    }
