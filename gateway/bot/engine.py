"""The FAQ bot: plain text in, a ``BotDecision`` out (pure, synchronous, no I/O)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from gateway.bot.analyzer import Analyzer
from gateway.bot.classify import PhraseMatcher, Rules, SmallTalk
from gateway.bot.concepts import CONCEPTS
from gateway.bot.faq import FaqEntry
from gateway.bot.index import FaqIndex, Ranked
from gateway.bot.normalize import FillerStripper, clauses, clauses_of_nfkc, clear_text_caches
from gateway.bot.orders import split_orders
from gateway.bot.segment import Segmenter
from gateway.bot.settings import BotSettings
from gateway.bot.types import BotDecision, DecisionKind, Suggestion
from gateway.model import Priority


class FaqBot:
    """Decides, for one customer message, between an answer, suggestions, small talk and a handoff.

    Build it with ``FaqBot.build`` (CPU-bound: run it off the event loop); ``decide``
    is then pure and fast, so a reload simply builds a new bot and swaps the reference.
    """

    def __init__(
        self,
        entries: Sequence[FaqEntry],
        settings: BotSettings,
        analyzer: Analyzer,
        index: FaqIndex,
        rules: Rules,
    ) -> None:
        self.settings = settings
        self._entries = tuple(entries)
        self._by_id = {e.id: e for e in self._entries}
        self._analyzer = analyzer
        self._index = index
        self._rules = rules
        self._vip_priority = Priority(settings.vip_priority)
        # every FAQ text and keyword normalized (case, script, punctuation, fillers)
        parts = index.parts
        # Problem words each entry mentions itself (its texts and keywords): a message
        # reporting another problem is not answered from that entry.
        words = {"".join(clauses(w)) for w in settings.issue_words}
        self._issue_chars = frozenset(w for w in words if len(w) == 1)
        self._issues = PhraseMatcher(w for w in words if len(w) > 1)
        self._entry_issues = [
            frozenset(w for t in (*e.texts, *e.keywords) for w in self._issue_words(parts[t]))
            for e in self._entries
        ]
        # Exact texts: a clicked suggestion always gets its answer, and so does a message
        # that is a FAQ question or paraphrase up to case, script, punctuation, emoji and
        # polite fillers (亲, 请问, 吗 …). Only that: dropping stop words or mapping synonyms
        # could make two different questions look the same. Questions first, so a question
        # wins over another entry's identical paraphrase.
        self._exact: dict[str, int] = {}
        for i, e in enumerate(self._entries):
            self._exact.setdefault("".join(clauses(e.question)), i)
        for i, e in enumerate(self._entries):
            self._exact.setdefault("".join(parts[e.question]), i)
        for i, e in enumerate(self._entries):
            for t in e.similar:
                self._exact.setdefault("".join(parts[t]), i)
        self._exact.pop("", None)

    @classmethod
    def build(
        cls,
        entries: Sequence[FaqEntry],
        settings: BotSettings | None = None,
        *,
        synonyms: Sequence[Sequence[str]] | None = None,
    ) -> FaqBot:
        """Build tokenizer and index (about a second, CPU only).

        ``synonyms`` defaults to the groups of the FAQ file (``load_faq(...).synonyms``)
        and is used together with ``settings.synonyms``.
        """
        settings = settings or BotSettings()
        if synonyms is None:
            synonyms = getattr(entries, "synonyms", ())
        segmenter = Segmenter()
        groups = [*synonyms, *settings.synonyms, *CONCEPTS]
        # Keywords become words of the tokenizer, except those holding a synonym (查物流):
        # cut as 查/物流 they read as 查/快递, like the messages that say 查快递 or 查包裹.
        forms = {f for g in groups for f in ("".join(clauses(w)) for w in g) if len(f) >= 2}
        holds_form = re.compile(
            "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)) or "(?!)"
        )
        for kc in dict.fromkeys("".join(clauses(k)) for e in entries for k in e.keywords):
            if kc in forms or not holds_form.search(kc):
                segmenter.add_word(kc)
        fillers = FillerStripper(settings.fillers)
        analyzer = Analyzer(segmenter, fillers, groups, settings.stop_words)
        # New words jieba's HMM finds in the FAQ (运费险, 以旧换新) become user words when
        # at least two questions use them; one-off finds are mostly noise (能发, 拍错).
        # Questions only: running the HMM over every paraphrase costs seconds on a large FAQ.
        # (normalization does not depend on the tokenizer: every text is normalized once, here)
        texts = list(dict.fromkeys(t for e in entries for t in (*e.texts, *e.keywords)))
        parts = dict(zip(texts, analyzer.clauses_many(texts), strict=True))
        found: dict[str, int] = {}
        for e in entries:
            for w in {w for c in parts[e.question] for w in segmenter.discover(c)}:
                found[w] = found.get(w, 0) + 1
        for w, count in found.items():
            if count >= 2:
                segmenter.add_word(w, 2000)
        index = FaqIndex(entries, analyzer, parts)
        return cls(entries, settings, analyzer, index, Rules.from_settings(settings))

    def clear_caches(self) -> None:
        """Forget every normalized, segmented and analyzed text (benchmarks measuring cold messages)."""
        clear_text_caches()
        self._analyzer.segmenter.clear_cache()
        self._analyzer.clear_caches()
        self._index.clear_caches()

    @property
    def faq_count(self) -> int:
        return len(self._entries)

    def question_for(self, faq_id: str) -> str | None:
        e = self._by_id.get(faq_id)
        return e.question if e else None

    def answer_for(self, faq_id: str) -> str | None:
        e = self._by_id.get(faq_id)
        return e.answer if e else None

    def read(self, text: str) -> tuple[tuple[str, ...], str]:
        """How the bot reads ``text``: its words and its canonical text (order numbers out, normalized,
        slots, synonyms and concept groups, stop words dropped, typos repaired), as ``decide`` does."""
        _, body = split_orders(text)
        a = self._analyzer.analyze_clauses(self._analyzer.strip(clauses_of_nfkc(body)), query=True)
        return a.terms, a.compact

    def nearest(self, text: str, limit: int = 3) -> list[tuple[str, float]]:
        """The FAQ entries closest to ``text``, best first, as (faq id, score): what ``decide`` ranks,
        without deciding (``gateway faq gaps`` names the closest entry of each cluster with it)."""
        _, body = split_orders(text)
        ranked = self._rank(clauses_of_nfkc(body))
        return [(self._entries[r.entry].id, r.score) for r in ranked[:limit]]

    def decide(self, text: str, *, vip: bool = False) -> BotDecision:
        """Classify one customer message. Pure: same text, same decision."""
        s = self.settings
        orders, body = split_orders(text)
        raw_parts = clauses_of_nfkc(body)
        folded = "".join(raw_parts)
        verdict = self._rules.priority(folded, vip=vip, vip_priority=self._vip_priority)
        reasons: list[str] = [*verdict.reasons, *(f"order:{o}" for o in orders)]
        priority = verdict.priority

        # 转人工 / 我要人工 / 人工客服 ask for a person; 几点有人工 asks about the service (matched below)
        handoff_words = self._rules.handoff_requests(raw_parts)
        if handoff_words or (priority is Priority.URGENT and s.handoff_on_urgent):
            reasons.extend(f"handoff:{w}" for w in handoff_words)
            # The team comes from what the message says besides asking for a person (the nearest
            # FAQ entry and the team words of the rest): a bare 转人工 carries none.
            rest = self._rules.without_handoff(raw_parts) if handoff_words else raw_parts
            return self._handoff("".join(rest), priority, reasons, orders, self._rank(rest))

        exact = self._exact.get(folded)
        parts = self._analyzer.strip(raw_parts)
        if exact is None:
            exact = self._exact.get("".join(parts))
        if exact is not None:
            e = self._entries[exact]
            return BotDecision(
                DecisionKind.ANSWER,
                text=e.answer,
                faq=e.id,
                skill=e.skill,
                priority=priority,
                reasons=(*reasons, f"faq:{e.id}", "exact"),
                orders=orders,
                score=1.0,
            )

        q = self._analyzer.analyze_clauses(parts, query=True)
        if not q.compact or not parts:
            talk = self._rules.small_talk(raw_parts)
            if orders or talk is None:
                reasons.append("no_question")
                return self._handoff(folded, priority, reasons, orders, [])
            return self._small_talk(talk, priority, reasons, orders)
        talk = self._rules.small_talk(raw_parts)
        if talk is not None:
            return self._small_talk(talk, priority, reasons, orders)

        # One meaningful character ("谁", "退") is too little to answer or suggest from.
        ranked = self._index.rank(q) if len(q.compact) >= 2 else []
        top = ranked[0] if ranked else None
        runner = ranked[1].score if len(ranked) > 1 else 0.0
        issues = [
            w for w in self._issue_words(parts) if top is None or w not in self._entry_issues[top.entry]
        ]
        reasons.extend(f"issue:{w}" for w in issues)
        if (
            top is not None
            and not issues
            and top.score >= s.answer_threshold
            and _lead(top.score, runner) >= s.min_margin
        ):
            e = self._entries[top.entry]
            return BotDecision(
                DecisionKind.ANSWER,
                text=e.answer,
                faq=e.id,
                skill=e.skill,
                priority=priority,
                reasons=(*reasons, f"faq:{e.id}", f"score:{top.score:.2f}"),
                orders=orders,
                score=top.score,
            )
        if top is not None and top.score >= s.suggest_threshold:
            floor = max(s.suggest_threshold, top.score - 0.25)
            picks = [r for r in ranked if r.score >= floor][: s.max_suggestions]
            return BotDecision(
                DecisionKind.SUGGEST,
                text=s.suggest_text,
                suggestions=tuple(
                    Suggestion(self._entries[r.entry].id, self._entries[r.entry].question) for r in picks
                ),
                skill=self._skill(folded, ranked),
                priority=priority,
                reasons=(*reasons, *(f"near:{self._entries[r.entry].id}" for r in picks)),
                orders=orders,
                score=top.score,
            )
        reasons.append("no_match")
        return self._handoff(folded, priority, reasons, orders, ranked)

    def _issue_words(self, parts: Sequence[str]) -> list[str]:
        """Problem words in a normalized text: phrases (写错, 过期) anywhere, single characters
        (少, 丢) only as words of their own (少 in 少东西, not in 多少)."""
        text = "".join(parts)
        found = self._issues.find(text)
        if not self._issue_chars.isdisjoint(text):
            cut = self._analyzer.segmenter.cut
            found.extend(dict.fromkeys(t for c in parts for t in cut(c) if t in self._issue_chars))
        return found

    def _rank(self, raw_parts: list[str]) -> list[Ranked]:
        q = self._analyzer.analyze_clauses(self._analyzer.strip(raw_parts), query=True)
        return self._index.rank(q) if len(q.compact) >= 2 else []

    def _small_talk(
        self, talk: SmallTalk, priority: Priority, reasons: list[str], orders: tuple[str, ...]
    ) -> BotDecision:
        s = self.settings
        reply = {
            SmallTalk.GREETING: s.greeting_reply,
            SmallTalk.THANKS: s.thanks_reply,
            SmallTalk.BYE: s.bye_reply,
            SmallTalk.CHATTER: s.chatter_reply,
        }[talk]
        return BotDecision(
            DecisionKind.SMALLTALK,
            text=reply,
            priority=priority,
            reasons=(*reasons, f"smalltalk:{talk.value}"),
            orders=orders,
        )

    def _handoff(
        self,
        folded: str,
        priority: Priority,
        reasons: list[str],
        orders: tuple[str, ...],
        ranked: list[Ranked],
    ) -> BotDecision:
        skill = self._skill(folded, ranked)
        if skill:
            reasons.append(f"skill:{skill}")
        return BotDecision(
            DecisionKind.HANDOFF,
            text=self.settings.handoff_reply,
            skill=skill,
            priority=priority,
            reasons=tuple(reasons),
            orders=orders,
            score=ranked[0].score if ranked else 0.0,
        )

    def _skill(self, folded: str, ranked: list[Ranked]) -> str:
        """Team words vote (one per keyword, half per weak word); a near-miss FAQ entry adds 1.5
        for its skill (``Rules.choose_skill``); "" when nothing votes."""
        hint = ""
        if ranked and ranked[0].score >= self.settings.skill_hint_threshold:
            hint = self._entries[ranked[0].entry].skill
        return self._rules.choose_skill(folded, hint)


def _lead(best: float, runner: float) -> float:
    """How clearly ``best`` beats ``runner``: the odds that it is the right one of the two, minus 1/2.

    Compared on the logistic model's log-odds, so 0.99 vs 0.95 (log-odds 4.6 vs 2.9) is a
    clear lead while 0.60 vs 0.56 is not, unlike a plain difference of the scores.
    """
    eps = 1e-9
    b = min(max(best, eps), 1 - eps)
    r = min(max(runner, eps), 1 - eps)
    gap = math.log(b / (1 - b)) - math.log(r / (1 - r))
    return 1.0 / (1.0 + math.exp(-gap)) - 0.5
