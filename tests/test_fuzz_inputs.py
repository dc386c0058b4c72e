"""Property-based checks over what outsiders hand the gateway (issue 12 item 7).

Frames, texts, config tables and FAQ files built by hypothesis: whatever comes
in, the only way out is the value or a documented error (``BadFrame`` /
``UnknownType`` / ``TooLarge`` -> an ``error`` frame; ``ConfigError`` -> exit 2
naming the key); no other exception escapes. Requests to every platform push
endpoint of a running gateway (below, "webhooks"): a documented HTTP answer,
never a 500. Derandomized, so a run is repeatable and fast.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from gateway.adapters import signing
from gateway.adapters.forward import SHOP_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from gateway.bot.faq import parse_faq
from gateway.config import parse_config
from gateway.errors import BadFrame, ConfigError, TooLarge, UnknownType
from gateway.model import PLATFORMS
from gateway.protocol import AGENT_TYPES, CUSTOMER_TYPES, parse_frame, text_field
from tests.adapter_fakes import FakeDouyin, FakeRelay, with_content_type

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


# ------------------------------------------------------------------ webhooks (issue 12 item 7, second part)
#
# Every HTTP endpoint that takes a platform's push, in a real gateway on loopback: the signed relay
# (POST /adapters/forward/{platform}), the 抖音 webhook (POST /adapters/douyin/webhook) and the 抖店
# push (POST /adapters/doudian/events). PDD and Taobao have none (the gateway connects to them).
# Per endpoint, three properties:
# - any request (Content-Type, signature, timestamp, shop right or wrong, any body) gets the documented
#   answer: 404 for an unknown relay platform, 415 for the Content-Type (before the body is read), 401
#   for the signature whatever the body;
# - a well-signed body of any shape (wrong types, nested junk, huge numbers, unicode, invalid UTF-8,
#   not JSON at all) is taken (200) or refused with 400;
# - a well-signed, well-formed body is taken.
# Never a 500, never an exception in the log, every answer JSON in the endpoint's documented shape.
# Bodies past the 1 MiB limit get 413. The credentials are the shared vectors' (sign_vectors.json).

RELAY_SHOP, RELAY_SECRET = "fz-relay", "fz-relay-secret"
DD_APP, DD_SECRET, DD_SHOP = "dk123", "dsecret", "7788"  # doudian.push.* vectors
DY_KEY, DY_SECRET, DY_ACCOUNT, DY_TOKEN = "awkey", "awsecret", "u2", "fz-dy-token"  # douyin.webhook.* vectors

HOOKS = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

ERROR_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 413: "too_large",
               415: "unsupported_media_type"}
GOOD_TYPES = ["application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8",
              "Application/JSON", 'application/json; charset="utf-8"', "application/json; charset=utf8"]
BAD_TYPES = [None, "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
             "application/json; charset=latin-1", "application/json; charset=gbk", "text/json",
             "application/jsonp", "application/octet-stream", "application/problem+json", "json"]
header_text = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=24)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, picked about as often as its weight says (one_of would not)."""
    picks = [i for i, (w, _) in enumerate(choices) for _ in range(w)]
    return st.sampled_from(picks).flatmap(lambda i: choices[i][1])


content_types = weighted((4, st.sampled_from(GOOD_TYPES).map(lambda t: ("good", t))),
                         (1, st.sampled_from(BAD_TYPES).map(lambda t: ("bad", t))),
                         (1, header_text.map(lambda t: ("any", t))))
VALID = ["valid", "VALID"]  # the signature right (hex case is ignored)
signatures = weighted((2, st.sampled_from(VALID)), (1, st.sampled_from(["missing", "other-body", "other-secret"])),
                      (1, header_text))

int64 = st.integers(-(2**63), 2**63 - 1)
json64_scalars = st.none() | st.booleans() | int64 | st.floats(allow_nan=False, allow_infinity=False) | st.text(
    max_size=30)
json64 = st.recursive(json64_scalars, lambda kids: st.lists(kids, max_size=3)
                      | st.dictionaries(st.text(max_size=10), kids, max_size=3), max_leaves=8)
# wrong types, nested junk, numbers past 64 bits and past a double, Infinity (not JSON)
junk = json_values | st.integers(min_value=2**64) | st.sampled_from([10**400, -(2**63) - 1, 1e308, -1e308])
ids = st.text(min_size=1, max_size=40).filter(lambda s: bool(s.strip())) | st.integers(0, 2**63 - 1)
texts = st.text(min_size=1, max_size=120).filter(lambda s: bool(s.strip()))

