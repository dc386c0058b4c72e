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
