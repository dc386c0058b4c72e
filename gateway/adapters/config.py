"""``[[shops]]`` and ``[adapters]``: validated once at start into frozen objects.

A bad table raises ConfigError naming the key (``shops[0].app_secret``). Secrets
may be given inline or by the name of an environment variable (``app_secret_env``,
``relay_secret_env``, ``access_token_env``), read here, at load, and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config import Config
from gateway.errors import ConfigError
from gateway.model import PLATFORMS

DEFAULT_API_BASE = {
    "doudian": "https://openapi-fxg.jinritemai.com",
    "douyin": "https://open.douyin.com",
    "pdd": "https://gw-api.pinduoduo.com/api/router",
    "taobao": "https://eco.taobao.com/router/rest",
}
DEFAULT_MESSAGE_BASE = "wss://message-api.pinduoduo.com"  # PDD message service (backup: message-api.yangkeduo.com)

_SIGN_METHODS = {"doudian": ("hmac-sha256", "md5"), "taobao": ("md5", "hmac", "hmac-sha256")}

_SHOP_KEYS = {
    "platform", "shop_id", "name", "app_key", "app_secret", "app_secret_env", "api_base", "message_base",
    "default_skill", "relay_secret", "relay_secret_env", "callback_url", "access_token", "access_token_env",
    "open_id", "send_rate", "send_burst", "group_name", "sign_method", "poll_interval_s",
}


@dataclass(slots=True, frozen=True)
class ShopConfig:
    """One ``[[shops]]`` table.

    ``native`` shops (app_key + app_secret) get the platform's own transport: the
    抖店 push and 抖音 webhooks are routed to them, PDD and Taobao clients are
    started for them. ``relay`` shops (relay_secret + callback_url) accept
    forwarded chats. A shop may be both.
    """

    index: int
    platform: str
    shop_id: str
    name: str = ""
    app_key: str = ""
    app_secret: str = field(default="", repr=False)
    api_base: str = ""
    message_base: str = DEFAULT_MESSAGE_BASE
    default_skill: str = ""
    relay_secret: str = field(default="", repr=False)
    callback_url: str = ""
    access_token: str = field(default="", repr=False)
    open_id: str = ""  # 抖音: the enterprise account's open_id (else taken from each webhook's to_user_id)
    send_rate: float = 5.0  # outbound sends per second to this shop's platform or relay
    send_burst: int = 5
    group_name: str = "default"  # Taobao TMC group
    sign_method: str = ""  # doudian: hmac-sha256|md5; taobao: md5|hmac|hmac-sha256
    poll_interval_s: float = 1.0  # Taobao TMC: wait after an empty consume

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.shop_id}"

    @property
    def native(self) -> bool:
        return bool(self.app_key and self.app_secret)

    @property
    def relay(self) -> bool:
        return bool(self.relay_secret and self.callback_url)

    @property
    def where(self) -> str:
        return f"shops[{self.index}]"


@dataclass(slots=True, frozen=True)
class AdapterSettings:
    """The ``[adapters]`` table: shared by every shop."""

    queue_size: int = 1000  # outbound messages waiting per shop; beyond it a send fails at once
    max_attempts: int = 6  # sends per message on 5xx / timeouts before it is dead-lettered
    backoff_base_s: float = 0.5  # first retry delay; doubles each time (jittered)
    backoff_max_s: float = 30.0
    request_timeout_s: float = 10.0  # every outbound HTTP call
    replay_window_s: float = 300.0  # relay timestamps further than this from now are refused
    dedupe_ttl_s: float = 3 * 86400.0  # how long a platform message id is remembered
    order_index_ttl_s: float = 30 * 86400.0  # how long an order number is linked to its buyer
    dead_letters_keep: int = 1000
    turn_workers: int = 4  # bot turns / hand-offs run after the ack on this many ordered workers
    turn_queue: int = 1000  # per worker; beyond it a turn waits for its turn timer (routing.turn_retry_s)
    max_batch: int = 100  # records per relay request
    rating_window_s: float = 86400.0  # a lone 1-5 within this long after a close rates it
    rating_thanks: str = "感谢您的评价！"
    heartbeat_s: float = 5.0  # PDD message service heartbeat
    reconnect_max_s: float = 60.0  # PDD / Taobao reconnect back-off ceiling


@dataclass(slots=True, frozen=True)
class AdaptersConfig:
    settings: AdapterSettings = field(default_factory=AdapterSettings)
    shops: tuple[ShopConfig, ...] = ()

    def find(self, platform: str, shop_id: str) -> ShopConfig | None:
        for s in self.shops:
            if s.platform == platform and s.shop_id == shop_id:
                return s
        return None

    def native(self, platform: str) -> list[ShopConfig]:
        return [s for s in self.shops if s.platform == platform and s.native]


# ------------------------------------------------------------------ validation


def _str(d: Mapping[str, Any], key: str, where: str, default: str = "") -> str:
    v = d.get(key, default)
    if not isinstance(v, str):
        raise ConfigError(f"{where}.{key}", f"must be a string, got {type(v).__name__}")
    return v.strip()


def _num(d: Mapping[str, Any], key: str, where: str, default: float, minimum: float) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{where}.{key}", f"must be a number, got {type(v).__name__}")
    if v < minimum:
        raise ConfigError(f"{where}.{key}", f"must be >= {minimum}, got {v}")
    return float(v)


def _int(d: Mapping[str, Any], key: str, where: str, default: int, minimum: int) -> int:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{where}.{key}", f"must be an integer, got {type(v).__name__}")
    if v < minimum:
        raise ConfigError(f"{where}.{key}", f"must be >= {minimum}, got {v}")
    return v


def _secret(d: Mapping[str, Any], key: str, where: str) -> str:
    """``key`` inline, or ``key_env`` naming the environment variable that holds it."""
    env_key = f"{key}_env"
    if key in d and env_key in d:
        raise ConfigError(f"{where}.{key}", f"give {key} or {env_key}, not both")
    if env_key in d:
        name = _str(d, env_key, where)
        value = os.environ.get(name, "") if name else ""
        if not value:
            raise ConfigError(f"{where}.{env_key}", f"environment variable {name!r} is not set")
        return value
    return _str(d, key, where)


def _url(d: Mapping[str, Any], key: str, where: str, default: str, schemes: tuple[str, ...]) -> str:
    v = _str(d, key, where, default)
    if v and not v.startswith(schemes):
        raise ConfigError(f"{where}.{key}", f"must start with {' or '.join(schemes)}, got {v!r}")
    return v


def parse_shop(i: int, raw: Mapping[str, Any]) -> ShopConfig:
    where = f"shops[{i}]"
    unknown = sorted(set(raw) - _SHOP_KEYS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_SHOP_KEYS))})")
    platform = _str(raw, "platform", where)
    if platform not in PLATFORMS:
        raise ConfigError(f"{where}.platform", f"must be one of {', '.join(PLATFORMS)}, got {platform!r}")
    shop_id = _str(raw, "shop_id", where)
    if not shop_id or len(shop_id) > 64 or ":" in shop_id:
        raise ConfigError(f"{where}.shop_id", "must be 1-64 characters without ':'")
    app_key = _str(raw, "app_key", where)
    app_secret = _secret(raw, "app_secret", where)
    if bool(app_key) != bool(app_secret):
        missing = "app_secret (or app_secret_env)" if app_key else "app_key"
        raise ConfigError(f"{where}.{missing.split(' ')[0]}", f"missing: {missing} goes with the other")
    relay_secret = _secret(raw, "relay_secret", where)
    callback_url = _url(raw, "callback_url", where, "", ("http://", "https://"))
    if bool(relay_secret) != bool(callback_url):
        key = "callback_url" if relay_secret else "relay_secret"
        raise ConfigError(f"{where}.{key}", "missing: a relay needs both relay_secret and callback_url")
    if not app_key and not relay_secret:
        raise ConfigError(f"{where}.app_key", "nothing to connect: give app_key + app_secret, or relay_secret + "
                          "callback_url for a relay")
    access_token = _secret(raw, "access_token", where)
    if platform == "douyin" and app_key and not access_token:
        raise ConfigError(f"{where}.access_token", "抖音 replies need the account's access-token (access_token or "
                          "access_token_env)")
    methods = _SIGN_METHODS.get(platform, ())
    sign_method = _str(raw, "sign_method", where, methods[0] if methods else "")
    if methods and sign_method not in methods:
        raise ConfigError(f"{where}.sign_method", f"must be one of {', '.join(methods)}, got {sign_method!r}")
    if not methods and sign_method:
        raise ConfigError(f"{where}.sign_method", f"not used for {platform}")
    send_rate = _num(raw, "send_rate", where, 5.0, 0.01)
    return ShopConfig(
        index=i,
        platform=platform,
        shop_id=shop_id,
        name=_str(raw, "name", where, shop_id) or shop_id,
        app_key=app_key,
        app_secret=app_secret,
        api_base=_url(raw, "api_base", where, DEFAULT_API_BASE[platform], ("http://", "https://")),
        message_base=_url(raw, "message_base", where, DEFAULT_MESSAGE_BASE, ("ws://", "wss://")),
        # "" (unset): a hand-off takes routing.channel_skills[platform], else routing.default_skill
        default_skill=_str(raw, "default_skill", where, ""),
        relay_secret=relay_secret,
        callback_url=callback_url,
        access_token=access_token,
        open_id=_str(raw, "open_id", where),
        send_rate=send_rate,
        send_burst=_int(raw, "send_burst", where, max(1, int(send_rate)), 1),
        group_name=_str(raw, "group_name", where, "default") or "default",
        sign_method=sign_method,
        poll_interval_s=_num(raw, "poll_interval_s", where, 1.0, 0.01),
    )


def parse_settings(raw: Mapping[str, Any]) -> AdapterSettings:
    w = "adapters"
    d = AdapterSettings()
    unknown = sorted(set(raw) - set(AdapterSettings.__slots__))
    if unknown:
        raise ConfigError(f"{w}.{unknown[0]}", "unknown key")
    s = AdapterSettings(
        queue_size=_int(raw, "queue_size", w, d.queue_size, 1),
        max_attempts=_int(raw, "max_attempts", w, d.max_attempts, 1),
        backoff_base_s=_num(raw, "backoff_base_s", w, d.backoff_base_s, 0.001),
        backoff_max_s=_num(raw, "backoff_max_s", w, d.backoff_max_s, 0.001),
        request_timeout_s=_num(raw, "request_timeout_s", w, d.request_timeout_s, 0.1),
        replay_window_s=_num(raw, "replay_window_s", w, d.replay_window_s, 1.0),
        dedupe_ttl_s=_num(raw, "dedupe_ttl_s", w, d.dedupe_ttl_s, 60.0),
        order_index_ttl_s=_num(raw, "order_index_ttl_s", w, d.order_index_ttl_s, 60.0),
        dead_letters_keep=_int(raw, "dead_letters_keep", w, d.dead_letters_keep, 1),
        turn_workers=_int(raw, "turn_workers", w, d.turn_workers, 1),
        turn_queue=_int(raw, "turn_queue", w, d.turn_queue, 1),
        max_batch=_int(raw, "max_batch", w, d.max_batch, 1),
        rating_window_s=_num(raw, "rating_window_s", w, d.rating_window_s, 0.0),
        rating_thanks=_str(raw, "rating_thanks", w, d.rating_thanks),
        heartbeat_s=_num(raw, "heartbeat_s", w, d.heartbeat_s, 0.05),
        reconnect_max_s=_num(raw, "reconnect_max_s", w, d.reconnect_max_s, 0.05),
    )
    if s.backoff_max_s < s.backoff_base_s:
        raise ConfigError(f"{w}.backoff_max_s", "must be >= backoff_base_s")
    return s


def parse_adapters(config: Config) -> AdaptersConfig:
    """Validate ``config.shops`` and ``config.adapters`` (raises ConfigError naming the key)."""
    settings = parse_settings(config.adapters)
    shops: list[ShopConfig] = []
    seen: set[str] = set()
    for i, raw in enumerate(config.shops):
        shop = parse_shop(i, raw)
        if shop.key in seen:
            raise ConfigError(f"shops[{i}].shop_id", f"duplicate shop {shop.key!r}")
        seen.add(shop.key)
        shops.append(shop)
    _check_shared_apps(shops)
    return AdaptersConfig(settings, tuple(shops))


def _check_shared_apps(shops: list[ShopConfig]) -> None:
    """Shops of one app (one app_key) must agree on its secret: pushes are verified per app."""
    secrets: dict[tuple[str, str], str] = {}
    for s in shops:
        if not s.native:
            continue
        k = (s.platform, s.app_key)
        if secrets.setdefault(k, s.app_secret) != s.app_secret:
            raise ConfigError(f"{s.where}.app_secret", f"differs from another {s.platform} shop with app_key "
                              f"{s.app_key!r}")