# invalid UTF-8: a lone continuation byte, a truncated sequence, overlong forms, an encoded surrogate,
# past U+10FFFF; and a BOM
BAD_UTF8 = [b"\xff", b"\x80", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xef\xbb\xbf"]
ODD_BODIES = [b"", b"null", b"[]", b"{}", b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000,
              b"1e999999", b"-0", b'"\\ud800"', b'{"records":[]}', b"[{}]", b'{"records":[{}]}', b"\x00"]


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def bodies(shaped: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Junk of every kind around a format's own shape (most often the shape with wrong types in it)."""
    as_json = st.one_of(shaped, shaped, shaped, json_values, junk).map(json_bytes)
    broken = st.tuples(as_json, st.integers(0, 10**6), st.sampled_from(BAD_UTF8)).map(
        lambda t: t[0][: t[1] % (len(t[0]) + 1)] + t[2] + t[0][t[1] % (len(t[0]) + 1):])
    return st.one_of(as_json, as_json, as_json, broken, st.binary(max_size=120), st.sampled_from(ODD_BODIES))


@dataclass
class Hooks:
    """The gateway under test and one HTTP client; each answer checked as it comes."""

    url: str
    http: aiohttp.ClientSession
    caplog: pytest.LogCaptureFixture

    async def post(self, path: str, body: bytes, headers: dict[str, str], content_type: str | None,
                   expect: set[int], error_shape: str = "ok") -> tuple[int, Any]:
        seen = len(self.caplog.records)
        async with self.http.post(self.url + path, data=body, **with_content_type(headers, content_type)) as r:
            status, raw = r.status, await r.read()
        crashes = [rec for rec in self.caplog.records[seen:] if rec.levelno >= logging.ERROR]
        assert not crashes, [rec.getMessage() for rec in crashes]
        if currently_in_test_context():
            event(f"HTTP {status}")  # the spread of answers, in --hypothesis-show-statistics
        assert status in expect, (status, raw[:300], expect)
        got = orjson.loads(raw)  # every answer, errors too, is JSON
        if status != 200:
            if error_shape == "ok":
                assert got["ok"] is False and got["error"] == ERROR_CODES[status], got
            else:  # 抖店's: anything but {"code":0} makes the platform push again
                assert got["code"] == 1 and got["msg"] == "fail", got
                if status in (413, 415):
                    assert got["error"] == ERROR_CODES[status], got
        return status, got


@pytest.fixture
async def fz_relay() -> AsyncIterator[FakeRelay]:
    r = await FakeRelay(RELAY_SHOP, RELAY_SECRET).start()
    yield r
    await r.stop()


@pytest.fixture
async def fz_douyin() -> AsyncIterator[FakeDouyin]:
    d = await FakeDouyin(DY_TOKEN).start()
    yield d
    await d.stop()


@pytest.fixture
async def hooks(fz_relay: FakeRelay, fz_douyin: FakeDouyin, gateway_app: Any,
                caplog: pytest.LogCaptureFixture) -> AsyncIterator[Hooks]:
    """One gateway per test (hypothesis' examples share it): a relay shop on every platform, a native
    抖店 app and a native 抖音 account. The bot's replies go to the fakes."""
    fast = {"send_rate": 1000.0, "send_burst": 1000}
    shops: list[dict[str, Any]] = [{"platform": p, "shop_id": RELAY_SHOP, "relay_secret": RELAY_SECRET,
                                    "callback_url": fz_relay.callback_url, **fast} for p in PLATFORMS]
    shops += [{"platform": "doudian", "shop_id": DD_SHOP, "app_key": DD_APP, "app_secret": DD_SECRET, **fast},
              {"platform": "douyin", "shop_id": "fz-dy", "app_key": DY_KEY, "app_secret": DY_SECRET,
               "access_token": DY_TOKEN, "open_id": DY_ACCOUNT, "api_base": fz_douyin.url, **fast}]
    gw = await gateway_app({"shops": shops, "adapters": {"backoff_base_s": 0.05, "backoff_max_s": 0.2,
                                                         "max_attempts": 2, "request_timeout_s": 2.0}})
    async with aiohttp.ClientSession() as http:
        yield Hooks(gw.http_url, http, caplog)
    crashes = [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert not crashes, crashes  # the bot turns and sends that ran after the answers too


def expected(ct_kind: str, signed: bool, body_ok: set[int]) -> set[int]:
    """What the documented checks, in their order, allow."""
    if ct_kind == "bad":
        return {415}  # before anything else is looked at
    if ct_kind == "any":  # a Content-Type string we did not classify: any documented answer
        return {415, 401} | body_ok
    return body_ok if signed else {401}


# ------------------------------------------------------------------ the signed relay

KINDS = ["text", "image", "video", "emoji", "goods_card", "order_card", "event", "EMOTION", "GOODS_INQUIRY",
         "ORDER_INFO", "WITHDRAW", "SYSTEM_TRANSFER", "picture", "sticker", "user_local_image", "Text"]
good_record = st.fixed_dictionaries(
    {"msg_id": ids, "buyer": st.fixed_dictionaries({"id": ids}, optional={"nick": st.text(max_size=64)}),
     "text": texts},
    optional={"kind": st.sampled_from(KINDS) | st.sampled_from([0, 1, 5, 14, 24, 64, 1002]) | json64,
              "order": st.none() | st.just("") | st.text(max_size=64) | st.integers(0, 2**63 - 1),
              "url": st.text(max_size=200), "time": json64, "sub_type": json64, "raw": json64})
good_batch = st.fixed_dictionaries({"records": st.lists(good_record, min_size=1, max_size=4)})
junk_record = st.fixed_dictionaries({}, optional={
    "msg_id": ids | junk, "buyer": st.fixed_dictionaries({}, optional={"id": ids | junk,
                                                                        "nick": st.text(max_size=80) | junk}) | junk,
    "kind": st.sampled_from(KINDS) | junk, "text": st.text(max_size=60) | st.just("长" * 4001) | junk,
    "order": st.text(max_size=80) | junk, "url": st.text(max_size=10) | st.just("u" * 2049) | junk,
    "time": junk, "sub_type": junk, "raw": junk})
junk_batch = st.fixed_dictionaries({}, optional={"records": st.lists(junk_record | junk, max_size=4) | junk})

ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
# a timestamp: now in ASCII digits (the only good one), or one the relay protocol does not allow
timestamps = weighted((4, st.just("now")),
                      (1, st.sampled_from(["now-in-arabic-digits", "too-old", "9" * 5000, " 1700000000", "-1", "+1"])),
                      (1, st.text(st.characters(categories=["Nd"]), min_size=1, max_size=12)),  # other scripts'
                      (1, st.text(st.characters(categories=["No"]), min_size=1, max_size=12)),  # ² ① ...
                      (1, st.integers().map(str) | header_text))
platforms = weighted((5, st.sampled_from(PLATFORMS)),
                     (1, st.text("abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=10)))
shops = weighted((4, st.just(RELAY_SHOP)), (1, header_text))


def relay_headers(shop: str, ts_case: str, sig_case: str, body: bytes) -> tuple[dict[str, str], bool]:
    """The three relay headers, and whether they are right."""
    now = int(time.time())
    ts = {"now": str(now), "now-in-arabic-digits": str(now).translate(ARABIC),
          "too-old": str(now - 400)}.get(ts_case, ts_case)
    sig = {"valid": signing.relay_sign(RELAY_SECRET, ts, body),
           "VALID": signing.relay_sign(RELAY_SECRET, ts, body).upper(),
           "missing": "", "other-body": signing.relay_sign(RELAY_SECRET, ts, body + b" "),
           "other-secret": signing.relay_sign("not-the-secret", ts, body)}.get(sig_case, sig_case)
    return ({SHOP_HEADER: shop, TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sig},
            shop == RELAY_SHOP and ts_case == "now" and sig_case in VALID)


def relay_taken(got: Any) -> None:
    assert got["ok"] is True and {r["status"] for r in got["results"]} <= {"stored", "duplicate", "rated"}, got


@HOOKS
@given(platform=platforms, content_type=content_types, shop=shops,
       ts_case=timestamps, sig_case=signatures, body=good_batch.map(json_bytes) | bodies(junk_batch))
@example(platform="pdd", content_type=("good", "application/json"), shop=RELAY_SHOP, ts_case="²",
         sig_case="valid", body=b'{"records":[]}')  # was a 500: "²".isdigit(), but int("²") raises
@example(platform="pdd", content_type=("good", "application/json"), shop=RELAY_SHOP, ts_case="9" * 5000,
         sig_case="valid", body=b'{"records":[]}')  # was a 500: int() refuses more than 4300 digits
async def test_relay_push_answers_any_request_as_documented(
        hooks: Hooks, platform: str, content_type: tuple[str, str | None], shop: str, ts_case: str,
        sig_case: str, body: bytes) -> None:
    headers, signed = relay_headers(shop, ts_case, sig_case, body)
    expect = {404} if platform not in PLATFORMS else expected(content_type[0], signed, {200, 400})
    status, got = await hooks.post(f"/adapters/forward/{platform}", body, headers, content_type[1], expect)
    if status == 200:
        relay_taken(got)


@HOOKS
@given(platform=st.sampled_from(PLATFORMS), content_type=st.sampled_from(GOOD_TYPES), body=bodies(junk_batch))
async def test_relay_push_takes_or_refuses_with_400_any_well_signed_body(
        hooks: Hooks, platform: str, content_type: str, body: bytes) -> None:
    headers, _ = relay_headers(RELAY_SHOP, "now", "valid", body)
    status, got = await hooks.post(f"/adapters/forward/{platform}", body, headers, content_type, {200, 400})
    if status == 200:
        relay_taken(got)


@HOOKS
@given(platform=st.sampled_from(PLATFORMS), content_type=st.sampled_from(GOOD_TYPES), batch=good_batch,
       sig_case=st.sampled_from(VALID))
async def test_relay_push_takes_every_well_formed_signed_batch(
        hooks: Hooks, platform: str, content_type: str, batch: dict[str, Any], sig_case: str) -> None:
    body = json_bytes(batch)
    headers, _ = relay_headers(RELAY_SHOP, "now", sig_case, body)
    _, got = await hooks.post(f"/adapters/forward/{platform}", body, headers, content_type, {200})
    relay_taken(got)
    assert [r["msg_id"] for r in got["results"]] == [str(r["msg_id"]).strip() for r in batch["records"]]


# ------------------------------------------------------------------ 抖音 webhook

dy_text = st.fixed_dictionaries(
    {"server_message_id": ids, "message_type": st.just("text"),
     "text": texts | st.fixed_dictionaries({"text": texts})},
    optional={"conversation_short_id": ids, "conversation_type": st.just(1), "create_time": json64,
              "user_infos": st.lists(st.fixed_dictionaries({"open_id": ids, "nick_name": st.text(max_size=80)}),
                                     max_size=2)})
dy_other = st.fixed_dictionaries(
    {"server_message_id": ids, "message_type": st.sampled_from(["image", "video", "emoji", "sticker"]) | texts},
    optional={"conversation_type": st.integers(0, 3), "create_time": json64})
dy_message = st.fixed_dictionaries(
    {"event": st.just("im_receive_msg"), "from_user_id": ids, "to_user_id": st.just(DY_ACCOUNT) | ids,
     "content": (dy_text | dy_other) | (dy_text | dy_other).map(lambda c: json.dumps(c, ensure_ascii=False))},
    optional={"client_key": st.just(DY_KEY), "log_id": st.text(max_size=20)})
dy_challenge = st.fixed_dictionaries(
    {"event": st.just("verify_webhook"),
     "content": st.fixed_dictionaries({"challenge": json64}) | st.fixed_dictionaries({"challenge": json64}).map(
         json.dumps)}, optional={"client_key": st.just(DY_KEY)})
dy_other_event = st.fixed_dictionaries(
    {"event": texts.filter(lambda e: e not in ("verify_webhook", "im_receive_msg"))},
    optional={"client_key": st.just(DY_KEY), "content": json64})
dy_good = dy_message | dy_challenge | dy_other_event
dy_junk = st.fixed_dictionaries({}, optional={
    "event": st.sampled_from(["im_receive_msg", "verify_webhook"]) | junk, "client_key": st.just(DY_KEY) | junk,
    "from_user_id": ids | junk, "to_user_id": st.just(DY_ACCOUNT) | junk,
    "content": st.fixed_dictionaries({}, optional={
        "server_message_id": ids | junk, "message_type": st.just("text") | junk, "text": texts | junk,
        "conversation_type": st.just(1) | junk, "user_infos": junk, "challenge": junk,
        "create_time": junk}) | st.text(max_size=30) | junk})


def douyin_headers(sig_case: str, body: bytes, msg_id: str | None) -> tuple[dict[str, str], bool]:
    sig = {"valid": signing.douyin_webhook_sign(DY_SECRET, body),
           "VALID": signing.douyin_webhook_sign(DY_SECRET, body).upper(),
           "missing": "", "other-body": signing.douyin_webhook_sign(DY_SECRET, body + b"\n"),
           "other-secret": signing.douyin_webhook_sign("not-the-secret", body)}.get(sig_case, sig_case)
    headers = {"X-Douyin-Signature": sig} | ({"Msg-Id": msg_id} if msg_id is not None else {})
    return headers, sig_case in VALID


def douyin_taken(got: Any, event: Any = None) -> None:
    if isinstance(event, dict) and event.get("event") == "verify_webhook":
        content = event["content"]
        assert got == {"challenge": (json.loads(content) if isinstance(content, str) else content)["challenge"]}
    elif "challenge" not in got:
        assert got["ok"] is True and got["status"] in ("stored", "duplicate", "ignored"), got


# 401 too for a well-signed body: its client_key may name another app
DY_BODY_OK = {200, 400, 401}


@HOOKS
@given(content_type=content_types, sig_case=signatures, msg_id=st.none() | header_text,
       body=dy_good.map(json_bytes) | bodies(dy_junk))
async def test_douyin_webhook_answers_any_request_as_documented(
        hooks: Hooks, content_type: tuple[str, str | None], sig_case: str, msg_id: str | None,
        body: bytes) -> None:
    headers, signed = douyin_headers(sig_case, body, msg_id)
    status, got = await hooks.post("/adapters/douyin/webhook", body, headers, content_type[1],
                                   expected(content_type[0], signed, DY_BODY_OK))
    if status == 200:
        douyin_taken(got)


@HOOKS
@given(content_type=st.sampled_from(GOOD_TYPES), msg_id=st.none() | header_text, body=bodies(dy_junk))
async def test_douyin_webhook_takes_or_refuses_with_400_any_well_signed_body(
        hooks: Hooks, content_type: str, msg_id: str | None, body: bytes) -> None:
    headers, _ = douyin_headers("valid", body, msg_id)
    status, got = await hooks.post("/adapters/douyin/webhook", body, headers, content_type, DY_BODY_OK)
    if status == 200:
        douyin_taken(got)


DY_VECTOR_MSG = ('{"event":"im_receive_msg","client_key":"awkey","from_user_id":"u1","to_user_id":"u2","content":'
                 '"{\\"conversation_short_id\\":\\"7300000000000000001\\",\\"server_message_id\\":'
                 '\\"7300000000000000002\\",\\"conversation_type\\":1,\\"message_type\\":\\"text\\",'
                 '\\"create_time\\":1700000000000,\\"text\\":\\"你好，在吗\\"}","log_id":"20240101120000ABC"}')


@HOOKS
@given(content_type=st.sampled_from(GOOD_TYPES), sig_case=st.sampled_from(VALID),
       msg_id=st.none() | header_text, event=dy_good)
@example(content_type="application/json", sig_case="valid", msg_id="douyin.webhook.verify_webhook",
         event=json.loads('{"event":"verify_webhook","client_key":"awkey","content":{"challenge":12345}}'))
@example(content_type="application/json", sig_case="valid", msg_id="douyin.webhook.im_receive_msg_utf8",
         event=json.loads(DY_VECTOR_MSG))
async def test_douyin_webhook_takes_every_well_formed_signed_event(
        hooks: Hooks, content_type: str, sig_case: str, msg_id: str | None, event: dict[str, Any]) -> None:
    body = json_bytes(event)
    headers, _ = douyin_headers(sig_case, body, msg_id)
    _, got = await hooks.post("/adapters/douyin/webhook", body, headers, content_type, {200})
    douyin_taken(got, event)


# ------------------------------------------------------------------ 抖店 push

DD_TAGS = ["0", "100", "101", "102", "103", "106", "200", "201", "206", "207", "217", "300", "999"]
dd_ids = st.none() | st.just("") | st.text(max_size=64).filter(lambda s: len(s.strip()) <= 64) | st.integers(
    0, 2**63 - 1)
dd_data = st.fixed_dictionaries({}, optional={
    "p_id": dd_ids, "aftersale_id": dd_ids, "shop_id": st.sampled_from([7788, "7788"]) | ids,
    "update_time": json64, "apply_time": json64, "create_time": json64, "remark": st.text(max_size=40),
    "s_ids": st.lists(int64, max_size=2)})
dd_item = st.fixed_dictionaries(
    {"tag": st.sampled_from(DD_TAGS) | st.text(min_size=1, max_size=16).filter(lambda s: bool(s.strip())),
     "msg_id": ids, "data": dd_data | dd_data.map(lambda d: json.dumps(d, ensure_ascii=False))})
dd_good = st.lists(dd_item, min_size=1, max_size=4)
dd_junk = st.lists(st.fixed_dictionaries({}, optional={
    "tag": st.sampled_from(DD_TAGS) | junk, "msg_id": ids | junk, "msgId": ids | junk,
    "data": dd_data | st.text(max_size=30) | junk}) | junk, max_size=4)
SUCCESS = {"code": 0, "msg": "success"}


def doudian_headers(app_id: str, sig_case: str, body: bytes) -> tuple[dict[str, str], bool]:
    sig = {"valid": signing.doudian_push_sign(DD_APP, DD_SECRET, body),
           "VALID": signing.doudian_push_sign(DD_APP, DD_SECRET, body).upper(),
           "missing": "", "other-body": signing.doudian_push_sign(DD_APP, DD_SECRET, body + b" "),
           "other-secret": signing.doudian_push_sign(DD_APP, "not-the-secret", body)}.get(sig_case, sig_case)
    return {"app-id": app_id, "event-sign": sig}, app_id == DD_APP and sig_case in VALID


@HOOKS
@given(content_type=content_types, app_id=weighted((4, st.just(DD_APP)), (1, header_text)), sig_case=signatures,
       body=dd_good.map(json_bytes) | bodies(dd_junk))
async def test_doudian_push_answers_any_request_as_documented(
        hooks: Hooks, content_type: tuple[str, str | None], app_id: str, sig_case: str, body: bytes) -> None:
    headers, signed = doudian_headers(app_id, sig_case, body)
    status, got = await hooks.post("/adapters/doudian/events", body, headers, content_type[1],
                                   expected(content_type[0], signed, {200, 400}), error_shape="doudian")
    if status == 200:
        assert got == SUCCESS


@HOOKS
@given(content_type=st.sampled_from(GOOD_TYPES), body=bodies(dd_junk))
async def test_doudian_push_takes_or_refuses_with_400_any_well_signed_body(
        hooks: Hooks, content_type: str, body: bytes) -> None:
    headers, _ = doudian_headers(DD_APP, "valid", body)
    status, got = await hooks.post("/adapters/doudian/events", body, headers, content_type, {200, 400},
                                   error_shape="doudian")
    if status == 200:
        assert got == SUCCESS


@HOOKS
@given(content_type=st.sampled_from(GOOD_TYPES), sig_case=st.sampled_from(VALID), body=dd_good.map(json_bytes))
@example(content_type="application/json", sig_case="valid",
         body=b'[{"tag":"0","msg_id":"0","data":"1700000000"}]')  # doudian.push.endpoint_check
@example(content_type="application/json", sig_case="valid",
         body=('[{"tag":"100","msg_id":"7300000000000000003","data":"{\\"p_id\\":4912345678901234568,\\"s_ids\\":'
               '[4912345678901234568],\\"shop_id\\":7788,\\"biz\\":2,\\"order_status\\":1,\\"order_type\\":0,'
               '\\"create_time\\":1700000000,\\"remark\\":\\"请尽快 发货\\"}"}]').encode())  # .utf8_and_space
async def test_doudian_push_takes_every_well_formed_signed_push(
        hooks: Hooks, content_type: str, sig_case: str, body: bytes) -> None:
    headers, _ = doudian_headers(DD_APP, sig_case, body)
    _, got = await hooks.post("/adapters/doudian/events", body, headers, content_type, {200},
                              error_shape="doudian")
    assert got == SUCCESS


# ------------------------------------------------------------------ bodies past the limit


async def test_webhook_bodies_past_the_limit_get_413(hooks: Hooks) -> None:
    """The app reads at most 1 MiB of a body: past it, 413 in the endpoint's own error format."""
    body = b'{"records":[' + b" " * (1024 * 1024) + b"]}"
    headers, _ = relay_headers(RELAY_SHOP, "now", "valid", body)
    await hooks.post("/adapters/forward/pdd", body, headers, "application/json", {413})
    await hooks.post("/adapters/douyin/webhook", body, douyin_headers("valid", body, None)[0],
                     "application/json", {413})
    await hooks.post("/adapters/doudian/events", body, doudian_headers(DD_APP, "valid", body)[0],
                     "application/json", {413}, error_shape="doudian")
    # a body just under the limit is read and judged on its merits
    small = b"{" + b" " * (1024 * 1024 - 100) + b"}"  # not an array: 400
    await hooks.post("/adapters/doudian/events", small, doudian_headers(DD_APP, "valid", small)[0],
                     "application/json", {400}, error_shape="doudian")
