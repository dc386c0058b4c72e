"""Signed relays: chats forwarded by an authorised relay in, replies POSTed back to it.

The wire format is documented for relay authors in README.md (Platform adapters)
("Relay protocol"). Both directions carry the same three headers:
``X-Gateway-Shop`` (shop_id), ``X-Gateway-Timestamp`` (Unix seconds) and
``X-Gateway-Signature`` = hex(HMAC-SHA256(relay_secret, timestamp + raw body)),
checked over the raw bytes before the body is parsed; ``Content-Type:
application/json`` is required (else 415); a body over 1 MiB is 413.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from aiohttp import web

from gateway.adapters.base import (
    BadPayload,
    InboundRecord,
    Kind,
    OutboundMessage,
    http_error,
    map_kind,
    placeholder,
)
from gateway.adapters.config import ShopConfig
from gateway.adapters.signing import relay_sign, verify_relay
from gateway.adapters.web import (
    BodyTooLarge,
    answer,
    parse_json,
    read_body,
    refused,
    seconds,
    text_id,
    wrong_content_type,
)
from gateway.errors import StoreUnavailable
from gateway.model import PLATFORMS

if TYPE_CHECKING:
    from gateway.adapters.runtime import AdapterRuntime

log = logging.getLogger("gateway.adapters.forward")

SHOP_HEADER = "X-Gateway-Shop"
TIMESTAMP_HEADER = "X-Gateway-Timestamp"
SIGNATURE_HEADER = "X-Gateway-Signature"


def signed_headers(shop: ShopConfig, body: bytes, now: float | None = None) -> dict[str, str]:
    ts = str(int(now if now is not None else time.time()))
    return {
        SHOP_HEADER: shop.shop_id,
        TIMESTAMP_HEADER: ts,
        SIGNATURE_HEADER: relay_sign(shop.relay_secret, ts, body),
        "Content-Type": "application/json",
    }


def timestamp(value: str) -> int | None:
    """``X-Gateway-Timestamp`` as sent: decimal ASCII digits (at most 20), else None.

    ``str.isdigit`` alone also takes other scripts' digits and ``²`` (which ``int`` refuses), and
    ``int`` refuses more than 4300 digits.
    """
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        return None
    return int(value)


def parse_record(platform: str, shop: str, i: int, r: Any, max_text: int) -> InboundRecord:
    """One relayed record, validated (raises BadPayload naming the field)."""
    w = f"records[{i}]"
    if not isinstance(r, dict):
        raise BadPayload(f"{w} must be an object")
    msg_id = text_id(r.get("msg_id"), f"{w}.msg_id")
    buyer = r.get("buyer")
    if not isinstance(buyer, dict):
        raise BadPayload(f"{w}.buyer must be an object with id and nick")
    buyer_id = text_id(buyer.get("id"), f"{w}.buyer.id")
    nick = buyer.get("nick") or ""
    if not isinstance(nick, str) or len(nick) > 64:
        raise BadPayload(f"{w}.buyer.nick must be a string of at most 64 characters")
    kind, native = map_kind(platform, r.get("kind", "text"), r.get("sub_type"))
    text = r.get("text", "")
    if not isinstance(text, str):
        raise BadPayload(f"{w}.text must be a string")
    if len(text) > max_text:
        raise BadPayload(f"{w}.text is longer than {max_text} characters")
    order = text_id(r.get("order"), f"{w}.order", required=False, max_chars=64)
    url = r.get("url", "")
    if not isinstance(url, str) or len(url) > 2048:
        raise BadPayload(f"{w}.url must be a string of at most 2048 characters")
    if kind is Kind.TEXT:
        if not text.strip():
            raise BadPayload(f"{w}.text must not be empty for a text message")
    else:
        text = placeholder(kind, native, text.strip() or order)
    return InboundRecord(platform, shop, buyer_id, nick.strip(), msg_id, kind, text, order=order,
                         time=seconds(r.get("time")), media_url=url, raw=r)


def parse_batch(platform: str, shop: str, obj: Any, max_batch: int, max_text: int) -> list[InboundRecord]:
    if not isinstance(obj, dict) or not isinstance(obj.get("records"), list):
        raise BadPayload('body must be an object {"records": [...]}')
    records = obj["records"]
    if not records:
        raise BadPayload("records is empty")
    if len(records) > max_batch:
        raise BadPayload(f"at most {max_batch} records per request")
    return [parse_record(platform, shop, i, r, max_text) for i, r in enumerate(records)]


class ForwardEndpoint:
    """``POST /adapters/forward/{platform}``."""

    def __init__(self, rt: AdapterRuntime) -> None:
        self.rt = rt

    async def handle(self, request: web.Request) -> web.Response:
        rt = self.rt
        platform = request.match_info["platform"]
        if platform not in PLATFORMS:
            return refused(404, "not_found", f"unknown platform {platform!r} (one of {', '.join(PLATFORMS)})")
        bad_type = wrong_content_type(request)
        if bad_type:
            return refused(415, "unsupported_media_type", bad_type)
        shop = rt.cfg.find(platform, request.headers.get(SHOP_HEADER, ""))
        if shop is None or not shop.relay:
            return refused(401, "unauthorized", f"unknown relay shop (header {SHOP_HEADER})")
        ts = request.headers.get(TIMESTAMP_HEADER, "")
        when = timestamp(ts)
        if when is None or abs(time.time() - when) > rt.cfg.settings.replay_window_s:
            return refused(401, "unauthorized", f"{TIMESTAMP_HEADER} missing or outside the replay window")
        try:
            body = await read_body(request)
        except BodyTooLarge as e:
            return refused(413, "too_large", str(e))
        if not verify_relay(shop.relay_secret, ts, body, request.headers.get(SIGNATURE_HEADER, "")):
            log.warning("event=relay_bad_signature platform=%s shop=%s", platform, shop.shop_id)
            return refused(401, "unauthorized", "bad signature")
        try:
            records = parse_batch(platform, shop.shop_id, parse_json(body), rt.cfg.settings.max_batch,
                                  rt.host.config.limits.max_text_chars)
        except BadPayload as e:
            return refused(400, "bad_request", str(e))
        results: list[dict[str, Any]] = []
        try:
            for rec in records:
                res = await rt.ingest.message(rec, "relay")
                results.append({"msg_id": rec.msg_id, **res.as_dict()})
        except (StoreUnavailable, ConnectionError, OSError) as e:
            log.warning("event=relay_store_unavailable shop=%s error=%r", shop.key, e)
            return answer({"ok": False, "error": "unavailable", "message": "not stored, retry the whole batch "
                           "(stored records answer duplicate)", "results": results}, 503)
        return answer({"ok": True, "results": results})


def reply_body(msg: OutboundMessage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "reply",
        "msg_id": msg.key,
        "platform": msg.platform,
        "shop": msg.shop,
        "buyer": msg.buyer,
        "conversation": msg.conversation,
        "seq": msg.seq,
        "from": msg.sender,
        "kind": "text",
        "text": msg.text,
        "reply_to": str(msg.reply.get("reply_to", "")),
        "time": time.time(),
    }
    if msg.agent:
        body["agent"] = dict(msg.agent)
    return body


class RelaySender:
    """POSTs replies, signed, to the shop's ``callback_url``; 2xx = accepted."""

    def __init__(self, shop: ShopConfig, http: Callable[[], aiohttp.ClientSession]) -> None:
        self.shop = shop
        self._http = http

    async def send(self, msg: OutboundMessage) -> None:
        body = orjson.dumps(reply_body(msg))
        async with self._http().post(self.shop.callback_url, data=body, headers=signed_headers(self.shop, body)) as r:
            if not 200 <= r.status < 300:
                raise http_error(r.status, await r.text())
