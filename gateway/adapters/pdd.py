"""Pinduoduo: the message-service websocket client (events in) and the API client (order look-ups).

Message service: ``wss://message-api.pinduoduo.com/message/{client_id}/{timestamp_ms}/{sign}``
with sign = base64(md5_hex(client_id + timestamp_ms + client_secret)), URL-encoded.
We send ``{"commandType":"HeartBeat","time":ms}`` every 5 s, and ``Ack`` a
``Common`` frame only after its event is stored (a frame we could not store is
not acknowledged, so the service sends it again). Reconnects back off
exponentially with jitter. One connection per app (client_id); frames are routed
to the shop by ``mallID``. 多多客服 chat is not public: chats come through a relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from yarl import URL

from gateway.adapters.base import (
    BadPayload,
    PlatformEvent,
    SendError,
    business_key,
    classify,
    http_error,
    short_error,
)
from gateway.adapters.config import ShopConfig
from gateway.adapters.outbox import backoff_delay
from gateway.adapters.signing import pdd_api_sign, pdd_value, pdd_ws_url
from gateway.adapters.web import json_field, parse_json, seconds, text_id
from gateway.errors import StoreUnavailable

if TYPE_CHECKING:
    from gateway.adapters.runtime import AdapterRuntime

log = logging.getLogger("gateway.adapters.pdd")

REFUND_LABELS = {
    "pdd_refund_RefundCreated": "买家申请退款",
    "pdd_refund_RefundAgreeAgreement": "商家同意退款协议",
    "pdd_refund_RefundRefuseAgreement": "商家拒绝退款协议",
    "pdd_refund_RefundBuyerReturnGoods": "买家已退货",
    "pdd_refund_RefundSuccess": "退款成功",
    "pdd_refund_RefundClosed": "退款关闭",
}
TRADE_LABELS = {
    "pdd_trade_TradeConfirmed": "订单已成团/待发货",
    "pdd_trade_TradeSellerShip": "卖家已发货",
    "pdd_trade_TradeSuccess": "交易成功",
    "pdd_trade_TradeMemoModified": "订单备注已修改",
}


def to_event(shop: ShopConfig, frame_id: str, message: dict[str, Any]) -> PlatformEvent:
    topic = text_id(message.get("type"), "message.type")
    content = json_field(message.get("content"), "message.content")
    if not isinstance(content, dict):
        raise BadPayload("message.content must be a JSON object")
    category, label, opens = classify(topic, "pdd_refund_", "pdd_trade_", {**REFUND_LABELS, **TRADE_LABELS})
    return PlatformEvent(
        "pdd", shop.shop_id, frame_id, category, topic, label,
        order=text_id(content.get("tid"), "content.tid", required=False, max_chars=64),
        aftersale_id=text_id(content.get("refund_id"), "content.refund_id", required=False, max_chars=64),
        opens=opens, time=seconds(content.get("modified") or content.get("updated_at") or 0),
        business_key=business_key(topic, content), raw=message,
    )


def ack_frame(frame: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    return {"commandType": "Ack", "id": frame.get("id"), "time": int(time.time() * 1000),
            "sendTime": frame.get("sendTime"), "type": message.get("type"), "mallID": message.get("mallID")}


class PddMessageClient:
    """One app's message-service connection, kept open until cancelled."""

    def __init__(self, rt: AdapterRuntime, shops: list[ShopConfig]) -> None:
        self.rt = rt
        self.shops = shops
        self.app = shops[0]

    def _shop(self, mall: str) -> ShopConfig | None:
        for s in self.shops:
            if s.shop_id == mall:
                return s
        return self.shops[0] if len(self.shops) == 1 else None

    async def run(self) -> None:
        s = self.rt.cfg.settings
        failures = 0
        while True:
            try:
                await self._connection()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("event=pdd_connection_failed app=%s error=%s", self.app.app_key, short_error(e))
            failures += 1
            await asyncio.sleep(backoff_delay(failures, min(1.0, s.reconnect_max_s), s.reconnect_max_s))

    async def _connection(self) -> None:
        url = pdd_ws_url(self.app.message_base, self.app.app_key, int(time.time() * 1000), self.app.app_secret)
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0)
        # encoded=True keeps the sign's %3D as sent (yarl would normalise it to '=').
        async with self.rt.http().ws_connect(URL(url, encoded=True), timeout=timeout, heartbeat=None,
                                             autoping=True) as ws:
            log.info("event=pdd_connected app=%s", self.app.app_key)
            beat = asyncio.get_running_loop().create_task(self._heartbeat(ws))
            try:
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        await self._frame(ws, msg.data)
                    elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                        break
            finally:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat
        log.info("event=pdd_disconnected app=%s", self.app.app_key)

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            await ws.send_str(orjson.dumps({"commandType": "HeartBeat", "time": int(time.time() * 1000)}).decode())
            await asyncio.sleep(self.rt.cfg.settings.heartbeat_s)

    async def _frame(self, ws: aiohttp.ClientWebSocketResponse, data: str) -> None:
        try:
            frame = parse_json(data.encode())
        except BadPayload:
            log.warning("event=pdd_bad_frame data=%r", data[:200])
            return
        if not isinstance(frame, dict):
            return
        cmd = frame.get("commandType")
        if cmd == "Fail":
            log.warning("event=pdd_fail frame=%r", frame)
        if cmd != "Common":
            return
        message = frame.get("message")
        message = message if isinstance(message, dict) else {}
        mall = str(message.get("mallID", ""))
        shop = self._shop(mall)
        try:
            if shop is None:
                raise BadPayload(f"no shop configured for mallID {mall}")
            ev = to_event(shop, text_id(frame.get("id"), "id"), message)
        except BadPayload as e:  # it will never parse: acknowledge it so it is not sent forever
            log.error("event=pdd_bad_message error=%s frame=%r", e, frame)
            await ws.send_str(orjson.dumps(ack_frame(frame, message)).decode())
            return
        try:
            res = await self.rt.ingest.event(ev)
        except (StoreUnavailable, ConnectionError, OSError) as e:
            log.warning("event=pdd_not_stored id=%s error=%r", ev.event_id, e)
            return  # no Ack: the service sends it again
        await ws.send_str(orjson.dumps(ack_frame(frame, message)).decode())
        log.info("event=pdd_event id=%s type=%s status=%s", ev.event_id, ev.topic, res.status)


