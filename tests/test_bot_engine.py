"""FaqBot decisions on the demo FAQ (pure: no loop, no I/O)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jieba
import pytest

from gateway.bot import BotSettings, DecisionKind, FaqBot, FaqEntry, load_faq
from gateway.bot.eval import read_cases
from gateway.model import Priority

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bot() -> FaqBot:
    return FaqBot.build(load_faq(ROOT / "configs" / "faq.toml"), BotSettings())


def test_interface(bot: FaqBot) -> None:
    assert bot.faq_count == len(load_faq(ROOT / "configs" / "faq.toml"))
    assert bot.question_for("ship_time") == "什么时候发货"
    assert (
        bot.answer_for(
            "ship_time",
        )
        is not None
    )
    assert bot.question_for("nope") is None and bot.answer_for("nope") is None


@pytest.mark.parametrize(
    "text",
    [
        "什么时候发货",
        "什麼時候發貨",
        "亲，在吗？我想问下什么时候发货",
        "ＨＩ，什么时候发货！！！😊",
        "什么时候发货啊啊啊",
    ],
)
def test_smoke_question_is_answered(bot: FaqBot, text: str) -> None:
    d = bot.decide(text)
    assert d.kind is DecisionKind.ANSWER
    assert d.faq == "ship_time"
    assert d.text == bot.answer_for("ship_time")


@pytest.mark.parametrize(
    "text", ["转人工", "轉人工", "人工客服", "我要找真人", "叫你们客服出来", "退货的事，转人工吧"]
)
def test_person_requests_hand_off(bot: FaqBot, text: str) -> None:
    d = bot.decide(text)
    assert d.kind is DecisionKind.HANDOFF
    assert any(r.startswith("handoff:") for r in d.reasons)


@pytest.mark.parametrize(
    ("text", "word"),
    [("我要投诉", "投诉"), ("手机冒烟了", "冒烟"), ("再不处理我打12315", "12315"), ("小孩误食了", "误食")],
)
def test_urgent_hands_off_with_reason(bot: FaqBot, text: str, word: str) -> None:
    d = bot.decide(text)
    assert d.kind is DecisionKind.HANDOFF
    assert d.priority is Priority.URGENT
    assert f"urgent:{word}" in d.reasons


def test_urgent_wins_over_an_answer(bot: FaqBot) -> None:
    d = bot.decide("什么时候发货？再不发我就投诉")
    assert d.kind is DecisionKind.HANDOFF and d.priority is Priority.URGENT


def test_urgent_answer_allowed_when_configured(bot: FaqBot) -> None:
    relaxed = FaqBot.build(load_faq(ROOT / "configs" / "faq.toml"), BotSettings(handoff_on_urgent=False))
    d = relaxed.decide("什么时候发货？再不发我就投诉")
    assert d.kind is DecisionKind.ANSWER and d.priority is Priority.URGENT


def test_payment_problem_is_high(bot: FaqBot) -> None:
    d = bot.decide("付款的时候扣了两次钱")
    assert d.kind is not DecisionKind.ANSWER
    assert d.priority is Priority.HIGH
    assert any(r.startswith("high:") for r in d.reasons)


def test_vip_is_high_even_when_answered(bot: FaqBot) -> None:
    d = bot.decide("什么时候发货", vip=True)
    assert d.kind is DecisionKind.ANSWER and d.priority is Priority.HIGH and "vip" in d.reasons


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("你好", "greeting_reply"),
        ("在吗", "greeting_reply"),
        ("谢谢亲", "thanks_reply"),
        ("拜拜", "bye_reply"),
        ("👍", "chatter_reply"),
    ],
)
def test_small_talk(bot: FaqBot, text: str, reply: str) -> None:
    d = bot.decide(text)
    assert d.kind is DecisionKind.SMALLTALK
    assert d.text == getattr(bot.settings, reply)
    assert d.faq == "" and d.skill == ""


def test_orders_are_attached(bot: FaqBot) -> None:
    d = bot.decide("订单6919839412342345678到哪了")
    assert d.orders == ("6919839412342345678",)
    assert "order:6919839412342345678" in d.reasons
    only = bot.decide("231127-123456789012345")
    assert only.kind is DecisionKind.HANDOFF and only.orders == ("231127-123456789012345",)


def test_off_topic_is_not_answered(bot: FaqBot) -> None:
    for text in ["今天天气怎么样", "你们老板是谁", "我想应聘客服", "asdfghjkl"]:
        assert bot.decide(text).kind is not DecisionKind.ANSWER, text


def test_handoff_skill_from_keywords_and_near_faq(bot: FaqBot) -> None:
    assert bot.decide("快递员态度很差").skill == "logistics"
    assert bot.decide("退货运费到底谁出转人工").skill == "aftersale"
    assert bot.decide("转人工").skill == ""


def test_suggestions_and_clicking_them(bot: FaqBot) -> None:
    """Every question the bot suggests, typed back as is, gets its answer."""
    suggested = 0
    for case in read_cases(ROOT / "tests" / "data" / "faq_cases.jsonl"):
        d = bot.decide(case.text)
        if d.kind is not DecisionKind.SUGGEST:
            continue
        assert d.text == bot.settings.suggest_text
        assert 1 <= len(d.suggestions) <= bot.settings.max_suggestions
        for s in d.suggestions:
            suggested += 1
            assert s.question == bot.question_for(s.faq)
            again = bot.decide(s.question)
            assert again.kind is DecisionKind.ANSWER and again.faq == s.faq, s
    assert suggested > 0


def test_every_question_answers_itself(bot: FaqBot) -> None:
    for e in load_faq(ROOT / "configs" / "faq.toml"):
        d = bot.decide(e.question)
        if d.kind is DecisionKind.HANDOFF:  # a question containing a handoff phrase
            continue
        assert d.kind is DecisionKind.ANSWER and d.faq == e.id, e.id


def test_custom_texts_and_phrases() -> None:
    settings = dataclasses.replace(
        BotSettings(), handoff_phrases=("找小二",), greeting_reply="欢迎光临！", suggest_text="您想问："
    )
    b = FaqBot.build([FaqEntry("a", "包邮吗", "满99包邮", keywords=("包邮",))], settings)
    assert b.decide("找小二").kind is DecisionKind.HANDOFF
    assert (
        b.decide("转人工").kind is not DecisionKind.HANDOFF
        or "handoff:转人工" not in b.decide("转人工").reasons
    )
    assert b.decide("你好").text == "欢迎光临！"


def test_file_synonyms_are_used(tmp_path: Path) -> None:
    faq = tmp_path / "faq.toml"
    faq.write_text(
        '[synonyms]\n"蓝莓" = ["蓝梅果"]\n'
        '[[faq]]\nid = "berry"\nquestion = "蓝莓新鲜吗"\nanswer = "当天采摘"\n'
        '[[faq]]\nid = "ship"\nquestion = "多久发货"\nanswer = "48小时"\n',
        encoding="utf-8",
    )
    b = FaqBot.build(load_faq(faq))
    d = b.decide("蓝梅果新鲜吗")
    assert d.kind is DecisionKind.ANSWER and d.faq == "berry"


def test_decide_is_pure(bot: FaqBot) -> None:
    assert bot.decide("退货运费谁出") == bot.decide("退货运费谁出")


def test_own_tokenizer_not_the_global_one(bot: FaqBot) -> None:
    before = dict(jieba.dt.user_word_tag_tab)
    FaqBot.build([FaqEntry("x", "运费险怎么理赔", "自动理赔", keywords=("运费险理赔专用词",))])
    assert jieba.dt.user_word_tag_tab == before
    assert "运费险理赔专用词" not in jieba.dt.FREQ


def test_empty_and_noise(bot: FaqBot) -> None:
    for text in ["", "   ", "？？？", "。。。"]:
        d = bot.decide(text)
        assert d.kind in (DecisionKind.SMALLTALK, DecisionKind.HANDOFF)


# ---------------------------------------------------------------- the right team without configuration


@pytest.fixture(scope="module")
def plain_bot() -> FaqBot:
    """The demo FAQ as a shop's first file would be: no entry names a team."""
    faq = load_faq(ROOT / "configs" / "faq.toml")
    return FaqBot.build([dataclasses.replace(e, skill="") for e in faq], synonyms=faq.synonyms)


