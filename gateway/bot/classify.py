"""Rule-based reading of a message: handoff requests, small talk, priority and skill keywords."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.bot.normalize import TRAILING_PARTICLES, fold
from gateway.model import Priority


class PhraseMatcher:
    """Finds configured phrases (folded: simplified, lower case) in folded, compacted text."""

    def __init__(self, phrases: Iterable[str]) -> None:
        words = sorted({_key(p) for p in phrases if _key(p)}, key=len, reverse=True)
        self.words = tuple(words)
        self._re = re.compile("|".join(re.escape(w) for w in words)) if words else None

    def find(self, text: str) -> list[str]:
        """Matched phrases, longest first at each position, without duplicates."""
        if self._re is None:
            return []
        out: list[str] = []
        for m in self._re.finditer(text):
            if m.group(0) not in out:
                out.append(m.group(0))
        return out


def _key(phrase: str) -> str:
    return re.sub(r"\s+", "", fold(phrase))


class SmallTalk(enum.StrEnum):
    GREETING = "greeting"
    THANKS = "thanks"
    BYE = "bye"
    CHATTER = "chatter"


@dataclass(slots=True, frozen=True)
class PriorityVerdict:
    priority: Priority
    reasons: tuple[str, ...]


class Rules:
    """All keyword rules of the ``[bot]`` settings, compiled once."""

    def __init__(
        self,
        *,
        handoff_phrases: Iterable[str],
        urgent_words: Iterable[str],
        high_words: Iterable[str],
        skill_keywords: Mapping[str, Iterable[str]],
        greeting_words: Iterable[str],
        thanks_words: Iterable[str],
        bye_words: Iterable[str],
        fillers: Iterable[str],
    ) -> None:
        self.handoff = PhraseMatcher(handoff_phrases)
        self.urgent = PhraseMatcher(urgent_words)
        self.high = PhraseMatcher(high_words)
        self.skills = {skill: PhraseMatcher(words) for skill, words in skill_keywords.items()}
        kinds: dict[str, SmallTalk] = {}
        for kind, words in (
            (SmallTalk.GREETING, greeting_words),
            (SmallTalk.THANKS, thanks_words),
            (SmallTalk.BYE, bye_words),
        ):
            for w in words:
                kinds.setdefault(_key(w), kind)
        self._talk_kind = kinds
        self._talk = PhraseMatcher(kinds)
        chatter = [*greeting_words, *thanks_words, *bye_words, *fillers, "哈哈", "呵呵", "嘿嘿"]
        alt = "|".join(
            re.escape(w) for w in sorted({_key(c) for c in chatter if _key(c)}, key=len, reverse=True)
        )
        self._chatter_re = re.compile(rf"^(?:{alt}|[{TRAILING_PARTICLES}])*$")

    def priority(self, text: str, *, vip: bool, vip_priority: Priority) -> PriorityVerdict:
        urgent = self.urgent.find(text)
        if urgent:
            return PriorityVerdict(Priority.URGENT, tuple(f"urgent:{w}" for w in urgent))
        high = self.high.find(text)
        reasons = tuple(f"high:{w}" for w in high)
        if vip and vip_priority is not Priority.NORMAL:
            return PriorityVerdict(vip_priority, (*reasons, "vip"))
        if high:
            return PriorityVerdict(Priority.HIGH, reasons)
        return PriorityVerdict(Priority.NORMAL, ())

    def skill_hits(self, text: str) -> dict[str, list[str]]:
        hits: dict[str, list[str]] = {}
        for skill, matcher in self.skills.items():
            found = matcher.find(text)
            if found:
                hits[skill] = found
        return hits

    def small_talk(self, parts: list[str]) -> SmallTalk | None:
        """What kind of small talk the message is, if it is nothing else (``parts``: clauses)."""
        if not all(self._chatter_re.match(p) for p in parts):
            return None
        found = {self._talk_kind[w] for w in self._talk.find("".join(parts))}
        for kind in (SmallTalk.BYE, SmallTalk.THANKS, SmallTalk.GREETING):
            if kind in found:
                return kind
        return SmallTalk.CHATTER
