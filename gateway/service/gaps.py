"""``gateway faq gaps`` and ``GET /api/faq/gaps``: the messages the FAQ did not serve, read from the
conversation logs, clustered by ``gateway.bot.gaps``.

Which messages (``items_of``, pure):

- handed off: the customer message a bot hand-off names (the notice's ``in_reply_to``) when the bot
  found nothing close (``no_match`` among the conversation's ``meta.reasons``); not when the customer
  asked for a person, the message was only an order number or small talk, the priority rules sent it
  to a person, or the channel has no bot;
- suggested: the customer message a bot entry with ``suggestions`` (and no answer) replies to;
- unhelpful: the customer message a bot answer (``faq``) replies to, when the customer said that
  answer did not help (``Conversation.feedback``).

The work is bounded (``GapLimits``): the walk over the store stops after ``max_scanned`` entries
were examined (Redis: keys of its database, about four per conversation; memory: conversations),
at most ``max_conversations`` logs are read and ``max_items`` messages clustered; the report says
``truncated`` when a bound was reached. The gateway keeps every conversation in its store (there is
no separate archive), so the store is all there is to read; Redis has no index by time, so the walk
examines every key (SCAN), in the store, a page at a time, and only the window's conversations
leave Redis.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.bot.gaps import MAX_CLUSTERS, GapItem, GapKind, find_gaps
from gateway.model import Conversation, Entry
from gateway.service.botholder import BotHolder
from gateway.store import Store

DAY_S = 86_400.0


@dataclass(slots=True, frozen=True)
class GapLimits:
    max_scanned: int = 1_000_000  # entries the store's walk examines (Redis: keys; memory: conversations)
    max_conversations: int = 5_000  # conversations with activity in the window whose logs are read
    max_items: int = 5_000  # messages clustered
    max_clusters: int = MAX_CLUSTERS  # clusters reported (the biggest)
    page: int = 1_000  # entries examined per store page (a page's logs are read together)


@dataclass(slots=True)
class Gathered:
    items: list[GapItem] = field(default_factory=list)
    conversations: int = 0  # logs read
    scanned: int = 0  # conversations the walk returned (those with activity in the window)
    truncated: str = ""  # which bound stopped the reading ("" = none)


def _handed_off_by_the_bot(conv: Conversation) -> bool:
    reasons = conv.meta.get("reasons")
    if not isinstance(reasons, list):
        return False
    return "no_match" in reasons and not any(str(r).startswith("handoff:") for r in reasons)


def items_of(conv: Conversation, entries: list[Entry], since: float = 0.0) -> list[GapItem]:
    """The gap items of one conversation's log: bot turns at or after ``since`` (pure)."""
    customer: dict[int, Entry] = {}
    last_customer: Entry | None = None
    out: list[GapItem] = []
    handoff = _handed_off_by_the_bot(conv)
    for e in entries:
        if e.get("type") != "message":
            continue
        sender = e.get("from")
        if sender == "customer":
            if isinstance(e.get("seq"), int) and isinstance(e.get("text"), str):
                customer[e["seq"]] = e
                last_customer = e
            continue
        if float(e.get("ts") or 0.0) < since:
            continue
        ref = e.get("in_reply_to")
        asked = customer.get(ref) if isinstance(ref, int) else None
        kind, faq = None, ""
        if sender == "bot":
            # an entry stored before ``in_reply_to`` existed replies to the customer message before it
            asked = asked if isinstance(ref, int) else last_customer
            if e.get("suggestions") and not e.get("faq"):
                kind = GapKind.SUGGESTED
            elif e.get("faq") and conv.feedback.get(int(e.get("seq") or 0)) is False:
                kind, faq = GapKind.UNHELPFUL, str(e["faq"])
        elif sender == "system" and handoff and asked is not None:
            kind = GapKind.HANDOFF
        if kind is not None and asked is not None:
            out.append(GapItem(str(asked["text"]), kind, conv.id, int(asked["seq"]), float(e.get("ts") or 0.0), faq))
    return out


async def gather(store: Store, since: float, limits: GapLimits) -> Gathered:
    """Walk the store's conversations with activity since ``since`` and collect their gap items."""
    got = Gathered()
    cursor, looked = "", 0
    while True:
        page, cursor = await store.scan_conversations(cursor, limits.page, since=since)
        looked += limits.page
        got.scanned += len(page)
        room = limits.max_conversations - got.conversations
        if len(page) > room:
            page, got.truncated = page[:room], "max_conversations"
        logs = await asyncio.gather(*(store.read_log(c.id) for c in page))  # one round trip on Redis
        got.conversations += len(page)
        for conv, entries in zip(page, logs, strict=True):
            got.items += items_of(conv, entries, since)
        if len(got.items) > limits.max_items:
            del got.items[limits.max_items :]
            got.truncated = "max_items"
        if got.truncated or not cursor:
            return got
        if looked >= limits.max_scanned:
            got.truncated = "max_scanned"
            return got


async def gaps_report(
    store: Store, bot: BotHolder, since_days: float, *, limits: GapLimits | None = None, now: float | None = None
) -> dict[str, Any]:
    """The gaps report (the JSON of ``/api/faq/gaps``): read on the loop, clustered in a thread."""
    lim = limits or GapLimits()
    now = time.time() if now is None else now
    since = now - since_days * DAY_S
    got = await gather(store, since, lim)
    faq_bot, _ = bot.current()  # the bot in service now; a reload meanwhile does not touch this one

    def cluster() -> Any:  # CPU work (jieba, rapidfuzz, the bot's ranking): off the event loop
        return find_gaps(got.items, faq_bot, reader=faq_bot.read, max_clusters=lim.max_clusters)

    gaps = await asyncio.to_thread(cluster)
    return {
        "since": since,
        "since_days": since_days,
        "generated_at": now,
        "conversations": got.conversations,
        "items": len(got.items),
        "kinds": {k.value: sum(1 for i in got.items if i.kind is k) for k in GapKind},
        "truncated": got.truncated or None,
        "limits": asdict(lim),
        "total_clusters": gaps.total,
        "clusters": [c.to_dict() for c in gaps.clusters],
    }