@pytest.mark.parametrize(
    ("text", "skill", "priority"),
    [
        ("我要去消协告你们", "aftersale", Priority.URGENT),
        ("宝宝误食了", "aftersale", Priority.URGENT),
        ("充电器烧了", "aftersale", Priority.URGENT),
        ("插座用着用着冒烟了", "aftersale", Priority.URGENT),
        ("我要退款，转人工", "aftersale", Priority.NORMAL),
        ("衣服质量太差了，转人工", "aftersale", Priority.NORMAL),
        ("快递丢件了，转人工", "logistics", Priority.NORMAL),
        ("转人工，快递三天没动了", "logistics", Priority.NORMAL),
    ],
)
def test_team_and_priority_without_faq_skills(
    plain_bot: FaqBot, text: str, skill: str, priority: Priority
) -> None:
    d = plain_bot.decide(text)
    assert d.kind is DecisionKind.HANDOFF, text
    assert (d.skill, d.priority) == (skill, priority), (text, d.reasons)


@pytest.fixture(scope="module")
def hours_bot() -> FaqBot:
    """A FAQ whose entry about the service hours sits near every bare 转人工."""
    return FaqBot.build(
        [
            FaqEntry(
                "hours",
                "人工客服工作时间",
                "人工客服每天9:00-22:00在线，输入“转人工”即可。",
                similar=("人工客服几点上班", "什么时候有人工", "客服几点下班"),
                keywords=("工作时间", "上班"),
                skill="presale",
            ),
            FaqEntry("ship", "什么时候发货", "48小时内发货", keywords=("发货",), skill="logistics"),
            FaqEntry("refund", "退款多久到账", "1-3个工作日", keywords=("退款",), skill="aftersale"),
        ]
    )


