# Vendored from ../shared/conformance/smoke.py (the protocol smoke check); keep in sync.
"""Protocol smoke check: a running gateway against ../PROTOCOL.md, over real websockets.

A quick conformance pass over the main customer/agent path, for use while building:
  python smoke.py --url ws://127.0.0.1:8080 --agent a1 --token TOKEN [--faq-question TEXT]
The agent must be configured, have the skill that a plain "转人工" hand-off is routed to
(the default skill), and hold no conversation when the check starts.
It prints one line per step and, last, "N passed, M failed". Exit 0 only when all pass.
It is not the whole contract: routing rules, resume, limits and failures need tests of
their own.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import websockets

T = 5.0


class Peer:
    """A websocket peer that keeps every frame it receives."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws, self.frames, self.closed = ws, [], None
        self._new = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.frames.append(json.loads(raw) if isinstance(raw, str) else {"type": "<binary>"})
                self._new.set()
        except websockets.ConnectionClosed as e:
            self.closed = e.rcvd.code if e.rcvd else 1006
        self.closed = self.closed or self.ws.close_code
        self._new.set()

    async def send(self, obj: dict) -> None:
        await self.ws.send(json.dumps(obj, ensure_ascii=False))

    async def wait(self, what: str, pred, timeout: float = T) -> dict:
        end = time.monotonic() + timeout
        while True:
            for f in self.frames:
                if pred(f):
                    return f
            if self.closed is not None or time.monotonic() >= end:
                raise AssertionError(f"no {what} (closed={self.closed}); last frames: {self.frames[-4:]}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), end - time.monotonic())
            except TimeoutError:
                pass


def is_(type_: str, **kv):
    return lambda f: f.get("type") == type_ and all(f.get(k) == v for k, v in kv.items())


async def run(args: argparse.Namespace) -> int:
    results: list[tuple[str, str | None]] = []

    async def step(name: str, coro) -> bool:
        try:
            await coro
            results.append((name, None))
            print(f"PASS {name}")
            return True
        except Exception as e:  # report and go on: one line per failed step
            results.append((name, f"{type(e).__name__}: {e}"))
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            return False

    cust = Peer(await websockets.connect(f"{args.url}/ws/customer", open_timeout=T))
    agent = Peer(await websockets.connect(f"{args.url}/ws/agent", open_timeout=T))
    uid = f"u-smoke-{uuid.uuid4().hex[:8]}"
    st: dict = {}

    async def welcome() -> None:
        await cust.send({"type": "hello", "customer": {"id": uid, "name": "冒烟测试"}})
        w = await cust.wait("customer welcome", is_("welcome"))
        for key in ("conversation", "token", "customer", "messages"):
            assert key in w, f"welcome lacks {key!r}: {w}"
        assert isinstance(w["messages"], list), "welcome.messages must be a list"
        st["conv"] = w["conversation"]

    async def ack_and_dedupe() -> None:
        await cust.send({"type": "message", "id": "s1", "text": args.faq_question})
        a = await cust.wait("ack for s1", is_("ack", id="s1"))
        assert isinstance(a.get("seq"), int) and a["seq"] >= 1, f"ack needs an int seq >= 1: {a}"
        await cust.send({"type": "message", "id": "s1", "text": args.faq_question})
        await cust.wait("second ack for s1", lambda f: f is not a and is_("ack", id="s1")(f))
        again = [f for f in cust.frames if is_("ack", id="s1")(f)]
        assert again[1]["seq"] == a["seq"], f"a re-sent id must get the first ack's seq: {again}"
        st["seq"] = a["seq"]

    async def bot_reply() -> None:
        f = await cust.wait("bot message after the ack",
                            lambda f: f.get("type") == "message" and f.get("from") in ("bot", "system"))
        assert f["seq"] > st["seq"], "the bot's entry must follow the customer's in the log"

    async def agent_welcome() -> None:
        await agent.send({"type": "hello", "agent": args.agent, "token": args.token})
        w = await agent.wait("agent welcome", is_("welcome"))
        assert isinstance(w.get("agent"), dict) and w["agent"].get("id") == args.agent, f"welcome.agent: {w}"
        assert isinstance(w.get("conversations"), list), "welcome.conversations must be a list"

    async def handoff() -> None:
        await cust.send({"type": "message", "id": "s2", "text": "转人工"})
        await cust.wait("ack for 转人工", is_("ack", id="s2"))
        f = await cust.wait("assigned entry", is_("assigned"))
        assert isinstance(f.get("seq"), int) and f.get("agent", {}).get("id") == args.agent, f"assigned: {f}"
        g = await agent.wait("agent-side assigned",
                             lambda f: f.get("type") == "assigned" and isinstance(f.get("conversation"), dict))
        c = g["conversation"]
        assert c.get("id") == st["conv"], f"agent got conversation {c.get('id')}, customer has {st['conv']}"
        for key in ("customer", "channel", "skill", "priority", "messages"):
            assert key in c, f"agent-side conversation lacks {key!r}"
        assert any(m.get("text") == "转人工" for m in c["messages"]), "history must come with the assignment"

    async def chat() -> None:
        await agent.send({"type": "message", "id": "g1", "conversation": st["conv"], "text": "您好，我来帮您"})
        a = await agent.wait("agent ack", is_("ack", id="g1"))
        m = await cust.wait("agent message at customer",
                            lambda f: f.get("type") == "message" and f.get("from") == "agent")
        assert m["seq"] == a["seq"] and m.get("agent", {}).get("id") == args.agent, f"{m} vs {a}"
        await cust.send({"type": "message", "id": "s3", "text": "好的谢谢"})
        f = await agent.wait("customer message at agent", lambda f: f.get("type") == "message" and f.get("text") == "好的谢谢")
        assert f.get("conversation") == st["conv"], f"entries to agents carry the conversation id: {f}"
        seqs = [f["seq"] for f in cust.frames if "seq" in f and f.get("type") != "ack"]
        assert seqs == sorted(set(seqs)), f"customer saw seqs {seqs}"

    async def close_and_rate() -> None:
        await agent.send({"type": "close", "id": "k1", "conversation": st["conv"], "resolution": "resolved"})
        await agent.wait("unassigned on close", is_("unassigned", conversation=st["conv"]))
        await cust.wait("closed entry", is_("closed"))
        await cust.wait("survey", is_("survey"))
        await cust.send({"type": "rate", "id": "r1", "score": 5, "comment": "很好"})
        await cust.wait("ack for rate", is_("ack", id="r1"))

    async def bad_frames() -> None:
        n = len([f for f in cust.frames if f.get("type") == "error"])
        await cust.ws.send("{not json")
        await cust.wait("bad_frame", lambda f: f.get("code") == "bad_frame")
        await cust.ws.send(b"\x00binary")
        await cust.wait("second bad_frame", lambda f: len([g for g in cust.frames if g.get("code") == "bad_frame"]) >= 2)
        await cust.send({"type": "nope", "id": "u1"})
        await cust.wait("unknown_type", lambda f: f.get("code") == "unknown_type" and f.get("id") == "u1")
        assert cust.closed is None, "bad frames must not close the connection"
        assert len([f for f in cust.frames if f.get("type") == "error"]) == n + 3

    ok = await step("customer hello -> welcome", welcome())
    if ok:
        await step("message -> ack with seq; same id re-sent -> same ack", ack_and_dedupe())
        await step("bot or system entry follows the customer's message", bot_reply())
    ok = await step("agent hello -> welcome", agent_welcome()) and ok
    if ok and await step("转人工 -> assigned (customer entry, agent conversation object)", handoff()):
        await step("agent and customer chat both ways, seq in order", chat())
        await step("agent close -> unassigned, closed, survey; rate -> ack", close_and_rate())
    await step("bad JSON, binary, unknown type -> errors, connection stays open", bad_frames())
    for p in (cust, agent):
        await p.ws.close()
    failed = sum(1 for _, e in results if e)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="ws://127.0.0.1:8080")
    ap.add_argument("--agent", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--faq-question", default="什么时候发货")
    raise SystemExit(asyncio.run(run(ap.parse_args())))


if __name__ == "__main__":
    main()
