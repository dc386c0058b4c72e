"""Shared steps for end-to-end tests: sign in customers and agents over real websockets."""

from __future__ import annotations

from typing import Any

from tests.support import Client, is_


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
