"""Rules of ``gateway/bot/classify.py``: hand-off requests vs. questions about the service, urgent
complaints and incidents vs. innocent uses of the same words, the built-in team vocabularies, and
the data files they are read from (written from general knowledge of Chinese e-commerce service,
not from the check sets)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gateway.bot import BotSettings
from gateway.bot.classify import Rules
from gateway.bot.normalize import clauses, fold
from gateway.bot.words_routing import DATA_FILE as ROUTING_FILE
from gateway.bot.words_text import DATA_FILE as TEXT_FILE
from gateway.model import Priority

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rules() -> Rules:
    return Rules.from_settings(BotSettings())


def _folded(text: str) -> str:
    return "".join(clauses(text))


def _priority(rules: Rules, text: str) -> Priority:
    return rules.priority(_folded(text), vip=False, vip_priority=Priority.HIGH).priority


# ------------------------------------------------------------------ data files


@pytest.mark.parametrize("path", [ROUTING_FILE, TEXT_FILE])
def test_data_files_are_clean_word_lists(path: Path) -> None:
    """Every list holds distinct, non-empty words in the form messages are matched in (simplified,
    lower case: a traditional or full-width message is folded to it before matching)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data
    lists: list[tuple[str, list[object]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lists.extend((f"{key}.{k}", v) for k, v in value.items())
        else:
            lists.append((key, value))
    for name, words in lists:
        assert isinstance(words, list) and words, name
        flat = [w for g in words for w in (g if isinstance(g, list) else [g])]
        assert all(isinstance(w, str) and w.strip() == w and w for w in flat), name
        assert all(fold(w) == w for w in flat), (name, [w for w in flat if fold(w) != w])
        if not any(isinstance(g, list) for g in words):  # (synonym groups may share a word)
            assert len(set(flat)) == len(flat), (name, sorted({w for w in flat if flat.count(w) > 1}))


def test_data_files_ship_in_the_wheel() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = data["tool"]["setuptools"]["package-data"]["gateway"]
    assert any(p.startswith("bot/data/") for p in patterns)
    assert ROUTING_FILE.parent.name == "data" and ROUTING_FILE.parent.parent.name == "bot"


def test_builtin_vocabularies_are_the_defaults() -> None:
    s = BotSettings()
    data = tomllib.loads(ROUTING_FILE.read_text(encoding="utf-8"))
    assert s.handoff_phrases == tuple(data["handoff_phrases"])
    assert s.urgent_words == tuple(data["urgent_words"])
    assert dict(s.skill_keywords) == {k: tuple(v) for k, v in data["skill_keywords"].items()}
    text = tomllib.loads(TEXT_FILE.read_text(encoding="utf-8"))
    assert s.fillers == tuple(text["fillers"])
    assert s.synonyms == tuple(tuple(g) for g in text["synonyms"])


# ------------------------------------------------------------------ hand-off: request or question


@pytest.mark.parametrize(
    "text",
    [
        "转人工",
        "轉人工",
        "我要人工",
        "人工客服",
        "人工",
        "找个真人",
        "帮我转一下人工",
        "给我接人工客服",
        "人工呢，怎么还没人",
        "怎么还没有人工",
        "人工客服几点上班？我现在就要转人工",
        "什么时候能转人工",
        "叫你们客服出来",
        "你是机器人吧",
        "我要找你们领导",
    ],
)
def test_requests_for_a_person(rules: Rules, text: str) -> None:
    assert rules.handoff_requests(clauses(text)), text


@pytest.mark.parametrize(
    "text",
    [
        "几点有人工",
        "幾點有人工",
        "人工客服几点上班",
        "有没有人工",
        "有人工客服吗",
        "晚上有人工吗",
        "人工客服周末在线吗",
        "人工客服什么时候下班",
        "节假日有人工服务吗",
    ],
)
def test_questions_about_the_service_are_not_requests(rules: Rules, text: str) -> None:
    assert rules.handoff_requests(clauses(text)) == [], text


@pytest.mark.parametrize(
    "text",
    ["安装要人工费吗", "是野生的还是人工养殖的", "有真人图吗", "模特是真人实拍吗", "扫地机器人能拖地吗"],
)
def test_words_that_only_contain_a_handoff_phrase(rules: Rules, text: str) -> None:
    assert rules.handoff_requests(clauses(text)) == [], text


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("转人工", ""),
        ("我要人工", ""),
        ("人工客服", ""),
        ("帮我转一下人工吧", ""),
        ("快点转人工", ""),
        ("赶紧给我找个真人", ""),
        ("什么时候能转人工", ""),
        ("为什么还不给我转人工", ""),
        ("退货的事，转人工吧", "退货的事"),
        ("充电器坏了转人工", "充电器坏了"),
        ("转人工，我要投诉", "我要投诉"),
    ],
)
def test_what_remains_without_the_request(rules: Rules, text: str, rest: str) -> None:
    left = "".join(rules.without_handoff(clauses(text)))
    assert left == rest or (rest and left.startswith(rest)), (text, left)


# ------------------------------------------------------------------ priority


@pytest.mark.parametrize(
    "text",
    [
        "我要去消协告你们",
        "再不处理我就打12315",
        "我已经找律师了",
        "信不信我去网上曝光你们",
        "我要去工商局举报",
        "不给退款我就投诉",
        "我要投訴",
        "准备起诉你们",
    ],
)
def test_complaints_and_regulators_are_urgent(rules: Rules, text: str) -> None:
    assert _priority(rules, text) is Priority.URGENT, text


