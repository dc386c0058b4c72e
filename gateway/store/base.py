"""The Store interface: everything the gateway keeps, with one set of semantics.

Two implementations hold to it (memory and Redis); ``tests/test_store_contract.py``
is the definition. Every method that changes routing state is atomic: the
routing decision, the state change and the log entries it implies (``assigned``,
``transferred``, ``closed``) happen together or not at all, and each log entry
is published on the bus (topic ``c:<conversation>``) as part of the same step.
A step that changes a skill queue publishes the queue's new order on
``q:<skill>`` (``{"queue": [conversation ids]}``) once, at its end.
"""

from __future__ import annotations

import abc
from typing import Any

from gateway.model import (
    AgentProfile,
    AgentState,
    AgentStatus,
    Conversation,
    Entry,
    MetaPatch,
    Priority,
)
from gateway.store.types import (
    TIMER_PREFIXES,
    TOPIC_PREFIXES,
    AppendResult,
    BusListener,
    CloseOutcome,
    CloseResult,
    FirstResponse,
    Guard,
    HandoffRequest,
    OutboxEntry,
    OutboxStats,
    PendingTurn,
    Placement,
    TransferResult,
    agent_topic,
    conv_topic,
    follow_up_timer,
    grace_timer,
    idle_timer,
    overflow_timer,
    queue_topic,
    sla_timer,
    turn_timer,
)

# the step values and names belong to the interface: importable from here too
__all__ = [
    "TIMER_PREFIXES", "TOPIC_PREFIXES", "AppendResult", "BusListener", "CloseOutcome", "CloseResult",
    "FirstResponse", "Guard", "HandoffRequest", "OutboxEntry", "OutboxStats", "PendingTurn", "Placement",
    "Store", "TransferResult", "agent_topic", "conv_topic", "follow_up_timer", "grace_timer", "idle_timer",
    "overflow_timer", "queue_topic", "sla_timer", "turn_timer",
]