@pytest.mark.parametrize(
    "text", ["转人工", "我要人工", "人工客服", "转人工吧", "快点转人工", "找个真人", "轉人工"]
)
def test_a_bare_request_carries_no_team(hours_bot: FaqBot, text: str) -> None:
    d = hours_bot.decide(text)
    assert d.kind is DecisionKind.HANDOFF and any(r.startswith("handoff:") for r in d.reasons), text
    assert d.skill == "", (text, d.reasons)
    assert not any(r.startswith("skill:") for r in d.reasons)


def test_a_request_with_a_topic_takes_the_topics_team(hours_bot: FaqBot) -> None:
    d = hours_bot.decide("退款的事，转人工")
    assert d.kind is DecisionKind.HANDOFF and d.skill == "aftersale"


@pytest.mark.parametrize("text", ["人工客服几点上班", "几点有人工", "幾點有人工", "人工客服什么时候下班"])
def test_a_question_about_service_hours_is_answered(hours_bot: FaqBot, text: str) -> None:
    d = hours_bot.decide(text)
    assert not any(r.startswith("handoff:") for r in d.reasons), (text, d.reasons)
    assert d.kind is DecisionKind.ANSWER and d.faq == "hours", (text, d.kind, d.reasons)


def test_a_question_about_service_without_an_entry_is_matched_normally(bot: FaqBot) -> None:
    lean = FaqBot.build([FaqEntry("ship", "什么时候发货", "48小时内发货", keywords=("发货",))])
    d = lean.decide("有没有人工")
    assert not any(r.startswith("handoff:") for r in d.reasons), d.reasons
    assert bot.decide("人工客服几点上班").faq == "shop_hours"


@pytest.mark.parametrize("text", ["会过敏吗", "敏感肌能用吗", "充电会不会起火", "过敏体质能用吗"])
def test_a_safety_question_is_no_incident(bot: FaqBot, text: str) -> None:
    d = bot.decide(text)
    assert d.priority is Priority.NORMAL, (text, d.reasons)
    assert not any(r.startswith("urgent:") for r in d.reasons)


def test_read_is_how_decide_reads_a_message(bot: FaqBot) -> None:
    words, canonical = bot.read("亲，我的订单231127-123456789012345退回来的快递钱谁掏？")
    assert "231127" not in canonical  # the order number is out
    assert {"退货", "运费", "谁承担"} <= set(words)  # concept groups, as decide reads it
    assert bot.read("发漂怎么开")[0] == bot.read("发票怎么开")[0]  # typo repaired
