"""Local delivery: every log entry reaches every local socket watching its
conversation, in seq order, without duplicates, whatever the bus did.

The bus (memory listener or Redis pub/sub) only rings the bell. Each peer keeps
the last seq it delivered per conversation; an entry at ``last + 1`` goes out,
an older one is dropped, and a gap is filled from the log. Each peer does all
of it in order in its own task (started when something arrives, gone while the
peer is idle), so a slow peer never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gateway.model import Entry
from gateway.protocol import AGENT_HIDDEN_ENTRIES

log = logging.getLogger("gateway.delivery")

Frame = dict[str, Any]


class Outlet(Protocol):
    """Where a peer's frames go: a websocket, or a platform sender."""

    async def send_frame(self, frame: Frame) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


RESYNC = "_resync"
"""Bus topic a store emits after it reconnects: rings may have been missed."""

LogReader = Callable[[str, int], Awaitable[list[Entry]]]


class Peer:
    """One local client session with an ordered, bounded inbox.

    An idle peer holds no task and no queue: the first item pushed creates the
    inbox and a task that drains it in order and ends when it is empty (a held,
    idle socket is the common case, and a task, its coroutines and a queue cost
    kilobytes each). The same ordering and bounds as one long-lived task: one
    drainer at a time, items in push order, and more than ``maxsize`` items
    waiting drops the peer (1013).
    """

    __slots__ = ("_inbox", "_maxsize", "_read_log", "_task", "closed", "kind", "on_agent_event", "on_entry",
                 "on_resync", "outlet", "positions", "watches")

    CUSTOMER = "customer"
    AGENT = "agent"

    def __init__(self, kind: str, outlet: Outlet, read_log: LogReader, maxsize: int = 1024) -> None:
        self.kind = kind
        self.outlet = outlet
        self._read_log = read_log
        self._maxsize = maxsize
        self.watches: dict[str, int] = {}  # conversation -> last seq delivered; -1 = not started
        self.positions: dict[str, int] | None = None  # last queue position sent per conversation
        self._inbox: deque[tuple[Any, ...]] | None = None  # items waiting; None while idle
        self._task: asyncio.Task[None] | None = None  # the drainer, while there is something to do
        self.closed = False
        self.on_entry: Callable[[str, Entry], None] | None = None  # session hook (seen closed, assigned…)
        self.on_agent_event: Callable[[Frame], None] | None = None  # agent sessions: a:<id> bus messages
        self.on_resync: Callable[[], Awaitable[None]] | None = None  # agent sessions: re-check holdings

    async def stop(self) -> None:
        self.closed = True
        self._inbox = None
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def note_position(self, conversation: str, position: int) -> bool:
        """Record the queue position last told for ``conversation``; False if it is unchanged."""
        positions = self.positions
        if positions is None:
            positions = self.positions = {}
        elif positions.get(conversation) == position:
            return False
        positions[conversation] = position
        return True

    def forget(self, conversation: str) -> None:
        self.watches.pop(conversation, None)
        if self.positions is not None:
            self.positions.pop(conversation, None)
            if not self.positions:
                self.positions = None

    # producers (sync, never block) ----------------------------------
    def _push(self, item: tuple[Any, ...]) -> None:
        if self.closed:
            return
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = deque()
        elif 0 < self._maxsize <= len(inbox):
            # A consumer this slow cannot keep up; it resumes from the log.
            self.closed = True
            self._inbox = None
            log.warning("event=peer_overflow kind=%s", self.kind)
            asyncio.get_running_loop().create_task(self.outlet.close(1013, "too slow, reconnect and resume"))
            return
        inbox.append(item)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(inbox))

    def send(self, frame: Frame) -> None:
        self._push(("frame", frame))

    def call(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run ``fn`` inside this peer's ordered task (for replies that read the store)."""
        self._push(("call", fn))

    def offer(self, conversation: str, entry: Entry) -> None:
        self._push(("entry", conversation, entry))

    def resync(self) -> None:
        """The bus may have dropped rings (store reconnect): re-read every watched log."""
        for conversation in list(self.watches):
            self._push(("sync", conversation))
        if self.on_resync is not None:
            self.call(self.on_resync)

    # consumer --------------------------------------------------------
    async def _run(self, inbox: deque[tuple[Any, ...]]) -> None:
        """Drain ``inbox`` in order; end when it is empty (the next push starts a new drainer)."""
        try:
            while inbox and self._inbox is inbox:
                item = inbox.popleft()
                kind = item[0]
                if kind == "frame":
                    await self.outlet.send_frame(item[1])
                elif kind == "entry":
                    await self._deliver(item[1], item[2])
                elif kind == "sync":
                    await self.sync(item[1])
                else:
                    await item[1]()
                del item  # hold nothing of what was delivered while waiting for the next push
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the socket went away or the store failed: end this peer
            log.info("event=peer_ended kind=%s error=%r", self.kind, e)
            self.closed = True
            self._inbox = None
            with contextlib.suppress(Exception):
                await self.outlet.close(1011, "delivery failed, reconnect and resume")
        finally:
            # No await between the empty check and here: a push from now on starts a new drainer.
            self._task = None
            if self._inbox is inbox and not inbox:
                self._inbox = None

    async def _deliver(self, conversation: str, entry: Entry) -> None:
        last = self.watches.get(conversation)
        if last is None or last < 0:
            return  # not watched, or its start (which reads the log) is still queued
        seq = int(entry["seq"])
        if seq <= last:
            return
        entries = [entry] if seq == last + 1 else await self._read_log(conversation, last)
        for e in entries:
            if self.watches.get(conversation, -1) >= e["seq"]:
                continue
            self.watches[conversation] = e["seq"]
            await self._emit(conversation, e)

    async def sync(self, conversation: str) -> None:
        """Deliver what the log holds beyond the last seq delivered (call inside this peer's task)."""
        last = self.watches.get(conversation)
        if last is None or last < 0:
            return
        for e in await self._read_log(conversation, last):
            if self.watches.get(conversation, -1) >= e["seq"]:
                continue
            self.watches[conversation] = e["seq"]
            await self._emit(conversation, e)

    async def _emit(self, conversation: str, entry: Entry) -> None:
        if self.on_entry is not None:
            self.on_entry(conversation, entry)
        if self.kind == Peer.CUSTOMER:
            if entry.get("from") == "customer":
                return  # the customer has it already (it got the ack)
            await self.outlet.send_frame(entry)
        elif entry["type"] not in AGENT_HIDDEN_ENTRIES:
            await self.outlet.send_frame({**entry, "conversation": conversation})

    async def catch_up(self, conversation: str) -> list[Entry]:
        """Start watching: return the whole log and deliver live from its end.

        Call it from inside this peer's task (``call``) so nothing queued is lost.
        """
        entries = await self._read_log(conversation, 0)
        self.watches[conversation] = entries[-1]["seq"] if entries else 0
        return entries


class Hub:
    """This instance's registry of peers, fed by the store's bus listener."""

    def __init__(self) -> None:
        # conversation -> the local peers watching it: a tuple, since it is almost always one
        # customer (and an agent), rarely changes and is read on every bus message.
        self.watchers: dict[str, tuple[Peer, ...]] = {}
        self.agents: dict[str, Peer] = {}
        # Observers of every bus message on this instance (platform adapters' outbound).
        self.taps: list[Callable[[str, dict[str, Any]], None]] = []

    def watch(self, conversation: str, peer: Peer, last_seq: int = -1) -> None:
        peer.watches.setdefault(conversation, last_seq)
        peers = self.watchers.get(conversation, ())
        if peer not in peers:
            self.watchers[conversation] = (*peers, peer)

    def unwatch(self, conversation: str, peer: Peer) -> None:
        peer.forget(conversation)
        peers = self.watchers.get(conversation)
        if peers is not None and peer in peers:
            rest = tuple(p for p in peers if p is not peer)
            if rest:
                self.watchers[conversation] = rest
            else:
                del self.watchers[conversation]

    def drop(self, peer: Peer) -> None:
        for conversation in list(peer.watches):
            self.unwatch(conversation, peer)

    def on_bus(self, topic: str, payload: dict[str, Any]) -> None:
        if topic == RESYNC:
            unique: set[Peer] = set(self.agents.values())
            for peers in self.watchers.values():
                unique.update(peers)
            for peer in unique:
                peer.resync()
            for tap in self.taps:
                tap(topic, payload)
            return
        kind, _, key = topic.partition(":")
        for tap in self.taps:
            tap(topic, payload)
        if kind == "c":
            watching = self.watchers.get(key)
            if not watching:
                return
            if "seq" in payload:
                for p in watching:
                    p.offer(key, payload)
                return
            to = payload.get("to", Peer.CUSTOMER)
            frame = {k: v for k, v in payload.items() if k != "to"}
            for p in watching:
                if p.kind == to:
                    p.send(frame)
        elif kind == "q":
            self._queue_moved(key, payload.get("queue", []))
        elif kind == "a":
            agent = self.agents.get(key)
            if agent is not None and agent.on_agent_event is not None:
                agent.on_agent_event(payload)

    def _queue_moved(self, skill: str, queue: list[str]) -> None:
        for i, conversation in enumerate(queue):
            for p in self.watchers.get(conversation, ()):
                if p.kind == Peer.CUSTOMER and p.note_position(conversation, i + 1):
                    p.send({"type": "queued", "position": i + 1, "skill": skill})