class Store(abc.ABC):
    """Conversations, their logs, agents, queues, timers and the bus."""

    namespace: str

    # lifecycle -------------------------------------------------------
    @abc.abstractmethod
    async def start(self, listener: BusListener) -> None:
        """Connect and start delivering bus messages to ``listener``."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    def configure(self, *, agent_grace_s: float) -> None:  # noqa: B027 - optional hook, no-op by default
        """Settings a store needs from the config, given before ``start``.

        ``agent_grace_s``: when a shared store finds an instance dead, that
        instance's agents get this long to reconnect (as on a socket disconnect).
        """

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the backend answers."""

    @abc.abstractmethod
    async def shared_secret(self) -> bytes:
        """A random secret shared by every instance on this store (resume tokens)."""

    # conversations ---------------------------------------------------
    @abc.abstractmethod
    async def create_conversation(
        self, conv: Conversation, *, greeting: Entry | None = None, timer: tuple[str, float] | None = None
    ) -> list[Entry]:
        """Store a new conversation and make it the customer's current one.

        In the same step: ``greeting`` appended (returned, stored, as the log so
        far) and ``timer`` scheduled.
        """

    @abc.abstractmethod
    async def get_conversation(self, conversation: str) -> Conversation | None: ...

    @abc.abstractmethod
    async def update_conversation(self, conversation: str, fields: dict[str, Any]) -> None:
        """Set plain fields (meta, rating, names); never routing state."""

    @abc.abstractmethod
    async def customer_conversation(self, customer: str) -> str | None:
        """The customer's current (most recent) conversation id."""

    @abc.abstractmethod
    async def patch_meta(self, conversation: str, patch: MetaPatch) -> bool:
        """Merge ``patch`` into the conversation's meta in one step. False if there is no such conversation."""

    @abc.abstractmethod
    async def rate(self, conversation: str, score: int, comment: str) -> str | None:
        """Store a rating if an agent ever held the conversation or it is closed (bot-only ones too):
        the agent who last held it ("" for a bot-only one); None when nothing was stored."""

    @abc.abstractmethod
    async def discard_unused(self, conversation: str) -> bool:
        """Forget a conversation nobody wrote in, in one step: only while the bot has it and its log
        holds nothing but system entries (the greeting). Its log, client ids, idle timer and its
        customer's pointer to it go too. True if it was discarded."""

    @abc.abstractmethod
    async def raise_priority(self, conversation: str, priority: Priority) -> bool:
        """Raise the priority of a BOT conversation (never lowers it). True if it changed."""

    @abc.abstractmethod
    async def feedback(self, conversation: str, seq: int, helpful: bool) -> bool:
        """The customer's verdict on bot message ``seq``, in one step: kept in ``Conversation.feedback``
        (replacing an earlier one) and ``{"type":"feedback","conversation","entry_seq","helpful","to":"agent"}``
        published on ``c:<conv>``. False (nothing stored) when there is no such conversation or entry
        ``seq`` is not a bot message."""

    @abc.abstractmethod
    async def scan_conversations(
        self, cursor: str = "", count: int = 200, *, since: float = 0.0
    ) -> tuple[list[Conversation], str]:
        """One page of conversations with activity since ``since`` (created, or closed, at or after it,
        or still open), and the cursor of the next page ("" when the walk is done). About ``count``
        entries are examined per page (Redis: keys of its database, SCAN's COUNT; memory:
        conversations), so a page may hold none and still have a next one. On Redis a conversation
        there for the whole walk comes (at least) once; the order is the store's."""

    # log -------------------------------------------------------------
    @abc.abstractmethod
    async def append(
        self,
        conversation: str,
        entry: Entry,
        *,
        client_id: str | None = None,
        guard: Guard | None = None,
        timer: tuple[str, float] | None = None,
        cancel: tuple[str, ...] = (),
        turn_due: float | None = None,
        vip: bool = False,
        turn: int = 0,
        meta: MetaPatch | None = None,
    ) -> AppendResult:
        """Append with the next seq and ``ts``; dedupe by ``client_id``; publish.

        A ``client_id`` already seen in this conversation returns the first entry
        (``duplicate``) and stores nothing, whatever the guard says. When the
        entry is stored, in the same step: ``timer`` (key, due) is scheduled,
        the ``cancel`` timers are cancelled, ``meta`` is merged.

        Bot turns: with ``turn_due``, a customer message stored while the
        conversation is with the bot becomes a pending turn (timer
        ``turn:<conv>:<seq>`` due then, ``vip`` remembered), so a survivor
        answers it if this instance dies first. With ``turn`` (a seq), the entry
        finishes that pending turn: refused when the turn is not pending any
        more (answered elsewhere, handed off, closed), so a turn is answered once.
        """

    @abc.abstractmethod
    async def pending_turn(self, conversation: str, seq: int) -> PendingTurn | None:
        """The pending turn of message ``seq``, or None when it is finished (or never was)."""

    @abc.abstractmethod
    async def read_log(self, conversation: str, after: int = 0) -> list[Entry]:
        """Entries with ``seq > after`` in seq order."""

    # agents ----------------------------------------------------------
    @abc.abstractmethod
    async def register_agent(self, profile: AgentProfile) -> None:
        """Create or update an agent's profile; its routing state is kept."""

    @abc.abstractmethod
    async def get_agent(self, agent: str) -> AgentState | None: ...

    @abc.abstractmethod
    async def list_agents(self) -> list[AgentState]: ...

    @abc.abstractmethod
    async def agent_connected(
        self, agent: str, session: str, status: AgentStatus, instance: str
    ) -> tuple[str, list[Placement]]:
        """Bind the agent to ``session`` (replacing any other) and set its status.

        In the same step: its grace timer dropped, ``{"type": "_replaced",
        "session": session}`` published on ``a:<agent>`` (older sessions close),
        waiting conversations pulled when online.

        Returns the replaced session id ("" if none) and what it pulled when online.
        """

    @abc.abstractmethod
    async def agent_disconnected(
        self, agent: str, session: str, *, grace: tuple[str, float] | None = None, requeue: bool = False
    ) -> bool:
        """Mark the agent offline if ``session`` is still its session. True if it was.

        In the same step: ``grace`` (key, due) scheduled, or with ``requeue``
        its conversations routed again at once (as ``requeue_agent``).
        """

    @abc.abstractmethod
    async def set_agent_status(self, agent: str, session: str, status: AgentStatus) -> list[Placement]:
        """Change status (online pulls waiting conversations up to capacity)."""

    @abc.abstractmethod
    async def requeue_agent(self, agent: str) -> list[Placement]:
        """Grace expired: route every conversation the (offline) agent holds again.

        They keep their tickets, so they go ahead of newer arrivals. A no-op if the
        agent has reconnected (status is not offline).
        """

    # routing ---------------------------------------------------------
    @abc.abstractmethod
    async def assign_or_enqueue(self, conversation: str, skill: str, priority: Priority) -> Placement | None:
        """Hand off a BOT conversation: least-loaded skilled agent, else the queue.

        Returns None (nothing changed) if the conversation is not in the BOT state.
        """

    @abc.abstractmethod
    async def handoff(self, conversation: str, req: HandoffRequest) -> Placement | None:
        """Hand a BOT conversation to people in one step.

        Guard (BOT; the pending ``turn`` if given), the notice, the meta patch,
        every pending turn finished, the ticket, routing (assign or queue), the
        SLA timer and the queue's new positions. None when the guard failed
        (nothing changed).
        """

    @abc.abstractmethod
    async def overflow(self, conversation: str, skill: str, notice: Entry) -> Placement | None:
        """A conversation waiting too long in another skill's queue goes to ``skill`` in one step.

        It keeps its ticket and priority (so it goes ahead of newer arrivals
        there), ``notice`` is logged, and both queues' new orders are published.
        None (nothing changed) unless it is QUEUED in a skill other than ``skill``.
        """

    @abc.abstractmethod
    async def transfer(
        self, conversation: str, from_agent: str, *, skill: str = "", to_agent: str = ""
    ) -> TransferResult:
        """Move an ASSIGNED conversation off ``from_agent`` to a skill or a named agent.

        Raises NotAssigned if ``from_agent`` does not hold it, NotFound if the named
        agent is unknown, offline, away or full.
        """

    @abc.abstractmethod
    async def close_conversation(
        self,
        conversation: str,
        reason: str,
        *,
        by_agent: str = "",
        notice: Entry | None = None,
        idle_retry: tuple[str, float] | None = None,
        survey: bool = False,
        discard_unused: bool = False,
        outcome: CloseOutcome | None = None,
    ) -> CloseResult:
        """Close (append ``closed``), release its holder and let the holder pull.

        With ``discard_unused``, a conversation nobody wrote in is forgotten instead (as
        ``discard_unused`` does; ``CloseResult.discarded``), in the same step.

        With ``by_agent`` the agent must hold it, else NotAssigned. In the same
        step: ``notice`` appended before ``closed``; every pending turn and the
        conversation's ``idle:``/``sla:`` timers dropped; with ``survey``,
        ``{"type":"survey","conversation"}`` published on ``c:<conv>`` (plus
        ``"bot_only": true`` when no agent ever held it). With
        ``idle_retry`` (the idle timer firing) a QUEUED conversation is not
        closed: that timer is scheduled again (``closed`` False).

        ``outcome`` (an agent's close): ``resolution`` and ``category`` stored on the conversation;
        with ``follow_up_at`` (``pending``) also ``follow_up_at`` / ``follow_up_note``, the timer
        ``follow_up:<conv>`` and the conversation on the holder's follow-ups (``follow_ups``: not
        held, so it uses no capacity), and ``{"type":"follow_up","conversation","follow_up_at"}``
        on ``a:<holder>`` after its ``unassigned``.
        """

    @abc.abstractmethod
    async def finish_follow_up(self, conversation: str, agent: str, resolution: str, category: str = "") -> bool:
        """The owner ends a pending case (closes it again, ``resolved`` or ``unresolved``), in one step.

        Only while the conversation is on ``agent``'s follow-ups: ``resolution``, ``category`` (when
        given) and ``follow_up_done_at`` stored, the case and its ``follow_up:`` timer dropped, the
        conversation queued for the archive again (a new version), ``{"type":"follow_up_done",
        "conversation"}`` on ``a:<agent>``. False (nothing changed) otherwise.
        """

    @abc.abstractmethod
    async def follow_up_due(self, conversation: str) -> str:
        """A follow-up timer fired: while the case is still on its owner's follow-ups,
        ``{"type":"follow_up_due","conversation","follow_up_at"}`` on ``a:<owner>``; the owner, else ""."""

    @abc.abstractmethod
    async def follow_ups(self, agent: str) -> list[str]:
        """The agent's pending cases (closed ``pending``, not ended yet), soonest follow-up first."""

    @abc.abstractmethod
    async def follow_ups_due_count(self, now: float) -> int:
        """Pending cases of every agent whose follow-up time is ``now`` or earlier (metrics)."""

    @abc.abstractmethod
    async def queue(self, skill: str) -> list[str]:
        """Waiting conversations of ``skill`` in service order."""

    @abc.abstractmethod
    async def queue_lengths(self) -> dict[str, int]: ...

    # timers ----------------------------------------------------------
    @abc.abstractmethod
    async def schedule(self, key: str, due: float) -> None:
        """Set (or move) timer ``key`` to fire at ``due`` (Unix seconds)."""

    @abc.abstractmethod
    async def cancel(self, key: str) -> None: ...

    @abc.abstractmethod
    async def claim_due(
        self, now: float, limit: int = 100, *, done: tuple[str, ...] = (), retry_after: float | None = None
    ) -> list[str]:
        """Remove and return due timers; each is claimed by exactly one caller.

        Without ``retry_after`` every earlier claim of this caller counts as
        finished. With it, the caller reports the keys it fired (``done``); a
        key it claimed ``retry_after`` seconds ago or more and did not report is
        returned again (its fire failed, or the claim's reply was lost), so a
        claimed timer is never dropped while its instance lives (and when it
        dies, the reaper puts it back).
        """

    # bus -------------------------------------------------------------
    @abc.abstractmethod
    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Deliver ``payload`` to every instance's listener (best effort, not stored)."""

    # claims and dead letters (platform adapters' bookkeeping) ----------
    @abc.abstractmethod
    async def claim_once(self, key: str, ttl_s: float, value: str = "1") -> bool:
        """Set ``key`` to ``value`` unless it is already set; True for the one caller that set it.

        Atomic across instances (Redis: ``SET key value NX PX ttl``). The claim
        expires ``ttl_s`` seconds after it was set; until then every other
        ``claim_once`` of the same key returns False and changes nothing.
        """

    @abc.abstractmethod
    async def set_claim(self, key: str, ttl_s: float, value: str = "1") -> None:
        """Set ``key`` to ``value`` for ``ttl_s`` whether or not it is claimed (confirm a claim, longer)."""

    @abc.abstractmethod
    async def get_claim(self, key: str) -> str | None:
        """The value of an unexpired claim, else None."""

    @abc.abstractmethod
    async def release_claim(self, key: str) -> None:
        """Forget a claim (a no-op if there is none), so it can be claimed again."""

    @abc.abstractmethod
    async def add_dead_letter(self, record: dict[str, Any], keep: int) -> None:
        """Record one outbound send that failed for good; only the newest ``keep`` are kept."""

    @abc.abstractmethod
    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest dead letters first, at most ``limit``, as they were added."""

    # archive outbox (README "The outbox and hot data") ------------------
    # ``close_conversation`` queues the conversation, in its own step; a step that changes a closed one
    # (``rate``) queues a new version, in that step too, and keeps the hot copy until it is archived.
    @abc.abstractmethod
    async def claim_outbox(
        self, now: float, limit: int = 100, *, retry_s: float = 10.0, max_retry_s: float = 60.0
    ) -> list[OutboxEntry]:
        """Claim up to ``limit`` due outbox entries (queued at or before ``now``), oldest first.

        An entry stays in the outbox until ``archived``: a claim only hides it until
        ``now + min(max_retry_s, retry_s * 2 ** (claims - 1))``, after which any caller claims it
        again (its archiving failed, or the instance that claimed it died or stalled).
        """

    @abc.abstractmethod
    async def archived(self, conversation: str, version: int, keep_hot_s: float) -> bool:
        """The archive has ``version``: the entry leaves the outbox, in one step, and a closed
        conversation's hot copy goes ``keep_hot_s`` later (memory: the conversation, its log and
        client ids, its customer's pointer while it points there; Redis: those keys expire). A pending
        case whose follow-up is not done stays. False (nothing changed) when the entry is not in the
        outbox, or the conversation changed since (a newer version is queued)."""

    @abc.abstractmethod
    async def outbox_stats(self) -> OutboxStats:
        """The outbox's depth and the queue time of its oldest entry (metrics)."""
