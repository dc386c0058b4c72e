"""``/ws/agent``: sign-in, status, messages, transfer, close, typing."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from aiohttp import web

from gateway.errors import BadFrame, ProtocolError, RateLimited, StoreUnavailable, Unavailable
from gateway.model import AgentStatus, Conversation, ConvState, with_feedback
from gateway.protocol import AGENT_TYPES, str_field, text_field
from gateway.server.agent_records import customer_history, follow_up_item, parse_close
from gateway.server.context import Context
from gateway.server.socket import WsOutlet, accept_socket, error_for, forget, read_hello, serve_frames
from gateway.service.delivery import Peer
from gateway.service.ratelimit import TokenBucket
from gateway.service.tokens import check_token_sha256

log = logging.getLogger("gateway.agent")


def conversation_object(conv: Conversation, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The agent-side view of a conversation (PROTOCOL.md Agent step 4, plus ``meta``)."""
    meta = conv.meta
    return {
        "id": conv.id,
        "customer": {"id": conv.customer_id, "name": conv.customer_name},
        "channel": conv.channel,
        "skill": conv.skill,
        "priority": conv.priority.value,
        "messages": with_feedback(messages, conv.feedback),
        "meta": {k: v for k, v in meta.items() if k not in ("queued_at",)},
        "created_at": conv.created_at,
        "queued_at": meta.get("queued_at"),
        "reopened_from": conv.reopened_from or None,  # the customer came back about this earlier conversation
    }