@pytest.mark.parametrize(
    "text",
    [
        "宝宝误食了",
        "寶寶誤食了",
        "充电器烧了",
        "插座冒烟了",
        "電池冒煙了",
        "用了以后脸上过敏了",
        "涂完脸就过敏",
        "孩子吃了拉肚子",
        "手被划伤了",
        "用的时候突然起火",
        "电池鼓包了",
        "不小心误食了一点",
        "宝宝误食怎么办",
        "我过敏了",
        "吃完全身起疹子",
    ],
)
def test_safety_incidents_are_urgent(rules: Rules, text: str) -> None:
    assert _priority(rules, text) is Priority.URGENT, text


@pytest.mark.parametrize(
    "text",
    [
        "敏感肌能用吗",
        "会过敏吗",
        "会不会过敏",
        "过敏体质能用吗",
        "孕妇用了会过敏吗",
        "对芒果过敏能吃吗",
        "过敏吗",
        "充电会不会起火",
        "会冒烟吗",
        "万一孩子误食了怎么办",
        "担心宝宝误食",
        "一点都不过敏",
        "用了一周没有过敏",
        "是防过敏配方吗",
        "这个水壶烧水快吗",
        "有阻燃材料吗",
        "有漏电保护吗",
        "能用工商银行卡付款吗",
        "相机的曝光补偿怎么调",
        "烟雾报警器灵敏吗",
        "放心，我不会给差评的",
        "我手机号是13912315678",
        "电器是110v的吗",
        "容易划伤吗",
    ],
)
def test_innocent_uses_are_not_urgent(rules: Rules, text: str) -> None:
    assert _priority(rules, text) is not Priority.URGENT, text


def test_urgent_reason_names_the_word(rules: Rules) -> None:
    v = rules.priority(_folded("宝宝误食了，会过敏吗"), vip=False, vip_priority=Priority.HIGH)
    assert v.priority is Priority.URGENT and v.reasons == ("urgent:误食",)


def test_payment_problems_are_high(rules: Rules) -> None:
    assert _priority(rules, "付款的时候扣了两次钱") is Priority.HIGH
    assert _priority(rules, "一直支付失败") is Priority.HIGH
    assert _priority(rules, "什么时候发货") is Priority.NORMAL


# ------------------------------------------------------------------ the team


@pytest.mark.parametrize(
    ("text", "skill"),
    [
        ("我要去消协告你们", "aftersale"),
        ("宝宝误食了", "aftersale"),
        ("充电器烧了", "aftersale"),
        ("用了以后过敏了", "aftersale"),
        ("衣服有质量问题", "aftersale"),
        ("收到的东西有瑕疵", "aftersale"),
        ("你们卖假货", "aftersale"),
        ("我要退款", "aftersale"),
        ("退貨怎么退", "aftersale"),
        ("能换货吗", "aftersale"),
        ("少发了一件，给我补发", "aftersale"),
        ("发票开错了要重开", "presale"),  # (invoices are presale business in shops' FAQ files)
        ("我是老会员了，衣服坏了", "aftersale"),
        ("这个怎么安装", "aftersale"),
        ("买回来不会用", "aftersale"),
        ("客服态度太差了", "aftersale"),
        ("快递还没收到", "logistics"),
        ("丢件了怎么办", "logistics"),
        ("怎么还不派送", "logistics"),
        ("物流三天没更新", "logistics"),
        ("快递员态度很差", "logistics"),
        ("物流太慢了我要投诉", "logistics"),
        ("退货运费谁出", "aftersale"),
        ("优惠券怎么用", "presale"),
        ("有优惠吗", "presale"),
        ("能开发票吗", "presale"),
        ("尺码怎么选", "presale"),
        ("有现货吗", "presale"),
    ],
)
def test_builtin_teams(rules: Rules, text: str, skill: str) -> None:
    assert rules.choose_skill(_folded(text)) == skill, text


def test_no_evidence_no_team(rules: Rules) -> None:
    assert rules.choose_skill(_folded("你好")) == ""
    assert rules.choose_skill("") == ""
    # payment problems are urgent enough (high) for any agent: the default team takes them
    assert rules.choose_skill(_folded("付款的时候扣了两次钱")) == ""
    assert rules.choose_skill(_folded("一直支付失败")) == ""


def test_innocent_uses_do_not_vote(rules: Rules) -> None:
    """A safety word asked about (会过敏吗) says nothing about an after-sales problem."""
    assert rules.choose_skill(_folded("会过敏吗")) == ""
    assert rules.choose_skill(_folded("会不会起火")) == ""


def test_a_near_faq_entry_outweighs_a_generic_word(rules: Rules) -> None:
    assert rules.choose_skill(_folded("这个怎么用"), hint="presale") == "presale"
    assert rules.choose_skill(_folded("我要退款"), hint="presale") == "presale"  # 1 keyword < the hint
    assert rules.choose_skill(_folded("我要退款退货"), hint="presale") == "aftersale"


def test_teams_follow_configured_vocabularies() -> None:
    custom = Rules.from_settings(
        BotSettings(skill_keywords={"vip": ("黑卡",)}, skill_weak_words={}, safety_words=())
    )
    assert custom.choose_skill(_folded("我是黑卡会员")) == "vip"
    assert custom.choose_skill(_folded("我要退款")) == ""
    assert _priority(custom, "充电器烧了") is Priority.NORMAL
