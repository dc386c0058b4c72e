"""The [bot] table: defaults and validation."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.bot import BotSettings
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_empty_table_gives_defaults() -> None:
    s = BotSettings.from_mapping({})
    assert s == BotSettings()
    assert 0 < s.suggest_threshold <= s.answer_threshold < 1
    assert "转人工" in s.handoff_phrases
    assert set(s.skill_keywords) == {"presale", "aftersale", "logistics"}


def test_values_are_taken() -> None:
    s = BotSettings.from_mapping(
        {
            "answer_threshold": 0.7,
            "min_margin": 0,
            "suggest_text": "您想问的是：",
            "handoff_phrases": ["找小二"],
            "skill_keywords": {"vip": ["黑卡"]},
            "synonyms": {"快递": ["物流"]},
        }
    )
    assert s.answer_threshold == 0.7 and s.min_margin == 0.0
    assert s.handoff_phrases == ("找小二",)
    assert s.skill_keywords == {"vip": ("黑卡",)}
    assert s.synonyms == (("快递", "物流"),)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"answer_threshold": 1.5}, "bot.answer_threshold"),
        ({"answer_threshold": "high"}, "bot.answer_threshold"),
        ({"suggest_threshold": 0.9, "answer_threshold": 0.5}, "bot.suggest_threshold"),
        ({"max_suggestions": 0}, "bot.max_suggestions"),
        ({"handoff_phrases": "转人工"}, "bot.handoff_phrases"),
        ({"skill_keywords": {"presale": "优惠"}}, "bot.skill_keywords.presale"),
        ({"synonyms": [["快递"]]}, "bot.synonyms[0]"),
        ({"vip_priority": "asap"}, "bot.vip_priority"),
        ({"suggest_text": ""}, "bot.suggest_text"),
        ({"handoff_on_urgent": "yes"}, "bot.handoff_on_urgent"),
        ({"tresholds": 1}, "bot.tresholds"),
    ],
)
def test_bad_values_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        BotSettings.from_mapping(table)
    assert exc.value.key == key


def test_example_config_is_valid_and_matches_defaults() -> None:
    data = tomllib.loads((ROOT / "configs" / "bot.example.toml").read_text(encoding="utf-8"))
    s = BotSettings.from_mapping(data["bot"])
    assert s == BotSettings()


def test_builtin_vocabularies_come_from_the_data_files() -> None:
    s = BotSettings()
    for name in (
        "handoff_phrases", "not_handoff_phrases", "service_question_words", "urgent_words",
        "safety_words", "symptom_words", "not_urgent_phrases", "high_words", "issue_words",
        "fillers", "greeting_words", "thanks_words", "bye_words",
    ):  # fmt: skip
        assert getattr(s, name), name
    assert set(s.skill_weak_words) <= set(s.skill_keywords)
    assert {"12315", "消协", "工商", "律师", "曝光"} <= set(s.urgent_words)
    assert {"误食", "冒烟", "起火", "烧了", "受伤"} <= set(s.safety_words)
    assert "过敏" in s.symptom_words


def test_a_config_list_replaces_the_builtin_one() -> None:
    s = BotSettings.from_mapping({"urgent_words": ["黑猫投诉"], "safety_words": []})
    assert s.urgent_words == ("黑猫投诉",)
    assert s.safety_words == ()
    assert s.symptom_words == BotSettings().symptom_words  # untouched lists stay built in


def test_extra_lists_extend() -> None:
    base = BotSettings()
    s = BotSettings.from_mapping(
        {
            "extra_urgent_words": ["黑猫投诉", "投诉"],
            "extra_handoff_phrases": ["找小二"],
            "extra_skill_keywords": {"aftersale": ["开胶"], "vip": ["黑卡"]},
            "extra_skill_weak_words": {"logistics": ["送"]},
            "extra_synonyms": {"蓝莓": ["蓝梅"]},
            "extra_stop_words": ["那个"],
        }
    )
    assert s.urgent_words == (*base.urgent_words, "黑猫投诉")  # (a word already there is not doubled)
    assert s.handoff_phrases == (*base.handoff_phrases, "找小二")
    assert s.skill_keywords["aftersale"] == (*base.skill_keywords["aftersale"], "开胶")
    assert s.skill_keywords["vip"] == ("黑卡",)
    assert s.skill_keywords["presale"] == base.skill_keywords["presale"]
    assert s.skill_weak_words["logistics"][-1] == "送"
    assert s.synonyms == (*base.synonyms, ("蓝莓", "蓝梅"))
    assert s.stop_words == ("那个",)


def test_replace_and_extend_together() -> None:
    s = BotSettings.from_mapping(
        {"high_words": ["扣款"], "extra_high_words": ["盗刷"], "skill_keywords": {"vip": ["黑卡"]},
         "extra_skill_keywords": {"vip": ["金卡"]}}
    )  # fmt: skip
    assert s.high_words == ("扣款", "盗刷")
    assert s.skill_keywords == {"vip": ("黑卡", "金卡")}


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"extra_urgent_words": "投诉"}, "bot.extra_urgent_words"),
        ({"extra_skill_keywords": ["退款"]}, "bot.extra_skill_keywords"),
        ({"extra_skill_keywords": {"aftersale": "退款"}}, "bot.extra_skill_keywords.aftersale"),
        ({"extra_synonyms": [["快递"]]}, "bot.extra_synonyms[0]"),
        ({"extra_answer_threshold": 0.5}, "bot.extra_answer_threshold"),
        ({"extra_nonsense": ["x"]}, "bot.extra_nonsense"),
        ({"skill_weak_words": {"presale": 3}}, "bot.skill_weak_words.presale"),
    ],
)
def test_bad_extra_values_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        BotSettings.from_mapping(table)
    assert exc.value.key == key
