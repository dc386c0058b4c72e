"""Local stand-ins for the platforms and relays, on loopback, built from the documented formats.

Each fake checks what the gateway sends (signatures, headers, parameters) and
records it; tests import them. No tests live here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import web

from gateway.adapters import signing
from tests.support import T


async def eventually(pred: Callable[[], Any], timeout: float = T, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def eventually_async(pred: Callable[[], Awaitable[Any]], timeout: float = T, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while True:
        v = await pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class LocalServer:
    """An aiohttp app on 127.0.0.1 with a free port."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> LocalServer:
        self.runner = web.AppRunner(self.app, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        await self.close_sockets()
        if self.runner is not None:
            await self.runner.cleanup()

    async def close_sockets(self) -> None:
        """Fakes that hold websockets close them here."""


class Script:
    """Status codes to answer in turn (then 200 for ever), or one code for ever."""

    def __init__(self) -> None:
        self.queue: list[int] = []
        self.always = 0

    def next(self) -> int:
        if self.always:
            return self.always
        return self.queue.pop(0) if self.queue else 200


# ------------------------------------------------------------------ relay


class FakeRelay(LocalServer):
    """A relay's callback endpoint: checks the gateway's signature, keeps every accepted reply."""

    def __init__(self, shop: str, secret: str) -> None:
        super().__init__()
        self.shop, self.secret = shop, secret
        self.replies: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.script = Script()
        self.app.router.add_post("/callback", self._callback)

    @property
    def callback_url(self) -> str:
        return self.url + "/callback"

    async def _callback(self, request: web.Request) -> web.Response:
        body = await request.read()
        ts = request.headers.get("X-Gateway-Timestamp", "")
        if request.headers.get("X-Gateway-Shop") != self.shop or not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            self.rejected.append("headers")
            return web.Response(status=401)
        if not signing.verify_relay(self.secret, ts, body, request.headers.get("X-Gateway-Signature", "")):
            self.rejected.append("signature")
            return web.Response(status=401)
        reply = json.loads(body)
        self.attempts.append(reply)
        status = self.script.next()
        if status != 200:
            return web.Response(status=status, text="relay says no")
        if all(r["msg_id"] != reply["msg_id"] for r in self.replies):  # the relay dedupes on msg_id
            self.replies.append(reply)
        return web.json_response({"ok": True})

    def texts(self, buyer: str | None = None) -> list[str]:
        return [r["text"] for r in self.replies if buyer is None or r["buyer"] == buyer]


def with_content_type(headers: dict[str, str], content_type: str | None) -> dict[str, Any]:
    """Request kwargs with this Content-Type, or with none at all (aiohttp would add octet-stream)."""
    if content_type is None:
        return {"headers": headers, "skip_auto_headers": ["Content-Type"]}
    return {"headers": {**headers, "Content-Type": content_type}}


async def relay_post(gw_url: str, platform: str, shop: str, secret: str, records: list[dict[str, Any]],
                     *, ts: int | None = None, sign: str | None = None, body: bytes | None = None,
                     content_type: str | None = "application/json") -> tuple[int, dict[str, Any]]:
    raw = body if body is not None else json.dumps({"records": records}, ensure_ascii=False).encode()
    t = str(ts if ts is not None else int(time.time()))
    headers = {"X-Gateway-Shop": shop, "X-Gateway-Timestamp": t,
               "X-Gateway-Signature": sign if sign is not None else signing.relay_sign(secret, t, raw)}
    async with aiohttp.ClientSession() as s, s.post(f"{gw_url}/adapters/forward/{platform}", data=raw,
                                                    **with_content_type(headers, content_type)) as r:
        return r.status, await r.json(content_type=None)


def text_record(msg_id: str, buyer: str, text: str, nick: str = "买家", **kw: Any) -> dict[str, Any]:
    return {"msg_id": msg_id, "buyer": {"id": buyer, "nick": nick}, "kind": "text", "text": text, **kw}


# ------------------------------------------------------------------ 抖音 open platform


class FakeDouyin(LocalServer):
    """``POST /im/send/msg/?open_id=…`` with ``access-token``: checks and keeps each send."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.sent: list[dict[str, Any]] = []
        self.attempts = 0
        self.script = Script()
        self.error_code = 0  # a 200 answer carrying a platform error
        self.problems: list[str] = []
        self.app.router.add_post("/im/send/msg/", self._send)

    async def _send(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if request.headers.get("access-token") != self.token:
            self.problems.append("access-token")
            return web.json_response({"data": {"error_code": 2190008, "description": "access_token无效"}})
        body = await request.json()
        for k in ("msg_id", "conversation_id", "to_user_id", "content", "scene"):
            if k not in body:
                self.problems.append(f"missing {k}")
        if not request.query.get("open_id"):
            self.problems.append("open_id")
        status = self.script.next()
        if status != 200:
            return web.Response(status=status, text="busy")
        if self.error_code:
            return web.json_response({"data": {"error_code": self.error_code, "description": "不允许发送"}})
        self.sent.append({**body, "open_id": request.query["open_id"]})
        return web.json_response({"data": {"error_code": 0, "description": "", "msg_id": f"s{len(self.sent)}"}})

    def texts(self) -> list[str]:
        return [s["content"]["text"]["text"] for s in self.sent]


def douyin_event(msg_id: str, buyer: str, account: str, text: str, *, message_type: str = "text",
                 content_as_string: bool = True, client_key: str = "awkey") -> dict[str, Any]:
    content = {"conversation_short_id": f"conv-{buyer}", "server_message_id": msg_id, "conversation_type": 1,
               "message_type": message_type, "create_time": int(time.time() * 1000),
               "user_infos": [{"open_id": buyer, "nick_name": "抖音买家", "avatar": ""}]}
    if message_type == "text":
        content["text"] = text
    return {"event": "im_receive_msg", "client_key": client_key, "from_user_id": buyer, "to_user_id": account,
            "content": json.dumps(content, ensure_ascii=False) if content_as_string else content,
            "log_id": f"log-{msg_id}"}


async def douyin_push(gw_url: str, secret: str, event: dict[str, Any] | bytes, *, msg_id: str = "",
                      signature: str | None = None, content_type: str | None = "application/json"
                      ) -> tuple[int, Any]:
    """POSTs ``event`` (compact JSON, or these exact bytes) signed with ``secret`` unless ``signature``."""
    body = event if isinstance(event, bytes) else json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Msg-Id": msg_id or f"m-{time.monotonic_ns()}",
               "X-Douyin-Signature": signing.douyin_webhook_sign(secret, body) if signature is None else signature}
    async with aiohttp.ClientSession() as s, s.post(f"{gw_url}/adapters/douyin/webhook", data=body,
                                                    **with_content_type(headers, content_type)) as r:
        return r.status, await r.json(content_type=None)


# ------------------------------------------------------------------ 抖店


async def doudian_push(gw_url: str, app_key: str, secret: str, body: str | bytes, *,
                       sign: str | None = None, app_id: str | None = None,
                       content_type: str | None = "application/json") -> tuple[int, Any]:
    raw = body.encode() if isinstance(body, str) else body
    headers = {"app-id": app_key if app_id is None else app_id,
               "event-sign": signing.doudian_push_sign(app_key, secret, raw) if sign is None else sign}
    async with aiohttp.ClientSession() as s, s.post(f"{gw_url}/adapters/doudian/events", data=raw,
                                                    **with_content_type(headers, content_type)) as r:
        return r.status, await r.json(content_type=None)


def doudian_body(tag: str, msg_id: str, data: dict[str, Any]) -> str:
    """Compact UTF-8 JSON as the platform sends it, ``data`` a JSON string."""
    item = {"tag": tag, "msg_id": msg_id, "data": json.dumps(data, ensure_ascii=False, separators=(",", ":"))}
    return json.dumps([item], ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------------ Pinduoduo


class FakePdd(LocalServer):
    """The message service (websocket) and the API router, for one client_id."""

    def __init__(self, client_id: str, secret: str, token: str = "") -> None:
        super().__init__()
        self.client_id, self.secret, self.token = client_id, secret, token
        self.sockets: list[web.WebSocketResponse] = []
        self.connects = 0
        self.bad_connects = 0
        self.heartbeats = 0
        self.acks: list[dict[str, Any]] = []
        self.unacked: dict[str, dict[str, Any]] = {}  # id -> frame, resent on every new connection
        self.api_calls: list[dict[str, str]] = []
        self.api_problems: list[str] = []
        self.closing = False
        self.app.router.add_get("/message/{cid}/{ts}/{sign}", self._ws)
        self.app.router.add_post("/api/router", self._api)

    @property
    def ws_base(self) -> str:
        return self.url.replace("http://", "ws://")

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if self.closing:
            return web.Response(status=503)
        cid, ts = request.match_info["cid"], request.match_info["ts"]
        raw_path = request.raw_path.rsplit("/", 1)[-1]
        sign = unquote(raw_path)
        if cid != self.client_id or "%3D" not in raw_path or not signing.same(
                signing.pdd_ws_sign(cid, int(ts), self.secret), sign):
            self.bad_connects += 1
            return web.Response(status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connects += 1
        self.sockets.append(ws)
        for frame in list(self.unacked.values()):  # redeliver what was not acknowledged
            await ws.send_str(json.dumps(frame, ensure_ascii=False))
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            f = json.loads(msg.data)
            if f.get("commandType") == "HeartBeat":
                self.heartbeats += 1
            elif f.get("commandType") == "Ack":
                self.acks.append(f)
                self.unacked.pop(str(f.get("id")), None)
        self.sockets.remove(ws)
        return ws

    async def push(self, frame_id: int, type_: str, mall: int, content: dict[str, Any]) -> None:
        now = int(time.time() * 1000)
        frame = {"id": frame_id, "commandType": "Common", "time": now, "sendTime": now,
                 "message": {"type": type_, "mallID": mall, "content": json.dumps(content, ensure_ascii=False)}}
        self.unacked[str(frame_id)] = frame
        for ws in list(self.sockets):
            await ws.send_str(json.dumps(frame, ensure_ascii=False))

    async def drop_connections(self) -> None:
        for ws in list(self.sockets):
            await ws.close()

    async def close_sockets(self) -> None:
        self.closing = True
        await self.drop_connections()

    async def _api(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        params = {k: str(v) for k, v in form.items()}
        self.api_calls.append(params)
        expected = signing.pdd_api_sign(self.secret, params)
        if not signing.same(expected, params.get("sign", "")):
            self.api_problems.append("sign")
            return web.json_response({"error_response": {"error_code": 10019, "error_msg": "签名错误"}})
        for k in ("type", "client_id", "timestamp", "data_type"):
            if k not in params:
                self.api_problems.append(f"missing {k}")
        if self.token and params.get("access_token") != self.token:
            self.api_problems.append("access_token")
        if params.get("type") == "pdd.order.information.get":
            return web.json_response({"order_info_get_response": {"order_info": {
                "order_sn": params.get("order_sn"), "order_status": 1, "refund_status": 2, "pay_amount": 99.0}}})
        return web.json_response({"error_response": {"error_code": 10001, "error_msg": "unknown type"}})


# ------------------------------------------------------------------ Taobao TOP / TMC


class FakeTop(LocalServer):
    """TOP's router: TMC consume/confirm (unconfirmed messages come back) and trade look-ups."""

    def __init__(self, app_key: str, secret: str, redeliver_after_s: float = 0.3) -> None:
        super().__init__()
        self.app_key, self.secret = app_key, secret
        self.redeliver_after_s = redeliver_after_s
        self.pending: dict[str, dict[str, Any]] = {}  # id -> message
        self.delivered_at: dict[str, float] = {}
        self.confirmed: list[str] = []
        self.calls: list[dict[str, str]] = []
        self.problems: list[str] = []
        self.script = Script()
        self.app.router.add_post("/router/rest", self._rest)

    @property
    def api_base(self) -> str:
        return self.url + "/router/rest"

    def publish(self, msg_id: int, topic: str, content: dict[str, Any], user_id: int = 1001,
                user_nick: str = "测试店铺") -> None:
        self.pending[str(msg_id)] = {"id": msg_id, "topic": topic, "user_id": user_id, "user_nick": user_nick,
                                     "pub_app_key": "12345678", "pub_time": "2024-01-01 12:00:00",
                                     "content": json.dumps(content, ensure_ascii=False)}

    async def _rest(self, request: web.Request) -> web.Response:
        params = {k: str(v) for k, v in (await request.post()).items()}
        self.calls.append(params)
        status = self.script.next()
        if status != 200:
            return web.Response(status=status, text="busy")
        method = params.get("sign_method", "md5")
        if not signing.same(signing.top_sign(self.secret, params, method), params.get("sign", "")):
            self.problems.append("sign")
            return web.json_response({"error_response": {"code": 25, "msg": "Invalid signature"}})
        if params.get("app_key") != self.app_key or params.get("v") != "2.0" or any(v == "" for v in params.values()):
            self.problems.append("params")
        m = params.get("method")
        if m == "taobao.tmc.messages.consume":
            now = time.monotonic()
            out = []
            for mid, msg in self.pending.items():
                if now - self.delivered_at.get(mid, -1e9) >= self.redeliver_after_s:
                    self.delivered_at[mid] = now
                    out.append(msg)
            return web.json_response({"tmc_messages_consume_response": {"messages": {"tmc_message": out}}})
        if m == "taobao.tmc.messages.confirm":
            for mid in params.get("s_message_ids", "").split(","):
                if mid:
                    self.confirmed.append(mid)
                    self.pending.pop(mid, None)
            return web.json_response({"tmc_messages_confirm_response": {"is_success": True}})
        return web.json_response({"error_response": {"code": 22, "msg": "Invalid method"}})


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
