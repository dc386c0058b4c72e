"""From normalized records and events into ordinary conversations, through the service.

A platform buyer message takes the web widget's path: ``customer_message``
stores it and, while the bot has the conversation, its pending bot turn (one
store step); ``after_customer_message`` then answers or hands off (one step).
Before the platform gets its acknowledgement we await the dedupe claim,
finding or opening the buyer's conversation and that append; the bot turn runs
afterwards on the ``TurnRunner`` (ordered per conversation). A turn that never
runs there (a full queue, a crash) is still pending in the store: its turn
timer has an instance answer it after ``routing.turn_retry_s``.

Order and after-sales events are one step each: the internal note and its meta
patch together (``service.note(conv, note, meta=patch)``); an after-sales event
on a conversation still with the bot is then handed to people. Meta only ever
changes through ``MetaPatch`` (set / union / capped merge) applied inside the
store step, never read-modify-write, so events, order look-ups and the
service's own changes landing at once never overwrite one another.

Dedupe: each platform message id (and, for event streams, a business key) is
claimed once (``PlatformService.claim_once``), first for ``CLAIM_IN_PROGRESS_S``
only and, once stored, for ``dedupe_ttl_s``. If storing fails the claim is
released, so the platform's redelivery is stored then; if the instance dies
between the claim and the store, the short claim expires and a later
redelivery is stored.

Nothing here touches the store: conversations go through ``ConversationService``,
claims through ``PlatformService`` (both reached through the adapters' host).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

from gateway.adapters.base import (
    EventCategory,
    InboundRecord,
    Kind,
    OutboundMessage,
    PlatformEvent,
    customer_key,
)
from gateway.adapters.config import AdaptersConfig
from gateway.adapters.outbound import OutboundRouter, platform_binding
from gateway.adapters.turns import TurnRunner
from gateway.model import Conversation, ConvState, Entry, MetaMerge, MetaPatch, Priority
from gateway.service.conversations import ConversationService
from gateway.service.platform import PlatformService

log = logging.getLogger("gateway.adapters.ingest")

AFTERSALE_SKILL = "aftersale"
CLAIM_IN_PROGRESS_S = 30.0  # a claim whose instance died before storing lets a redelivery in after this
_MAX_ORDER_NOTES = 20


@dataclass(slots=True, frozen=True)
class Ingested:
    status: str  # stored | duplicate | rated | ignored
    conversation: str = ""
    seq: int = 0

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"status": self.status}
        if self.conversation:
            d["conversation"] = self.conversation
        if self.seq:
            d["seq"] = self.seq
        return d


def rating_score(text: str) -> int:
    """1-5 when the whole message is one such digit (full-width too), else 0."""
    t = text.strip().translate(str.maketrans("１２３４５", "12345"))
    return int(t) if len(t) == 1 and t in "12345" else 0


class Ingestor:
    def __init__(self, service: ConversationService, platform: PlatformService, adapters: AdaptersConfig,
                 turns: TurnRunner, outbound: OutboundRouter) -> None:
        self.service = service
        self.platform = platform
        self.adapters = adapters
        self.turns = turns
        self.outbound = outbound

    # ------------------------------------------------------------ buyer messages
    async def message(self, rec: InboundRecord, route: str, reply: dict[str, Any] | None = None) -> Ingested:
        """Store one buyer message once; ``route`` says how replies reach this buyer."""
        key = f"adapters:in:{rec.platform}:{rec.shop}:{rec.dedupe_id}"
        if not await self.platform.claim_once(key, CLAIM_IN_PROGRESS_S):
            return Ingested("duplicate")
        try:
            done = await self._message(rec, route, reply or {})
        except BaseException:
            with contextlib.suppress(Exception):
                await self.platform.release_claim(key)
            raise
        await self.platform.confirm_claim(key, self.adapters.settings.dedupe_ttl_s)
        return done

    def _binding(self, rec: InboundRecord, route: str, reply: dict[str, Any]) -> dict[str, Any]:
        return {"platform": rec.platform, "shop": rec.shop, "buyer": rec.buyer_id, "route": route, "reply": reply}

    async def _open(self, platform: str, shop: str, customer: str, name: str, meta: dict[str, Any]) -> Conversation:
        cfg = self.adapters.find(platform, shop)
        meta = {"default_skill": cfg.default_skill if cfg else "", **meta}
        opened = await self.service.open_conversation(customer, name, channel=platform, meta=meta)
        log.info("event=platform_conversation conversation=%s customer=%s", opened.conversation.id, customer)
        return opened.conversation

    async def _message(self, rec: InboundRecord, route: str, reply: dict[str, Any]) -> Ingested:
        settings = self.adapters.settings
        limit = self.service.config.limits.max_text_chars
        if len(rec.text) > limit:  # a buyer's message cannot be refused back: kept, cut to what a customer may send
            log.info("event=platform_text_cut platform=%s chars=%d", rec.platform, len(rec.text))
            rec = dataclasses.replace(rec, text=rec.text[:limit])
        customer = rec.customer_id
        conv = await self.service.current_conversation(customer)
        score = rating_score(rec.text) if rec.kind is Kind.TEXT else 0
        if (score and conv is not None and conv.state is ConvState.CLOSED and conv.had_agent and not conv.rating
                and time.time() - conv.closed_at <= settings.rating_window_s):
            await self.service.rate(conv.id, score, "")
            b = platform_binding(conv.meta) or {}
            if route:  # thank them the way they wrote
                await self.outbound.submit(OutboundMessage(rec.platform, rec.shop, rec.buyer_id, conv.id, 0,
                                                           settings.rating_thanks, "system", None, route,
                                                           {**(b.get("reply") or {}), **reply}))
            return Ingested("rated", conv.id)
        binding = self._binding(rec, route, reply)
        orders = MetaPatch(union={"orders": (rec.order,)}) if rec.order else MetaPatch()
        if conv is None or conv.state is ConvState.CLOSED:
            conv = await self._open_for(rec, customer, binding, orders)
        else:
            # first chat after an event, or a new route: set before the bot's reply goes out
            rebind = route and platform_binding(conv.meta) != binding
            patch = MetaPatch(set={"platform": binding} if rebind else {}, union=orders.union)
            if patch:
                await self.service.patch_meta(conv.id, patch)
        extra: dict[str, Any] = {"msg_id": rec.msg_id, "kind": rec.kind.value}
        if rec.order:
            extra["order"] = rec.order
        if rec.media_url:
            extra["media_url"] = rec.media_url
        if rec.time:
            extra["time"] = rec.time
        client_id = f"{rec.platform}:{rec.msg_id}"
        # The bot reads text only; other kinds wait for a person (unless the channel has no bot at all:
        # then the turn hands them over, as it does text).
        bot_turn = rec.kind is Kind.TEXT or rec.platform in self.service.config.routing.no_bot_channels
        res = await self.service.customer_message(conv.id, client_id, rec.text, bot_turn=bot_turn, platform=extra)
        if res.refused:  # closed meanwhile (agent, idle timer): a new conversation takes it
            conv = await self._open_for(rec, customer, binding, orders)
            res = await self.service.customer_message(conv.id, client_id, rec.text, bot_turn=bot_turn,
                                                      platform=extra)
        conv_id, seq = conv.id, int(res.entry["seq"])
        if res.duplicate:
            return Ingested("stored", conv_id, seq)
        if rec.order:  # link the order to this buyer (first link wins): events about it find them
            await self.platform.claim_once(self._order_key(rec.platform, rec.shop, rec.order),
                                           settings.order_index_ttl_s, customer)
        if bot_turn and res.state is ConvState.BOT:
            state, reopened = res.state, bool(conv.reopened_from)
            self.turns.submit(conv_id, lambda: self.service.after_customer_message(
                conv_id, rec.text, seq=seq, state=state, channel=rec.platform, reopened=reopened))
        return Ingested("stored", conv_id, seq)

    async def _open_for(self, rec: InboundRecord, customer: str, binding: dict[str, Any],
                        orders: MetaPatch) -> Conversation:
        meta: dict[str, Any] = {"platform": binding}
        orders.apply(meta)
        return await self._open(rec.platform, rec.shop, customer, rec.buyer_nick, meta)

    # ------------------------------------------------------------ order and after-sales events
    @staticmethod
    def _order_key(platform: str, shop: str, order: str) -> str:
        return f"adapters:order:{platform}:{shop}:{order}"

    async def event(self, ev: PlatformEvent) -> Ingested:
        """Store one platform event once (by id and by business key)."""
        ttl = self.adapters.settings.dedupe_ttl_s
        keys = [f"adapters:in:{ev.platform}:{ev.shop}:{ev.event_id}"]
        if ev.business_key:
            keys.append(f"adapters:biz:{ev.platform}:{ev.shop}:{ev.business_key}")
        claimed: list[str] = []
        try:
            for k in keys:
                if not await self.platform.claim_once(k, CLAIM_IN_PROGRESS_S):
                    if claimed:  # a new id of an event already stored: remember this id too
                        await self.platform.confirm_claim(claimed[0], ttl)
                    return Ingested("duplicate")
                claimed.append(k)
            done = await self._event(ev)
        except BaseException:
            with contextlib.suppress(Exception):
                for k in claimed:
                    await self.platform.release_claim(k)
            raise
        for k in claimed:
            await self.platform.confirm_claim(k, ttl)
        return done

    async def _event_customer(self, ev: PlatformEvent) -> tuple[str, str]:
        """(customer id, display name): the buyer if known, else who the order was linked to, else the order."""
        if ev.buyer_id:
            return customer_key(ev.platform, ev.shop, ev.buyer_id), ev.buyer_nick or ev.buyer_id
        if ev.order:
            linked = await self.platform.get_claim(self._order_key(ev.platform, ev.shop, ev.order))
            if linked:
                return linked, ""
            return customer_key(ev.platform, ev.shop, f"order-{ev.order}"), f"订单 {ev.order} 的买家"
        return "", ""

    async def _event(self, ev: PlatformEvent) -> Ingested:
        if ev.category is EventCategory.IGNORED:
            return Ingested("ignored")
        customer, name = await self._event_customer(ev)
        if not customer:
            log.info("event=platform_event_unlinked platform=%s shop=%s topic=%s", ev.platform, ev.shop, ev.topic)
            return Ingested("ignored")
        conv = await self.service.current_conversation(customer)
        if conv is not None and conv.state is ConvState.CLOSED:
            conv = None
        if ev.category is EventCategory.ORDER:
            if conv is None:
                return Ingested("ignored")  # nothing open to attach it to
            res = await self.service.note(conv.id, self._note("订单", ev), meta=order_patch(ev))
            if res.refused:
                return Ingested("ignored")
            return Ingested("stored", conv.id, int(res.entry["seq"]))
        # after-sales: open or update the conversation for the aftersale skill, order attached
        patch = aftersale_patch(ev)
        if conv is None:
            if not ev.opens:
                return Ingested("ignored")
            buyer = customer.split(":", 2)[2]
            meta: dict[str, Any] = {"platform": {"platform": ev.platform, "shop": ev.shop, "buyer": buyer,
                                                 "route": "", "reply": {}}}
            patch.apply(meta)
            conv = await self._open(ev.platform, ev.shop, customer, name, meta)
            patch = MetaPatch()
        # Still with the bot: one step logs the note, patches meta and hands it to people.
        note = self._note("售后", ev)
        placed = await self.service.handoff(conv.id, AFTERSALE_SKILL, Priority.HIGH, (ev.label,),
                                            (ev.order,) if ev.order else (), meta=patch, note=note)
        if placed is not None:
            return Ingested("stored", conv.id)
        res = await self.service.note(conv.id, note, meta=patch)  # people have it already
        if res.refused:
            return Ingested("ignored")
        return Ingested("stored", conv.id, int(res.entry["seq"]))

    @staticmethod
    def _note(what: str, ev: PlatformEvent) -> Entry:
        parts = [f"【{what}】{ev.label}"]
        if ev.order:
            parts.append(f"订单 {ev.order}")
        if ev.aftersale_id:
            parts.append(f"售后单 {ev.aftersale_id}")
        return {"type": "message", "from": "system", "internal": True, "text": " · ".join(parts),
                "event": {"platform": ev.platform, "topic": ev.topic, "order": ev.order,
                          "aftersale_id": ev.aftersale_id, "category": ev.category.value}}


def _orders(order: str) -> dict[str, tuple[str, ...]]:
    return {"orders": (order,)} if order else {}


def aftersale_patch(ev: PlatformEvent) -> MetaPatch:
    """``meta.aftersale`` (the latest event of the buyer's after-sales case) and the order in ``meta.orders``."""
    return MetaPatch(set={"aftersale": {"id": ev.aftersale_id, "order": ev.order, "status": ev.label,
                                        "topic": ev.topic, "platform": ev.platform,
                                        "updated": ev.time or time.time()}},
                     union=_orders(ev.order))


def order_patch(ev: PlatformEvent) -> MetaPatch:
    """``meta.platform_orders[order]`` (the newest ``_MAX_ORDER_NOTES`` orders) and the order in ``meta.orders``."""
    if not ev.order:
        return MetaPatch()
    item = {"status": ev.label, "topic": ev.topic, "updated": ev.time or time.time()}
    return MetaPatch(union=_orders(ev.order),
                     merge={"platform_orders": MetaMerge({ev.order: item}, keep=_MAX_ORDER_NOTES, by="updated")})
