"""From normalized records and events into ordinary conversations, through the service.

Every platform lands here, so a Douyin DM, a relayed PDD chat and a widget
message take the same path. What is awaited before the platform gets its
acknowledgement is the dedupe claim, finding or opening the buyer's
conversation and the log append; the bot turn, hand-offs and meta updates run
afterwards on the ``TurnRunner``.

Dedupe: each platform message id (and, for event streams, a business key) is
claimed once in the store. If storing fails the claim is released, so the
platform's redelivery is stored then.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
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
from gateway.model import Conversation, ConvState, Entry, Priority
from gateway.service.conversations import ConversationService
from gateway.store import Guard, Store

log = logging.getLogger("gateway.adapters.ingest")

AFTERSALE_SKILL = "aftersale"
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
    def __init__(self, service: ConversationService, store: Store, adapters: AdaptersConfig,
                 turns: TurnRunner, outbound: OutboundRouter) -> None:
        self.service = service
        self.store = store
        self.adapters = adapters
        self.turns = turns
        self.outbound = outbound

    # ------------------------------------------------------------ buyer messages
    async def message(self, rec: InboundRecord, route: str, reply: dict[str, Any] | None = None) -> Ingested:
        """Store one buyer message once; ``route`` says how replies reach this buyer."""
        key = f"adapters:in:{rec.platform}:{rec.shop}:{rec.dedupe_id}"
        if not await self.store.claim_once(key, self.adapters.settings.dedupe_ttl_s):
            return Ingested("duplicate")
        try:
            return await self._message(rec, route, reply or {})
        except BaseException:
            with contextlib.suppress(Exception):
                await self.store.release_claim(key)
            raise

    async def _current(self, customer: str) -> Conversation | None:
        conv_id = await self.store.customer_conversation(customer)
        return await self.store.get_conversation(conv_id) if conv_id else None

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
        customer = rec.customer_id
        conv = await self._current(customer)
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
        if conv is None or conv.state is ConvState.CLOSED:
            conv = await self._open(rec.platform, rec.shop, customer, rec.buyer_nick, {"platform": binding})
        elif route and platform_binding(conv.meta) != binding:  # first chat after an event, or a new route
            await self.store.update_conversation(conv.id, {"meta": {**conv.meta, "platform": binding}})
        extra: dict[str, Any] = {"msg_id": rec.msg_id, "kind": rec.kind.value}
        if rec.order:
            extra["order"] = rec.order
        if rec.media_url:
            extra["media_url"] = rec.media_url
        if rec.time:
            extra["time"] = rec.time
        client_id = f"{rec.platform}:{rec.msg_id}"
        res = await self.service.customer_message(conv.id, client_id, rec.text, platform=extra)
        if res.refused:  # closed meanwhile (agent, idle timer): a new conversation takes it
            conv = await self._open(rec.platform, rec.shop, customer, rec.buyer_nick, {"platform": binding})
            res = await self.service.customer_message(conv.id, client_id, rec.text, platform=extra)
        conv_id = conv.id
        if not res.duplicate:
            if rec.order:
                self.turns.submit(conv_id, lambda: self._order_card(rec, conv_id))
            if rec.kind is Kind.TEXT:
                seq, state = int(res.entry["seq"]), res.state
                self.turns.submit(conv_id, lambda: self.service.after_customer_message(
                    conv_id, rec.text, seq=seq, state=state, channel=rec.platform))
        return Ingested("stored", conv_id, int(res.entry["seq"]))

    async def _order_card(self, rec: InboundRecord, conversation: str) -> None:
        """Link the order to this buyer (first link wins) and list it on the conversation."""
        await self.store.claim_once(self._order_key(rec.platform, rec.shop, rec.order),
                                    self.adapters.settings.order_index_ttl_s, rec.customer_id)
        await self._merge_meta(conversation, lambda m: _add_order(m, rec.order))

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
                if not await self.store.claim_once(k, ttl):
                    return Ingested("duplicate")  # (a new id already claimed stays claimed: remembered too)
                claimed.append(k)
            return await self._event(ev)
        except BaseException:
            with contextlib.suppress(Exception):
                for k in claimed:
                    await self.store.release_claim(k)
            raise

    async def _event_customer(self, ev: PlatformEvent) -> tuple[str, str]:
        """(customer id, display name): the buyer if known, else who the order was linked to, else the order."""
        if ev.buyer_id:
            return customer_key(ev.platform, ev.shop, ev.buyer_id), ev.buyer_nick or ev.buyer_id
        if ev.order:
            linked = await self.store.get_claim(self._order_key(ev.platform, ev.shop, ev.order))
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
        conv = await self._current(customer)
        if conv is not None and conv.state is ConvState.CLOSED:
            conv = None
        if ev.category is EventCategory.ORDER:
            if conv is None:
                return Ingested("ignored")  # nothing open to attach it to
            res = await self.store.append(conv.id, self._note("订单", ev), guard=Guard(open=True))
            if res.refused:
                return Ingested("ignored")
            conv_id = conv.id
            self.turns.submit(conv_id, lambda: self._merge_meta(conv_id, lambda m: _order_status(m, ev)))
            return Ingested("stored", conv_id, int(res.entry["seq"]))
        # after-sales: open or update the conversation for the aftersale skill, order attached
        if conv is None:
            if not ev.opens:
                return Ingested("ignored")
            buyer = customer.split(":", 2)[2]
            meta = _aftersale({"platform": {"platform": ev.platform, "shop": ev.shop, "buyer": buyer, "route": "",
                                            "reply": {}}}, ev)
            conv = await self._open(ev.platform, ev.shop, customer, name, meta)
            fresh = True
        else:
            fresh = False
        res = await self.store.append(conv.id, self._note("售后", ev), guard=Guard(open=True))
        if res.refused:
            return Ingested("ignored")
        conv_id = conv.id
        self.turns.submit(conv_id, lambda: self._aftersale_turn(conv_id, ev, fresh))
        return Ingested("stored", conv_id, int(res.entry["seq"]))

    async def _aftersale_turn(self, conversation: str, ev: PlatformEvent, fresh: bool) -> None:
        if not fresh:
            await self._merge_meta(conversation, lambda m: _aftersale(m, ev))
        conv = await self.store.get_conversation(conversation)
        if conv is not None and conv.state is ConvState.BOT:
            await self.service.handoff(conv.id, AFTERSALE_SKILL, Priority.HIGH, (ev.label,),
                                       (ev.order,) if ev.order else ())

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

    async def _merge_meta(self, conversation: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        conv = await self.store.get_conversation(conversation)
        if conv is not None:
            await self.store.update_conversation(conversation, {"meta": change(dict(conv.meta))})


def _add_order(meta: dict[str, Any], order: str) -> dict[str, Any]:
    if order:
        meta["orders"] = list(dict.fromkeys([*meta.get("orders", []), order]))
    return meta


def _aftersale(meta: dict[str, Any], ev: PlatformEvent) -> dict[str, Any]:
    meta["aftersale"] = {"id": ev.aftersale_id, "order": ev.order, "status": ev.label, "topic": ev.topic,
                         "platform": ev.platform, "updated": ev.time or time.time()}
    return _add_order(meta, ev.order)


def _order_status(meta: dict[str, Any], ev: PlatformEvent) -> dict[str, Any]:
    notes = dict(meta.get("platform_orders") or {})
    notes[ev.order] = {"status": ev.label, "topic": ev.topic, "updated": ev.time or time.time()}
    while len(notes) > _MAX_ORDER_NOTES:
        notes.pop(next(iter(notes)))
    meta["platform_orders"] = notes
    return _add_order(meta, ev.order)
