"""Slot values read as their class (gateway/bot/slots.py, data/slots.toml) and the built-in concept
groups (gateway/bot/concepts.py, data/concepts.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.bot import FaqBot, FaqEntry
from gateway.bot.concepts import CONCEPTS, load
from gateway.bot.normalize import clauses
from gateway.bot.slots import CLASS_WORDS, read_slots
from gateway.bot.words_text import DataFileError


@pytest.mark.parametrize(("text", "read"), [
    ("一米六八穿哪个码", "身高穿哪个码"),
    ("身高165体重100斤穿什么码", "身高体重斤穿什么码"),
    ("1.75m的穿多大", "身高的穿多大"),
    ("脚长25厘米", "脚长厘米"),
    ("西藏发不发", "地区发不发"),
    ("寄到广州市要几天", "寄到地区要几天"),
    ("白色的还有货吗", "颜色的还有货吗"),
    ("xl码有吗", "尺码有吗"),
    ("38码偏大吗", "尺码偏大吗"),
    ("50ml的多少钱", "毫升的多少钱"),
    ("便宜了200块", "便宜了钱"),
    ("5月20日能到吗", "日期能到吗"),
    ("周六能送到吗", "日期能送到吗"),
    ("物流3天没动了", "物流几天没动了"),
    ("我的手机号13812345678", "我的手机号电话"),
])
def test_slot_values_read_as_their_class(text: str, read: str) -> None:
    assert read_slots(text) == read


@pytest.mark.parametrize("text", ["多少钱", "几天发货", "什么颜色好看", "这个码数准吗", "7天无理由退货吗",
                                  "12345", "买两件", "l"])
def test_text_without_a_slot_value_is_left_alone(text: str) -> None:
    assert read_slots(text) == text


def test_normalization_applies_slots_before_punctuation_splits_clauses() -> None:
    assert clauses("身高1.68m，穿什么码？") == ["身高", "穿什么码"]
    assert clauses("五斤装的有吗") == ["斤装的有吗"]  # Chinese numerals before a unit became digits first


def test_every_class_word_is_one_word_of_the_tokenizer() -> None:
    from gateway.bot.segment import Segmenter

    seg = Segmenter()
    for w in CLASS_WORDS:
        assert seg.cut(w) == [w], w


def test_a_message_naming_a_value_matches_the_entry_about_its_kind() -> None:
    entries = [
        FaqEntry(id="area", question="哪些地区不发货", answer="偏远地区不发货。", similar=("新疆能发吗",)),
        FaqEntry(id="size", question="身高体重怎么选尺码", answer="参考尺码表。", similar=("我该穿多大",)),
        FaqEntry(id="ship", question="什么时候发货", answer="48小时内发货。"),
    ]
    bot = FaqBot.build(entries)
    assert bot.decide("西藏发不发").faq == "area"
    assert [faq for faq, _ in bot.nearest("一米六八穿哪个码")] == ["size"]  # shares 身高 and nothing else


def test_concept_groups_load_and_join_words_of_one_meaning(tmp_path: Path) -> None:
    assert all(len(g) >= 2 for g in CONCEPTS)
    words = [w for g in CONCEPTS for w in g]
    assert len(words) == len(set(words)), "a word in two concept groups"
    p = tmp_path / "c.toml"
    p.write_text('groups = [["运费", "邮费"]]\n', encoding="utf-8")
    assert load(p) == (("运费", "邮费"),)
    p.write_text('groups = [["运费", "邮费"], ["只有一个"]]\n', encoding="utf-8")
    with pytest.raises(DataFileError, match=r"groups\[1\]"):  # a group of one word is a mistake in the file
        load(p)
    entries = [FaqEntry(id="fee", question="退货运费谁承担", answer="质量问题我们承担运费。"),
               FaqEntry(id="ship", question="什么时候发货", answer="48小时内发货。")]
    assert FaqBot.build(entries).decide("退回来的快递钱谁掏").faq == "fee"
