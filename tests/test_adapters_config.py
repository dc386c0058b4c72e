"""``[[shops]]`` / ``[adapters]`` validation: every mistake names its key."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gateway.adapters.config import DEFAULT_API_BASE, parse_adapters
from gateway.config import Config
from gateway.errors import ConfigError


def cfg(shops: list[dict[str, Any]], adapters: dict[str, Any] | None = None) -> Config:
    return replace(Config(), shops=tuple(shops), adapters=adapters or {})


def test_a_valid_config() -> None:
    a = parse_adapters(cfg([
        {"platform": "doudian", "shop_id": "7788", "app_key": "dk", "app_secret": "ds", "default_skill": "aftersale"},
        {"platform": "pdd", "shop_id": "m1", "relay_secret": "r", "callback_url": "https://relay.example/cb"},
        {"platform": "douyin", "shop_id": "acct", "app_key": "aw", "app_secret": "s", "access_token": "t"},
        {"platform": "taobao", "shop_id": "1001", "app_key": "12345678", "app_secret": "s", "sign_method": "hmac"},
    ], {"max_attempts": 3, "backoff_base_s": 0.1}))
    dd, pdd, dy, tb = a.shops
    assert dd.native and not dd.relay and dd.default_skill == "aftersale" and dd.sign_method == "hmac-sha256"
    assert dd.api_base == DEFAULT_API_BASE["doudian"] and pdd.default_skill == ""  # unset: channel_skills, then routing.default_skill
    assert pdd.relay and not pdd.native and pdd.key == "pdd:m1"
    assert dy.access_token == "t" and tb.sign_method == "hmac"
    assert a.settings.max_attempts == 3 and a.find("pdd", "m1") is pdd and a.native("taobao") == [tb]
    assert "ds" not in repr(dd)  # secrets stay out of logs


def test_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_SECRET", "from-env")
    a = parse_adapters(cfg([{"platform": "doudian", "shop_id": "s", "app_key": "k", "app_secret_env": "DD_SECRET"}]))
    assert a.shops[0].app_secret == "from-env"
    with pytest.raises(ConfigError) as e:
        parse_adapters(cfg([{"platform": "doudian", "shop_id": "s", "app_key": "k", "app_secret_env": "NOPE_X"}]))
    assert e.value.key == "shops[0].app_secret_env"


@pytest.mark.parametrize(("shop", "key"), [
    ({"platform": "jd", "shop_id": "s", "app_key": "k", "app_secret": "s"}, "shops[0].platform"),
    ({"platform": "pdd", "app_key": "k", "app_secret": "s"}, "shops[0].shop_id"),
    ({"platform": "pdd", "shop_id": "a:b", "app_key": "k", "app_secret": "s"}, "shops[0].shop_id"),
    ({"platform": "pdd", "shop_id": "s", "app_key": "k"}, "shops[0].app_secret"),
    ({"platform": "pdd", "shop_id": "s", "app_secret": "x"}, "shops[0].app_key"),
    ({"platform": "pdd", "shop_id": "s"}, "shops[0].app_key"),
    ({"platform": "pdd", "shop_id": "s", "relay_secret": "r"}, "shops[0].callback_url"),
    ({"platform": "pdd", "shop_id": "s", "relay_secret": "r", "callback_url": "ftp://x"}, "shops[0].callback_url"),
    ({"platform": "pdd", "shop_id": "s", "app_key": "k", "app_secret": "s", "api_base": "gw"}, "shops[0].api_base"),
    ({"platform": "pdd", "shop_id": "s", "app_key": "k", "app_secret": "s", "message_base": "http://x"},
     "shops[0].message_base"),
    ({"platform": "douyin", "shop_id": "s", "app_key": "k", "app_secret": "s"}, "shops[0].access_token"),
    ({"platform": "taobao", "shop_id": "s", "app_key": "k", "app_secret": "s", "sign_method": "sha1"},
     "shops[0].sign_method"),
    ({"platform": "pdd", "shop_id": "s", "app_key": "k", "app_secret": "s", "sign_method": "md5"},
     "shops[0].sign_method"),
    ({"platform": "pdd", "shop_id": "s", "app_key": "k", "app_secret": "s", "send_rate": 0}, "shops[0].send_rate"),
    ({"platform": "pdd", "shop_id": "s", "app_key": "k", "app_secret": "s", "app_secret_env": "X"},
     "shops[0].app_secret"),
    ({"platform": "pdd", "shop_id": "s", "app_key": "k", "app_secret": "s", "colour": "red"}, "shops[0].colour"),
    ({"platform": "pdd", "shop_id": 5, "app_key": "k", "app_secret": "s"}, "shops[0].shop_id"),
])
def test_mistakes_name_the_key(shop: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_adapters(cfg([shop]))
    assert e.value.key == key, e.value


def test_duplicates_and_shared_apps() -> None:
    a = {"platform": "pdd", "shop_id": "s", "app_key": "k", "app_secret": "s1"}
    with pytest.raises(ConfigError) as e:
        parse_adapters(cfg([a, dict(a)]))
    assert e.value.key == "shops[1].shop_id"
    with pytest.raises(ConfigError) as e:
        parse_adapters(cfg([a, {**a, "shop_id": "t", "app_secret": "s2"}]))
    assert e.value.key == "shops[1].app_secret"


@pytest.mark.parametrize(("adapters", "key"), [
    ({"max_attempts": 0}, "adapters.max_attempts"),
    ({"backoff_base_s": "1"}, "adapters.backoff_base_s"),
    ({"backoff_base_s": 5, "backoff_max_s": 1}, "adapters.backoff_max_s"),
    ({"retries": 3}, "adapters.retries"),
])
def test_adapter_settings(adapters: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_adapters(cfg([], adapters))
    assert e.value.key == key


async def test_a_bad_shop_stops_the_app_from_building(gateway_app: Any) -> None:
    with pytest.raises(ConfigError) as e:
        await gateway_app({"shops": [{"platform": "pdd", "shop_id": "s", "app_key": "k"}]})
    assert e.value.key == "shops[0].app_secret"
