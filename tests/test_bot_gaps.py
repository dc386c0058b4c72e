"""gateway/bot/gaps.py: clustering the messages the FAQ did not serve (pure: items and a bot in)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from gateway.bot import BotSettings, FaqBot, FaqList, load_faq
from gateway.bot.gaps import GapItem, GapKind, find_gaps, format_table
from tests.support import DEMO_FAQ

H, S, U = GapKind.HANDOFF, GapKind.SUGGESTED, GapKind.UNHELPFUL

STORE = ["你们有实体店吗", "实体店在哪里", "有没有实体店呀", "你们有实体店吗？？", "实体店地址在哪"]
POINTS = ["积分能换礼品吗", "积分可以兑换礼品吗", "积分能兑换什么礼品"]
INVOICE_TYPE = ["发票能开专票吗", "可以开增值税专票吗"]


@pytest.fixture(scope="module")
def demo() -> tuple[FaqBot, FaqList]:
    faq = load_faq(DEMO_FAQ)
    return FaqBot.build(faq), faq


def items(texts: list[str], kind: GapKind, prefix: str, **kw: object) -> list[GapItem]:
    return [GapItem(t, kind, f"{prefix}{i}", 2, 1000.0 + i, **kw) for i, t in enumerate(texts)]  # type: ignore[arg-type]


def test_paraphrases_cluster_together_and_apart_from_other_questions(demo: tuple[FaqBot, FaqList]) -> None:
    bot, faq = demo
    got = find_gaps([*items(STORE, H, "s"), *items(POINTS, S, "p"), *items(INVOICE_TYPE, S, "i")], bot,
                    reader=bot.read)
    groups = {frozenset(c.examples): c for c in got.clusters}
    assert got.total == len(got.clusters)
    # a message repeated with other punctuation reads the same: one example, counted twice
    has_store = groups[frozenset({"你们有实体店吗", "有没有实体店呀"})]
    assert has_store.count == 3 and has_store.examples[0] == "你们有实体店吗"  # the most frequent leads
    assert has_store.kinds == {"handoff": 3, "suggested": 0, "unhelpful": 0}
    assert has_store.conversations == ("s3", "s2", "s0")  # the most recent first
    assert frozenset({"实体店在哪里", "实体店地址在哪"}) in groups
    assert frozenset({"积分可以兑换礼品吗", "积分能兑换什么礼品"}) in groups
    points = [c for c in got.clusters if set(c.examples) & set(POINTS)]
    assert sum(c.count for c in points) == 3 and all(c.kinds["suggested"] == c.count for c in points)
    # the points questions belong to member_points; nothing in the FAQ is about shops
    for c in points:
        assert c.closest is not None and (c.closest.id, c.closest.question) == ("member_points", "积分怎么用")
        assert c.suggestion == "add_to_entry"
    assert has_store.suggestion == "new_entry"
    # no cluster mixes the three topics; biggest first
    for c in got.clusters:
        topics = {t for t, texts in (("s", STORE), ("p", POINTS), ("i", INVOICE_TYPE)) if set(c.examples) & set(texts)}
        assert len(topics) == 1, c.examples
    assert [c.count for c in got.clusters] == sorted((c.count for c in got.clusters), reverse=True)


def test_the_output_does_not_depend_on_the_order_the_items_came_in(demo: tuple[FaqBot, FaqList]) -> None:
    bot, faq = demo
    reader = bot.read
    everything = [*items(STORE, H, "s"), *items(POINTS, S, "p"), *items(INVOICE_TYPE, U, "i", faq="invoice")]
    first = [c.to_dict() for c in find_gaps(everything, bot, reader=reader).clusters]
    for seed in range(5):
        shuffled = everything[:]
        random.Random(seed).shuffle(shuffled)
        assert [c.to_dict() for c in find_gaps(shuffled, bot, reader=reader).clusters] == first


@dataclass
class FakeBot:
    """A bot whose nearest entry is scripted: the suggestion rules on their own."""

    near: dict[str, tuple[str, float]]
    settings: BotSettings = field(default_factory=BotSettings)

    def nearest(self, text: str, limit: int = 3) -> list[tuple[str, float]]:
        hit = self.near.get(text)
        return [hit][:limit] if hit else []

    def question_for(self, faq_id: str) -> str | None:
        return {"ship_time": "什么时候发货", "invoice": "可以开发票吗"}.get(faq_id)


def chars(text: str) -> tuple[tuple[str, ...], str]:
    """A reader for scripted tests: every letter a word."""
    words = tuple(ch for ch in text if ch.isalnum())
    return words, "".join(words)


def test_suggestion_add_review_or_new_by_the_closest_entry_and_who_answered() -> None:
    threshold = BotSettings().suggest_threshold
    bot = FakeBot({
        "几号能发出": ("ship_time", threshold + 0.01),  # close enough that the bot would offer it
        "发票抬头写错了": ("invoice", 0.9),  # answered from invoice, customers said it did not help
        "你们老板是谁": ("invoice", threshold - 0.01),  # nothing close
    })
    got = find_gaps([
        *items(["几号能发出"] * 2, S, "a"),
        *items(["发票抬头写错了"] * 3, U, "b", faq="invoice"),
        *items(["你们老板是谁"], H, "c"),
        GapItem("？！🙂", H, "d", 2),  # nothing to read: no cluster
        GapItem("   ", H, "e", 2),
    ], bot, reader=chars)
    assert [(c.examples, c.suggestion) for c in got.clusters] == [
        (("发票抬头写错了",), "review_answer"),
        (("几号能发出",), "add_to_entry"),
        (("你们老板是谁",), "new_entry"),
    ]
    review = got.clusters[0]
    assert review.answered_by == {"invoice": 3} and review.kinds["unhelpful"] == 3
    assert review.to_dict()["closest"] == {"id": "invoice", "question": "可以开发票吗", "score": 0.9}
    # no closest entry at all: a new one; a lower bar makes the near miss an addition
    assert find_gaps(items(["谁"], H, "x"), bot, reader=lambda t: ((t,), t)).clusters[0].suggestion == "new_entry"
    lower = find_gaps(items(["你们老板是谁"], H, "c"), bot, reader=chars, add_threshold=0.0)
    assert lower.clusters[0].suggestion == "add_to_entry"


def test_bounded_output_examples_and_conversations(demo: tuple[FaqBot, FaqList]) -> None:
    bot, faq = demo
    texts = [f"第{n}号仓库在哪里发货的" for n in range(12)]  # one question, many spellings
    many = [GapItem(t, H, f"c{i % 7}", 3, float(i)) for i, t in enumerate(texts * 2)]
    unrelated = items([f"{w}怎么样" for w in ("天气", "股票", "足球", "电影")], H, "u")
    got = find_gaps([*many, *unrelated], bot, reader=bot.read, max_clusters=2)
    assert len(got.clusters) == 2 and got.total > 2
    top = got.clusters[0]
    assert top.count == 24 and len(top.examples) == 5 and len(set(top.examples)) == 5
    assert len(top.conversations) == 5 and len(set(top.conversations)) == 5
    table = format_table({"since_days": 7, "items": 28, "conversations": 11, "total_clusters": got.total,
                          "clusters": [c.to_dict() for c in got.clusters]})
    assert "24" in table and top.examples[0] in table and table.count("\n") > 5
    assert "No gaps" in format_table({"since_days": 7, "clusters": []})


def test_synonyms_read_alike_and_one_generic_word_in_common_is_not_enough(demo: tuple[FaqBot, FaqList]) -> None:
    bot, faq = demo
    got = find_gaps(items(["快递", "物流", "包裹"], S, "k") + items(["天气怎么样", "股票怎么样"], H, "w"), bot,
                    reader=bot.read)
    assert sorted(sorted(c.examples) for c in got.clusters) == [["包裹", "快递", "物流"], ["天气怎么样"], ["股票怎么样"]]