class AgentSession:
    def __init__(self, ctx: Context, ws: web.WebSocketResponse, transport: asyncio.Transport | None = None) -> None:
        self.ctx = ctx
        self.ws = ws
        self.outlet = WsOutlet(ws, transport)
        lim = ctx.config.limits
        self.peer = Peer(Peer.AGENT, self.outlet, ctx.service.read_log, lim.send_queue)
        self.peer.on_agent_event = self._on_agent_event
        self.peer.on_resync = self._reconcile
        self.bucket = TokenBucket(lim.agent_messages, lim.agent_window_s, time.monotonic())
        self.agent = ""
        self.session = uuid.uuid4().hex
        self.replaced = False

    # ------------------------------------------------------------ bus events (a:<agent>)
    def _on_agent_event(self, ev: dict[str, Any]) -> None:
        t = ev.get("type")
        if t == "assigned":
            self.peer.call(lambda: self._assigned(str(ev["conversation"])))
        elif t == "unassigned":
            conv = str(ev["conversation"])

            async def unassigned() -> None:
                if conv in self.peer.watches:
                    self.ctx.hub.unwatch(conv, self.peer)
                    await self.outlet.send_frame(
                        {"type": "unassigned", "conversation": conv, "reason": ev.get("reason", "reassigned")})

            self.peer.call(unassigned)
        elif t == "typing":
            self.peer.send({"type": "typing", "conversation": ev.get("conversation")})
        elif t == "follow_up":  # a pending close: the case joins this agent's follow-ups
            self.peer.call(lambda: self._follow_up(str(ev["conversation"])))
        elif t in ("follow_up_due", "follow_up_done"):
            self.peer.send({k: v for k, v in ev.items() if k in ("type", "conversation", "follow_up_at")})
        elif t == "_replaced" and ev.get("session") != self.session:
            self.replaced = True
            asyncio.get_running_loop().create_task(self.outlet.close(1000, "replaced by a new connection"))

    async def _assigned(self, conv_id: str) -> None:
        if conv_id in self.peer.watches:
            return  # already listed (welcome raced with the pull)
        conv = await self.ctx.service.conversation(conv_id)
        if conv is None or conv.state is not ConvState.ASSIGNED or conv.agent != self.agent:
            return  # stale: it moved on before we got here
        self.ctx.hub.watch(conv_id, self.peer)
        entries = await self.peer.catch_up(conv_id)
        obj = conversation_object(conv, entries)
        obj["history"] = await customer_history(self.ctx.archive, conv)
        await self.outlet.send_frame({"type": "assigned", "conversation": obj})

    async def _follow_up(self, conv_id: str) -> None:
        conv = await self.ctx.service.conversation(conv_id)
        if conv is not None and conv.had_agent == self.agent and conv.resolution == "pending":
            await self.outlet.send_frame({"type": "follow_up", **follow_up_item(conv)})

    async def _reconcile(self) -> None:
        """After a store reconnect: the assigned/unassigned rings may be lost; compare holdings."""
        state = await self.ctx.service.agent_state(self.agent)
        if state is None:
            return
        held = set(state.held)
        for conv_id in list(self.peer.watches):
            if conv_id not in held:
                self.ctx.hub.unwatch(conv_id, self.peer)
                await self.outlet.send_frame({"type": "unassigned", "conversation": conv_id, "reason": "reassigned"})
        for conv_id in state.held:
            await self._assigned(conv_id)

    async def _welcome(self) -> None:
        ctx = self.ctx
        state = await ctx.service.agent_state(self.agent)
        assert state is not None
        convs: list[dict[str, Any]] = []
        held: list[Conversation] = []
        for conv_id in state.held:
            conv = await ctx.service.conversation(conv_id)
            if conv is None or conv.agent != self.agent:
                continue
            ctx.hub.watch(conv_id, self.peer)
            convs.append(conversation_object(conv, await self.peer.catch_up(conv_id)))
            held.append(conv)
        # every held conversation's history at once, each bounded
        histories = await asyncio.gather(*[customer_history(ctx.archive, conv) for conv in held])
        for obj, history in zip(convs, histories, strict=True):
            obj["history"] = history
        follow_ups = [follow_up_item(c) for c in await ctx.service.agent_follow_ups(self.agent)]
        cfg = ctx.config
        await self.outlet.send_frame({
            "type": "welcome",
            "agent": {"id": state.id, "name": state.name, "skills": list(state.skills), "capacity": state.capacity},
            "conversations": convs,
            "status": state.status.value,
            "canned": list(cfg.canned),
            "skills": list(cfg.skills),
            "agents": [{"id": a.id, "name": a.profile.name, "skills": list(a.profile.skills)} for a in cfg.agents],
            "categories": list(cfg.records.categories),
            "follow_ups": follow_ups,
        })

    # ------------------------------------------------------------ hello
    async def hello(self, frame: dict[str, Any]) -> bool:
        ctx = self.ctx
        agent_id, token = frame.get("agent"), frame.get("token")
        status_raw = frame.get("status", "online")
        cfg = ctx.config.agent(agent_id) if isinstance(agent_id, str) else None
        if cfg is None or not isinstance(token, str) or not check_token_sha256(cfg.token_sha256, token):
            await self.outlet.send_frame(error_for(ProtocolError("unknown agent or bad token", code="unauthorized")))
            await self.outlet.close(4401, "unauthorized")
            return False
        if status_raw not in ("online", "away"):
            await self.outlet.send_frame(error_for(BadFrame("status must be online or away")))
            await self.outlet.close(4400, "bad hello")
            return False
        self.agent = cfg.id
        old = ctx.hub.agents.get(self.agent)
        ctx.hub.agents[self.agent] = self.peer
        if old is not None:
            old.on_agent_event = None
            ctx.hub.drop(old)
            await old.outlet.close(1000, "replaced by a new connection")
        self.peer.call(self._welcome)
        await ctx.service.agent_connected(self.agent, self.session, AgentStatus(status_raw))
        log.info("event=agent_connected agent=%s status=%s instance=%s", self.agent, status_raw, ctx.instance)
        return True

    # ------------------------------------------------------------ frames
    def _conversation(self, frame: dict[str, Any]) -> str:
        return str_field(frame, "conversation", max_chars=64)

    async def on_frame(self, frame: dict[str, Any]) -> None:
        t, fid = frame["type"], frame.get("id")
        svc = self.ctx.service
        if t == "typing":
            conv = self._conversation(frame)
            await svc.typing_from_agent(self.agent, conv)
            return
        if not self.bucket.allow(time.monotonic()):
            raise RateLimited("too many frames, slow down", frame_id=fid)
        if t == "message":
            conv = self._conversation(frame)
            text = text_field(frame, self.ctx.config.limits.max_text_chars)
            res = await svc.agent_message(self.agent, conv, fid, text)
            ack: dict[str, Any] = {"type": "ack", "seq": res.entry["seq"], "ts": res.entry["ts"]}
            if fid is not None:
                ack["id"] = fid
            self.peer.send(ack)
        elif t == "status":
            status = frame.get("status")
            if status not in ("online", "away"):
                raise BadFrame("status must be online or away", frame_id=fid)
            await svc.agent_status(self.agent, self.session, AgentStatus(status))
            self._ack(fid)
        elif t == "transfer":
            conv = self._conversation(frame)
            skill = str_field(frame, "skill", required=False, max_chars=64)
            to_agent = str_field(frame, "agent", required=False, max_chars=64)
            if bool(skill) == bool(to_agent):
                raise BadFrame("transfer needs exactly one of skill or agent", frame_id=fid)
            try:
                await svc.agent_transfer(self.agent, conv, skill=skill, to_agent=to_agent)
            except ProtocolError as e:
                e.frame_id = fid
                raise
            self._ack(fid)
        elif t == "close":
            conv = self._conversation(frame)
            close = parse_close(frame, self.ctx.config.records.categories)
            try:
                await svc.agent_close(self.agent, conv, close.resolution, category=close.category,
                                      follow_up_at=close.follow_up_at, note=close.note)
            except ProtocolError as e:
                e.frame_id = fid
                raise
            self._ack(fid)
        elif t == "hello":
            raise BadFrame("hello was already received", frame_id=fid)

    def _ack(self, fid: str | None) -> None:
        if fid is not None:
            self.peer.send({"type": "ack", "id": fid, "ts": time.time()})

    # ------------------------------------------------------------ loop
    def who(self) -> str:
        return f"agent={self.agent}"

    async def run(self) -> None:
        ctx = self.ctx
        hello = await read_hello(self.ws, AGENT_TYPES, ctx.config.limits.hello_timeout_s)
        if hello is None:
            return
        ctx.peers.add(self.peer)
        signed_in = False
        try:
            try:
                signed_in = await self.hello(hello)
            except (StoreUnavailable, OSError) as e:
                log.warning("event=agent_hello_unavailable error=%r", e)
                await self.outlet.send_frame(error_for(Unavailable("the service is unavailable, retry")))
                await self.outlet.close(1011, "store unavailable")
                return
            if not signed_in:
                return
            del hello
            await serve_frames(self.ws, AGENT_TYPES, self)
        finally:
            ctx.peers.discard(self.peer)
            ctx.hub.drop(self.peer)
            if signed_in:
                if ctx.hub.agents.get(self.agent) is self.peer:
                    del ctx.hub.agents[self.agent]
                if not self.replaced:
                    try:
                        await ctx.service.agent_disconnected(self.agent, self.session)
                    except (StoreUnavailable, OSError) as e:
                        log.warning("event=agent_disconnect_unrecorded agent=%s error=%r", self.agent, e)
            await self.peer.stop()


async def agent_ws(request: web.Request) -> web.StreamResponse:
    ctx: Context = request.app["ctx"]
    ws = await accept_socket(request, ctx.config.limits.max_frame_bytes, ctx.accepting)
    session = AgentSession(ctx, ws, request.transport)
    try:
        await session.run()
    finally:
        session.peer.on_agent_event = None  # bound to the session: a cycle otherwise
        forget(ws)
    return ws
