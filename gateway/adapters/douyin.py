"""抖音私信 (open.douyin.com, enterprise accounts): webhooks in, ``/im/send/msg/`` out.

Webhook: ``POST /adapters/douyin/webhook``, ``X-Douyin-Signature`` =
sha1_hex(client_secret + raw body), checked over the raw bytes before the body is
parsed (``Content-Type: application/json`` required, else 415; a body over 1 MiB
is 413), ``Msg-Id`` per delivery (retried 3 times within a 5 s timeout, so we
answer as soon as the message is stored).
``verify_webhook`` gets ``{"challenge": <value>}`` back. Only private
(``conversation_type`` 1) ``im_receive_msg`` events become buyer messages;
every other event is acknowledged and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web

from gateway.adapters.base import (
    BadPayload,
    InboundRecord,
    Kind,
    OutboundMessage,
    SendError,
    http_error,
    map_kind,
    placeholder,
)
from gateway.adapters.config import ShopConfig
from gateway.adapters.signing import verify_douyin_webhook
from gateway.adapters.web import (
    BodyTooLarge,
    answer,
    json_field,
    parse_json,
    read_body,
    refused,
    seconds,
    text_id,
    wrong_content_type,
)
from gateway.errors import StoreUnavailable

if TYPE_CHECKING:
    from gateway.adapters.runtime import AdapterRuntime

log = logging.getLogger("gateway.adapters.douyin")

ROUTE = "douyin_im"


def pick_shop(shops: list[ShopConfig], to_user_id: str) -> ShopConfig | None:
    """The account the DM was sent to: by ``open_id`` when configured, else the only candidate."""
    for s in shops:
        if s.open_id and s.open_id == to_user_id:
            return s
    unbound = [s for s in shops if not s.open_id]
    return unbound[0] if len(unbound) == 1 else None


def parse_im(event: dict[str, Any], content: dict[str, Any], shop: ShopConfig, delivery_id: str) -> InboundRecord | None:
    """An ``im_receive_msg`` event to a record; None for what is not a buyer's private message."""
    if content.get("conversation_type", 1) != 1:
        return None  # group chats are not customer service
    buyer = text_id(event.get("from_user_id"), "from_user_id")
    if shop.open_id and buyer == shop.open_id:
        return None  # our own account
    msg_id = text_id(content.get("server_message_id"), "content.server_message_id")
    kind, native = map_kind("douyin", content.get("message_type", "other"))
    raw_text = content.get("text")
    if isinstance(raw_text, dict):
        raw_text = raw_text.get("text")
    if kind is Kind.TEXT:
        if not isinstance(raw_text, str) or not raw_text.strip():
            raise BadPayload("content.text must be a non-empty string for a text message")
        text = raw_text
    else:
        text = placeholder(kind, native)  # images and videos come without URLs (doc: 使用限制)
    nick = ""
    for u in content.get("user_infos") or []:
        if isinstance(u, dict) and u.get("open_id") == buyer and isinstance(u.get("nick_name"), str):
            nick = u["nick_name"][:64]
    return InboundRecord("douyin", shop.shop_id, buyer, nick, msg_id, kind, text,
                         time=seconds(content.get("create_time")), raw=event, delivery_id=delivery_id)


