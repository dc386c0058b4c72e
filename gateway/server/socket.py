"""A websocket as a delivery outlet, and the frame-reading loop both roles share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from aiohttp.http_websocket import WS_CLOSING_MESSAGE

from gateway.errors import BadFrame, ProtocolError, StoreUnavailable, Unavailable
from gateway.protocol import encode, error_frame, parse_frame
from gateway.service.delivery import Peer
from gateway.service.metrics import METRICS

log = logging.getLogger("gateway.socket")


# How long a consumer that stopped reading has to take what was sent before its close frame.
SLOW_CLOSE_LINGER_S = 30.0


def close_frame(code: int, reason: str) -> bytes:
    """A server's (unmasked) websocket close frame: code and a reason cut to fit one short frame."""
    payload = code.to_bytes(2, "big") + reason.encode()[:120]
    return bytes((0x88, len(payload))) + payload


class WsOutlet:
    __slots__ = ("transport", "ws")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None = None) -> None:
        self.ws = ws
        self.transport = transport  # to close a consumer that stopped reading (see ``close``)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        if not self.ws.closed:
            await self.ws.send_str(encode(frame))

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code``. A client that stopped reading (our writes are backed up) still gets the
        code: the close frame is queued behind what it has not read yet and the connection is closed
        gracefully (flushed, then FIN), not reset; a reset would lose it all and show as 1006. If it does
        not read within ``SLOW_CLOSE_LINGER_S``, the connection is dropped."""
        t = self.transport
        if t is not None and not t.is_closing() and t.get_write_buffer_size() > 0:
            t.write(close_frame(code, reason))
            t.close()  # aiohttp writes nothing more to a closing transport
            asyncio.get_running_loop().call_later(SLOW_CLOSE_LINGER_S, t.abort)
            # End the session now (its reader would otherwise wait for the flush): what aiohttp's own
            # close does to wake a pending receive().
            reader = self.ws._reader
            if reader is not None:
                reader.feed_data(WS_CLOSING_MESSAGE, 0)
            return
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()[:120]), 2.0)


def error_for(e: ProtocolError) -> dict[str, Any]:
    METRICS.errors.labels(e.code).inc()
    return error_frame(e.code, e.message, e.frame_id)


async def read_hello(
    ws: web.WebSocketResponse, allowed: frozenset[str], timeout: float
) -> dict[str, Any] | None:
    """The first frame, which must be a valid ``hello``; closes 4408 / 4400 otherwise."""
    try:
        msg = await asyncio.wait_for(ws.receive(), timeout)
    except TimeoutError:
        await WsOutlet(ws).close(4408, "hello timeout")
        return None
    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
        return None
    if msg.type is aiohttp.WSMsgType.ERROR:
        return None  # aiohttp already closed it (1009 for an oversized frame)
    try:
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise BadFrame("the first frame must be a text hello")
        frame = parse_frame(msg.data, allowed)
        if frame["type"] != "hello":
            raise BadFrame("the first frame must be hello")
    except ProtocolError as e:
        await WsOutlet(ws).send_frame(error_for(e))
        await WsOutlet(ws).close(4400, "bad hello")
        return None
    return frame


def frame_from(msg: aiohttp.WSMessage, allowed: frozenset[str]) -> dict[str, Any]:
    if msg.type is not aiohttp.WSMsgType.TEXT:
        raise BadFrame("frames must be text frames holding one JSON object")
    return parse_frame(msg.data, allowed)


class FrameSession(Protocol):
    """What ``serve_frames`` serves: a session's frame handler, its ordered peer, its name in logs."""

    peer: Peer

    async def on_frame(self, frame: dict[str, Any]) -> None: ...

    def who(self) -> str: ...


_ENDED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def serve_frames(ws: web.WebSocketResponse, allowed: frozenset[str], session: FrameSession) -> None:
    """Read frames until the socket closes; every failure of one frame becomes its ``error`` frame.

    The error goes out through ``session.peer``, behind what the session already sent (acks, entries).
    Nothing of a frame is held once it is handled: an idle session keeps only its own state.
    """
    while True:
        msg = await ws.receive()
        if msg.type in _ENDED:
            break
        fid: str | None = None
        frame: dict[str, Any] | None = None
        try:
            frame = frame_from(msg, allowed)
            fid = frame.get("id")
            await session.on_frame(frame)
        except ProtocolError as e:
            if e.frame_id is None:
                e.frame_id = fid
            session.peer.send(error_for(e))
        except (StoreUnavailable, ConnectionError, OSError) as e:
            METRICS.store_unavailable.inc()
            log.warning("event=store_unavailable %s error=%r", session.who(), e)
            session.peer.send(error_for(Unavailable("nothing was stored, try again", frame_id=fid)))
        except Exception:  # a bug handling one frame must not end the session
            log.exception("event=frame_failed %s", session.who())
            session.peer.send(error_for(Unavailable("internal error, try again", frame_id=fid)))
        del msg, frame


def forget(ws: web.WebSocketResponse) -> None:
    """Break the cycles a finished websocket leaves: its stored exception's traceback holds frames that
    hold the websocket. Reference counting then frees the socket, its request and buffers at once,
    not at the next full collection (which the start-up GC settings make rare). Its heartbeat timers
    go too: a socket the peer dropped can leave them scheduled, holding it for another 30 s."""
    ws._exception = None
    ws._cancel_heartbeat()


async def accept_socket(request: web.Request, max_frame_bytes: int, accepting: bool) -> web.WebSocketResponse:
    """Upgrade to a websocket with the gateway's limits (503 while shutting down)."""
    if not accepting:
        raise web.HTTPServiceUnavailable(text="shutting down")
    ws = web.WebSocketResponse(
        # aiohttp refuses a frame whose length is >= its limit; PROTOCOL refuses only frames *over* the limit
        max_msg_size=max_frame_bytes + 1,
        heartbeat=30.0,
        compress=False,  # chat frames are small: deflate would cost CPU and a zlib context per socket
    )
    await ws.prepare(request)
    return ws
