"""Frame parsing and text fields (gateway/protocol.py, pure)."""

from __future__ import annotations

import pytest

from gateway.errors import BadFrame, TooLarge, UnknownType
from gateway.protocol import CUSTOMER_TYPES, parse_frame, text_field


@pytest.mark.parametrize("data", ["{not json", "[1,2]", '"str"', "42", '{"no":"type"}', '{"type":7}',
                                  '{"type":"message","id":""}', '{"type":"message","id":' + '"' + "x" * 65 + '"}',
                                  '{"type":"message","id":5}'])
def test_bad_frames(data: str) -> None:
    with pytest.raises(BadFrame):
        parse_frame(data, CUSTOMER_TYPES)


def test_unknown_type_keeps_the_id() -> None:
    with pytest.raises(UnknownType) as e:
        parse_frame('{"type":"nope","id":"u1"}', CUSTOMER_TYPES)
    assert e.value.frame_id == "u1" and e.value.code == "unknown_type"


def test_text_limits() -> None:
    assert text_field({"text": "好"}, 4000) == "好"
    with pytest.raises(TooLarge):
        text_field({"text": "好" * 4001}, 4000)
    with pytest.raises(BadFrame):
        text_field({"text": "   "}, 4000)


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200c\u200d\ufeff", " \u2060\u00ad ", "\u202e\u2066", "\u0301\u0301",
                                  "\u3000\u200b"])
def test_a_text_with_nothing_visible_is_a_bad_frame(text: str) -> None:
    with pytest.raises(BadFrame, match="nothing visible"):
        text_field({"type": "message", "id": "z", "text": text}, 4000)


@pytest.mark.parametrize("text", ["好", "a\u200b", "\u200b发货\u200b", "👍", "1", "\u00ad?"])
def test_a_text_with_something_visible_is_taken(text: str) -> None:
    assert text_field({"type": "message", "text": text}, 4000) == text
