"""Taobao/Tmall: TMC messages by polling ``taobao.tmc.messages.consume`` / ``confirm``, and the TOP API.

Every call is a TOP request signed ``md5``, ``hmac`` (HMAC-MD5) or
``hmac-sha256`` (``sign_method`` of the shop). A consumed message is confirmed
only after it is stored; one we could not store is left unconfirmed, so TMC
delivers it again. Duplicates are dropped by message id and by business key
(topic + content). 千牛/旺旺 chat is closed: chats come through a relay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import aiohttp

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
from gateway.adapters.signing import top_sign
from gateway.adapters.web import json_field, parse_json, text_id
from gateway.errors import StoreUnavailable

if TYPE_CHECKING:
    from gateway.adapters.runtime import AdapterRuntime

log = logging.getLogger("gateway.adapters.taobao")

BEIJING = timezone(timedelta(hours=8))
CONFIRM_MAX = 200  # s_message_ids per confirm

LABELS = {
    "taobao_refund_RefundCreated": "买家发起退款",
    "taobao_refund_RefundSellerAgreeAgreement": "卖家同意退款协议",
    "taobao_refund_RefundSellerRefuseAgreement": "卖家拒绝退款协议",
    "taobao_refund_RefundBuyerModifyAgreement": "买家修改退款协议",
    "taobao_refund_RefundBuyerReturnGoods": "买家已退货",
    "taobao_refund_RefundCreateMessage": "退款留言",
    "taobao_refund_RefundSuccess": "退款成功",
    "taobao_refund_RefundClosed": "退款关闭",
    "taobao_trade_TradeCreate": "订单已创建",
    "taobao_trade_TradeBuyerPay": "买家已付款",
    "taobao_trade_TradeSellerShip": "卖家已发货",
    "taobao_trade_TradeSuccess": "交易成功",
    "taobao_trade_TradeClose": "交易关闭",
    "taobao_trade_TradeMemoModified": "订单备注已修改",
}

# TOP error codes worth retrying: 7 app call limited, 15 remote service error, 520 service busy; isp.* sub codes.
_RETRY_CODES = {7, 15, 520}


def top_timestamp(now: float | None = None) -> str:
    t = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
    return t.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


class TopApi:
    """TOP REST calls for one shop (app_key/app_secret, ``session`` = access_token)."""

    def __init__(self, shop: ShopConfig, http: Callable[[], aiohttp.ClientSession]) -> None:
        self.shop = shop
        self._http = http

    def signed_params(self, method: str, params: dict[str, Any], now: float | None = None) -> dict[str, str]:
        s = self.shop
        p = {"method": method, "app_key": s.app_key, "timestamp": top_timestamp(now), "format": "json", "v": "2.0",
             "sign_method": s.sign_method}
        if s.access_token:
            p["session"] = s.access_token
        p.update({k: str(v) for k, v in params.items() if v is not None and v != ""})  # never send empties
        p["sign"] = top_sign(s.app_secret, p, s.sign_method)
        return p

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        async with self._http().post(self.shop.api_base, data=self.signed_params(method, params)) as r:
            text = await r.text()
            if not 200 <= r.status < 300:
                raise http_error(r.status, text)
        obj = parse_json(text.encode())
        if not isinstance(obj, dict):
            raise SendError("answer is not an object", retryable=False)
        err = obj.get("error_response")
        if isinstance(err, dict):
            retry = err.get("code") in _RETRY_CODES or str(err.get("sub_code", "")).startswith("isp.")
            raise SendError(f"TOP error {err.get('code')} {err.get('sub_code', '')}: {err.get('msg', '')} "
                            f"{err.get('sub_msg', '')}".strip(), retryable=retry)
        key = method.removeprefix("taobao.").replace(".", "_") + "_response"
        body = obj.get(key, obj)
        return body if isinstance(body, dict) else {}

    async def order(self, order: str) -> dict[str, Any]:
        return await self.call("taobao.trade.fullinfo.get", {
            "tid": order,
            "fields": "tid,status,payment,buyer_nick,buyer_open_uid,created,pay_time,consign_time,orders",
        })


def tmc_messages(resp: dict[str, Any]) -> list[dict[str, Any]]:
    """The consumed messages, whether ``messages`` is ``{"tmc_message": [...]}`` or a list (simplify)."""
    m = resp.get("messages")
    if isinstance(m, dict):
        m = m.get("tmc_message")
    return [x for x in m if isinstance(x, dict)] if isinstance(m, list) else []


def to_event(shop: ShopConfig, m: dict[str, Any]) -> PlatformEvent:
    msg_id = text_id(m.get("id"), "id")
    topic = text_id(m.get("topic"), "topic")
    content = json_field(m.get("content", "{}"), "content")
    if not isinstance(content, dict):
        raise BadPayload("content must be a JSON object")
    category, label, opens = classify(topic, "taobao_refund_", "taobao_trade_", LABELS)
    buyer = text_id(content.get("buyer_open_uid") or content.get("buyer_nick"), "content.buyer_nick",
                    required=False, max_chars=64)
    return PlatformEvent(
        "taobao", shop.shop_id, msg_id, category, topic, label,
        order=text_id(content.get("tid"), "content.tid", required=False, max_chars=64),
        aftersale_id=text_id(content.get("refund_id"), "content.refund_id", required=False, max_chars=64),
        buyer_id=buyer, buyer_nick=str(content.get("buyer_nick") or buyer)[:64], opens=opens,
        business_key=business_key(topic, content), raw=m,
    )


class TmcPoller:
    """Consumes one app's TMC group and confirms what it stored, until cancelled."""

    def __init__(self, rt: AdapterRuntime, shops: list[ShopConfig]) -> None:
        self.rt = rt
        self.shops = shops
        self.app = shops[0]
        self.api = TopApi(self.app, rt.http)

    def _shop(self, m: dict[str, Any]) -> ShopConfig | None:
        ids = {str(m.get("user_id", "")), str(m.get("user_nick", ""))} - {""}
        for s in self.shops:
            if s.shop_id in ids:
                return s
        return self.shops[0] if len(self.shops) == 1 else None

    async def run(self) -> None:
        s = self.rt.cfg.settings
        failures = 0
        while True:
            try:
                got = await self.poll_once()
                failures = 0
                if not got:
                    await asyncio.sleep(self.app.poll_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                failures += 1
                delay = backoff_delay(failures, min(1.0, s.reconnect_max_s), s.reconnect_max_s)
                log.warning("event=tmc_poll_failed app=%s error=%s retry_in_s=%.2f", self.app.app_key, short_error(e),
                            delay)
                await asyncio.sleep(delay)

    async def poll_once(self) -> int:
        """One consume (and confirm); the number of messages consumed."""
        resp = await self.api.call("taobao.tmc.messages.consume", {"group_name": self.app.group_name,
                                                                    "quantity": 100})
        messages = tmc_messages(resp)
        done: list[str] = []
        for m in messages:
            shop = self._shop(m)
            try:
                if shop is None:
                    raise BadPayload(f"no shop configured for user {m.get('user_id')} / {m.get('user_nick')}")
                ev = to_event(shop, m)
            except BadPayload as e:  # it will never parse: confirm it so it is not redelivered for 24 h
                log.error("event=tmc_bad_message error=%s message=%r", e, m)
                if m.get("id") is not None:
                    done.append(str(m["id"]))
                continue
            try:
                res = await self.rt.ingest.event(ev)
            except (StoreUnavailable, ConnectionError, OSError) as e:
                log.warning("event=tmc_not_stored id=%s error=%r", ev.event_id, e)
                break  # the rest stays unconfirmed: TMC sends it again
            done.append(ev.event_id)
            log.info("event=tmc_event id=%s topic=%s status=%s", ev.event_id, ev.topic, res.status)
        for i in range(0, len(done), CONFIRM_MAX):
            await self.api.call("taobao.tmc.messages.confirm", {"group_name": self.app.group_name,
                                                                "s_message_ids": ",".join(done[i:i + CONFIRM_MAX])})
        return len(messages)
