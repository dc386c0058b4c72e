"""The conversation service: the whole customer-service flow, transport-free.

Websocket handlers and platform adapters both call it, so a Douyin message and
a widget message take the same path: log append (ack), bot turn, handoff,
routing, fan-out, timers.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from gateway.bot.types import BotDecision, DecisionKind
from gateway.config import Config
from gateway.errors import Closed, NotAssigned, NotFound
from gateway.model import AgentStatus, Conversation, ConvState, Entry, Priority
from gateway.service.botholder import BotHolder
from gateway.service.metrics import METRICS
from gateway.service.tokens import check_resume_token, resume_token
from gateway.store import AppendResult, Guard, Placement, Store, conv_topic

log = logging.getLogger("gateway.service")

_PRIORITY_ORDER = {Priority.NORMAL: 0, Priority.HIGH: 1, Priority.URGENT: 2}


def new_conversation_id() -> str:
    return f"c-{uuid.uuid4().hex[:20]}"


@dataclass(slots=True, frozen=True)
class Opened:
    conversation: Conversation
    token: str


class ConversationService:
    def __init__(self, config: Config, store: Store, bot: BotHolder, instance: str) -> None:
        self.config = config
        self.store = store
        self.bot = bot
        self.instance = instance
        self._secret = b""

    async def start(self) -> None:
        self._secret = await self.store.shared_secret()
        for a in self.config.agents:
            await self.store.register_agent(a.profile)

    # ------------------------------------------------------------ customers
    def token_for(self, conv: Conversation) -> str:
        return resume_token(self._secret, conv.id, conv.customer_id)

    async def open_conversation(
        self, customer: str, name: str = "", channel: str = "web", meta: dict[str, Any] | None = None
    ) -> Opened:
        conv = Conversation(
            id=new_conversation_id(),
            customer_id=customer,
            customer_name=name,
            channel=channel,
            created_at=time.time(),
            meta=dict(meta or {}),
        )
        await self.store.create_conversation(conv)
        METRICS.conversations_opened.inc()
        if self.config.texts.greeting:
            await self.store.append(conv.id, {"type": "message", "from": "system", "text": self.config.texts.greeting})
        await self._touch(conv.id)
        return Opened(conv, self.token_for(conv))

    async def resume_conversation(self, conversation: str, token: str, customer: str = "") -> Opened | None:
        """The conversation if ``token`` was issued for it (and for ``customer``, when given)."""
        conv = await self.store.get_conversation(conversation)
        if conv is None:
            return None
        if customer and customer != conv.customer_id:
            return None
        if not check_resume_token(self._secret, conv.id, conv.customer_id, token):
            return None
        return Opened(conv, token)

    async def customer_message(self, conversation: str, client_id: str | None, text: str, **extra: Any) -> AppendResult:
        """Store a customer's message. ``refused`` means the conversation is closed."""
        entry: Entry = {"type": "message", "from": "customer", "text": text, **extra}
        res = await self.store.append(conversation, entry, client_id=client_id, guard=Guard(open=True),
                                      timer=self._idle_timer(conversation))
        if not res.refused and not res.duplicate:
            METRICS.customer_messages.inc()
        return res

    async def after_customer_message(
        self, conversation: str, text: str, *, vip: bool = False, state: ConvState | None = None, channel: str = ""
    ) -> None:
        """The bot's turn (only while nobody has taken over).

        ``state`` and ``channel`` (from the append and the session) save a read on
        the hot path; without them the conversation is read first.
        """
        conv: Conversation | None = None
        if state is None or not channel:
            conv = await self.store.get_conversation(conversation)
            if conv is None:
                return
            state, channel = conv.state, conv.channel
        if state is not ConvState.BOT:
            return  # a person has it, or will: the bot stays silent
        if channel in self.config.routing.no_bot_channels:
            await self._handoff_by_id(conversation, conv, "", Priority.NORMAL, ("channel without bot",), ())
            return
        try:
            decision = self.bot.decide(text, vip=vip)
        except Exception:  # a bot bug must not leave the customer unanswered: people take over
            log.exception("event=bot_failed conversation=%s", conversation)
            await self._handoff_by_id(conversation, conv, "", Priority.NORMAL, ("bot error",), ())
            return
        METRICS.decisions_by_kind[decision.kind.value].inc()
        if decision.kind is DecisionKind.HANDOFF:
            await self._handoff_by_id(conversation, conv, decision.skill, decision.priority, decision.reasons,
                                      decision.orders)
            return
        if decision.orders:
            conv = conv or await self.store.get_conversation(conversation)
            if conv is None:
                return
            orders = list(dict.fromkeys([*conv.meta.get("orders", []), *decision.orders]))
            conv.meta["orders"] = orders
            await self.store.update_conversation(conv.id, {"meta": conv.meta})
        await self.store.append(conversation, self._bot_entry(decision), guard=Guard(state=ConvState.BOT))

    async def _handoff_by_id(
        self,
        conversation: str,
        conv: Conversation | None,
        skill: str,
        priority: Priority,
        reasons: tuple[str, ...],
        orders: tuple[str, ...],
    ) -> None:
        conv = conv or await self.store.get_conversation(conversation)
        if conv is not None:
            await self.handoff(conv, skill, priority, reasons, orders)

    @staticmethod
    def _bot_entry(d: BotDecision) -> Entry:
        entry: Entry = {"type": "message", "from": "bot", "text": d.text}
        if d.kind is DecisionKind.ANSWER and d.faq:
            entry["faq"] = d.faq
        if d.suggestions:
            entry["suggestions"] = [{"faq": s.faq, "question": s.question} for s in d.suggestions]
        return entry

    async def handoff(
        self,
        conv: Conversation,
        skill: str,
        priority: Priority,
        reasons: tuple[str, ...] | list[str],
        orders: tuple[str, ...] | list[str] = (),
    ) -> Placement | None:
        """Hand a BOT conversation to people: notice first, then assign or queue."""
        skill = (
            skill
            or str(conv.meta.get("default_skill") or "")  # a platform shop's own default team
            or self.config.routing.channel_skills.get(conv.channel, "")
            or self.config.routing.default_skill
        )
        res = await self.store.append(
            conv.id,
            {"type": "message", "from": "system", "text": self.config.texts.handoff},
            guard=Guard(state=ConvState.BOT),
        )
        if res.refused:
            return None
        meta = dict(conv.meta)
        meta["handoff_reason"] = "、".join(reasons) if reasons else "customer asked for a person"
        meta["reasons"] = list(reasons)
        meta["queued_at"] = time.time()
        if orders:
            meta["orders"] = list(dict.fromkeys([*meta.get("orders", []), *orders]))
        await self.store.update_conversation(conv.id, {"meta": meta})
        placement = await self.store.assign_or_enqueue(conv.id, skill, priority)
        if placement is None:
            return None
        METRICS.handoffs.labels(skill, priority.value).inc()
        await self.store.schedule(f"sla:{conv.id}", time.time() + self.config.ack_target_s)
        await self.placed([placement])
        log.info("event=handoff conversation=%s skill=%s priority=%s agent=%s position=%s",
                 conv.id, skill, priority.value, placement.agent or "-", placement.position)
        return placement

    async def escalate(self, conversation: str, priority: Priority) -> None:
        """Raise the priority of a conversation that is still with the bot (never lowers it)."""
        conv = await self.store.get_conversation(conversation)
        if conv is not None and conv.state is ConvState.BOT and _PRIORITY_ORDER[priority] > _PRIORITY_ORDER[conv.priority]:
            await self.store.update_conversation(conversation, {"priority": priority.value})

    async def customer_close(self, conversation: str) -> bool:
        res = await self.store.close_conversation(conversation, "customer")
        if not res.closed:
            raise Closed("the conversation is already closed")
        await self._closed(conversation, res.agent, res.placements, res.left_queue, survey=bool(res.agent))
        return True

    async def rate(self, conversation: str, score: int, comment: str) -> None:
        conv = await self.store.get_conversation(conversation)
        if conv is None or not conv.had_agent:
            raise NotFound("no conversation with an agent to rate")
        await self.store.update_conversation(conversation, {"rating": score, "rating_comment": comment})
        METRICS.ratings.labels(str(score)).inc()
        log.info("event=rated conversation=%s agent=%s score=%d", conversation, conv.had_agent, score)

    async def typing_from_customer(self, conv: Conversation | None) -> None:
        if conv is not None and conv.state is ConvState.ASSIGNED:
            await self.store.publish(conv_topic(conv.id), {"type": "typing", "conversation": conv.id, "to": "agent"})

    # ------------------------------------------------------------ agents
    async def agent_connected(self, agent: str, session: str, status: AgentStatus) -> str:
        await self.store.cancel(f"grace:{agent}")
        previous, placements = await self.store.agent_connected(agent, session, status, self.instance)
        await self.placed(placements)
        METRICS.agents_connected.inc()
        return previous

    async def agent_disconnected(self, agent: str, session: str) -> None:
        METRICS.agents_connected.dec()
        if await self.store.agent_disconnected(agent, session):
            grace = self.config.routing.agent_grace_s
            if grace <= 0:
                await self.placed(await self.store.requeue_agent(agent))
            else:
                await self.store.schedule(f"grace:{agent}", time.time() + grace)
            log.info("event=agent_disconnected agent=%s grace_s=%s", agent, grace)

    async def agent_status(self, agent: str, session: str, status: AgentStatus) -> None:
        await self.placed(await self.store.set_agent_status(agent, session, status))

    async def agent_message(self, agent: str, conversation: str, client_id: str | None, text: str) -> AppendResult:
        a = self.config.agent(agent)
        name = a.profile.name if a else agent
        entry: Entry = {"type": "message", "from": "agent", "text": text, "agent": {"id": agent, "name": name}}
        try:
            res = await self.store.append(conversation, entry, client_id=client_id, guard=Guard(agent=agent),
                                          timer=self._idle_timer(conversation))
        except NotFound as e:
            raise NotAssigned(f"you do not hold {conversation}") from e
        if res.refused:
            raise NotAssigned(f"you do not hold {conversation}")
        if not res.duplicate:
            METRICS.agent_messages.inc()
            await self.store.cancel(f"sla:{conversation}")
        return res

    async def agent_transfer(self, agent: str, conversation: str, skill: str = "", to_agent: str = "") -> None:
        res = await self.store.transfer(conversation, agent, skill=skill, to_agent=to_agent)  # raises NotAssigned first
        await self.placed([res.placement, *res.pulled])

    async def agent_close(self, agent: str, conversation: str, resolution: str) -> None:
        try:
            res = await self.store.close_conversation(conversation, resolution, by_agent=agent)
        except NotFound as e:
            raise NotAssigned(f"you do not hold {conversation}") from e
        await self._closed(conversation, res.agent, res.placements, res.left_queue, survey=True)

    async def typing_from_agent(self, agent: str, conversation: str) -> None:
        conv = await self.store.get_conversation(conversation)
        if conv is None or conv.agent != agent:
            raise NotAssigned(f"you do not hold {conversation}")
        await self.store.publish(conv_topic(conversation), {"type": "typing", "from": "agent", "to": "customer"})

    # ------------------------------------------------------------ shared steps
    async def _closed(
        self, conversation: str, agent: str, pulled: tuple[Placement, ...], left_queue: str, *, survey: bool
    ) -> None:
        await self.store.cancel(f"idle:{conversation}")
        await self.store.cancel(f"sla:{conversation}")
        METRICS.conversations_closed.inc()
        if survey:
            await self.store.publish(conv_topic(conversation), {"type": "survey", "conversation": conversation})
        await self.placed(pulled)
        if left_queue:
            await self._publish_queue(left_queue)

    async def placed(self, placements: list[Placement] | tuple[Placement, ...]) -> None:
        """Tell waiting customers where they stand after routing steps."""
        moved: set[str] = set()
        for p in placements:
            if p.agent:
                METRICS.assignments.inc()
                if p.from_queue:
                    moved.add(p.skill)
            else:
                moved.add(p.skill)
        for skill in moved:
            await self._publish_queue(skill)

    async def _publish_queue(self, skill: str) -> None:
        await self.store.publish(f"q:{skill}", {"queue": await self.store.queue(skill)})

    def _idle_timer(self, conversation: str) -> tuple[str, float]:
        return f"idle:{conversation}", time.time() + self.config.routing.customer_idle_close_s

    async def _touch(self, conversation: str) -> None:
        await self.store.schedule(*self._idle_timer(conversation))

    # ------------------------------------------------------------ timers
    async def fire(self, key: str) -> None:
        kind, _, ident = key.partition(":")
        if kind == "grace":
            placements = await self.store.requeue_agent(ident)
            log.info("event=grace_expired agent=%s requeued=%d", ident, len(placements))
            await self.placed(placements)
        elif kind == "idle":
            await self._idle(ident)
        elif kind == "sla":
            conv = await self.store.get_conversation(ident)
            if conv is not None and conv.state is ConvState.QUEUED:
                METRICS.sla_waiting_notices.inc()
                await self.store.append(
                    ident, {"type": "message", "from": "system", "text": self.config.texts.sla_waiting},
                    guard=Guard(state=ConvState.QUEUED),
                )

    async def _idle(self, conversation: str) -> None:
        conv = await self.store.get_conversation(conversation)
        if conv is None or conv.state is ConvState.CLOSED:
            return
        if conv.state is ConvState.QUEUED:  # we keep them waiting, not the other way round
            await self._touch(conversation)
            return
        await self.store.append(
            conversation, {"type": "message", "from": "system", "text": self.config.texts.closed_idle},
            guard=Guard(open=True),
        )
        res = await self.store.close_conversation(conversation, "idle")
        if res.closed:
            await self._closed(conversation, res.agent, res.placements, res.left_queue, survey=bool(res.agent))
