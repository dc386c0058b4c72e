"""Issue 11's kill -9 burst: 150 customers ask for a person on instance A at once; A is killed mid-burst.

Two gateway processes (A and B) on one redis-server, ``[routing] turn_retry_s``
1 s, one agent online on B with capacity 5 and one never online (so a few
hand-offs assign and the rest queue). 150 customers on A send "转人工" at once
and A gets SIGKILL at one of three points: just after the sends, ~100 ms and
~150 ms into the burst (the issue's two figures; sooner once the burst has
reached the stage the point aims at, see ``Killer``, so that the kill lands
inside the burst on a fast machine too). The customers come back on
B with their resume tokens and resend what A never acked (same ids). Once no
bot turn is pending any more (no ``turn:`` timer scheduled or in flight, no
pending-turn field), the Redis data is audited:

- half-done conversations (a hand-off notice but not queued/assigned, queued
  but not in its queue, held by nobody, ...): 0;
- unanswered stored customer messages (a stored "转人工" with no hand-off after
  it, the conversation still with the bot): 0;
- doubled hand-offs (two notices) or doubled answers: 0;
- and every customer was handed off and sees the notice.

The counts per kill point are printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from gateway.model import ConvState
from gateway.store.keys import Keys
from tests.conftest import GatewayProcess, RedisServer
from tests.crash_support import Probe, audit, read_state
from tests.support import Client, is_
from tests.test_redis_instances import agent, agent_spec, base_config, customer, spawn, stop_all

pytestmark = pytest.mark.redis

N = 150
HANDOFF = "转人工"
NOTICE = "正在为您转接人工客服，请稍候～"
CAPACITY = 5
KILL_POINTS = {"after the sends": 0.0, "100 ms": 0.100, "150 ms": 0.150}
TURN_RETRY_S = 1.0
DEADLINE_S = 30.0
ATTEMPTS = 6  # a fast machine can finish a whole burst before the kill lands: try again, sooner


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    yield started
    stop_all(started)


async def gather_bounded(coros: list[Any], limit: int = 50) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*[one(c) for c in coros])


class RedisView:
    """The namespace's data, read straight from Redis."""

    def __init__(self, url: str, namespace: str) -> None:
        from gateway.store.redis import RedisStore

        self.r = Redis.from_url(url, decode_responses=True)
        self.k = Keys(namespace)
        self.store = RedisStore(url, namespace, instance=f"audit-{uuid.uuid4().hex[:6]}")  # reads only, never started
        self.probe = Probe(self.store, url)

    async def close(self) -> None:
        await self.probe.close()
        await self.store.close()
        await self.r.aclose()

    async def stage(self, convs: list[str]) -> dict[str, int]:
        """How far each conversation got: customer message stored, turn pending, handed off."""
        stored = pending = handed = 0
        for cid in convs:
            n = await self.r.xlen(self.k.log(cid))
            fields = await self.r.hkeys(self.k.conv(cid))
            state = await self.r.hget(self.k.conv(cid), "state")
            stored += n > 0
            pending += any(f.startswith("pt:") for f in fields)
            handed += state in (ConvState.QUEUED.value, ConvState.ASSIGNED.value)
        return {"stored": stored, "pending": pending, "handed_off": handed}

    async def turns_left(self, convs: list[str]) -> int:
        """Pending bot turns: turn timers scheduled or in flight, pending-turn fields."""
        timers = await self.probe.timers()
        inflight = await self.probe.inflight()
        left = sum(1 for k in timers if k.startswith("turn:"))
        left += sum(1 for ks in inflight.values() for k in ks if k.startswith("turn:"))
        for cid in convs:
            left += sum(1 for f in await self.r.hkeys(self.k.conv(cid)) if f.startswith("pt:"))
        return left