class DouyinWebhook:
    """``POST /adapters/douyin/webhook``."""

    def __init__(self, rt: AdapterRuntime) -> None:
        self.rt = rt

    async def handle(self, request: web.Request) -> web.Response:
        bad_type = wrong_content_type(request)
        if bad_type:
            return refused(415, "unsupported_media_type", bad_type)
        try:
            body = await read_body(request)
        except BodyTooLarge as e:
            return refused(413, "too_large", str(e))
        signature = request.headers.get("X-Douyin-Signature", "")
        # The signature is checked over the raw bytes before anything is parsed: every configured app
        # whose secret signs this body (apps of one app_key share one secret, checked at config load).
        shops = [s for s in self.rt.cfg.native("douyin") if verify_douyin_webhook(s.app_secret, body, signature)]
        if not shops:
            log.warning("event=douyin_bad_signature")
            return refused(401, "unauthorized", "bad or missing X-Douyin-Signature")
        try:
            event = parse_json(body)
            if not isinstance(event, dict):
                raise BadPayload("body must be a JSON object")
        except BadPayload as e:
            return refused(400, "bad_request", str(e))
        client_key = event.get("client_key")
        if isinstance(client_key, str):
            shops = [s for s in shops if s.app_key == client_key]
            if not shops:
                log.warning("event=douyin_bad_signature client_key=%r", client_key)
                return refused(401, "unauthorized", "bad or missing X-Douyin-Signature")
        name = event.get("event")
        try:
            if name == "verify_webhook":
                content = json_field(event.get("content"), "content")
                if not isinstance(content, dict) or "challenge" not in content:
                    raise BadPayload("verify_webhook needs content.challenge")
                return answer({"challenge": content["challenge"]})
            if name != "im_receive_msg":
                return answer({"ok": True, "status": "ignored"})
            to_user = str(event.get("to_user_id", ""))
            shop = pick_shop(shops, to_user)
            if shop is None:
                log.warning("event=douyin_unknown_account to_user_id=%s", to_user)
                return answer({"ok": True, "status": "ignored"})
            content = json_field(event.get("content"), "content")
            if not isinstance(content, dict):
                raise BadPayload("content must be an object")
            rec = parse_im(event, content, shop, request.headers.get("Msg-Id", "").strip())
        except BadPayload as e:
            return refused(400, "bad_request", str(e))
        if rec is None:
            return answer({"ok": True, "status": "ignored"})
        reply = {"conversation_id": str(content.get("conversation_short_id", "")), "open_id": shop.open_id or to_user}
        try:
            res = await self.rt.ingest.message(rec, ROUTE, reply)
        except (StoreUnavailable, ConnectionError, OSError) as e:
            log.warning("event=douyin_store_unavailable error=%r", e)
            return refused(503, "unavailable", "not stored, retry")
        return answer({"ok": True, **res.as_dict()})


class DouyinSender:
    """``POST {api_base}/im/send/msg/?open_id=…`` with the account's ``access-token``."""

    def __init__(self, shop: ShopConfig, http: Callable[[], aiohttp.ClientSession]) -> None:
        self.shop = shop
        self._http = http

    async def send(self, msg: OutboundMessage) -> None:
        open_id = str(msg.reply.get("open_id") or self.shop.open_id)
        body: dict[str, Any] = {
            "msg_id": str(msg.reply.get("reply_to", "")),
            "conversation_id": str(msg.reply.get("conversation_id", "")),
            "to_user_id": msg.buyer,
            "content": {"msg_type": 1, "text": {"text": msg.text}},
            "scene": "im_replay_msg",
        }
        url = f"{self.shop.api_base}/im/send/msg/?open_id={quote(open_id, safe='')}"
        headers = {"access-token": self.shop.access_token, "Content-Type": "application/json"}
        async with self._http().post(url, data=orjson.dumps(body), headers=headers) as r:
            text = await r.text()
            if not 200 <= r.status < 300:
                raise http_error(r.status, text)
        check_douyin_answer(text)


def check_douyin_answer(text: str) -> None:
    """A 200 can still carry an error (``data.error_code`` / ``err_no``): not retried."""
    try:
        obj = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError as e:
        raise SendError(f"answer is not JSON: {text[:200]}", retryable=True) from e
    data = obj.get("data") if isinstance(obj, dict) else None
    code = data.get("error_code", 0) if isinstance(data, dict) else 0
    if isinstance(obj, dict) and not code:
        code = obj.get("err_no", 0)
    if code:
        desc = (data or {}).get("description") if isinstance(data, dict) else obj.get("err_msg")
        raise SendError(f"douyin error {code}: {desc}", retryable=False)
