"""What the bot decides about one customer message (pure data)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gateway.model import Priority


class DecisionKind(enum.StrEnum):
    ANSWER = "answer"  # confident FAQ answer
    SUGGEST = "suggest"  # close: offer the top questions ("您是不是想问")
    SMALLTALK = "smalltalk"  # greeting / thanks: friendly reply, no FAQ, no handoff
    HANDOFF = "handoff"  # a person must take over


@dataclass(slots=True, frozen=True)
class Suggestion:
    faq: str
    question: str


@dataclass(slots=True, frozen=True)
class BotDecision:
    kind: DecisionKind
    text: str = ""  # the answer, small-talk reply, or suggestion lead-in
    faq: str = ""  # FAQ id when kind is ANSWER
    suggestions: tuple[Suggestion, ...] = ()
    skill: str = ""  # team for a handoff ("" = caller's default)
    priority: Priority = Priority.NORMAL
    reasons: tuple[str, ...] = ()  # why: matched words, rule names (shown to agents)
    orders: tuple[str, ...] = field(default=())  # order numbers found in the text
    score: float = 0.0
