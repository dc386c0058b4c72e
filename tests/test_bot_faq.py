"""The FAQ file format and its validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.bot import FaqEntry, load_faq, parse_faq
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[synonyms]
"快递" = ["物流", "包裹"]

[[faq]]
id = "ship_time"
question = "什么时候发货"
similar = ["多久发货", "几天能发出"]
keywords = ["发货"]
answer = "现货商品付款后48小时内发货。"
skill = "presale"

[[faq]]
id = "refund"
question = "退款多久到账"
answer = "1-3个工作日。"
"""


def test_toml_file(tmp_path: Path) -> None:
    p = tmp_path / "faq.toml"
    p.write_text(GOOD, encoding="utf-8")
    entries = load_faq(p)
    assert entries[0] == FaqEntry(
        id="ship_time",
        question="什么时候发货",
        answer="现货商品付款后48小时内发货。",
        similar=("多久发货", "几天能发出"),
        keywords=("发货",),
        skill="presale",
    )
    assert entries[1].similar == () and entries[1].skill == ""
    assert entries.synonyms == (("快递", "物流", "包裹"),)


def test_json_file_same_structure(tmp_path: Path) -> None:
    p = tmp_path / "faq.json"
    data = {
        "faq": [{"id": "a", "question": "包邮吗", "answer": "满99包邮"}],
        "synonyms": [["退款", "退钱"]],
    }
    p.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    entries = load_faq(str(p))
    assert [e.id for e in entries] == ["a"]
    assert entries.synonyms == (("退款", "退钱"),)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[faq]]\nid = "a"\nanswer = "x"\n', "faq[a].question"),
        ('[[faq]]\nid = "a"\nquestion = "q"\n', "faq[a].answer"),
        ('[[faq]]\nquestion = "q"\nanswer = "x"\n', "faq[0].id"),
        ('[[faq]]\nid = "a"\nquestion = "q"\nanswer = "x"\nsimilar = "oops"\n', "faq[a].similar"),
        ('[[faq]]\nid = "a"\nquestion = "q"\nanswer = "x"\nanwser = "typo"\n', "faq[a].anwser"),
        (
            '[[faq]]\nid = "a"\nquestion = "q"\nanswer = "x"\n[[faq]]\nid = "a"\nquestion = "r"\nanswer = "y"\n',
            "faq[a].id",
        ),
        (
            '[[faq]]\nid = "a"\nquestion = "包邮吗"\nanswer = "x"\n[[faq]]\nid = "b"\nquestion = "包郵嗎？"\nanswer = "y"\n',
            "faq[b].question",
        ),
        ("faq = []\n", "faq"),
        ("this is not toml ][", "bot.faq"),
        ('[[faq]]\nid = "a"\nquestion = "q"\nanswer = "x"\n[synonyms]\n"快递" = "物流"\n', "synonyms.快递"),
    ],
)
def test_bad_files_name_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_faq(text, source="t.toml")
    assert exc.value.key == key


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_faq(tmp_path / "nope.toml")
    assert exc.value.key == "bot.faq"


def test_demo_faq() -> None:
    entries = load_faq(ROOT / "configs" / "faq.toml")
    assert len(entries) >= 40
    ids = {e.id for e in entries}
    assert "ship_time" in ids
    assert next(e for e in entries if e.id == "ship_time").question == "什么时候发货"
    assert {e.skill for e in entries} >= {"presale", "aftersale", "logistics"}