@pytest.mark.parametrize("point", list(KILL_POINTS), ids=["after-sends", "100ms", "150ms"])
async def test_kill_9_mid_handoff_burst(procs: list[GatewayProcess], redis_server: RedisServer,
                                        tmp_path: Path, point: str) -> None:
    delay = KILL_POINTS[point]
    missed: list[str] = []
    for _ in range(ATTEMPTS):
        miss = await burst(procs, redis_server, tmp_path, point, delay, N)
        if miss is None:
            return
        missed.append(miss)
        print(f"\nkill -9 of A {point}: missed the burst ({miss}); again, with the kill sooner")
        stop_all(procs)
        delay /= 2
    raise AssertionError(f"the kill never landed inside the burst: {missed}")


class Killer(threading.Thread):
    """SIGKILL for A at ``delay`` after start, or as soon as the burst has reached the stage ``point`` aims at.

    A stores a burst in a few pipelined round trips and hands it off in the
    next ones: on a fast machine it is all done within 100 ms. So each point
    also kills as soon as its stage is there, which keeps the kill inside the
    burst: "100 ms" once a third of the messages are stored; "150 ms" once the
    first hand-offs are done. Turn timers (due
    within seconds, unlike idle, SLA and grace timers) count the messages
    waiting for their bot turn; b1's held list and the queue the hand-offs.
    """

    def __init__(self, proc: GatewayProcess, url: str, keys: Keys, point: str, delay: float, n: int) -> None:
        super().__init__(daemon=True)
        self.proc, self.point, self.delay, self.n = proc, point, delay, n
        self.timers, self.queue, self.held = keys.timers, keys.queue("presale"), keys.held("b1")
        self.r = SyncRedis.from_url(url)
        self.why = ""

    def stage(self) -> str:
        pending = int(self.r.zcount(self.timers, 0, time.time() + TURN_RETRY_S + 5))
        handed = int(self.r.zcard(self.queue)) + int(self.r.llen(self.held))
        why = f"{pending} turns pending, {handed} handed off"
        if self.point == "100 ms":
            return why if 3 * (pending + handed) >= self.n else ""
        return why if handed else ""  # the first hand-offs are done: the rest are on their way

    def run(self) -> None:
        t0 = time.monotonic()
        try:
            while True:
                if time.monotonic() - t0 >= self.delay:
                    self.why = f"{self.delay * 1000:.0f} ms"
                    break
                self.why = self.stage()
                if self.why:
                    break
                time.sleep(0.0005)
        finally:
            self.proc.proc.kill()
            self.r.close()


