"""``/ws/customer``: hello/resume, messages, close, rate, typing."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from aiohttp import web

from gateway.errors import BadFrame, ProtocolError, RateLimited, StoreUnavailable, Unavailable
from gateway.model import ConvState, Entry, is_platform_customer
from gateway.protocol import CUSTOMER_TYPES, text_field
from gateway.server.addresses import client_address
from gateway.server.context import Context
from gateway.server.socket import WsOutlet, accept_socket, error_for, forget, read_hello, serve_frames
from gateway.service.conversations import Opened
from gateway.service.delivery import Peer
from gateway.service.metrics import METRICS
from gateway.service.ratelimit import TokenBucket, allow_all
from gateway.service.tokens import check_customer_signature

log = logging.getLogger("gateway.customer")

MAX_SEQ = 2**53  # the largest seq a JSON client can name exactly


class CustomerSession:
    # Thousands of these sit idle at once: slots, and nothing built before it is needed.
    __slots__ = ("address", "bucket", "channel", "closed", "conversation", "ctx", "customer", "last_with_agent", "name", "outlet",
                 "peer", "reopened", "typing_bucket", "vip", "wrote", "ws")

    def __init__(self, ctx: Context, ws: web.WebSocketResponse, address: str = "",
                 transport: asyncio.Transport | None = None) -> None:
        self.ctx = ctx
        self.ws = ws
        self.address = address  # the peer address (request.remote): what the per-address limits count
        self.outlet = WsOutlet(ws, transport)
        self.peer = Peer(Peer.CUSTOMER, self.outlet, ctx.service.read_log, ctx.config.limits.send_queue)
        self.peer.on_entry = self._seen
        # Token buckets start full, so one made at the first frame is the one made at connect.
        self.bucket: TokenBucket | None = None
        self.typing_bucket: TokenBucket | None = None
        self.customer = ""
        self.name = ""
        self.channel = "web"
        self.vip = False
        self.conversation = ""
        self.closed = False  # the current conversation has closed
        self.last_with_agent = ""  # the conversation a ``rate`` applies to
        self.wrote = False  # a message was sent in the current conversation from this socket
        self.reopened = False  # the current conversation reopens an earlier one (it goes straight to people)

    def _seen(self, conversation: str, entry: Entry) -> None:
        t = entry.get("type")
        if t == "assigned":
            self.last_with_agent = conversation
        elif t == "closed" and conversation == self.conversation:
            self.closed = True

    # ---------------------------------------------------------------- hello
    async def hello(self, frame: dict[str, Any]) -> bool:
        ctx = self.ctx
        cust = frame.get("customer")
        if cust is not None and not isinstance(cust, dict):
            return await self._refuse(4400, "customer must be an object")
        cust = cust or {}
        cid, name = cust.get("id"), cust.get("name", "")
        if cid is not None and (not isinstance(cid, str) or not cid or len(cid) > 64):
            return await self._refuse(4400, "customer.id must be a string of 1-64 characters")
        if not isinstance(name, str) or len(name) > 64:
            return await self._refuse(4400, "customer.name must be a string of at most 64 characters")
        channel = frame.get("channel", "web")
        if not isinstance(channel, str) or not channel or len(channel) > 32:
            return await self._refuse(4400, "channel must be a string of 1-32 characters")
        if cid and is_platform_customer(cid):  # platform buyers' ids are the adapters' alone
            return await self._refuse(4401, "customer ids of the form <platform>:… belong to platform buyers")
        secret = ctx.config.customer_secret
        signed = False
        if cid and secret:
            sig = frame.get("signature")
            if not isinstance(sig, str) or not check_customer_signature(secret, cid, sig):
                return await self._refuse(4401, "bad signature")
            signed = True
        # A priority hint counts only when the shop vouched for it (a signed hello).
        self.name, self.channel, self.vip = name, channel, signed and cust.get("vip") is True
        resume = frame.get("resume")
        if resume is not None:
            if not isinstance(resume, dict):
                return await self._refuse(4400, "resume must be an object")
            conv_id, token, after = resume.get("conversation"), resume.get("token"), resume.get("after", 0)
            if not isinstance(conv_id, str) or not isinstance(token, str):
                return await self._refuse(4401, "resume needs conversation and token")
            if isinstance(after, bool) or not isinstance(after, int) or after < 0:
                return await self._refuse(4400, "resume.after must be a non-negative integer")
            opened = await ctx.service.resume_conversation(conv_id, token, cid or "")
            if opened is None:
                return await self._refuse(4401, "resume token does not match")
            self.customer = opened.conversation.customer_id
            self._start(opened, after)
            return True
        self.customer = cid or f"anon-{uuid.uuid4().hex[:16]}"
        await self._open()
        return True

    async def _open(self) -> None:
        opened = await self.ctx.service.open_conversation(self.customer, self.name, self.channel)
        # The welcome of a new conversation shows it as opened (a greeting at most),
        # even if the first message is stored before the welcome goes out.
        self._start(opened, 0, list(opened.log))

    async def _refuse(self, code: int, reason: str) -> bool:
        await self.outlet.send_frame({"type": "error", "code": "unauthorized" if code == 4401 else "bad_frame",
                                      "message": reason})
        await self.outlet.close(code, reason)
        return False

    def _start(self, opened: Opened, after: int, snapshot: list[Entry] | None = None) -> None:
        """Watch the conversation and send ``welcome`` from inside the peer's ordered task."""
        conv = opened.conversation
        self.conversation = conv.id
        self.channel = conv.channel
        self.closed = conv.state is ConvState.CLOSED
        self.reopened = bool(conv.reopened_from)
        if conv.had_agent:
            self.last_with_agent = conv.id
        self.ctx.hub.watch(conv.id, self.peer)
        peer, svc = self.peer, self.ctx.service

        async def welcome() -> None:
            entries = snapshot if snapshot is not None else await svc.read_log(conv.id, 0)
            peer.watches[conv.id] = entries[-1]["seq"] if entries else 0
            await self.outlet.send_frame({
                "type": "welcome", "conversation": conv.id, "token": opened.token,
                "customer": conv.customer_id, "messages": [e for e in entries if e["seq"] > after],
            })
            if snapshot is not None:
                await peer.sync(conv.id)  # what was stored after the snapshot
            current = await svc.conversation(conv.id)
            position = await svc.queue_position(current) if current is not None else 0
            if current is not None and position:  # a resume while waiting
                peer.note_position(conv.id, position)
                await self.outlet.send_frame({"type": "queued", "position": position, "skill": current.skill})

        peer.call(welcome)

    # ---------------------------------------------------------------- frames
    async def on_frame(self, frame: dict[str, Any]) -> None:
        t = frame["type"]
        if t == "typing":
            if self.typing_bucket is None:
                self.typing_bucket = TokenBucket(5, 5.0, time.monotonic())
            if self.typing_bucket.allow(time.monotonic()) and not self.closed:
                await self.ctx.service.typing_from_customer(self.conversation)
            return
        now = time.monotonic()
        if self.bucket is None:
            lim = self.ctx.config.limits
            self.bucket = TokenBucket(lim.customer_messages, lim.customer_window_s, now)
        # Per connection, per conversation (survives reconnect-and-resume) and per client address:
        # a frame refused by any of them costs none of them a token.
        shared = self.ctx.customer_limits
        if not allow_all(now, self.bucket, shared.conversations.get(self.conversation, now),
                         shared.addresses.get(self.address, now)):
            raise RateLimited("too many messages, slow down", frame_id=frame.get("id"))
        if t == "message":
            await self.on_message(frame)
        elif t == "close":
            if self.closed:
                raise ProtocolError("the conversation is already closed", code="closed", frame_id=frame.get("id"))
            await self.ctx.service.customer_close(self.conversation)
            self.closed = True
        elif t == "rate":
            await self.on_rate(frame)
        elif t == "feedback":
            await self.on_feedback(frame)
        elif t == "hello":
            raise BadFrame("hello was already received", frame_id=frame.get("id"))

    async def on_message(self, frame: dict[str, Any]) -> None:
        started = time.perf_counter()
        fid = frame.get("id")
        text = text_field(frame, self.ctx.config.limits.max_text_chars)
        svc = self.ctx.service
        if self.closed:
            await self._new_conversation()
        self.wrote = True
        res = await svc.customer_message(self.conversation, fid, text, vip=self.vip)
        if res.refused:  # closed meanwhile (by the agent or the idle timer)
            await self._new_conversation()
            res = await svc.customer_message(self.conversation, fid, text, vip=self.vip)
        ack: dict[str, Any] = {"type": "ack", "seq": res.entry["seq"], "ts": res.entry["ts"]}
        if fid is not None:
            ack["id"] = fid
        self.peer.send(ack)
        METRICS.ack_seconds.observe(time.perf_counter() - started)
        if not res.duplicate:
            await svc.after_customer_message(self.conversation, text, seq=int(res.entry["seq"]), vip=self.vip,
                                             state=res.state, channel=self.channel, reopened=self.reopened)

    async def _new_conversation(self) -> None:
        self.ctx.hub.unwatch(self.conversation, self.peer)
        await self._open()

    async def on_rate(self, frame: dict[str, Any]) -> None:
        fid = frame.get("id")
        score, comment = frame.get("score"), frame.get("comment", "")
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise BadFrame("score must be an integer from 1 to 5", frame_id=fid)
        if not isinstance(comment, str) or len(comment) > 500:
            raise BadFrame("comment must be a string of at most 500 characters", frame_id=fid)
        # the conversation the last survey was for: the current one once it has closed (bot-only ones
        # too), else the last one an agent held
        target = self.conversation if self.closed else self.last_with_agent
        if not target:
            conv = await self.ctx.service.conversation(self.conversation)
            target = conv.id if conv is not None and conv.had_agent else ""
        if not target:
            raise ProtocolError("no conversation to rate", code="not_found", frame_id=fid)
        await self.ctx.service.rate(target, score, comment)
        ack: dict[str, Any] = {"type": "ack", "ts": time.time()}
        if fid is not None:
            ack["id"] = fid
        self.peer.send(ack)

    async def on_feedback(self, frame: dict[str, Any]) -> None:
        """Helpful or not, on a bot message of this socket's conversation (the current one, or the
        last one while no message has opened the next)."""
        fid = frame.get("id")
        seq, helpful = frame.get("seq"), frame.get("helpful")
        if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
            raise BadFrame("seq must be a positive integer: the seq of a bot message", frame_id=fid)
        if not isinstance(helpful, bool):
            raise BadFrame("helpful must be true or false", frame_id=fid)
        await self.ctx.service.feedback(self.conversation, seq, helpful)  # NotFound: not a bot message here
        ack: dict[str, Any] = {"type": "ack", "ts": time.time()}
        if fid is not None:
            ack["id"] = fid
        self.peer.send(ack)

    # ---------------------------------------------------------------- loop
    def who(self) -> str:
        return f"customer={self.customer} conversation={self.conversation}"

    async def run(self) -> None:
        ctx = self.ctx
        hello = await read_hello(self.ws, CUSTOMER_TYPES, ctx.config.limits.hello_timeout_s)
        if hello is None:
            return
        if not ctx.customer_limits.hellos.allow(self.address, time.monotonic()):
            await self.outlet.send_frame(error_for(RateLimited("too many connections from this address, "
                                                               "try again later")))
            await self.outlet.close(1013, "try again later")
            return
        ctx.peers.add(self.peer)
        METRICS.customers_connected.inc()
        try:
            try:
                if not await self.hello(hello):
                    return
            except (StoreUnavailable, OSError) as e:
                log.warning("event=hello_unavailable error=%r", e)
                await self.outlet.send_frame(error_for(Unavailable("the service is unavailable, retry")))
                await self.outlet.close(1011, "store unavailable")
                return
            del hello  # not held for the session's life
            await serve_frames(self.ws, CUSTOMER_TYPES, self)
        finally:
            METRICS.customers_connected.dec()
            ctx.peers.discard(self.peer)
            ctx.hub.drop(self.peer)
            await self.peer.stop()
            await self._leave()

    async def _leave(self) -> None:
        """A conversation opened by a hello and left without a word is not kept (issue 12: hellos alone
        piled up conversations); one another socket here still watches is left alone."""
        if not self.conversation or self.wrote or self.closed or self.ctx.hub.watchers.get(self.conversation):
            return
        try:
            await self.ctx.service.discard_unused(self.conversation)
        except (StoreUnavailable, OSError) as e:  # its idle timer discards it later
            log.warning("event=discard_unavailable conversation=%s error=%r", self.conversation, e)


async def customer_ws(request: web.Request) -> web.StreamResponse:
    ctx: Context = request.app["ctx"]
    ws = await accept_socket(request, ctx.config.limits.max_frame_bytes, ctx.accepting)
    address = client_address(request, ctx.config.limits.trusted_proxies)
    session = CustomerSession(ctx, ws, address, request.transport)
    try:
        await session.run()
    finally:
        session.peer.on_entry = None  # bound to the session: a cycle otherwise
        forget(ws)
    return ws
