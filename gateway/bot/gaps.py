"""What the FAQ does not answer well, grouped for a person to fix (``gateway faq gaps``).

Pure: the items (customer messages the bot handed off, only suggested for, or
answered and then heard were not helpful) and the bot come in, clusters go out.
Gathering the items from the conversation logs is the service's job
(``gateway/service/gaps.py``).

A message is read as the bot reads it (``FaqBot.read``: normalization, slots,
fillers, synonyms and concept groups, stop words, typo repair): its words and its
canonical text (those words joined, synonyms mapped). Two messages are alike
when two rapidfuzz similarities both reach ``SIMILARITY``: over their sorted
word lists (the words they share), and over their texts (the better of the
normalized text as written and the canonical one), so 快递 and 物流 (synonyms)
are alike while 天气怎么样 and 股票怎么样 (one generic word in common) stay apart.
Clustering is greedy around leaders, in a fixed order (the most frequent
reading first), so the same items give the same clusters whatever order they
came in. It leans to precision: on the three labelled check sets in
``tests/data`` (every in-scope message labelled with the entry it should get,
plus two dozen short off-topic questions built from shared templates),
93-100 % of the messages share their cluster only with messages of their own
entry, and one entry's paraphrases spread over about 4 clusters (those with too
few words in common).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from rapidfuzz import fuzz, process

from gateway.bot.normalize import clauses
from gateway.bot.orders import split_orders
from gateway.bot.settings import BotSettings

SIMILARITY = 70.0  # 0-100: the word and the text similarity a message needs, both, to join a cluster
MAX_CLUSTERS = 50  # clusters reported (the biggest)
EXAMPLES = 5  # distinct example texts per cluster
CONVERSATIONS = 5  # conversation ids per cluster, the most recent first


class GapKind(enum.StrEnum):
    HANDOFF = "handoff"  # the bot found nothing close and handed the message to a person
    SUGGESTED = "suggested"  # the bot was not sure and only offered questions
    UNHELPFUL = "unhelpful"  # the bot answered and the customer said it did not help


@dataclass(slots=True, frozen=True)
class GapItem:
    text: str  # the customer's message
    kind: GapKind
    conversation: str = ""
    seq: int = 0  # the message's seq
    ts: float = 0.0
    faq: str = ""  # UNHELPFUL: the entry whose answer did not help


@dataclass(slots=True, frozen=True)
class Closest:
    id: str
    question: str
    score: float


@dataclass(slots=True, frozen=True)
class GapCluster:
    count: int  # messages in it
    examples: tuple[str, ...]  # distinct readings (as written), the most frequent first
    kinds: dict[str, int]  # GapKind -> messages
    closest: Closest | None  # the FAQ entry nearest to the first example (``FaqBot.nearest``)
    suggestion: str  # "add_to_entry" | "review_answer" | "new_entry"
    answered_by: dict[str, int] = field(default_factory=dict)  # UNHELPFUL messages per answering entry
    conversations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        c = self.closest
        return {
            "count": self.count,
            "kinds": self.kinds,
            "examples": list(self.examples),
            "closest": {"id": c.id, "question": c.question, "score": round(c.score, 3)} if c else None,
            "suggestion": self.suggestion,
            "answered_by": self.answered_by,
            "conversations": list(self.conversations),
        }


class NearestBot(Protocol):
    """What the clustering needs of the bot (``FaqBot`` has it)."""

    settings: BotSettings

    def nearest(self, text: str, limit: int = 3) -> list[tuple[str, float]]: ...

    def question_for(self, faq_id: str) -> str | None: ...

    def read(self, text: str) -> tuple[tuple[str, ...], str]: ...


Reader = Callable[[str], tuple[Sequence[str], str]]
"""A message's words and its canonical text (the words joined)."""


_Reading = tuple[tuple[str, ...], str, str]  # sorted distinct words, text as written (normalized), canonical


def _reading(text: str, read: Reader) -> _Reading:
    _, body = split_orders(text)
    words, canonical = read(text)
    written = "".join(clauses(body))
    return tuple(sorted(set(words))), written, canonical or written


@dataclass(slots=True, frozen=True)
class Gaps:
    clusters: list[GapCluster]  # the biggest, biggest first
    total: int  # clusters found in all


