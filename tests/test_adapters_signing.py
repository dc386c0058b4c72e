"""Every adapter signature against ../shared/sign_vectors.json (third-party SDK values).

``divergent_*`` / ``outlier_*`` values are what other SDKs produce wrongly: they must be refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters import signing

VECTORS_PATH = Path(__file__).resolve().parent.parent.parent / "shared" / "sign_vectors.json"
if not VECTORS_PATH.is_file():  # a checkout laid elsewhere
    VECTORS_PATH = Path("/work/shared/sign_vectors.json")


def _vectors() -> list[dict[str, Any]]:
    if not VECTORS_PATH.is_file():
        pytest.skip("shared/sign_vectors.json is not beside the checkout")
    return list(json.loads(VECTORS_PATH.read_text(encoding="utf-8"))["vectors"])


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [v for v in _vectors() if v["kind"] == kind]


def _ids(vs: list[dict[str, Any]]) -> list[str]:
    return [v["id"] for v in vs]


def test_every_vector_is_covered() -> None:
    kinds = {v["kind"] for v in _vectors()}
    assert kinds == {"push_event_sign", "api_sign", "spi_sign", "webhook_signature", "ws_connect_sign",
                     "tmc_connect_sign"}
    assert len(_vectors()) == 19


def test_doudian_push() -> None:
    vs = _by_kind("push_event_sign")
    assert vs
    for v in vs:
        i = v["inputs"]
        body = i["body"].encode()
        assert signing.doudian_push_sign(i["app_key"], i["app_secret"], body) == v["expected"], v["id"]
        assert signing.verify_doudian_push(i["app_key"], i["app_secret"], body, v["headers"]["event-sign"])
        # case-insensitive compare (fudiwei OrdinalIgnoreCase), as PLATFORMS.md asks
        assert signing.verify_doudian_push(i["app_key"], i["app_secret"], body, v["expected"].upper())
        assert not signing.verify_doudian_push(i["app_key"], i["app_secret"], body, "")
        assert not signing.verify_doudian_push(i["app_key"], "other", body, v["expected"])
        # never re-serialized: one changed byte breaks it
        assert not signing.verify_doudian_push(i["app_key"], i["app_secret"], body + b" ", v["expected"])
        for k, bad in v.items():
            if k.startswith(("outlier_", "divergent_")) and not k.endswith("_note"):
                assert not signing.verify_doudian_push(i["app_key"], i["app_secret"], body, bad), k


def test_doudian_api() -> None:
    vs = [v for v in _by_kind("api_sign") if v["platform"] == "doudian"]
    assert len(vs) == 4
    for v in vs:
        i = v["inputs"]
        got = signing.doudian_api_sign(i["app_key"], i["app_secret"], i["method"], i["param_json"], i["timestamp"],
                                       i["v"], v["sign_method"])
        assert got == v["expected"], v["id"]
        if "string_to_sign" in v:
            assert v["string_to_sign"].startswith(i["app_secret"] + "app_key")


def test_doudian_param_json_is_raw_utf8_and_sorted() -> None:
    v = next(x for x in _vectors() if x["id"] == "doudian.api.param_json_utf8")
    pj = signing.doudian_param_json({"url": "https://a.b/c", "receiver_name": "张三", "order_id": "6900000000000000001"})
    assert pj == v["inputs"]["param_json"]
    nested = signing.doudian_param_json({"b": {"z": 1, "a": [{"y": 2, "x": 1}]}, "a": 0})
    assert nested == '{"a":0,"b":{"a":[{"x":1,"y":2}],"z":1}}'


def test_doudian_spi() -> None:
    vs = _by_kind("spi_sign")
    assert len(vs) == 2
    for v in vs:
        i = v["inputs"]
        got = signing.doudian_spi_sign(i["app_key"], i["app_secret"], i["param_json"], i["timestamp"], v["sign_method"])
        assert got == v["expected"], v["id"]
        args = (i["app_key"], i["app_secret"], i["param_json"], i["timestamp"], v["sign_method"])
        assert signing.verify_doudian_spi(*args, sign=v["expected"])
        assert signing.verify_doudian_spi(*args, sign="", sign_v2=v["expected"])
        assert not signing.verify_doudian_spi(*args, sign="0" * len(v["expected"]))


def test_douyin_webhook() -> None:
    vs = _by_kind("webhook_signature")
    assert len(vs) == 2
    for v in vs:
        i = v["inputs"]
        body = i["body"].encode()
        assert signing.douyin_webhook_sign(i["client_secret"], body) == v["expected"], v["id"]
        assert signing.verify_douyin_webhook(i["client_secret"], body, v["headers"]["X-Douyin-Signature"])
        assert not signing.verify_douyin_webhook(i["client_secret"], body[:-1], v["expected"])
        assert not signing.verify_douyin_webhook(i["client_secret"], body, "")


def test_pdd_api_sign_sorts_by_name() -> None:
    vs = [v for v in _by_kind("api_sign") if v["platform"] == "pdd"]
    assert len(vs) == 2
    for v in vs:
        got = signing.pdd_api_sign(v["inputs"]["client_secret"], v["inputs"]["params"])
        assert got == v["expected"], v["id"]
        for k, bad in v.items():
            if k.startswith("divergent_") and not k.endswith("_note"):
                assert got != bad and not signing.same(got, bad), k


def test_pdd_values_are_sent_text() -> None:
    assert signing.pdd_value(True) == "true"
    assert signing.pdd_value(False) == "false"
    assert signing.pdd_value(12) == "12"
    assert signing.pdd_value({"a": "张"}) == '{"a":"张"}'


def test_pdd_ws_sign_and_url() -> None:
    (v,) = _by_kind("ws_connect_sign")
    i = v["inputs"]
    assert signing.pdd_ws_sign(i["client_id"], i["timestamp_ms"], i["client_secret"]) == v["expected"]
    url = signing.pdd_ws_url("wss://message-api.pinduoduo.com", i["client_id"], i["timestamp_ms"], i["client_secret"])
    assert url == v["url"].replace("=", "%3D")


def test_top_api_sign() -> None:
    vs = [v for v in _by_kind("api_sign") if v["platform"] == "taobao"]
    assert len(vs) == 4
    for v in vs:
        got = signing.top_sign(v["inputs"]["app_secret"], v["inputs"]["params"], v["sign_method"])
        assert got == v["expected"], v["id"]
        for k, bad in v.items():
            if k.startswith("divergent_") and not k.endswith("_note"):
                assert got != bad, k


def test_tmc_connect_sign() -> None:
    (v,) = _by_kind("tmc_connect_sign")
    i = v["inputs"]
    assert signing.tmc_connect_sign(i["app_key"], i["app_secret"], i["group_name"], i["timestamp_ms"]) == v["expected"]


def test_unknown_sign_methods_raise() -> None:
    with pytest.raises(ValueError):
        signing.top_sign("s", {"a": "1"}, "sha1")
    with pytest.raises(ValueError):
        signing.doudian_api_sign("k", "s", "m", "{}", "1", sign_method="sha1")


def test_relay_sign() -> None:
    body = b'{"records":[]}'
    sig = signing.relay_sign("relay-secret", "1700000000", body)
    assert len(sig) == 64 and sig == sig.lower()
    assert signing.verify_relay("relay-secret", "1700000000", body, sig)
    assert signing.verify_relay("relay-secret", "1700000000", body, sig.upper())
    assert not signing.verify_relay("relay-secret", "1700000001", body, sig)
    assert not signing.verify_relay("other", "1700000000", body, sig)
    assert not signing.verify_relay("relay-secret", "1700000000", body, "")
