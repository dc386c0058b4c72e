"""抖店 (op.jinritemai.com) message push in; the open API for order look-ups.

Push: ``POST /adapters/doudian/events`` with headers ``app-id`` (the app_key) and
``event-sign`` = md5_hex(app_key + raw body + app_secret); the body is a JSON
array ``[{"tag","msg_id","data":"<JSON string>"}]``. Tag ``"0"`` is the console's
endpoint check. Success is ``{"code":0,"msg":"success"}``; any other answer makes
the platform push again. Order tags (1xx) attach to the buyer's open
conversation; after-sales tags (2xx, 仲裁 217) open or update an after-sales one.
``Content-Type: application/json`` is required (else 415), a body over 1 MiB is 413, and ``event-sign`` is
checked over the raw bytes before the body is parsed.
抖店 has no public chat API (飞鸽): buyers' chats come through a relay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from gateway.adapters.base import BadPayload, EventCategory, PlatformEvent, SendError, http_error
from gateway.adapters.config import ShopConfig
from gateway.adapters.signing import doudian_api_sign, doudian_param_json, verify_doudian_push
from gateway.adapters.web import (
    BodyTooLarge,
    answer,
    json_field,
    parse_json,
    read_body,
    seconds,
    text_id,
    wrong_content_type,
)
from gateway.errors import StoreUnavailable

if TYPE_CHECKING:
    from gateway.adapters.runtime import AdapterRuntime

log = logging.getLogger("gateway.adapters.doudian")

SUCCESS = {"code": 0, "msg": "success"}

# Tags named in zsmhub/doudian-sdk message/*.go; others get a generic label.
ORDER_TAGS = {"100": "订单已创建", "101": "订单已支付", "102": "卖家已发货", "103": "交易完成", "106": "订单已取消"}
AFTERSALE_TAGS = {"200": "买家发起售后申请", "201": "商家同意退款", "206": "退款成功", "207": "售后关闭",
                  "217": "仲裁客服介入"}
TERMINAL_TAGS = {"206", "207"}  # update an open after-sales conversation, never open one


def _fail(message: str, status: int) -> web.Response:
    return answer({"code": 1, "msg": "fail", "message": message}, status)


def parse_item(i: int, item: Any) -> tuple[str, str, dict[str, Any]]:
    """(tag, msg_id, data) of one pushed message; raises BadPayload."""
    if not isinstance(item, dict):
        raise BadPayload(f"[{i}] must be an object")
    tag = text_id(item.get("tag"), f"[{i}].tag", max_chars=16)
    msg_id = text_id(item.get("msg_id", item.get("msgId")), f"[{i}].msg_id")
    if tag == "0":
        return tag, msg_id, {}
    data = json_field(item.get("data"), f"[{i}].data")
    if not isinstance(data, dict):
        raise BadPayload(f"[{i}].data must be a JSON object")
    return tag, msg_id, data


def to_event(shop: ShopConfig, tag: str, msg_id: str, data: dict[str, Any]) -> PlatformEvent:
    order = text_id(data.get("p_id"), "data.p_id", required=False, max_chars=64)
    aftersale = text_id(data.get("aftersale_id"), "data.aftersale_id", required=False, max_chars=64)
    when = seconds(data.get("update_time") or data.get("apply_time") or data.get("create_time") or 0)
    if tag.startswith("1") and len(tag) == 3:
        category, label = EventCategory.ORDER, ORDER_TAGS.get(tag, f"订单消息（tag {tag}）")
    elif tag.startswith("2") and len(tag) == 3:
        category, label = EventCategory.AFTERSALE, AFTERSALE_TAGS.get(tag, f"售后消息（tag {tag}）")
    else:
        category, label = EventCategory.IGNORED, f"tag {tag}"
    return PlatformEvent("doudian", shop.shop_id, msg_id, category, tag, label, order=order, aftersale_id=aftersale,
                         opens=tag not in TERMINAL_TAGS, time=when, raw=data)


class DoudianPush:
    """``POST /adapters/doudian/events``."""

    def __init__(self, rt: AdapterRuntime) -> None:
        self.rt = rt

    async def handle(self, request: web.Request) -> web.Response:
        bad_type = wrong_content_type(request)
        if bad_type:
            return answer({"code": 1, "msg": "fail", "error": "unsupported_media_type", "message": bad_type}, 415)
        app_id = request.headers.get("app-id", "")
        shops = [s for s in self.rt.cfg.native("doudian") if s.app_key == app_id]
        try:
            body = await read_body(request)
        except BodyTooLarge as e:
            return answer({"code": 1, "msg": "fail", "error": "too_large", "message": str(e)}, 413)
        if not shops or not verify_doudian_push(app_id, shops[0].app_secret, body,
                                                request.headers.get("event-sign", "")):
            log.warning("event=doudian_bad_signature app_id=%r", app_id)
            return _fail("unknown app-id or bad event-sign", 401)
        try:
            items = parse_json(body)
            if not isinstance(items, list):
                raise BadPayload("body must be a JSON array")
            parsed = [parse_item(i, it) for i, it in enumerate(items)]
            if any(tag == "0" for tag, _, _ in parsed):
                return answer(SUCCESS)  # the console's endpoint check
            events: list[PlatformEvent] = []
            for tag, msg_id, data in parsed:
                shop_id = text_id(data.get("shop_id"), "data.shop_id", required=False)
                shop = next((s for s in shops if s.shop_id == shop_id), shops[0] if len(shops) == 1 else None)
                if shop is None:
                    log.warning("event=doudian_unknown_shop app_id=%s shop_id=%s tag=%s", app_id, shop_id, tag)
                    continue
                events.append(to_event(shop, tag, msg_id, data))
        except BadPayload as e:
            return _fail(str(e), 400)
        try:
            for ev in events:
                await self.rt.ingest.event(ev)
        except (StoreUnavailable, ConnectionError, OSError) as e:
            log.warning("event=doudian_store_unavailable error=%r", e)
            return _fail("not stored, push again", 503)
        return answer(SUCCESS)


class DoudianApi:
    """The open API (``order.orderDetail`` for agents' look-ups), signed hmac-sha256 or md5."""

    def __init__(self, shop: ShopConfig, http: Callable[[], aiohttp.ClientSession]) -> None:
        self.shop = shop
        self._http = http

    def signed_params(self, method: str, params: dict[str, Any], now: float | None = None) -> dict[str, str]:
        pj = doudian_param_json(params)
        ts = str(int(now if now is not None else time.time()))
        s = self.shop
        q = {"app_key": s.app_key, "method": method, "param_json": pj, "timestamp": ts, "v": "2",
             "sign_method": s.sign_method,
             "sign": doudian_api_sign(s.app_key, s.app_secret, method, pj, ts, "2", s.sign_method)}
        if s.access_token:
            q["access_token"] = s.access_token
        return q

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        q = self.signed_params(method, params)
        url = f"{self.shop.api_base}/{method.replace('.', '/')}"
        async with self._http().post(url, params=q, data=q["param_json"].encode(),
                                     headers={"Content-Type": "application/json"}) as r:
            text = await r.text()
            if not 200 <= r.status < 300:
                raise http_error(r.status, text)
            obj = parse_json(text.encode())
        if not isinstance(obj, dict) or obj.get("code") not in (None, 0, 10000):
            raise SendError(f"doudian error: {str(obj)[:200]}", retryable=False)
        data = obj.get("data")
        return data if isinstance(data, dict) else {"data": data}

    async def order(self, order: str) -> dict[str, Any]:
        return await self.call("order.orderDetail", {"shop_order_id": order})