async def burst(procs: list[GatewayProcess], redis_server: RedisServer, tmp_path: Path, point: str, delay: float,
                n: int) -> str | None:
    """One run: None when checked, else why the kill missed the burst (A had finished it)."""
    namespace = f"burst{uuid.uuid4().hex[:8]}"
    cfg = base_config(namespace, [agent_spec("b1", ["presale"], CAPACITY), agent_spec("b2", ["presale"], CAPACITY)],
                      turn_retry_s=TURN_RETRY_S, agent_grace_s=60)
    cfg["limits"]["hello_timeout_s"] = 60
    cfg["server"] = {"workers": 1}  # an instance is one process: the kill takes all of it at once
    a_proc, b_proc = spawn(tmp_path, cfg, redis_server.url, 2)
    procs.extend([a_proc, b_proc])
    view = RedisView(redis_server.url, namespace)
    clients: list[Client] = []
    try:
        b1, _ = await agent(b_proc.ws_url, "b1")  # online on B; b2 never comes: most hand-offs queue
        clients.append(b1)
        joined = await gather_bounded([customer(a_proc.ws_url, f"u-burst-{i}") for i in range(n)])
        clients += [c for c, _ in joined]
        convs = [w["conversation"] for _, w in joined]
        assert len(set(convs)) == n

        # ---------------------------------------------------------- the burst, and A's death in it
        killer = Killer(a_proc, redis_server.url, Keys(namespace), point, delay, n) if delay else None
        t0 = time.monotonic()
        if killer is not None:
            killer.start()
        await asyncio.gather(*[c.send({"type": "message", "id": "m1", "text": HANDOFF}) for c, _ in joined])
        t_sent = time.monotonic() - t0
        if killer is None:
            a_proc.proc.kill()
            why = "the sends"
        else:
            await asyncio.to_thread(killer.join, 10)
            why = killer.why
        t_kill = time.monotonic() - t0
        await asyncio.to_thread(a_proc.proc.wait, 10)
        at_kill = await view.stage(convs)  # A is dead, and B takes no turn before turn_retry_s
        for c, _ in joined:
            await c.wait_closed(10)
        acked_by_a = {i for i, (c, _) in enumerate(joined) if c.of(is_("ack", id="m1"))}
        # A died mid-burst: not every hand-off was done (and at 100/150 ms it had started on them)
        if at_kill["handed_off"] == n:
            return f"all {n} handed off when killed at {t_kill * 1000:.0f} ms"
        if delay > 0:
            assert at_kill["stored"] > 0, f"A had stored nothing when killed at {t_kill * 1000:.0f} ms"

        # ---------------------------------------------------------- back on B: resume, resend what A never acked
        async def come_back(i: int) -> tuple[Client, dict[str, Any]]:
            w = joined[i][1]
            c, welcome = await customer(b_proc.ws_url, f"u-burst-{i}",
                                        resume={"conversation": w["conversation"], "token": w["token"], "after": 0})
            if i not in acked_by_a:
                await c.send({"type": "message", "id": "m1", "text": HANDOFF})
            return c, welcome

        returned = await gather_bounded([come_back(i) for i in range(n)])
        back = [c for c, _ in returned]
        clients += back
        for i, c in enumerate(back):
            if i not in acked_by_a:
                await c.wait(is_("ack", id="m1"), DEADLINE_S, f"ack of the resend {i}")
        end = time.monotonic() + DEADLINE_S
        while (left := await view.turns_left(convs)) > 0:
            assert time.monotonic() < end, f"{left} bot turns still pending after {DEADLINE_S}s"
            await asyncio.sleep(0.1)

        # the turns A left pending were each taken over by B's turn timer (their resends were duplicates)
        recovered = b_proc.log().count("event=turn_recovered")
        assert recovered >= at_kill["pending"], f"B recovered {recovered} turns, {at_kill['pending']} were pending"

        # ---------------------------------------------------------- the audit
        st = await read_state(view.probe, await view.probe.conversation_ids(), ["presale"])
        assert sorted(st.convs) == sorted(convs)
        result = audit(st, NOTICE)
        counts = result.counts()
        states = [v.conv.state for v in st.convs.values()]
        customer_msgs = sum(1 for v in st.convs.values() for e in v.log if e.get("from") == "customer")
        print(f"\nkill -9 of A {point} with {n} customers (sends took {t_sent * 1000:.0f} ms, killed at "
              f"{t_kill * 1000:.0f} ms, after {why}): at the kill {at_kill['stored']}/{n} '转人工' stored, {at_kill['pending']} "
              f"with the bot's turn pending, {at_kill['handed_off']} handed off; {len(acked_by_a)} acked by A. "
              f"After B took over: half-done {counts['half']}, unanswered {counts['unanswered']}, "
              f"doubled {counts['doubled']}, pending {counts['pending']}; {recovered} turns recovered by B's "
              f"timer; {states.count(ConvState.ASSIGNED)} assigned, {states.count(ConvState.QUEUED)} queued")
        assert counts == {"half": 0, "unanswered": 0, "doubled": 0, "pending": 0}, (
            result.half[:5], result.unanswered[:5], result.doubled[:5])
        assert customer_msgs == n, f"{customer_msgs} customer messages stored for {n} customers (a resend doubled?)"
        assert states.count(ConvState.ASSIGNED) == CAPACITY and states.count(ConvState.QUEUED) == n - CAPACITY
        assert len(st.queues["presale"]) == n - CAPACITY
        # every customer is told, on B, that a person is coming
        for i, (c, welcome) in enumerate(returned):
            if not any(m.get("text") == NOTICE for m in welcome["messages"]):
                await c.wait(lambda f: f.get("text") == NOTICE, DEADLINE_S, f"hand-off notice for customer {i}")
        return None
    finally:
        for c in clients:
            await c.close()
        await view.close()
