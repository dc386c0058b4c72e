"""Every signature the adapters make or check (pure functions, no I/O).

Algorithms and sources: ../shared/PLATFORMS.md and SIGN_SOURCES.md; each one is
tested against ``sign_vectors.json`` (tests/test_adapters_signing.py). Every
``verify_*`` compares in constant time and refuses an empty signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote


def same(expected: str, given: str, *, ignore_case: bool = False) -> bool:
    """Constant-time string compare; an empty ``given`` never matches."""
    if not given or not expected:
        return False
    if ignore_case:
        expected, given = expected.lower(), given.lower()
    return hmac.compare_digest(expected.encode(), given.encode())


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# ------------------------------------------------------------------ 抖店 (doudian)


def doudian_push_sign(app_key: str, secret: str, body: bytes) -> str:
    """``event-sign``: md5_hex_lower(app_key + raw body + app_secret), over the body bytes as received."""
    return _md5(app_key.encode() + body + secret.encode())


def verify_doudian_push(app_key: str, secret: str, body: bytes, event_sign: str) -> bool:
    return same(doudian_push_sign(app_key, secret, body), event_sign, ignore_case=True)


def doudian_param_json(params: Mapping[str, Any]) -> str:
    """``param_json`` as the PHP and Go SDKs send it: compact, keys sorted recursively, raw UTF-8."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _doudian_keyed(secret: str, text: str, sign_method: str) -> str:
    if sign_method == "hmac-sha256":
        return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    if sign_method == "md5":
        return _md5(text.encode())
    raise ValueError(f"unknown doudian sign_method {sign_method!r}")


def doudian_api_sign(
    app_key: str, secret: str, method: str, param_json: str, timestamp: str, v: str = "2",
    sign_method: str = "hmac-sha256",
) -> str:
    """Open API sign: the secret-wrapped string, HMAC-SHA256 keyed by the secret or plain md5."""
    text = f"{secret}app_key{app_key}method{method}param_json{param_json}timestamp{timestamp}v{v}{secret}"
    return _doudian_keyed(secret, text, sign_method)


def doudian_spi_sign(app_key: str, secret: str, param_json: str, timestamp: str, sign_method: str = "md5") -> str:
    """SPI callbacks (platform to us): like the API sign without ``method`` and ``v``."""
    text = f"{secret}app_key{app_key}param_json{param_json}timestamp{timestamp}{secret}"
    return _doudian_keyed(secret, text, sign_method)


def verify_doudian_spi(
    app_key: str, secret: str, param_json: str, timestamp: str, sign_method: str, sign: str, sign_v2: str = ""
) -> bool:
    """Accepts the signature in ``sign`` or ``sign_v2`` (zsmhub ``doudian_op_spi_client.go``)."""
    expected = doudian_spi_sign(app_key, secret, param_json, timestamp, sign_method)
    return same(expected, sign, ignore_case=True) | same(expected, sign_v2, ignore_case=True)


# ------------------------------------------------------------------ 抖音 open platform (douyin)


def douyin_webhook_sign(client_secret: str, body: bytes) -> str:
    """``X-Douyin-Signature``: sha1_hex(client_secret + raw body)."""
    return hashlib.sha1(client_secret.encode() + body, usedforsecurity=False).hexdigest()


def verify_douyin_webhook(client_secret: str, body: bytes, signature: str) -> bool:
    return same(douyin_webhook_sign(client_secret, body), signature, ignore_case=True)


# ------------------------------------------------------------------ Pinduoduo


def pdd_value(v: Any) -> str:
    """A parameter value as sent (and signed): JSON ``true``, compact JSON for objects."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict | list):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return str(v)


def pdd_api_sign(secret: str, params: Mapping[str, str]) -> str:
    """UPPER(md5(secret + k1v1k2v2… sorted by parameter NAME + secret)); ``sign`` itself excluded."""
    joined = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign")
    return _md5(f"{secret}{joined}{secret}".encode()).upper()


def pdd_ws_sign(client_id: str, timestamp_ms: int, secret: str) -> str:
    """base64 of the 32 lowercase hex characters of md5(client_id + timestamp_ms + secret)."""
    return base64.b64encode(_md5(f"{client_id}{timestamp_ms}{secret}".encode()).encode()).decode()


def pdd_ws_url(base: str, client_id: str, timestamp_ms: int, secret: str) -> str:
    """``{base}/message/{client_id}/{timestamp_ms}/{sign}`` with the sign URL-encoded (``=`` as %3D)."""
    sign = quote(pdd_ws_sign(client_id, timestamp_ms, secret), safe="")
    return f"{base.rstrip('/')}/message/{quote(client_id, safe='')}/{timestamp_ms}/{sign}"


# ------------------------------------------------------------------ Taobao TOP / TMC


def top_sign(secret: str, params: Mapping[str, str], sign_method: str = "md5") -> str:
    """TOP sign over sorted k+v pairs with empty values left out (official ``TaobaoUtils.java``).

    ``md5`` wraps the string in the secret; ``hmac`` (HMAC-MD5) and ``hmac-sha256``
    use the secret only as the key. Uppercase hex.
    """
    joined = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")
    if sign_method == "md5":
        return _md5(f"{secret}{joined}{secret}".encode()).upper()
    if sign_method == "hmac":
        return hmac.new(secret.encode(), joined.encode(), hashlib.md5).hexdigest().upper()
    if sign_method == "hmac-sha256":
        return hmac.new(secret.encode(), joined.encode(), hashlib.sha256).hexdigest().upper()
    raise ValueError(f"unknown TOP sign_method {sign_method!r}")


def tmc_connect_sign(app_key: str, secret: str, group_name: str, timestamp_ms: int) -> str:
    """TMC CONNECT handshake: UPPER(md5(secret + app_key K + group_name G + timestamp T + secret))."""
    text = f"{secret}app_key{app_key}group_name{group_name}timestamp{timestamp_ms}{secret}"
    return _md5(text.encode()).upper()


# ------------------------------------------------------------------ signed relays (ours)


def relay_sign(secret: str, timestamp: str, body: bytes) -> str:
    """Relay requests both ways: hex(HMAC-SHA256(relay_secret, timestamp + raw body)), lowercase."""
    return hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).hexdigest()


def verify_relay(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    return same(relay_sign(secret, timestamp, body), signature, ignore_case=True)