def find_gaps(
    items: Iterable[GapItem],
    bot: NearestBot,
    *,
    reader: Reader | None = None,
    similarity: float = SIMILARITY,
    max_clusters: int = MAX_CLUSTERS,
    add_threshold: float | None = None,
) -> Gaps:
    """Cluster ``items``; the biggest ``max_clusters`` clusters, biggest first (ties: first example).

    ``reader`` defaults to ``bot.read`` (how the bot itself reads a message). ``add_threshold`` (default: the bot's
    ``suggest_threshold``, the score at which it would have offered the entry) decides between
    adding the messages to the closest entry and writing a new one.
    """
    read = reader or bot.read
    threshold = bot.settings.suggest_threshold if add_threshold is None else add_threshold
    readings: dict[_Reading, list[GapItem]] = {}
    for item in items:
        text = item.text.strip()
        if not text:
            continue
        reading = _reading(text, read)
        if not reading[0] and not reading[1]:
            continue  # nothing but punctuation, emoji or an order number
        readings.setdefault(reading, []).append(item)
    order = sorted(readings, key=lambda r: (-len(readings[r]), r))
    leader_words: list[list[str]] = []
    leader_written: list[str] = []
    leader_canonical: list[str] = []
    members: list[list[list[GapItem]]] = []  # per cluster, its readings' items, the most frequent first
    for reading in order:
        words, written, canonical = reading
        if members:
            by_words = process.cdist([list(words)], leader_words, scorer=fuzz.ratio)[0]
            by_text = np.maximum(process.cdist([written], leader_written, scorer=fuzz.ratio)[0],
                                 process.cdist([canonical], leader_canonical, scorer=fuzz.ratio)[0])
            scores = np.minimum(by_words, by_text)
            best = int(scores.argmax())
            if scores[best] >= similarity:
                members[best].append(readings[reading])
                continue
        leader_words.append(list(words))
        leader_written.append(written)
        leader_canonical.append(canonical)
        members.append([readings[reading]])
    clusters = sorted((_summary(m) for m in members), key=lambda c: (-c[0], c[1]))
    top = clusters[: max(max_clusters, 0)]
    return Gaps([_cluster(group, examples, bot, threshold) for _, examples, group in top], len(clusters))


def _summary(readings: list[list[GapItem]]) -> tuple[int, tuple[str, ...], list[GapItem]]:
    """(messages, examples, items): one example per reading (its most frequent spelling), the most
    frequent readings first, so 有实体店吗 and 有实体店吗？？ are one example."""
    examples = []
    for group in readings[:EXAMPLES]:
        spellings = Counter(i.text.strip() for i in group)
        examples.append(min(spellings, key=lambda t: (-spellings[t], t)))
    items = [i for group in readings for i in group]
    return len(items), tuple(examples), items


def _cluster(items: list[GapItem], examples: tuple[str, ...], bot: NearestBot, threshold: float) -> GapCluster:
    kinds = Counter(i.kind.value for i in items)
    answered = Counter(i.faq for i in items if i.kind is GapKind.UNHELPFUL and i.faq)
    recent: dict[str, float] = {}
    for i in items:
        if i.conversation:
            recent[i.conversation] = max(recent.get(i.conversation, 0.0), i.ts)
    conversations = tuple(sorted(recent, key=lambda c: (-recent[c], c))[:CONVERSATIONS])
    closest = None
    near = bot.nearest(examples[0], 1)
    if near:
        faq_id, score = near[0]
        closest = Closest(faq_id, bot.question_for(faq_id) or "", float(score))
    if closest is None or closest.score < threshold:
        suggestion = "new_entry"
    elif answered.get(closest.id, 0) * 2 > len(items):
        # most of these were answered from that very entry and customers said it did not help
        suggestion = "review_answer"
    else:
        suggestion = "add_to_entry"
    return GapCluster(
        count=len(items),
        examples=examples,
        kinds={k.value: kinds.get(k.value, 0) for k in GapKind},
        closest=closest,
        suggestion=suggestion,
        answered_by=dict(sorted(answered.items(), key=lambda kv: (-kv[1], kv[0]))),
        conversations=conversations,
    )


def format_table(report: dict[str, Any]) -> str:
    """The ``gateway faq gaps`` report (``/api/faq/gaps`` JSON) as text for a person."""
    lines = [
        f"FAQ gaps since {report.get('since_days', '?')} day(s): {report.get('items', 0)} messages "
        f"in {report.get('conversations', 0)} conversations, {report.get('total_clusters', 0)} clusters"
        + (" (truncated: see limits)" if report.get("truncated") else ""),
    ]
    clusters = report.get("clusters") or []
    if not clusters:
        lines.append("No gaps: every message was answered, and no answer was judged unhelpful.")
        return "\n".join(lines) + "\n"
    lines.append("")
    lines.append(f"{'#':>3} {'count':>5}  {'handoff':>7} {'suggest':>7} {'unhelp':>6}  {'closest entry':<28} action")
    for n, c in enumerate(clusters, 1):
        k = c.get("kinds", {})
        near = c.get("closest")
        where = f"{near['id']} ({near['score']:.3f})" if near else "-"
        lines.append(f"{n:>3} {c['count']:>5}  {k.get('handoff', 0):>7} {k.get('suggested', 0):>7} "
                     f"{k.get('unhelpful', 0):>6}  {where:<28} {c.get('suggestion', '')}")
        if near:
            lines.append(f"{'':>12}closest question: {near['question']}")
        for ex in c.get("examples", []):
            lines.append(f"{'':>12}- {ex}")
    return "\n".join(lines) + "\n"
