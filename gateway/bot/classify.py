"""Rule-based reading of a message: hand-off requests, small talk, priority and the team.

The vocabularies come from ``BotSettings`` (built in from ``data/routing.toml``), the grammar
around them (negation, question forms, request verbs) from that file's ``[grammar]`` table.
Every method takes text already folded by ``normalize`` (simplified, lower case, clauses).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gateway.bot import words_routing as g
from gateway.bot.normalize import TRAILING_PARTICLES, clauses
from gateway.bot.settings import BotSettings
from gateway.model import Priority

_HIDDEN = "\x00"  # what a masked span becomes: never part of a phrase


def _alt(words: Iterable[str]) -> str:
    """A regex alternation of ``words``, longest first (so the longest wins at a position)."""
    return "|".join(re.escape(w) for w in sorted({w for w in words if w}, key=len, reverse=True))


class PhraseMatcher:
    """Finds configured phrases (folded: simplified, lower case) in folded, compacted text."""

    def __init__(self, phrases: Iterable[str]) -> None:
        words = sorted({_key(p) for p in phrases if _key(p)}, key=len, reverse=True)
        self.words = tuple(words)
        self._re = re.compile(_alt(words)) if words else None

    def find(self, text: str) -> list[str]:
        """Matched phrases, longest first at each position, without duplicates."""
        return list(dict.fromkeys(m.group(0) for m in self.finditer(text)))

    def finditer(self, text: str) -> Iterable[re.Match[str]]:
        return self._re.finditer(text) if self._re is not None else ()

    def any(self, text: str) -> bool:
        """Whether any phrase occurs in ``text`` (one search)."""
        return self._re is not None and self._re.search(text) is not None

    def mask(self, text: str) -> str:
        """``text`` with every match hidden (same length: positions stay valid)."""
        if self._re is None:
            return text
        return self._re.sub(lambda m: _HIDDEN * len(m.group(0)), text)


def _key(phrase: str) -> str:
    """A phrase as messages read after normalization (扣两次 -> 扣2次, 轉人工 -> 转人工)."""
    return "".join(clauses(phrase))


def _hide(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for s, e in spans:
        chars[s:e] = _HIDDEN * (e - s)
    return "".join(chars)


class SmallTalk(enum.StrEnum):
    GREETING = "greeting"
    THANKS = "thanks"
    BYE = "bye"
    CHATTER = "chatter"


class _Urgency(enum.IntEnum):
    COMPLAINT = 0  # urgent wherever it stands, unless negated
    SAFETY = 1  # an event: urgent unless negated or asked about as a risk
    SYMPTOM = 2  # a condition: urgent only with a sign that it happened


@dataclass(slots=True, frozen=True)
class PriorityVerdict:
    priority: Priority
    reasons: tuple[str, ...]


# The grammar (data/routing.toml [grammar]), compiled once.
_REQUESTED_RE = re.compile(rf"(?:{_alt(g.REQUEST_VERBS)})(?:{_alt(g.REQUEST_LINKS)})*$")
_NEGATED_RE = re.compile(rf"(?:{_alt(g.NEGATORS)})(?:{_alt(g.NEGATION_LINKS)})*$")
_HYPOTHETICAL_RE = re.compile(rf"(?:{_alt(g.HYPOTHETICAL)})[^了吧啊呀呢哦的{_HIDDEN}]{{0,4}}$")
_HAPPENED_BEFORE_RE = re.compile(_alt(g.INCIDENT_BEFORE))
_HAPPENED_AFTER_RE = re.compile(_alt(g.INCIDENT_AFTER))
_QUESTION_AFTER = frozenset(g.QUESTION_PARTICLES)
_SERVICE_NOUNS = frozenset(g.SERVICE_NOUNS)
# 有人工, 有人工客服吗, 还有真人吗 (not 没有人工): the availability of a person asked about
_AVAILABLE_BEFORE_RE = re.compile(r"(?<!没)有$")
_AVAILABLE_AFTER_RE = re.compile(rf"^(?:客服|服务|[{TRAILING_PARTICLES}没不])*$")
_WEAK_VOTE = 0.5


class Rules:
    """All keyword rules of the ``[bot]`` settings, compiled once (``Rules.from_settings``)."""

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
        not_handoff_phrases: Iterable[str] = g.DEFAULT_NOT_HANDOFF_PHRASES,
        service_question_words: Iterable[str] = g.DEFAULT_SERVICE_QUESTION_WORDS,
        safety_words: Iterable[str] = g.DEFAULT_SAFETY_WORDS,
        symptom_words: Iterable[str] = g.DEFAULT_SYMPTOM_WORDS,
        not_urgent_phrases: Iterable[str] = g.DEFAULT_NOT_URGENT_PHRASES,
        skill_weak_words: Mapping[str, Iterable[str]] = g.DEFAULT_SKILL_WEAK_WORDS,
    ) -> None:
        self.handoff = PhraseMatcher(handoff_phrases)
        self._not_handoff = PhraseMatcher(not_handoff_phrases)
        self._service_question = PhraseMatcher(service_question_words)
        # what may stand around a request for a person and says nothing more (快点给我转人工客服吧)
        around = _alt(
            {*g.REQUEST_VERBS, *g.REQUEST_LINKS, *g.REQUEST_FILLERS, *g.SERVICE_NOUNS, "客服"}
            | set(self._service_question.words)
        )
        self._around_before = re.compile(rf"(?:{around})*$")
        self._around_after = re.compile(rf"^(?:{around})*")
        # urgent words by kind; a word in several lists takes the first kind (complaint first)
        kinds: dict[str, _Urgency] = {}
        for kind, words in (
            (_Urgency.COMPLAINT, urgent_words),
            (_Urgency.SAFETY, safety_words),
            (_Urgency.SYMPTOM, symptom_words),
        ):
            for w in words:
                kinds.setdefault(_key(w), kind)
        kinds.pop("", None)
        self._urgency = kinds
        self.urgent = PhraseMatcher(kinds)
        self._not_urgent = PhraseMatcher(not_urgent_phrases)
        self.high = PhraseMatcher(high_words)
        # teams: one vote per keyword found, half a vote per weak word (weak words of a team
        # the keywords do not have are ignored: replacing the keywords replaces the teams)
        self.skills = tuple(skill_keywords)
        votes: dict[str, list[tuple[str, float]]] = {}
        for weight, table in ((1.0, skill_keywords), (_WEAK_VOTE, skill_weak_words)):
            for team, words in table.items():
                if team not in self.skills:
                    continue
                for w in words:
                    if _key(w) and all(t != team for t, _ in votes.get(_key(w), [])):
                        votes.setdefault(_key(w), []).append((team, weight))
        self._skill_votes = votes
        self._skill_words = PhraseMatcher(votes)
        self._init_small_talk(greeting_words, thanks_words, bye_words, fillers)

    @classmethod
    def from_settings(cls, s: BotSettings) -> Rules:
        return cls(
            handoff_phrases=s.handoff_phrases,
            not_handoff_phrases=s.not_handoff_phrases,
            service_question_words=s.service_question_words,
            urgent_words=s.urgent_words,
            safety_words=s.safety_words,
            symptom_words=s.symptom_words,
            not_urgent_phrases=s.not_urgent_phrases,
            high_words=s.high_words,
            skill_keywords=s.skill_keywords,
            skill_weak_words=s.skill_weak_words,
            greeting_words=s.greeting_words,
            thanks_words=s.thanks_words,
            bye_words=s.bye_words,
            fillers=s.fillers,
        )

    # ------------------------------------------------------------------ hand-off

    def handoff_requests(self, parts: Sequence[str]) -> list[str]:
        """The hand-off phrases in the clauses ``parts`` that ask for a person (转人工, 我要人工,
        人工客服), not those in a question about the service (几点有人工, 人工客服几点上班)."""
        return list(dict.fromkeys(m.group(0) for c in parts for m in self._requests(c)))

    def without_handoff(self, parts: Sequence[str]) -> list[str]:
        """``parts`` without the requests for a person and the words said around them (快点,
        帮我, 转, 一下, 吧): what else the message says (退货的事，转人工吧 -> 退货的事)."""
        out: list[str] = []
        for c in parts:
            end, pieces = len(c), []
            for m in reversed(self._requests(c)):
                start, stop = m.span()
                if stop > end:  # (already removed with a later request)
                    continue
                before = self._around_before.search(c, 0, start)
                after = self._around_after.match(c[stop:end])
                start = before.start() if before else start
                pieces.append(c[stop + (after.end() if after else 0) : end])
                end = start
            pieces.append(c[:end])
            out.extend(p for p in reversed(pieces) if p)
        return out

    def _requests(self, clause: str) -> list[re.Match[str]]:
        c = self._not_handoff.mask(clause)
        return [m for m in self.handoff.finditer(c) if not self._asks_about_service(c, m)]

    def _asks_about_service(self, clause: str, m: re.Match[str]) -> bool:
        """A bare person word (人工, 真人) in a clause asking about time or availability, without
        a request verb before it (找个真人, 什么时候能转人工 are requests)."""
        if m.group(0) not in _SERVICE_NOUNS:
            return False
        before, after = clause[: m.start()], clause[m.end() :]
        if _REQUESTED_RE.search(before):
            return False
        if self._service_question.find(clause.replace(m.group(0), _HIDDEN)):
            return True
        return bool(_AVAILABLE_BEFORE_RE.search(before) and _AVAILABLE_AFTER_RE.match(after))

    # ------------------------------------------------------------------ priority

    def priority(self, text: str, *, vip: bool, vip_priority: Priority) -> PriorityVerdict:
        # (most messages hold no urgent word at all: one search instead of the masking scans)
        urgent = self._urgent_scan(text)[0] if self.urgent.any(text) else []
        if urgent:
            return PriorityVerdict(Priority.URGENT, tuple(f"urgent:{w}" for w in urgent))
        high = self.high.find(text)
        reasons = tuple(f"high:{w}" for w in high)
        if vip and vip_priority is not Priority.NORMAL:
            return PriorityVerdict(vip_priority, (*reasons, "vip"))
        if high:
            return PriorityVerdict(Priority.HIGH, reasons)
        return PriorityVerdict(Priority.NORMAL, ())

    def _urgent_scan(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        """The urgent words that count, and the spans of those that do not (negated, asked about,
        a product name such as 工商银行 or 报警器, a number inside a longer one)."""
        masked = self._not_urgent.mask(text)
        found: list[str] = []
        rejected = [(m.start(), m.end()) for m in self._not_urgent.finditer(text)]
        for m in self.urgent.finditer(masked):
            if self._counts(masked, m.group(0), m.start(), m.end()):
                if m.group(0) not in found:
                    found.append(m.group(0))
            else:
                rejected.append(m.span())
        return found, rejected

    def _counts(self, text: str, word: str, s: int, e: int) -> bool:
        if word[0].isdigit() and s > 0 and text[s - 1].isascii() and text[s - 1].isalnum():
            return False
        if word[-1].isdigit() and e < len(text) and text[e].isascii() and text[e].isalnum():
            return False
        if _NEGATED_RE.search(text, max(0, s - 8), s):
            return False
        kind = self._urgency[word]
        if kind is _Urgency.COMPLAINT:
            return True
        if _HYPOTHETICAL_RE.search(text, max(0, s - 10), s) or text[e : e + 1] in _QUESTION_AFTER:
            return False
        if kind is _Urgency.SAFETY:
            return True
        return bool(_HAPPENED_AFTER_RE.match(text, e) or _HAPPENED_BEFORE_RE.search(text, max(0, s - 6), s))

    # ------------------------------------------------------------------ the team

    def choose_skill(self, text: str, hint: str = "", hint_weight: float = 1.5) -> str:
        """The team for ``text``: one vote per keyword found (half for a weak word), ``hint_weight``
        for ``hint`` (the team of a near-miss FAQ entry); most votes, then most matched characters,
        then the order of the teams. Urgent words vote only where they count as urgent
        (会过敏吗 votes for nobody); "" when nothing votes."""
        _, rejected = self._urgent_scan(text)
        text = _hide(self._not_handoff.mask(text), rejected)
        votes: dict[str, float] = {}
        chars: dict[str, int] = {}
        for m in self._skill_words.finditer(text):
            for team, weight in self._skill_votes[m.group(0)]:
                votes[team] = votes.get(team, 0.0) + weight
                chars[team] = chars.get(team, 0) + len(m.group(0))
        if hint:
            votes[hint] = votes.get(hint, 0.0) + hint_weight
        if not votes:
            return ""
        order = self.skills
        return max(
            votes,
            key=lambda t: (votes[t], chars.get(t, 0), -order.index(t) if t in order else -len(order)),
        )

    # ------------------------------------------------------------------ small talk

    def _init_small_talk(
        self,
        greeting_words: Iterable[str],
        thanks_words: Iterable[str],
        bye_words: Iterable[str],
        fillers: Iterable[str],
    ) -> None:
        greeting_words, thanks_words, bye_words = list(greeting_words), list(thanks_words), list(bye_words)
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
        alt = _alt(_key(c) for c in chatter)
        self._chatter_re = re.compile(rf"^(?:{alt}|[{TRAILING_PARTICLES}])*$")

    def small_talk(self, parts: list[str]) -> SmallTalk | None:
        """What kind of small talk the message is, if it is nothing else (``parts``: clauses)."""
        if not all(self._chatter_re.match(p) for p in parts):
            return None
        found = {self._talk_kind[w] for w in self._talk.find("".join(parts))}
        for kind in (SmallTalk.BYE, SmallTalk.THANKS, SmallTalk.GREETING):
            if kind in found:
                return kind
        return SmallTalk.CHATTER
