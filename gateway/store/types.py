"""The values store steps take and return, and the names of bus topics and timers (``Store`` in ``base``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.model import Conversation, ConvState, Entry, MetaPatch, Priority

BusListener = Callable[[str, dict[str, Any]], None]
"""Called with (topic, payload) for every bus message, on every instance."""


TOPIC_PREFIXES = {"conversation": "c:", "agent": "a:", "queue": "q:"}
"""Bus topic prefixes: the only spelling (the Lua scripts get them generated from here)."""

TIMER_PREFIXES = {"idle": "idle:", "sla": "sla:", "grace": "grace:", "turn": "turn:", "overflow": "overflow:",
                  "follow_up": "follow_up:"}
"""Timer key prefixes: ``idle:<conv>``, ``sla:<conv>``, ``grace:<agent>``, ``turn:<conv>:<seq>``,
``follow_up:<conv>`` (a pending case's promised time)."""


def conv_topic(conversation: str) -> str:
    return TOPIC_PREFIXES["conversation"] + conversation


def agent_topic(agent: str) -> str:
    return TOPIC_PREFIXES["agent"] + agent


def queue_topic(skill: str) -> str:
    return TOPIC_PREFIXES["queue"] + skill


def idle_timer(conversation: str) -> str:
    return TIMER_PREFIXES["idle"] + conversation


def sla_timer(conversation: str) -> str:
    return TIMER_PREFIXES["sla"] + conversation


def grace_timer(agent: str) -> str:
    return TIMER_PREFIXES["grace"] + agent


def overflow_timer(conversation: str) -> str:
    return TIMER_PREFIXES["overflow"] + conversation


def follow_up_timer(conversation: str) -> str:
    return TIMER_PREFIXES["follow_up"] + conversation


def turn_timer(conversation: str, seq: int) -> str:
    return f"{TIMER_PREFIXES['turn']}{conversation}:{seq}"


@dataclass(slots=True, frozen=True)
class Guard:
    """A condition checked atomically with a log append."""

    state: ConvState | None = None  # conversation must be in this state
    agent: str | None = None  # conversation must be ASSIGNED to this agent
    open: bool = False  # conversation must not be CLOSED


@dataclass(slots=True, frozen=True)
class AppendResult:
    entry: Entry  # the stored entry (the first one, for a duplicate client id)
    duplicate: bool = False
    refused: bool = False  # the guard did not hold: nothing stored, ``entry`` is empty
    state: ConvState | None = None  # the conversation's state at the append (saves a read)
    # an agent message that is the first after the hand-off (``guard.agent``): its hand-off to it, saves a read
    first_response: FirstResponse | None = None


@dataclass(slots=True, frozen=True)
class FirstResponse:
    """The first agent message after a conversation's hand-off, as its append step saw it."""

    seconds: float  # the message's ts less the hand-off's (``meta.queued_at``)
    channel: str
    skill: str


@dataclass(slots=True, frozen=True)
class Placement:
    """Where a routing step put one conversation."""

    conversation: str
    skill: str
    agent: str = ""  # the new holder, or "" when it waits in ``skill``'s queue
    position: int = 0  # 1-based queue position when waiting
    from_queue: bool = False  # it left ``skill``'s queue, so positions there moved


@dataclass(slots=True, frozen=True)
class CloseResult:
    closed: bool  # False when it was already closed (nothing changed)
    conversation: Conversation | None  # state after the close
    agent: str = ""  # who held it (now released)
    placements: tuple[Placement, ...] = ()  # what the released agent pulled
    left_queue: str = ""  # skill queue it was removed from
    discarded: bool = False  # nobody wrote in it: forgotten instead of closed (``discard_unused``)


@dataclass(slots=True, frozen=True)
class CloseOutcome:
    """What an agent's close records on the conversation (``resolution``, ``category``; for ``pending``
    the follow-up: ``follow_up_at``, ``follow_up_note``), in the close step."""

    resolution: str  # resolved | unresolved | pending
    category: str = ""
    follow_up_at: float = 0.0  # pending: timer ``follow_up:<conv>`` due then; the case joins the agent's follow-ups
    note: str = ""


@dataclass(slots=True, frozen=True)
class PendingTurn:
    """A stored customer message whose bot turn has not been finished."""

    conversation: str
    seq: int
    state: ConvState
    channel: str
    entry: Entry
    vip: bool = False
    reopened: bool = False  # the conversation reopens an earlier one: its turn hands it to people


@dataclass(slots=True, frozen=True)
class HandoffRequest:
    """Everything one hand-off step needs (decided in Python, applied atomically)."""

    notice: Entry  # the system message telling the customer a person is coming
    skill: str  # "" = the conversation's ``meta.default_skill``, else by channel, else ``default_skill``
    priority: Priority
    channel_skills: dict[str, str]
    default_skill: str
    meta: MetaPatch  # reasons, queued_at, orders …
    turn: int = 0  # the customer message whose turn this finishes (0 = none): refused if not pending
    sla: tuple[str, float] | None = None  # the SLA timer scheduled when it waits or is assigned
    note: Entry | None = None  # an entry logged before the notice (a platform event that caused the hand-off)
    overflow: tuple[str, float] | None = None  # when a wait this long would move it to the default skill


@dataclass(slots=True, frozen=True)
class TransferResult:
    placement: Placement  # where the conversation went
    pulled: tuple[Placement, ...] = ()  # what the releasing agent pulled


@dataclass(slots=True, frozen=True)
class OutboxEntry:
    """A conversation the archive does not have yet, as ``claim_outbox`` hands it out."""

    conversation: str
    version: int  # the record's version: 1 at the close, one more for each later change
    queued_at: float  # when its oldest unarchived change was queued (Unix seconds)
    claims: int  # claims of this version so far, this one included


@dataclass(slots=True, frozen=True)
class OutboxStats:
    depth: int  # entries in the outbox (claimed or not)
    oldest_at: float | None  # ``queued_at`` of the oldest entry (None: empty)
