"""The conversation service: the whole customer-service flow, transport-free.

Websocket handlers and platform adapters both call it (and never the store),
so a Douyin message and a widget message take the same path. Every event is
ONE store step (one Lua script on Redis, one un-awaited function in memory):
the Python here only decides (bot, defaults) and counts. A crash between two
lines of it can never leave a conversation half-moved:

- a customer message is stored with its idle timer and, while the bot has the
  conversation, a pending turn (``turn:<conv>:<seq>`` timer) in one step;
- the bot's answer (with its meta patch) or the hand-off (notice, meta,
  ticket, routing, SLA timer, queue positions) finishes that turn in one step,
  exactly once: if this instance dies in between, the turn timer fires on a
  survivor, which decides again and stores the answer (``fire``);
- close, transfer, rate, agent connect / disconnect / status are one step each.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from gateway.bot.types import BotDecision, DecisionKind
from gateway.config import Config
from gateway.errors import Closed, NotAssigned, NotFound
from gateway.model import (
    AgentStatus,
    Conversation,
    ConvState,
    Entry,
    MetaPatch,
    Priority,
)
from gateway.service.botholder import BotHolder
from gateway.service.followups import REOPEN_REASON, FollowUps
from gateway.service.ids import new_conversation_id
from gateway.service.metrics import METRICS
from gateway.service.reads import ConversationReads
from gateway.service.tokens import check_resume_token, resume_token
from gateway.store import (
    TIMER_PREFIXES,
    AppendResult,
    Guard,
    HandoffRequest,
    Placement,
    Store,
    conv_topic,
    grace_timer,
    idle_timer,
    overflow_timer,
    sla_timer,
)

log = logging.getLogger("gateway.service")

TIMER_RETRY_S = 2.0  # a timer whose fire failed (store down, a bug) is fired again after this


@dataclass(slots=True, frozen=True)
class Opened:
    conversation: Conversation
    token: str
    log: tuple[Entry, ...] = ()  # the log as the open step left it (a new conversation: the greeting)


class ConversationService(ConversationReads, FollowUps):
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
        """One step: the conversation, the customer's pointer to it, the greeting and the idle timer.

        Read first: the customer's previous conversation; one it reopens (``reopen_of``) makes this one
        ``reopened_from`` it, priority high, offered first to its agent and its team at the hand-off."""
        now = time.time()
        conv = Conversation(id=new_conversation_id("platform" in (meta or {})), customer_id=customer, customer_name=name, channel=channel,
                            created_at=now, meta=dict(meta or {}))
        reopen = await self.reopen_of(customer, now)
        if reopen is not None:
            conv.reopened_from, conv.prefer_agent, conv.priority = reopen.conversation, reopen.agent, Priority.HIGH
            if reopen.skill:
                conv.meta["default_skill"] = reopen.skill
        greeting: Entry | None = None
        if self.config.texts.greeting:
            greeting = {"type": "message", "from": "system", "text": self.config.texts.greeting}
        entries = await self.store.create_conversation(conv, greeting=greeting, timer=self._idle_timer(conv.id))
        METRICS.conversations_opened.inc()
        return Opened(conv, self.token_for(conv), tuple(entries))

    async def discard_unused(self, conversation: str) -> bool:
        """Forget a conversation its customer left without writing in (one step; see ``Store.discard_unused``):
        hellos alone never pile up conversations."""
        if await self.store.discard_unused(conversation):
            METRICS.conversations_discarded.inc()
            return True
        return False

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

    async def customer_message(
        self, conversation: str, client_id: str | None, text: str, *, vip: bool = False, bot_turn: bool = True,
        **extra: Any,
    ) -> AppendResult:
        """One step: store the message, move the idle timer, and (bot) record its pending turn.

        ``refused`` means the conversation is closed. Call ``after_customer_message``
        next (unless ``duplicate``): the turn is answered exactly once, here or,
        if this instance dies first, on a survivor. ``bot_turn=False`` stores a
        message the bot cannot read (a platform image, sticker, card) with no turn.
        """
        entry: Entry = {"type": "message", "from": "customer", "text": text, **extra}
        now = time.time()
        due = now + self.config.routing.turn_retry_s if bot_turn else None
        res = await self.store.append(conversation, entry, client_id=client_id, guard=Guard(open=True),
                                      timer=self._idle_timer(conversation, now), turn_due=due, vip=vip)
        if not res.refused and not res.duplicate:
            METRICS.customer_messages.inc()
        return res

    async def after_customer_message(
        self, conversation: str, text: str, *, seq: int, vip: bool = False, state: ConvState | None = None,
        channel: str = "", reopened: bool = False,
    ) -> None:
        """The bot's turn for message ``seq`` (only while nobody has taken over): one step.

        ``state`` and ``channel`` (from the append and the session) save a read on
        the hot path; without them the pending turn is read first (and gives ``reopened``
        too). ``reopened``: the conversation reopens an earlier one (``Conversation.reopened_from``,
        which the caller has at hand): it goes straight to people, priority high.
        """
        if state is None or not channel:
            pending = await self.store.pending_turn(conversation, seq)
            if pending is None:
                return
            state, channel, reopened = pending.state, pending.channel, pending.reopened
        if state is not ConvState.BOT:
            return  # a person has it, or will: the bot stays silent (the hand-off finished the turn)
        if reopened:  # the customer came back unsatisfied: people, not the bot
            await self.handoff(conversation, "", Priority.HIGH, (REOPEN_REASON,), turn=seq)
            return
        if channel in self.config.routing.no_bot_channels:
            await self.handoff(conversation, "", Priority.NORMAL, ("channel without bot",), turn=seq)
            return
        try:
            decision = self.bot.decide(text, vip=vip)
        except Exception:  # a bot bug must not leave the customer unanswered: people take over
            log.exception("event=bot_failed conversation=%s", conversation)
            await self.handoff(conversation, "", Priority.NORMAL, ("bot error",), turn=seq)
            return
        METRICS.decisions_by_kind[decision.kind.value].inc()
        if decision.kind is DecisionKind.HANDOFF:
            await self.handoff(conversation, decision.skill, decision.priority, decision.reasons, decision.orders,
                               turn=seq)
            return
        meta = MetaPatch(union={"orders": tuple(decision.orders)}) if decision.orders else None
        await self.store.append(conversation, self._bot_entry(decision, seq), guard=Guard(state=ConvState.BOT),
                                turn=seq, meta=meta)

    @staticmethod
    def _bot_entry(d: BotDecision, seq: int) -> Entry:
        """The bot's answer to customer message ``seq`` (``in_reply_to``: feedback and gaps pair them by it)."""
        entry: Entry = {"type": "message", "from": "bot", "text": d.text, "in_reply_to": seq}
        if d.kind is DecisionKind.ANSWER and d.faq:
            entry["faq"] = d.faq
        if d.suggestions:
            entry["suggestions"] = [{"faq": s.faq, "question": s.question} for s in d.suggestions]
        return entry

    async def handoff(
        self,
        conversation: str,
        skill: str,
        priority: Priority,
        reasons: tuple[str, ...] | list[str],
        orders: tuple[str, ...] | list[str] = (),
        *,
        meta: MetaPatch | None = None,
        turn: int = 0,
        note: Entry | None = None,
    ) -> Placement | None:
        """Hand a BOT conversation to people, in one step (None: it is not with the bot, or the turn is done).

        ``skill`` "" picks the conversation's ``meta.default_skill`` (a platform
        shop's own team), else the channel's skill, else ``routing.default_skill``.
        ``note`` (the event that caused it) is logged before the notice, in the same step.
        """
        now = time.time()
        routing = self.config.routing
        extra = meta or MetaPatch()
        patch = MetaPatch(
            set={**extra.set, "handoff_reason": "、".join(reasons) if reasons else "customer asked for a person",
                 "reasons": list(reasons), "queued_at": now},
            union={**extra.union, "orders": (*extra.union.get("orders", ()), *orders)},
            merge=extra.merge,
        )
        notice: Entry = {"type": "message", "from": "system", "text": self.config.texts.handoff}
        if turn:
            notice["in_reply_to"] = turn  # the customer message handed off (``gateway faq gaps`` reads it)
        req = HandoffRequest(
            notice=notice,
            skill=skill, priority=Priority(priority), channel_skills=dict(routing.channel_skills),
            default_skill=routing.default_skill, meta=patch, turn=turn,
            sla=(sla_timer(conversation), now + self.config.ack_target_s), note=note,
            overflow=(overflow_timer(conversation), now + routing.max_queue_s) if routing.max_queue_s > 0 else None,
        )
        placement = await self.store.handoff(conversation, req)
        if placement is None:
            return None
        METRICS.handoffs.labels(placement.skill, Priority(priority).value).inc()
        self.placed([placement])
        log.info("event=handoff conversation=%s skill=%s priority=%s agent=%s position=%s",
                 conversation, placement.skill, Priority(priority).value, placement.agent or "-", placement.position)
        return placement

    async def patch_meta(self, conversation: str, patch: MetaPatch) -> None:
        """Merge ``patch`` into the conversation's meta (one step; NotFound if there is none)."""
        if not await self.store.patch_meta(conversation, patch):
            raise NotFound(f"no conversation {conversation}")

    async def note(self, conversation: str, entry: Entry, meta: MetaPatch | None = None) -> AppendResult:
        """Log a system entry (a platform event, a delivery failure) and patch meta, while the conversation is open."""
        return await self.store.append(conversation, entry, guard=Guard(open=True), meta=meta)

    async def escalate(self, conversation: str, priority: Priority) -> None:
        """Raise the priority of a conversation that is still with the bot (never lowers it)."""
        await self.store.raise_priority(conversation, priority)

    async def customer_close(self, conversation: str) -> bool:
        res = await self.store.close_conversation(conversation, "customer", survey=True)
        if not res.closed:
            raise Closed("the conversation is already closed")
        self._closed(res.placements)
        return True

    async def rate(self, conversation: str, score: int, comment: str) -> None:
        agent = await self.store.rate(conversation, score, comment)
        if agent is None:
            raise NotFound("no conversation to rate (one an agent held, or a closed one)")
        METRICS.ratings.labels(str(score)).inc()
        log.info("event=rated conversation=%s agent=%s score=%d", conversation, agent or "-", score)

    async def feedback(self, conversation: str, seq: int, helpful: bool) -> None:
        """One step: the customer's verdict on bot message ``seq`` (NotFound: no such bot message)."""
        if not await self.store.feedback(conversation, seq, helpful):
            raise NotFound(f"no bot message {seq} in this conversation")
        METRICS.bot_feedback.labels("true" if helpful else "false").inc()
        log.info("event=feedback conversation=%s seq=%d helpful=%s", conversation, seq, helpful)

    async def typing_from_customer(self, conversation: str) -> None:
        conv = await self.store.get_conversation(conversation)
        if conv is not None and conv.state is ConvState.ASSIGNED:
            await self.store.publish(conv_topic(conv.id), {"type": "typing", "conversation": conv.id, "to": "agent"})

    async def notify(self, conversation: str, frame: dict[str, Any], to: str = "agent") -> None:
        """A frame (not logged) for whoever watches the conversation on ``to``'s side, on any instance."""
        await self.store.publish(conv_topic(conversation), {**frame, "to": to})

    # ------------------------------------------------------------ agents
    async def agent_connected(self, agent: str, session: str, status: AgentStatus) -> str:
        """One step: bind the session, drop the grace timer, pull waiting conversations."""
        previous, placements = await self.store.agent_connected(agent, session, status, self.instance)
        self.placed(placements)
        METRICS.agents_connected.inc()
        return previous

    async def agent_disconnected(self, agent: str, session: str) -> None:
        """One step: offline, and either the grace timer or (no grace) its conversations routed again."""
        METRICS.agents_connected.dec()
        grace = self.config.routing.agent_grace_s
        if await self.store.agent_disconnected(agent, session, grace=(grace_timer(agent), time.time() + grace),
                                               requeue=grace <= 0):
            log.info("event=agent_disconnected agent=%s grace_s=%s", agent, grace)

    async def agent_status(self, agent: str, session: str, status: AgentStatus) -> None:
        self.placed(await self.store.set_agent_status(agent, session, status))

    async def agent_message(self, agent: str, conversation: str, client_id: str | None, text: str) -> AppendResult:
        """One step: store (only while the agent holds it), move the idle timer, stop the SLA timer."""
        a = self.config.agent(agent)
        name = a.profile.name if a else agent
        entry: Entry = {"type": "message", "from": "agent", "text": text, "agent": {"id": agent, "name": name}}
        try:
            res = await self.store.append(conversation, entry, client_id=client_id, guard=Guard(agent=agent),
                                          timer=self._idle_timer(conversation), cancel=(sla_timer(conversation),))
        except NotFound as e:
            raise NotAssigned(f"you do not hold {conversation}") from e
        if res.refused:
            raise NotAssigned(f"you do not hold {conversation}")
        if not res.duplicate:
            METRICS.agent_messages.inc()
            first = res.first_response  # the first agent message after the hand-off (from the step: no read)
            if first is not None:
                METRICS.first_response.labels(first.channel, first.skill).observe(first.seconds)
                if first.seconds > self.config.ack_target_s:
                    METRICS.sla_breaches.labels(first.channel, first.skill).inc()
        return res

    async def agent_transfer(self, agent: str, conversation: str, skill: str = "", to_agent: str = "") -> None:
        if skill and not any(skill in a.profile.skills for a in self.config.agents):
            conv = await self.store.get_conversation(conversation)  # not holding it is the first error
            if conv is None or conv.state is not ConvState.ASSIGNED or conv.agent != agent:
                raise NotAssigned(f"you do not hold {conversation}")
            raise NotFound(f"no agent serves skill {skill!r}: the customer would wait for ever")
        res = await self.store.transfer(conversation, agent, skill=skill, to_agent=to_agent)  # raises NotAssigned first
        self.placed([res.placement, *res.pulled])

    async def typing_from_agent(self, agent: str, conversation: str) -> None:
        conv = await self.store.get_conversation(conversation)
        if conv is None or conv.agent != agent:
            raise NotAssigned(f"you do not hold {conversation}")
        await self.store.publish(conv_topic(conversation), {"type": "typing", "from": "agent", "to": "customer"})

    # ------------------------------------------------------------ shared steps
    def _closed(self, pulled: tuple[Placement, ...]) -> None:
        METRICS.conversations_closed.inc()
        self.placed(pulled)

    @staticmethod
    def placed(placements: list[Placement] | tuple[Placement, ...]) -> None:
        """Count assignments (the store step already told waiting customers their new positions)."""
        for p in placements:
            if p.agent:
                METRICS.assignments.inc()

    def _idle_timer(self, conversation: str, now: float | None = None) -> tuple[str, float]:
        return idle_timer(conversation), (now or time.time()) + self.config.routing.customer_idle_close_s

    # ------------------------------------------------------------ timers
    async def due_timers(self, now: float, done: tuple[str, ...] = ()) -> list[str]:
        """Claim due timers for this instance: ``done`` are the keys fired since the last call;
        a claimed key not reported done comes back after ``TIMER_RETRY_S`` (its fire failed)."""
        return await self.store.claim_due(now, done=done, retry_after=TIMER_RETRY_S)

    async def fire(self, key: str) -> None:
        """A due timer, claimed by this instance: one step each."""
        head, sep, ident = key.partition(":")
        kind = head + sep
        if kind == TIMER_PREFIXES["grace"]:
            placements = await self.store.requeue_agent(ident)
            log.info("event=grace_expired agent=%s requeued=%d", ident, len(placements))
            self.placed(placements)
        elif kind == TIMER_PREFIXES["idle"]:
            # one nobody wrote in (its instance died before the customer left) is forgotten, not closed
            res = await self.store.close_conversation(
                ident, "idle", notice={"type": "message", "from": "system", "text": self.config.texts.closed_idle},
                idle_retry=self._idle_timer(ident), survey=True, discard_unused=True)
            if res.discarded:
                METRICS.conversations_discarded.inc()
            elif res.closed:
                self._closed(res.placements)
        elif kind == TIMER_PREFIXES["sla"]:
            notice = await self.store.append(
                ident, {"type": "message", "from": "system", "text": self.config.texts.sla_waiting},
                guard=Guard(state=ConvState.QUEUED))
            if not notice.refused:
                METRICS.sla_waiting_notices.inc()
        elif kind == TIMER_PREFIXES["turn"]:
            await self._recover_turn(ident)
        elif kind == TIMER_PREFIXES["follow_up"]:
            await self.follow_up_due(ident)
        elif kind == TIMER_PREFIXES["overflow"]:
            moved = await self.store.overflow(ident, self.config.routing.default_skill,
                                              {"type": "message", "from": "system",
                                               "text": self.config.texts.queue_overflow})
            if moved is not None:
                log.info("event=queue_overflow conversation=%s skill=%s agent=%s", ident, moved.skill,
                         moved.agent or "-")
                self.placed([moved])

    async def _recover_turn(self, ident: str) -> None:
        """A customer message whose turn was not finished in time (its instance died, or is stuck)."""
        conversation, _, seq = ident.rpartition(":")
        if not seq.isdigit():
            return
        pending = await self.store.pending_turn(conversation, int(seq))
        if pending is None:
            return
        log.warning("event=turn_recovered conversation=%s seq=%s", conversation, seq)
        METRICS.turns_recovered.inc()
        await self.after_customer_message(conversation, str(pending.entry.get("text", "")), seq=pending.seq,
                                          vip=pending.vip, state=pending.state, channel=pending.channel,
                                          reopened=pending.reopened)
