"""From the conversation log to the platforms: which entries go out, once, and what the agent sees.

The hub's tap shows every log entry on this instance (on every instance, with
Redis). For platform conversations, bot, agent and system messages go to the
buyer, and a ``closed`` entry of a conversation that had an agent sends the
rating prompt (``texts.platform_survey``). Each (conversation, seq) is claimed
once (``PlatformService.claim_once``), so with many instances exactly one sends it.

Delivery is reported to the agents watching the conversation as a frame (not
stored)::

    {"type":"delivery","conversation":"c-…","entry_seq":7,"status":"sent"|"failed","error":"…"}

and a failure is also written to the log as an internal system note
(``"internal": true``, never sent to the buyer; ``ConversationService.note``)
and, unless there was no way to reach the buyer at all, to the dead-letter list
(``GET /api/adapters/failures``). Everything goes through the services: the
store is never touched from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from gateway.adapters.base import OutboundMessage
from gateway.adapters.config import AdaptersConfig
from gateway.adapters.outbox import Outbox, Outcome
from gateway.config import Config
from gateway.errors import StoreUnavailable
from gateway.model import Entry
from gateway.service.conversations import ConversationService
from gateway.service.delivery import RESYNC
from gateway.service.ids import is_platform_conversation
from gateway.service.platform import PlatformService

log = logging.getLogger("gateway.adapters.outbound")

OUT_SENDERS = ("bot", "agent", "system")
_CACHE = 10_000  # conversations remembered per instance (platform or not, last seq handled)


def platform_binding(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    b = meta.get("platform")
    return b if isinstance(b, dict) and b.get("platform") and b.get("shop") else None


def render(entry: Entry) -> str:
    """The text a buyer gets for a log entry: suggestions become a numbered list."""
    text = str(entry.get("text", ""))
    suggestions = entry.get("suggestions") or []
    if suggestions:
        lines = [f"{i}. {s.get('question', '')}" for i, s in enumerate(suggestions, 1) if isinstance(s, dict)]
        text = "\n".join([text, *lines]) if text else "\n".join(lines)
    return text


def last_buyer_msg_id(entries: list[Entry]) -> str:
    for e in reversed(entries):
        p = e.get("platform")
        if e.get("from") == "customer" and isinstance(p, dict) and p.get("msg_id"):
            return str(p["msg_id"])
    return ""


class OutboundRouter:
    def __init__(self, service: ConversationService, platform: PlatformService, config: Config,
                 adapters: AdaptersConfig) -> None:
        self.service = service
        self.platform = platform
        self.config = config
        self.adapters = adapters
        self.outboxes: dict[str, Outbox] = {}  # shop key -> its outbox
        self._inbox: asyncio.Queue[tuple[str, Entry | None]] = asyncio.Queue(50_000)
        self._is_platform: OrderedDict[str, bool] = OrderedDict()
        self._last: OrderedDict[str, int] = OrderedDict()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="adapters-outbound")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # ------------------------------------------------------------ the hub's tap (sync, never blocks)
    def tap(self, topic: str, payload: dict[str, Any]) -> None:
        if topic == RESYNC:
            self._put(("", None))
        elif topic.startswith("c:") and "seq" in payload:
            self._put((topic[2:], payload))

    def _put(self, item: tuple[str, Entry | None]) -> None:
        try:
            self._inbox.put_nowait(item)
        except asyncio.QueueFull:  # the log has them all: re-read every known conversation later
            log.warning("event=outbound_overflow")
            with contextlib.suppress(asyncio.QueueFull):
                self._inbox.get_nowait()
                self._inbox.put_nowait(("", None))

    async def _run(self) -> None:
        while True:
            conversation, entry = await self._inbox.get()
            try:
                if entry is None:
                    await self._resync()
                else:
                    await self._offer(conversation, entry)
            except asyncio.CancelledError:
                raise
            except (StoreUnavailable, ConnectionError, OSError) as e:
                log.warning("event=outbound_store_unavailable conversation=%s error=%r", conversation, e)
                await asyncio.sleep(0.5)
                self._put(("", None))
            except Exception:
                log.exception("event=outbound_failed conversation=%s", conversation)

    # ------------------------------------------------------------ ordering, gaps, claims
    async def _platform(self, conversation: str) -> bool:
        if not is_platform_conversation(conversation):
            return False  # a web conversation: no read, on every instance, for every conversation
        known = self._is_platform.get(conversation)
        if known is None:
            conv = await self.service.conversation(conversation)
            known = conv is not None and platform_binding(conv.meta) is not None
            self._is_platform[conversation] = known
            if len(self._is_platform) > _CACHE:
                self._is_platform.popitem(last=False)
        else:
            self._is_platform.move_to_end(conversation)
        return known

    async def _offer(self, conversation: str, entry: Entry) -> None:
        if not await self._platform(conversation):
            return
        seq = int(entry["seq"])
        last = self._last.get(conversation)
        if last is not None and seq <= last:
            return
        # A gap means missed rings: the log has the entries in between.
        entries = [entry] if last is None or seq == last + 1 else await self.service.read_log(conversation, last)
        for e in entries:
            if e["seq"] <= self._last.get(conversation, 0):
                continue
            self._last[conversation] = int(e["seq"])
            self._last.move_to_end(conversation)
            await self._consider(conversation, e)
        while len(self._last) > _CACHE:
            self._last.popitem(last=False)

    async def _resync(self) -> None:
        for conversation, last in list(self._last.items()):
            for e in await self.service.read_log(conversation, last):
                await self._offer(conversation, e)

    async def _consider(self, conversation: str, entry: Entry) -> None:
        t, sender = entry.get("type"), entry.get("from")
        survey = t == "closed"
        if not survey and (t != "message" or sender not in OUT_SENDERS or entry.get("internal")):
            return
        seq = int(entry["seq"])
        if not await self.platform.claim_once(f"adapters:out:{conversation}:{seq}",
                                              self.adapters.settings.dedupe_ttl_s):
            return  # another instance has it
        conv = await self.service.conversation(conversation)
        binding = platform_binding(conv.meta) if conv is not None else None
        if conv is None or binding is None:
            return
        if survey:
            if not conv.had_agent:
                return
            text, sender = self.config.texts.platform_survey, "system"
        else:
            text = render(entry)
        if not text.strip():
            return
        route = str(binding.get("route", ""))
        reply = dict(binding.get("reply") or {})
        if route:
            recent = await self.service.read_log(conversation, max(0, seq - 30))
            reply.setdefault("reply_to", last_buyer_msg_id(recent))
        agent = entry.get("agent") if isinstance(entry.get("agent"), dict) else None
        msg = OutboundMessage(str(binding["platform"]), str(binding["shop"]), str(binding.get("buyer", "")),
                              conversation, seq, text, str(sender), agent, route, reply)
        await self.submit(msg)

    async def submit(self, msg: OutboundMessage) -> None:
        """Queue ``msg`` on its shop's outbox, or report why it cannot go."""
        if not msg.route:
            if msg.sender == "agent":  # bot and system texts of event-only conversations just stay in the log
                await self.on_result(msg, Outcome("failed", "no_route: this buyer cannot be reached from the "
                                                            "gateway (no chat API or relay for it)"))
            return
        outbox = self.outboxes.get(f"{msg.platform}:{msg.shop}")
        if outbox is None:
            await self.on_result(msg, Outcome("failed", f"shop {msg.platform}:{msg.shop} is not configured"))
        elif not outbox.submit(msg):
            await self.on_result(msg, Outcome("failed", "outbound queue full"))

    # ------------------------------------------------------------ results
    async def on_result(self, msg: OutboundMessage, outcome: Outcome) -> None:
        """Tell the agents; on failure keep a note in the log and a dead letter."""
        # ``entry_seq``, not ``seq``: the hub treats any payload with a ``seq`` as a log entry.
        frame: dict[str, Any] = {"type": "delivery", "conversation": msg.conversation, "entry_seq": msg.seq,
                                 "status": outcome.status}
        if outcome.error:
            frame["error"] = outcome.error
        if msg.seq:
            await self.service.notify(msg.conversation, frame, to="agent")
        if outcome.status == "sent":
            log.info("event=sent platform=%s shop=%s conversation=%s seq=%d attempts=%d", msg.platform, msg.shop,
                     msg.conversation, msg.seq, outcome.attempts)
            return
        if not outcome.error.startswith("no_route"):
            await self.platform.add_dead_letter({
                "time": time.time(), "platform": msg.platform, "shop": msg.shop, "buyer": msg.buyer,
                "conversation": msg.conversation, "seq": msg.seq, "from": msg.sender, "text": msg.text,
                "route": msg.route, "error": outcome.error, "http_status": outcome.http_status,
                "attempts": outcome.attempts,
            }, self.adapters.settings.dead_letters_keep)
        if msg.seq:
            note: Entry = {"type": "message", "from": "system", "internal": True,
                           "text": f"消息未能送达买家（第 {msg.seq} 条）：{outcome.error}",
                           "delivery": {"seq": msg.seq, "status": "failed", "error": outcome.error}}
            await self.service.note(msg.conversation, note)