class PddApi:
    """``POST {api_base}`` (gw-api …/api/router) with the md5 sign; ``order`` for agents' look-ups."""

    def __init__(self, shop: ShopConfig, http: Callable[[], aiohttp.ClientSession]) -> None:
        self.shop = shop
        self._http = http

    def signed_params(self, type_: str, params: dict[str, Any], now: float | None = None) -> dict[str, str]:
        p = {"type": type_, "client_id": self.shop.app_key, "data_type": "JSON",
             "timestamp": str(int(now if now is not None else time.time()))}
        if self.shop.access_token:
            p["access_token"] = self.shop.access_token
        p.update({k: pdd_value(v) for k, v in params.items() if v is not None})
        p["sign"] = pdd_api_sign(self.shop.app_secret, p)
        return p

    async def call(self, type_: str, params: dict[str, Any]) -> dict[str, Any]:
        async with self._http().post(self.shop.api_base, data=self.signed_params(type_, params)) as r:
            text = await r.text()
            if not 200 <= r.status < 300:
                raise http_error(r.status, text)
        obj = parse_json(text.encode())
        if not isinstance(obj, dict):
            raise SendError("answer is not an object", retryable=False)
        if "error_response" in obj:
            raise SendError(f"pdd error: {str(obj['error_response'])[:200]}", retryable=False)
        return obj

    async def order(self, order: str) -> dict[str, Any]:
        return await self.call("pdd.order.information.get", {"order_sn": order})
