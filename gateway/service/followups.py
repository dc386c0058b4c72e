"""An agent's close outcome, pending follow-ups and reopened cases (README "Customer history,
follow-ups, reopening and reviews").

A mixin of ``ConversationService``. Every change is one store step: the close (with its resolution,
category and, for ``pending``, the follow-up timer and the agent's follow-ups list), ending a pending
case, the follow-up timer firing. Reopening is decided here, before the new conversation's one
``create_conversation`` step, from the customer's previous conversation (the store's, or the
archive's record once the store has let it go).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from gateway.config import Config
from gateway.errors import BadFrame, NotAssigned, NotFound
from gateway.model import Conversation, ConvState, Entry
from gateway.records.archive import Archive
from gateway.store import CloseOutcome, Placement, Store

log = logging.getLogger("gateway.service")

BEIJING = timezone(timedelta(hours=8), "北京时间")
MAX_FOLLOW_UP_S = 90 * 86400.0  # a follow-up further ahead than this is refused (bad_frame)
ARCHIVE_TIMEOUT_S = 0.5  # the archive's look-up of a previous conversation, when the store has let it go
REOPEN_REASON = "reopened"  # the hand-off reason of a reopened conversation (meta.reasons)
REOPEN_RESOLUTIONS = ("unresolved", "pending")


def follow_up_text(template: str, at: float) -> str:
    """``[texts] follow_up`` with ``{time}`` as Beijing time, e.g. ``12月3日 14:00``."""
    t = datetime.fromtimestamp(at, BEIJING)
    return template.replace("{time}", f"{t.month}月{t.day}日 {t:%H:%M}")


def reopens(resolution: str, rating: int, closed_at: float, now: float, reopen_s: float) -> bool:
    """A conversation closed ``unresolved`` or ``pending``, or rated 1-2, within ``reopen_s`` of ``now``."""
    if reopen_s <= 0 or not closed_at or closed_at < now - reopen_s:
        return False
    return resolution in REOPEN_RESOLUTIONS or 1 <= rating <= 2


@dataclass(slots=True, frozen=True)
class Reopen:
    """What a new conversation takes from the one it reopens."""

    conversation: str  # -> Conversation.reopened_from
    agent: str  # -> Conversation.prefer_agent ("" when no agent held it)
    skill: str  # -> meta.default_skill (the team that had it), when known


class FollowUps:
    config: Config
    store: Store
    archive: Archive | None = None  # the archive, when one is wired (the reopen look-up's fallback)

    def _closed(self, pulled: tuple[Placement, ...]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ reopening
    async def reopen_of(self, customer: str, now: float) -> Reopen | None:
        """The customer's previous conversation, when a new one opened now reopens it: the store's (the
        customer's pointer), else, once the store has let it go (archived, ``keep_hot_s``), the archive's."""
        reopen_s = self.config.records.reopen_s
        if reopen_s <= 0:
            return None
        prev_id = await self.store.customer_conversation(customer)
        prev = await self.store.get_conversation(prev_id) if prev_id else None
        if prev is not None:
            if prev.state is ConvState.CLOSED and reopens(prev.resolution, prev.rating, prev.closed_at, now, reopen_s):
                return Reopen(prev.id, prev.had_agent, prev.skill)
            return None
        return await self._archived_reopen(customer, now, reopen_s)

    async def _archived_reopen(self, customer: str, now: float, reopen_s: float) -> Reopen | None:
        # A web visitor without an id gets a new "anon-…" one per session: no archive to look in.
        if self.archive is None or customer.startswith("anon-"):
            return None
        try:
            async with asyncio.timeout(ARCHIVE_TIMEOUT_S):
                last = await self.archive.history(customer, 1)
                if not last or not reopens(last[0].resolution, last[0].rating, last[0].closed_at, now, reopen_s):
                    return None
                rec = await self.archive.get(last[0].id)
        except Exception as e:  # a slow or failing archive must not hold up a new conversation
            log.warning("event=reopen_lookup_failed customer=%s error=%r", customer, e)
            return None
        if rec is None:
            return None
        return Reopen(rec.id, rec.agents[-1] if rec.agents else "", rec.skill)

    # ------------------------------------------------------------ the agent's close
    async def agent_close(self, agent: str, conversation: str, resolution: str = "resolved", *, category: str = "",
                          follow_up_at: float = 0.0, note: str = "") -> None:
        """One step: close (resolution, category; ``pending``: the customer's notice with the promised time,
        the follow-up timer, the case on the agent's follow-ups). Closing again a pending case the agent
        owns (``resolved`` / ``unresolved``) ends it, also in one step."""
        pending = resolution == "pending"
        outcome = CloseOutcome(resolution, category, follow_up_at if pending else 0.0, note if pending else "")
        notice: Entry | None = None
        if pending:
            notice = {"type": "message", "from": "system",
                      "text": follow_up_text(self.config.texts.follow_up, follow_up_at)}
        try:
            res = await self.store.close_conversation(conversation, resolution, by_agent=agent, notice=notice,
                                                      survey=True, outcome=outcome)
        except (NotAssigned, NotFound) as e:
            if not pending and await self.store.finish_follow_up(conversation, agent, resolution, category):
                log.info("event=follow_up_done conversation=%s agent=%s resolution=%s", conversation, agent,
                         resolution)
                return
            if pending and await self._owns_pending(agent, conversation):
                raise BadFrame("a pending case ends resolved or unresolved") from e
            raise NotAssigned(f"you do not hold {conversation}") from e
        self._closed(res.placements)
        if pending:
            log.info("event=follow_up_set conversation=%s agent=%s follow_up_at=%.0f", conversation, agent,
                     follow_up_at)

    async def _owns_pending(self, agent: str, conversation: str) -> bool:
        return conversation in await self.store.follow_ups(agent)

    # ------------------------------------------------------------ pending cases
    async def follow_up_due(self, conversation: str) -> None:
        """The follow-up timer fired: ``follow_up_due`` to the owner while the case is still pending (one step)."""
        owner = await self.store.follow_up_due(conversation)
        log.info("event=follow_up_due conversation=%s agent=%s", conversation, owner or "-")

    async def agent_follow_ups(self, agent: str) -> list[Conversation]:
        """The agent's pending cases, soonest first."""
        out: list[Conversation] = []
        for conv_id in await self.store.follow_ups(agent):
            conv = await self.store.get_conversation(conv_id)
            if conv is not None:
                out.append(conv)
        return out
