"""Shared steps for end-to-end tests: sign in customers and agents over real websockets; barriers and
the timers on an injected clock, so that "nothing happened" is shown, not waited for."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tests.support import Client, is_

if TYPE_CHECKING:
    from tests.conftest import RunningApp


async def customer(ws_url: str, cid: str | None = None, name: str = "", **hello: Any) -> tuple[Client, dict[str, Any]]:
    c = await Client.connect(f"{ws_url}/ws/customer")
    frame: dict[str, Any] = {"type": "hello", **hello}
    if cid is not None:
        frame["customer"] = {"id": cid, "name": name or cid}
    await c.send(frame)
    w = await c.wait(is_("welcome"), what="welcome")
    return c, w


async def agent(ws_url: str, agent_id: str, token: str, status: str = "online") -> tuple[Client, dict[str, Any]]:
    a = await Client.connect(f"{ws_url}/ws/agent")
    await a.send({"type": "hello", "agent": agent_id, "token": token, "status": status})
    w = await a.wait(is_("welcome"), what="agent welcome")
    return a, w


async def say(c: Client, mid: str, text: str) -> dict[str, Any]:
    await c.send({"type": "message", "id": mid, "text": text})
    return await c.wait(is_("ack", id=mid), what=f"ack {mid}")


def agents_cfg(*specs: tuple[str, list[str], int]) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"客服{i}", "skills": s, "capacity": cap, "token": f"tok-{i}"} for i, s, cap in specs]


def assigned_to(frames: list[dict[str, Any]]) -> list[str]:
    return [f["conversation"]["id"] for f in frames if f.get("type") == "assigned" and isinstance(f.get("conversation"), dict)]


# ------------------------------------------------------------------ barriers


async def barrier(c: Client, bid: str = "") -> dict[str, Any]:
    """Return once the server has handled every frame ``c`` sent before, and every reply it queued
    for ``c`` meanwhile has arrived.

    A socket's frames are handled one at a time, in order, and what the server sends it goes out in
    order; a second ``hello`` is always refused with an ``error`` carrying its id (``bad_frame``, or
    ``rate_limited`` when the client is over its limit: a refused frame costs no token).
    """
    bid = bid or f"barrier-{uuid.uuid4().hex[:8]}"
    await c.send({"type": "hello", "id": bid})
    return await c.wait(lambda f: f.get("type") == "error" and f.get("id") == bid, what=f"the reply to {bid}")


async def bus_barrier(app: RunningApp, conversation: str, *clients: Client) -> None:
    """Return once every bus message published so far on ``conversation`` (log entries, surveys, typing,
    queue moves) has reached ``clients`` (customers or agents watching it).

    A marker published now on the conversation's topic reaches each watching socket after them: one
    ordered bus per namespace (memory: in the step; Redis: one channel, one subscription), and one
    ordered outbox per socket.
    """
    mark = f"bus-{uuid.uuid4().hex[:8]}"
    for side in ("customer", "agent"):
        await app.ctx.service.notify(conversation, {"type": "_barrier", "id": mark}, to=side)
    for c in clients:
        await c.wait(is_("_barrier", id=mark), what=f"bus barrier {mark}")


# ------------------------------------------------------------------ timers on an injected clock


async def run_timers(app: RunningApp, now: float) -> list[str]:
    """One tick of the gateway's timer loop (``gateway.server.app.timer_loop``) with the clock at ``now``:
    claim the timers due by then, fire each (``ConversationService.fire``), report them done. Returns
    the keys fired.

    Tests that use it give their timers delays far longer than the test runs (20 s and more), so the
    app's own loop, on the wall clock, never reaches them: only the test moves time, and "not yet" is
    a tick just before the due time, not a wait.
    """
    store, svc = app.ctx.store, app.ctx.service
    # retry_after=now: claims of the app's own loop (on the wall clock, not reported done yet) are
    # never taken over as retries; only what is due by ``now`` is claimed
    keys = await store.claim_due(now, retry_after=now)
    for key in keys:
        await svc.fire(key)
    if keys:  # reported done (limit 0: nothing more is claimed)
        await store.claim_due(now, 0, done=tuple(keys), retry_after=now)
    return keys
