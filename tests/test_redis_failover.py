"""Instances die, stop and lose Redis; nothing acknowledged is lost.

- kill -9 an instance mid-conversation: its customers resume on another instance
  with their token and lose nothing that was acked; an agent that comes back in
  time keeps its conversations; the others' are requeued after grace and picked
  up; the timers the dead instance set still fire;
- SIGTERM: clients get close 1012 quickly, the process exits in bounded time,
  leaves the live set cleanly, and its agent takes its conversations elsewhere;
- Redis stopped (kill -9, AOF with appendfsync always) and restarted under load:
  clients see ``unavailable`` and /readyz is 503 meanwhile, no acked message is
  missing afterwards, and delivery resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayProcess, RedisServer
from tests.support import Client, is_
from tests.test_redis_instances import (
    T,
    View,
    admin_log,
    agent,
    agent_spec,
    assert_in_order,
    base_config,
    customer,
    entries,
    say,
    spawn,
    stop_all,
    until,
)

pytestmark = pytest.mark.redis

SLA_TEXT = "当前咨询人数较多，您已进入排队，客服会尽快回复您，请耐心等待。"
LOAD_S, OUTAGE_S = 1.5, 1.5  # the Redis outage scenario (README, "Measured"): load, then Redis down this long


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., list[GatewayProcess]]]:
    started: list[GatewayProcess] = []

    def go(overrides: dict[str, Any], store: str, n: int) -> list[GatewayProcess]:
        procs = spawn(tmp_path, overrides, store, n)
        started.extend(procs)
        return procs

    yield go
    stop_all(started)


def readyz(url: str) -> tuple[int, dict[str, Any], float]:
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as r:
            return r.status, json.loads(r.read()), time.monotonic() - t0
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), time.monotonic() - t0


def acked(c: Client) -> dict[str, int]:
    return {f["id"]: f["seq"] for f in c.of(is_("ack")) if "id" in f and "seq" in f}


def check_log_has(log: list[dict[str, Any]], acks: dict[str, int], texts: dict[str, str]) -> None:
    by_seq = {e["seq"]: e for e in log}
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1)), "gap-free"
    for mid, seq in acks.items():
        assert seq in by_seq, f"acked {mid} (seq {seq}) is missing"
        assert by_seq[seq].get("text") == texts[mid], f"seq {seq} is not what {mid} sent"


# ------------------------------------------------------------------ kill -9


async def test_kill_9_an_instance_mid_conversation(launch: Callable[..., list[GatewayProcess]],
                                                   redis_server: RedisServer) -> None:
    namespace = f"kill{uuid.uuid4().hex[:8]}"
    agents = [agent_spec("k1", ["kill"], 2), agent_spec("k2", ["kill"], 5), agent_spec("k3", ["kill"], 1)]
    a_proc, b_proc = launch({**base_config(namespace, agents), "sla": {"ack_target_s": 2.0}},
                            redis_server.url, 2)
    a, b = a_proc.ws_url, b_proc.ws_url
    view = View(redis_server.url, namespace)
    texts: dict[str, str] = {}
    owner: dict[str, str] = {}  # agent message id -> the customer it went to
    try:
        k1, _ = await agent(a, "k1")
        k3, _ = await agent(a, "k3")
        custs: dict[str, tuple[Client, dict[str, Any]]] = {}
        for name, url in (("cA1", a), ("cA2", a), ("cB1", b)):
            custs[name] = await customer(url, f"u-{name}", channel="kill")
            texts[f"{name}-0"] = f"{name} 要人工"
            await say(custs[name][0], f"{name}-0", texts[f"{name}-0"])
            await custs[name][0].wait(is_("assigned"), T)
        conv = {name: w["conversation"] for name, (_, w) in custs.items()}
        holder = {name: (await view.conv(cid))["agent"] for name, cid in conv.items()}
        assert holder == {"cA1": "k1", "cA2": "k3", "cB1": "k1"}
        # a conversation: customers and agents on both sides, everything acked
        for name, (c, _) in custs.items():
            for i in range(1, 4):
                texts[f"{name}-{i}"] = f"{name} 第{i}句"
                await say(c, f"{name}-{i}", texts[f"{name}-{i}"])
            ag = k1 if holder[name] == "k1" else k3
            for i in range(2):
                texts[f"r-{name}-{i}"], owner[f"r-{name}-{i}"] = f"回复{name} {i}", name
                await say(ag, f"r-{name}-{i}", texts[f"r-{name}-{i}"], conv[name])
        cq, wq = await customer(a, "u-cQ", channel="kill")  # everyone is full: it waits, A set its SLA timer
        texts["cQ-0"] = "有人吗"
        await say(cq, "cQ-0", texts["cQ-0"])
        await cq.wait(is_("queued"), T)
        custs["cQ"], conv["cQ"] = (cq, wq), wq["conversation"]

        a_proc.kill()  # -------------------------------------------------- kill -9
        t0 = time.monotonic()
        for cl in (k1, k3, cq, custs["cA1"][0], custs["cA2"][0]):
            await cl.wait_closed(T)
        # k3 comes back at once on B: it keeps its conversation
        k3b, w3 = await agent(b, "k3")
        assert [c["id"] for c in w3["conversations"]] == [conv["cA2"]]
        # A's customers resume on B with their tokens, from the last entry they saw
        resumed: dict[str, tuple[Client, dict[str, Any]]] = {}
        for name in ("cA1", "cA2", "cQ"):
            old, w = custs[name]
            last = max([e["seq"] for e in entries(old.frames)] + [0])
            resumed[name] = await customer(b, f"u-{name}", channel="kill",
                                           resume={"conversation": w["conversation"], "token": w["token"],
                                                   "after": last})
            assert [m["seq"] for m in resumed[name][1]["messages"]] == list(
                range(last + 1, last + 1 + len(resumed[name][1]["messages"])))
        # the SLA timer A set fires on B
        await resumed["cQ"][0].wait(lambda f: f.get("text") == SLA_TEXT, T)
        t_timer = time.monotonic() - t0

        # k1 never comes back: after its grace, its conversations go back to the queue, ahead of cQ
        async def requeued() -> bool:
            return await view.queue("kill") == [conv["cA1"], conv["cB1"], conv["cQ"]]

        await until(requeued, T, "k1's conversations requeued ahead of cQ")
        t_requeue = time.monotonic() - t0
        k1_state = await view.agent("k1")
        assert k1_state["status"] == "offline" and k1_state["held"] == []
        assert a_proc.proc.returncode is not None
        # a survivor picked them up: k2 signs in on B and takes all three in order
        k2, welcome = await agent(b, "k2")
        # the pull happens in the sign-in step: they come in the welcome or as ``assigned`` frames after it
        listed = welcome["conversations"]
        given = [f["conversation"] for f in await k2.wait_count(is_("assigned"), 3 - len(listed), T)]
        got = [c["id"] for c in [*listed, *given]]
        assert got == [conv["cA1"], conv["cB1"], conv["cQ"]]
        t_pickup = time.monotonic() - t0
        first = [*listed, *given][0]["messages"]
        assert [m.get("text") for m in first if m.get("from") == "customer"] == [texts[f"cA1-{i}"] for i in range(4)]
        # they talk again, both directions, across the survivors
        live = {"cA1": resumed["cA1"][0], "cB1": custs["cB1"][0], "cQ": resumed["cQ"][0]}
        for name, c in live.items():
            texts[f"r2-{name}"], owner[f"r2-{name}"] = f"k2 接手 {name}", name
            await say(k2, f"r2-{name}", texts[f"r2-{name}"], conv[name])
            await c.wait(lambda f, t=texts[f"r2-{name}"]: f.get("text") == t, T)
            texts[f"{name}-after"] = f"{name} 收到"
            await say(c, f"{name}-after", texts[f"{name}-after"])
            await k2.wait(lambda f, t=texts[f"{name}-after"]: f.get("text") == t, T)
        texts["cA2-after"] = "cA2 还在吗"
        await say(resumed["cA2"][0], "cA2-after", texts["cA2-after"])
        await k3b.wait(lambda f: f.get("text") == "cA2 还在吗", T)
        # nothing acked is missing, anywhere
        for name, cid in conv.items():
            log = await admin_log(b_proc.http_url, cid)
            clients = [custs[name][0]] + ([resumed[name][0]] if name in resumed else [])
            acks = {k: v for c in clients for k, v in acked(c).items()}
            check_log_has(log, acks, texts)
        for ag in (k1, k3, k3b, k2):
            for mid, seq in acked(ag).items():
                check_log_has(await admin_log(b_proc.http_url, conv[owner[mid]]), {mid: seq}, texts)
        for c, w in resumed.values():
            assert_in_order([*w["messages"], *entries(c.frames)])
        print(f"\nkill -9: SLA timer fired on the survivor after {t_timer:.1f}s, agent requeued after "
              f"{t_requeue:.1f}s (ttl 3s + grace 1s), picked up after {t_pickup:.1f}s")
        for cl in [k2, k3b, custs["cB1"][0], *[c for c, _ in resumed.values()]]:
            await cl.close()
    finally:
        await view.close()


# ------------------------------------------------------------------ SIGTERM


async def test_sigterm_drains_with_1012_and_hands_over(launch: Callable[..., list[GatewayProcess]],
                                                       redis_server: RedisServer) -> None:
    namespace = f"term{uuid.uuid4().hex[:8]}"
    # a grace far longer than the test: the agent is back long before it could run out
    a_proc, b_proc = launch(base_config(namespace, [agent_spec("t1", ["term"], 5)], agent_grace_s=60),
                            redis_server.url, 2)
    view = View(redis_server.url, namespace)
    try:
        a_instance = (await asyncio.to_thread(readyz, a_proc.http_url))[1]["instance"]
        assert a_instance in await view.instances()
        t1, _ = await agent(a_proc.ws_url, "t1")
        cu, wu = await customer(b_proc.ws_url, "u-term-b", channel="term")
        cv, wv = await customer(a_proc.ws_url, "u-term-a", channel="term")
        for c in (cu, cv):
            await say(c, "m0", "人工")
            await c.wait(is_("assigned"), T)
        t0 = time.monotonic()
        a_proc.proc.send_signal(signal.SIGTERM)
        assert await t1.wait_closed(T) == 1012 and await cv.wait_closed(T) == 1012
        t_closed = time.monotonic() - t0
        # the agent reconnects elsewhere at once (within its grace): it keeps both conversations
        t1b, w = await agent(b_proc.ws_url, "t1")
        assert sorted(c["id"] for c in w["conversations"]) == sorted([wu["conversation"], wv["conversation"]])
        last = max(e["seq"] for e in entries(cv.frames))
        cv2, _ = await customer(b_proc.ws_url, "u-term-a", channel="term",
                                resume={"conversation": wv["conversation"], "token": wv["token"], "after": last})
        code = await asyncio.to_thread(a_proc.proc.wait, 15)
        t_exit = time.monotonic() - t0
        assert code == 0 and t_exit < 12
        assert a_instance not in await view.instances()  # it left cleanly, nobody has to reap it
        await say(cv2, "m1", "还在吗")
        await t1b.wait(lambda f: f.get("text") == "还在吗", T)
        await say(t1b, "r1", "在的", wv["conversation"])
        await cv2.wait(lambda f: f.get("text") == "在的", T)
        st = await view.agent("t1")
        assert st["status"] == "online" and sorted(st["held"]) == sorted([wu["conversation"], wv["conversation"]])
        # and it stays so: A is gone and left no claim behind, and coming back on B cancelled the grace
        # timer A set, so no grace timer is due, or in anyone's hands, to requeue them later
        assert await view.timers("grace:") == []
        assert not t1b.of(is_("unassigned"))
        print(f"\nSIGTERM: sockets closed 1012 after {t_closed:.2f}s, process exited after {t_exit:.2f}s")
        for cl in (t1b, cu, cv2):
            await cl.close()
    finally:
        await view.close()


# ------------------------------------------------------------------ Redis outage


class Talker:
    """A client that keeps sending, retrying the same id until it is acked (as a real client should)."""

    def __init__(self, client: Client, prefix: str, conversation: str | None = None) -> None:
        self.c, self.prefix, self.conversation = client, prefix, conversation
        self.texts: dict[str, str] = {}
        self.acks: dict[str, int] = {}
        self.unavailable = 0
        self.stop = asyncio.Event()

    async def _reply(self, start: int, mid: str) -> dict[str, Any]:
        end = time.monotonic() + 10
        while True:
            for f in self.c.frames[start:]:
                if f.get("id") == mid and f.get("type") in ("ack", "error"):
                    return f
            assert self.c.close_code is None and time.monotonic() < end, (
                f"no reply to {mid} (closed={self.c.close_code}): {self.c.frames[-4:]}")
            await asyncio.sleep(0.02)

    async def run(self) -> None:
        k = 0
        while not self.stop.is_set():
            mid = f"{self.prefix}-{k}"
            self.texts[mid] = f"{self.prefix} 消息 {k}"
            frame: dict[str, Any] = {"type": "message", "id": mid, "text": self.texts[mid]}
            if self.conversation:
                frame["conversation"] = self.conversation
            start = len(self.c.frames)
            await self.c.send(frame)
            reply = await self._reply(start, mid)
            if reply["type"] == "ack":
                self.acks[mid] = reply["seq"]
                k += 1
                await asyncio.sleep(0.05)
            else:
                assert reply["code"] == "unavailable", reply
                self.unavailable += 1
                await asyncio.sleep(0.2)  # then the same id again

    def start(self) -> asyncio.Task[None]:
        return asyncio.create_task(self.run())


async def test_redis_restart_under_load(launch: Callable[..., list[GatewayProcess]],
                                        redis_factory: Callable[..., RedisServer]) -> None:
    srv = redis_factory(appendonly=True)  # appendonly yes, appendfsync always
    namespace = f"out{uuid.uuid4().hex[:8]}"
    procs = launch(base_config(namespace, [agent_spec("o1", ["outage"], 20)]), srv.url, 2)
    o1, _ = await agent(procs[1].ws_url, "o1")
    custs = []
    for i in range(8):
        c, w = await customer(procs[i % 2].ws_url, f"u-out-{i}", channel="outage")
        await say(c, "first", "人工")
        await c.wait(is_("assigned"), T)
        custs.append((c, w))
    talkers = [Talker(c, f"c{i}") for i, (c, _) in enumerate(custs)]
    agent_talker = Talker(o1, "o1", custs[0][1]["conversation"])
    started = time.monotonic()
    tasks = [t.start() for t in [*talkers, agent_talker]]

    async def under_way() -> bool:
        return all(len(t.acks) >= 5 for t in [*talkers, agent_talker])

    await until(under_way, T, "every client acked a few times")
    await asyncio.sleep(max(0.0, started + LOAD_S - time.monotonic()))  # the scenario: LOAD_S of load first
    assert srv.proc is not None
    srv.proc.kill()  # -------------------------------------------------- Redis dies
    await asyncio.to_thread(srv.proc.wait, 5)
    t0 = time.monotonic()
    for p in procs:
        status, body, took = await asyncio.to_thread(readyz, p.http_url)
        assert status == 503 and body["ready"] is False and took < 2.0

    async def everyone_told() -> bool:
        return all(t.unavailable > 0 for t in talkers)

    await until(everyone_told, T, "an unavailable reply to every client")
    await asyncio.sleep(max(0.0, t0 + OUTAGE_S - time.monotonic()))  # the scenario: Redis down OUTAGE_S
    srv.start()  # ------------------------------------------------------ and comes back with its AOF

    async def ready() -> bool:
        return all(r[0] == 200 for r in await asyncio.gather(*[asyncio.to_thread(readyz, p.http_url) for p in procs]))

    await until(ready, T, "/readyz 200 again")
    t_ready = time.monotonic() - t0
    before = {t.prefix: len(t.acks) for t in talkers}

    async def progressing() -> bool:
        return all(len(t.acks) >= before[t.prefix] + 3 for t in talkers)

    await until(progressing, T, "acks after the restart")
    for t in [*talkers, agent_talker]:
        t.stop.set()
    await asyncio.gather(*tasks)
    assert all(t.unavailable > 0 for t in talkers), [t.unavailable for t in talkers]
    # nothing acked is missing, nothing stored twice
    for t, (_, w) in zip(talkers, custs, strict=True):
        log = await admin_log(procs[0].http_url, w["conversation"])
        check_log_has(log, t.acks, t.texts)
        ids = [e.get("text") for e in log if e.get("from") == "customer"]
        assert len(ids) == len(set(ids)), "a retried id was stored twice"
    log0 = await admin_log(procs[1].http_url, custs[0][1]["conversation"])
    check_log_has(log0, agent_talker.acks, agent_talker.texts)
    # and delivery caught up by itself: the agent has every acked customer message, in order
    for t, (_, w) in zip(talkers, custs, strict=True):
        last_text = t.texts[max(t.acks, key=lambda m: t.acks[m])]
        await o1.wait(lambda f, cid=w["conversation"], x=last_text: f.get("conversation") == cid
                      and f.get("text") == x, T, "delivery after the restart")
        seen = [*next(f["conversation"]["messages"] for f in o1.of(is_("assigned"))
                      if f["conversation"]["id"] == w["conversation"]),
                *entries(o1.frames, w["conversation"])]
        assert {t.texts[m] for m in t.acks} <= {e.get("text") for e in seen if e.get("from") == "customer"}
        assert_in_order(seen)
    await custs[0][0].wait(lambda f: f.get("text") == agent_talker.texts[max(agent_talker.acks,
                                                                          key=lambda m: agent_talker.acks[m])], T)
    print(f"\nRedis kill -9 + restart: /readyz 200 again {t_ready:.1f}s after the kill "
          f"(down {1.5:.1f}s); {sum(t.unavailable for t in talkers)} unavailable replies, "
          f"{sum(len(t.acks) for t in talkers)} customer messages acked")
    with contextlib.suppress(Exception):
        await asyncio.gather(*[c.close() for c, _ in custs], o1.close())
