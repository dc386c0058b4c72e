"""The Redis store's conversation steps: each is one Lua script, one round trip.

A mixin of ``RedisStore`` (``gateway/store/redis.py``): it needs ``keys`` and
``_run`` from there. The memory store does the same in plain Python; the
contract suite holds both to one behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from gateway.errors import NotAssigned, NotFound
from gateway.model import Conversation, ConvState, Entry, MetaPatch, Priority
from gateway.store import redis_codec as codec
from gateway.store.base import (
    AppendResult,
    CloseOutcome,
    CloseResult,
    FirstResponse,
    Guard,
    HandoffRequest,
    PendingTurn,
    Placement,
)
from gateway.store.keys import Keys

_UPDATABLE = ("customer_name", "meta", "rating", "rating_comment", "priority", "skill")


class ConversationSteps:
    keys: Keys

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    # conversations ---------------------------------------------------
    async def create_conversation(
        self, conv: Conversation, *, greeting: Entry | None = None, timer: tuple[str, float] | None = None
    ) -> list[Entry]:
        k = self.keys
        args: list[Any] = [conv.id, codec.entry_body(greeting), timer[0] if timer else "",
                           codec.num(timer[1]) if timer else "0", *codec.conversation_fields(conv)]
        res = await self._run("create_conversation",
                              [k.conv(conv.id), k.log(conv.id), k.dedupe(conv.id), k.customer(conv.customer_id)], args)
        stored = codec.text(res)
        return [orjson.loads(stored)] if stored else []

    async def update_conversation(self, conversation: str, fields: dict[str, Any]) -> None:
        args: list[Any] = ["1" if "meta" in fields else "0"]
        for key in _UPDATABLE:
            if key not in fields:
                continue
            v = fields[key]
            if key == "meta":
                args += codec.meta_fields(dict(v))
            elif key == "priority":
                args += [key, Priority(v).value]
            else:
                args += [key, codec.num(v) if isinstance(v, int | float) and not isinstance(v, bool) else str(v)]
        if not int(await self._run("update_conversation", [self.keys.conv(conversation)], args)):
            raise NotFound(f"no conversation {conversation}")

    async def patch_meta(self, conversation: str, patch: MetaPatch) -> bool:
        return bool(int(await self._run("patch_meta", [self.keys.conv(conversation)], [codec.patch(patch)])))

    async def rate(self, conversation: str, score: int, comment: str) -> str | None:
        res = await self._run("rate", [self.keys.conv(conversation)], [str(score), comment])
        return None if res is None else codec.text(res)

    async def discard_unused(self, conversation: str) -> bool:
        k = self.keys
        res = await self._run("discard_unused", [k.conv(conversation)], [conversation])
        return bool(int(res))

    async def raise_priority(self, conversation: str, priority: Priority) -> bool:
        res = await self._run("raise_priority", [self.keys.conv(conversation)], [Priority(priority).value])
        return bool(int(res))

    async def feedback(self, conversation: str, seq: int, helpful: bool) -> bool:
        k = self.keys
        res = await self._run("feedback", [k.conv(conversation), k.log(conversation)],
                              [conversation, str(int(seq)), "1" if helpful else "0"])
        return bool(int(res))

    # log -------------------------------------------------------------
    async def append(
        self,
        conversation: str,
        entry: Entry,
        *,
        client_id: str | None = None,
        guard: Guard | None = None,
        timer: tuple[str, float] | None = None,
        cancel: tuple[str, ...] = (),
        turn_due: float | None = None,
        vip: bool = False,
        turn: int = 0,
        meta: MetaPatch | None = None,
    ) -> AppendResult:
        k = self.keys
        g = guard or Guard()
        res = await self._run(
            "append",
            [k.conv(conversation), k.log(conversation), k.dedupe(conversation)],
            [conversation, codec.entry_body(entry),
             "0" if client_id is None else "1", client_id or "",
             g.state.value if g.state is not None else "",
             "0" if g.agent is None else "1", g.agent or "",
             "1" if g.open else "0",
             timer[0] if timer else "", codec.num(timer[1]) if timer else "0",
             codec.num(turn_due) if turn_due is not None else "", "1" if vip else "0", str(turn),
             codec.patch(meta), *cancel],
        )
        status = codec.text(res[0])
        if status == "ok":
            stored = orjson.loads(res[1])
            first = None
            if len(res) > 3:  # an agent's first message after the hand-off
                first = FirstResponse(stored["ts"] - float(codec.text(res[3])), codec.text(res[4]), codec.text(res[5]))
            return AppendResult(stored, state=ConvState(codec.text(res[2])), first_response=first)
        if status == "dup":
            return AppendResult(orjson.loads(res[1]), duplicate=True)
        if status == "refused":
            return AppendResult({}, refused=True)
        raise NotFound(f"no conversation {conversation}")

    async def pending_turn(self, conversation: str, seq: int) -> PendingTurn | None:
        k = self.keys
        res = await self._run("pending_turn", [k.conv(conversation), k.log(conversation)], [conversation, str(seq)])
        if not res:
            return None
        return PendingTurn(conversation, seq, ConvState(codec.text(res[0])), codec.text(res[1]),
                           orjson.loads(res[2]), codec.text(res[3]) == "v", bool(codec.text(res[4])))

    # routing ---------------------------------------------------------
    async def handoff(self, conversation: str, req: HandoffRequest) -> Placement | None:
        k = self.keys
        res = await self._run(
            "handoff", [k.conv(conversation), k.tickets],
            [conversation, codec.entry_body(req.notice), req.skill, Priority(req.priority).value,
             orjson.dumps(req.channel_skills), req.default_skill, codec.patch(req.meta), str(req.turn),
             req.sla[0] if req.sla else "", codec.num(req.sla[1]) if req.sla else "0", codec.entry_body(req.note),
             req.overflow[0] if req.overflow else "", codec.num(req.overflow[1]) if req.overflow else "0"],
        )
        status = codec.text(res[0])
        if status == "not_found":
            raise NotFound(f"no conversation {conversation}")
        if status == "none":
            return None
        return codec.placement(res[1])

    async def overflow(self, conversation: str, skill: str, notice: Entry) -> Placement | None:
        res = await self._run("overflow", [self.keys.conv(conversation)],
                              [conversation, skill, codec.entry_body(notice)])
        return codec.placement(res[1]) if codec.text(res[0]) == "ok" else None

    async def close_conversation(
        self,
        conversation: str,
        reason: str,
        *,
        by_agent: str = "",
        notice: Entry | None = None,
        idle_retry: tuple[str, float] | None = None,
        survey: bool = False,
        discard_unused: bool = False,
        outcome: CloseOutcome | None = None,
    ) -> CloseResult:
        o = outcome or CloseOutcome("")
        res = await self._run(
            "close_conversation", [self.keys.conv(conversation)],
            [conversation, reason, by_agent, codec.entry_body(notice),
             idle_retry[0] if idle_retry else "", codec.num(idle_retry[1]) if idle_retry else "0",
             "1" if survey else "0", "1" if discard_unused else "0",
             o.resolution, o.category, codec.num(float(o.follow_up_at)) if o.follow_up_at else "", o.note],
        )
        status = codec.text(res[0])
        if status == "discarded":
            return CloseResult(False, None, discarded=True)
        if status == "not_found":
            raise NotFound(f"no conversation {conversation}")
        if status == "not_assigned":
            raise NotAssigned(f"{by_agent} does not hold {conversation}")
        if status == "unchanged":
            return CloseResult(False, codec.conversation(res[1]))
        return CloseResult(True, codec.conversation(res[4]), codec.text(res[1]), tuple(codec.placements(res[3])),
                           codec.text(res[2]))

    async def agent_disconnected(
        self, agent: str, session: str, *, grace: tuple[str, float] | None = None, requeue: bool = False
    ) -> bool:
        res = await self._run(
            "agent_disconnected", [self.keys.agent(agent)],
            [agent, session, grace[0] if grace else "", codec.num(grace[1]) if grace else "0",
             "1" if requeue else "0"],
        )
        self._forget_session(agent, session)
        return bool(int(res))

    def _forget_session(self, agent: str, session: str) -> None:
        """Hook: the store drops its record of a session bound through this instance."""
