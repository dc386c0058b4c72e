"""The Redis store's liveness: heartbeat, reaping dead instances, binding sessions again.

- the heartbeat: ``hb:<instance>`` with a TTL, refreshed every ``heartbeat_s``;
- the reaper: an instance whose heartbeat expired has its agents treated as
  disconnected (offline + ``grace:<agent>`` timer) and its in-flight timers put
  back, by exactly one survivor (``reap_instance.lua``);
- the rebind: an instance that finds it was reaped while alive (a long pause, a
  partition) binds the agent sessions it still serves again and emits RESYNC.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from gateway.errors import StoreUnavailable
from gateway.model import AgentStatus
from gateway.store.keys import Keys
from gateway.store.redis_bus import RESYNC, RedisBus
from gateway.store.redis_runner import ScriptRunner

log = logging.getLogger("gateway.store.redis")


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class Liveness:
    def __init__(
        self,
        runner: ScriptRunner,
        bus: RedisBus,
        keys: Keys,
        *,
        instance: str,
        agent_grace_s: float,
        heartbeat_s: float,
        instance_ttl_s: float,
        closing: Callable[[], bool],
    ) -> None:
        self._runner = runner
        self._bus = bus
        self.keys = keys
        self.instance = instance
        self.agent_grace_s = agent_grace_s
        self.heartbeat_s = heartbeat_s
        self.instance_ttl_s = instance_ttl_s
        self._closing = closing
        self.sessions: dict[str, tuple[str, AgentStatus]] = {}  # agents bound through this instance
        self._connected_since: float | None = None  # monotonic, for the reaper's warm-up

    async def beat(self) -> None:
        k = self.keys
        ttl_ms = int(self.instance_ttl_s * 1000)
        fresh = await self._runner.run("heartbeat", [k.heartbeat(self.instance), k.instances], [self.instance, ttl_ms])
        if self._connected_since is None:
            self._connected_since = time.monotonic()
        if int(fresh) and self.sessions:
            await self._rebind()

    async def _rebind(self) -> None:
        """A survivor reaped us while we could not reach Redis: bind our live sessions again."""
        log.warning("event=instance_was_reaped instance=%s sessions=%d", self.instance, len(self.sessions))
        for agent, (session, status) in list(self.sessions.items()):
            res = await self._runner.run("agent_connected", [self.keys.agent(agent)],
                                         [agent, session, status.value, self.instance, "1"])
            if _str(res[0]) != "ok":
                self.sessions.pop(agent, None)  # it lives elsewhere now
        self._bus.emit(RESYNC, {})  # agents re-check what they hold

    async def loop(self) -> None:
        while not self._closing():
            await asyncio.sleep(self.heartbeat_s)
            if self._closing():
                return
            try:
                await self.beat()
                assert self._connected_since is not None
                # Only reap once we have been connected for a whole TTL: after a
                # Redis restart every heartbeat is gone, and the others need a
                # beat of their own before they look dead.
                if time.monotonic() - self._connected_since >= self.instance_ttl_s:
                    await self._reap_dead()
            except StoreUnavailable as e:
                self._connected_since = None
                log.warning("event=heartbeat_failed instance=%s error=%r", self.instance, e)
            except Exception:
                log.exception("event=liveness_failed instance=%s", self.instance)

    async def _reap_dead(self) -> None:
        k = self.keys
        members = sorted(_str(m) for m in await self._runner.call("SMEMBERS", k.instances))
        others = [m for m in members if m != self.instance]
        if not others:
            return
        alive = await self._runner.call_many([("EXISTS", k.heartbeat(m)) for m in others])
        for inst, beating in zip(others, alive, strict=True):
            if not int(beating):
                await self.reap(inst)

    async def reap(self, instance: str) -> list[str] | None:
        k = self.keys
        res = await self._runner.run(
            "reap_instance",
            [k.heartbeat(instance), k.instances, k.instance_agents(instance), k.inflight(instance), k.timers],
            [instance, repr(time.time()), repr(self.agent_grace_s)],
        )
        if res is None:
            return None
        agents = [_str(a) for a in res]
        if instance != self.instance:
            log.warning("event=instance_reaped instance=%s by=%s agents=%s", instance, self.instance, ",".join(agents))
        return agents

    async def leave(self) -> None:
        """Leave as a dead instance would, but now: what is still bound is handed over, claims go back."""
        await self._runner.call("DEL", self.keys.heartbeat(self.instance))
        await self.reap(self.instance)
