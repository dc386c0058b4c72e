"""Peer: ordered, bounded delivery with no task and no queue while idle."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.model import Entry
from gateway.service.delivery import Hub, Peer


class Outlet:
    def __init__(self, fail_on: str | None = None, slow: asyncio.Event | None = None) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closes: list[int] = []
        self.fail_on = fail_on
        self.slow = slow

    async def send_frame(self, frame: dict[str, Any]) -> None:
        if self.slow is not None:
            await self.slow.wait()
        if frame.get("type") == self.fail_on:
            raise ConnectionResetError("gone")
        self.frames.append(frame)

    async def close(self, code: int, reason: str) -> None:
        self.closes.append(code)


def make_log(entries: list[Entry]) -> Any:
    async def read_log(conversation: str, after: int) -> list[Entry]:
        await asyncio.sleep(0)
        return [e for e in entries if e["seq"] > after]

    return read_log


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_idle_peer_holds_no_task_nor_queue_and_keeps_order() -> None:
    out = Outlet()
    log = [{"seq": i, "type": "message", "from": "bot", "text": str(i)} for i in range(1, 6)]
    peer = Peer(Peer.CUSTOMER, out, make_log(log))
    assert peer._task is None and peer._inbox is None
    hub = Hub()
    hub.watch("c1", peer, 0)

    async def welcome() -> None:
        await asyncio.sleep(0)
        await out.send_frame({"type": "welcome"})

    peer.call(welcome)
    peer.send({"type": "ack", "id": "a"})
    peer.offer("c1", log[0])
    peer.offer("c1", log[3])  # a gap: the rest comes from the log, in order
    peer.send({"type": "ack", "id": "b"})
    await settle()
    assert [f.get("seq") or f.get("id") or f["type"] for f in out.frames] == ["welcome", "a", 1, 2, 3, 4, 5, "b"]
    assert peer._task is None and peer._inbox is None  # drained: nothing held while idle
    peer.offer("c1", log[3])  # duplicates: dropped
    peer.offer("c1", log[4])
    log.append({"seq": 6, "type": "message", "from": "customer", "text": "6"})  # the customer has it (acked)
    log.append({"seq": 7, "type": "message", "from": "agent", "text": "7"})
    peer.offer("c1", log[6])
    await settle()
    assert [f.get("seq") for f in out.frames[8:]] == [7]
    assert peer._task is None and peer._inbox is None
    await peer.stop()


async def test_a_push_during_delivery_goes_out_behind_it() -> None:
    gate = asyncio.Event()
    out = Outlet(slow=gate)
    peer = Peer(Peer.AGENT, out, make_log([]))
    peer.send({"type": "ack", "id": "1"})
    await settle()
    task = peer._task
    peer.send({"type": "ack", "id": "2"})
    gate.set()
    await settle()
    assert [f["id"] for f in out.frames] == ["1", "2"]
    assert task is not None and task.done() and peer._task is None


async def test_too_many_waiting_closes_1013_and_drops_the_rest() -> None:
    gate = asyncio.Event()
    out = Outlet(slow=gate)
    peer = Peer(Peer.CUSTOMER, out, make_log([]), maxsize=4)
    peer.send({"type": "ack", "id": "0"})
    await settle()  # being sent
    for i in range(1, 5):  # four waiting
        peer.send({"type": "ack", "id": str(i)})
    assert not peer.closed
    peer.send({"type": "ack", "id": "5"})  # the fifth waiting one: too slow
    peer.send({"type": "ack", "id": "6"})
    await settle()
    assert peer.closed and out.closes == [1013]
    gate.set()
    await settle()
    assert len(out.frames) <= 1  # at most the one that was being written
    await peer.stop()
    assert peer._task is None


async def test_a_failed_send_ends_the_peer_1011() -> None:
    out = Outlet(fail_on="boom")
    peer = Peer(Peer.CUSTOMER, out, make_log([]))
    peer.send({"type": "boom"})
    peer.send({"type": "ack", "id": "after"})
    await settle()
    assert peer.closed and out.closes == [1011] and out.frames == []
    peer.send({"type": "ack", "id": "later"})  # ignored once closed
    await settle()
    assert out.frames == [] and peer._task is None


async def test_stop_cancels_a_running_delivery() -> None:
    out = Outlet(slow=asyncio.Event())
    peer = Peer(Peer.CUSTOMER, out, make_log([]))
    peer.send({"type": "ack", "id": "1"})
    await settle()
    task = peer._task
    await peer.stop()
    assert task is not None and task.cancelled() and peer._task is None and peer._inbox is None


async def test_hub_watchers_and_queue_positions() -> None:
    hub = Hub()
    a, b = Outlet(), Outlet()
    pa, pb = Peer(Peer.CUSTOMER, a, make_log([])), Peer(Peer.AGENT, b, make_log([]))
    hub.watch("c1", pa)
    hub.watch("c1", pa)
    hub.watch("c1", pb)
    assert hub.watchers["c1"] == (pa, pb)
    hub.on_bus("q:presale", {"queue": ["c0", "c1"]})
    hub.on_bus("q:presale", {"queue": ["c0", "c1"]})  # unchanged: not sent again
    hub.on_bus("q:presale", {"queue": ["c1"]})
    await settle()
    assert a.frames == [{"type": "queued", "position": 2, "skill": "presale"},
                        {"type": "queued", "position": 1, "skill": "presale"}]
    assert b.frames == []
    hub.unwatch("c1", pa)
    assert hub.watchers["c1"] == (pb,) and pa.positions is None and "c1" not in pa.watches
    hub.drop(pb)
    assert hub.watchers == {}
