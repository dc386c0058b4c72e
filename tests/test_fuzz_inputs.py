"""Property-based checks over what outsiders hand the gateway (issue 12 item 7, a first part).

Frames, texts, config tables and FAQ files built by hypothesis: whatever comes
in, the only way out is the value or a documented error (``BadFrame`` /
``UnknownType`` / ``TooLarge`` -> an ``error`` frame; ``ConfigError`` -> exit 2
naming the key); no other exception escapes. Derandomized, so a run is
repeatable and fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.bot.faq import parse_faq
from gateway.config import parse_config
from gateway.errors import BadFrame, ConfigError, TooLarge, UnknownType
from gateway.protocol import AGENT_TYPES, CUSTOMER_TYPES, parse_frame, text_field

FAST = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=12), kids, max_size=4), max_leaves=12)
frame_like = st.fixed_dictionaries(
    {}, optional={"type": st.sampled_from(sorted(CUSTOMER_TYPES | AGENT_TYPES)) | st.text(max_size=10) | json_values,
                  "id": st.text(max_size=70) | json_values, "text": st.text(max_size=50) | json_values,
                  "conversation": st.text(max_size=70) | json_values})


@FAST
@given(st.text(max_size=200) | frame_like.map(json.dumps) | json_values.map(json.dumps))
def test_parse_frame_returns_a_frame_or_a_documented_error(data: str) -> None:
    for allowed in (CUSTOMER_TYPES, AGENT_TYPES):
        try:
            frame = parse_frame(data, allowed)
        except (BadFrame, UnknownType) as e:
            assert e.code in ("bad_frame", "unknown_type")
            continue
        assert isinstance(frame, dict) and frame["type"] in allowed


@FAST
@given(frame_like)
def test_text_field_returns_the_text_or_a_documented_error(frame: dict[str, Any]) -> None:
    try:
        text = text_field(frame, 40)
    except (BadFrame, TooLarge) as e:
        assert e.code in ("bad_frame", "too_large")
        return
    assert isinstance(text, str) and 0 < len(text) <= 40


section = st.dictionaries(st.sampled_from(["host", "port", "url", "namespace", "secret", "default_skill",
                                           "agent_grace_s", "customer_messages", "turn_retry_s", "max_queue_s",
                                           "handoff", "faq", "canned", "workers", "allowed_origins",
                                           "metrics_token", "address_hellos", "x"]), json_values, max_size=4)
config_like = st.dictionaries(
    st.sampled_from(["server", "store", "customers", "limits", "routing", "sla", "texts", "console", "bot",
                     "agents", "shops", "adapters", "nonsense"]),
    section | st.lists(section, max_size=2) | json_scalars, max_size=5)


@FAST
@given(config_like)
def test_parse_config_returns_a_config_or_names_the_bad_key(raw: dict[str, Any]) -> None:
    try:
        parse_config(raw, Path("/nonexistent"), "fuzz.toml")
    except ConfigError as e:
        assert e.key and str(e)


faq_like = st.fixed_dictionaries({}, optional={
    "faq": st.lists(st.dictionaries(st.sampled_from(["id", "question", "similar", "answer", "skill", "keywords",
                                                     "x"]), json_values, max_size=5), max_size=3) | json_values,
    "settings": json_values})


@FAST
@given(faq_like.map(json.dumps) | st.text(max_size=120))
def test_parse_faq_returns_entries_or_names_the_bad_entry(text: str) -> None:
    try:
        parse_faq(text, fmt="json", source="fuzz.json")
    except ConfigError as e:
        assert e.key and str(e)
