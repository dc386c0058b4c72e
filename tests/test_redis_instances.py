"""Several ``gateway serve`` processes on one Redis.

- a customer on instance A is served by an agent on instance B, both directions, in order;
- three instances: transfer to an agent on another instance, the customer resumes on a third;
- 300 customers ask for a person at once on 3 instances, 20 agents with capacities:
  nobody over capacity, nothing held twice, nobody waiting while a matching agent
  has room, checked in Redis and in the frames both sides received; then every
  agent closes everything at once and the pulls hold the same rules.

The three processes are shared by this module; each test uses its own skills and
agents (channels without bot map to a skill), so they do not see each other.
Every test runs twice: on one redis-server, and on a 3-master Redis Cluster
(``redis+cluster://``).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from gateway.store.keys import Keys
from tests.conftest import GatewayProcess, RedisClusterServer, RedisServer, wait_http
from tests.support import ROOT, Client, free_port, is_, write_config

pytestmark = pytest.mark.redis

ADMIN = {"Authorization": "Bearer demo-admin"}
T = 30.0  # generous: three gateways and hundreds of sockets share two cores


# ------------------------------------------------------------------ processes


def spawn(tmp: Path, overrides: dict[str, Any], store: str, n: int) -> list[GatewayProcess]:
    """Start ``n`` gateways on one config at once, then wait until all are ready."""
    path = write_config(tmp, overrides)
    procs: list[GatewayProcess] = []
    for _ in range(n):
        port = free_port()
        log_path = tmp / f"gateway-{port}.log"
        cmd = [sys.executable, "-m", "gateway", "serve", "--config", str(path), "--port", str(port),
               "--host", "127.0.0.1", "--store", store]
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT)
        procs.append(GatewayProcess(proc, port, path, log_path))
    try:
        for gp in procs:
            wait_http(gp.http_url + "/readyz", timeout=60, proc=gp.proc)
    except Exception as e:
        stop_all(procs)
        raise AssertionError(f"gateways did not start: {e}\n" + "\n".join(gp.log()[-3000:] for gp in procs)) from e
    return procs


def stop_all(procs: list[GatewayProcess]) -> None:
    for gp in procs:
        if gp.proc.poll() is None:
            gp.proc.send_signal(signal.SIGTERM)
    for gp in procs:
        try:
            gp.proc.wait(15)
        except subprocess.TimeoutExpired:
            gp.proc.kill()
            gp.proc.wait(5)


def agent_spec(aid: str, skills: list[str], cap: int) -> dict[str, Any]:
    return {"id": aid, "name": f"客服{aid}", "skills": skills, "capacity": cap, "token": f"tok-{aid}"}


LOAD_CAPS = [1, 2, 3, 4, 5] * 4  # 20 agents, 60 seats
LOAD_AGENTS = [agent_spec(f"g{i + 1:02d}", ["presale"] + (["aftersale"] if i % 3 == 0 else []), cap)
               for i, cap in enumerate(LOAD_CAPS)]


def base_config(namespace: str, agents: list[dict[str, Any]], **routing: Any) -> dict[str, Any]:
    return {
        "store": {"namespace": namespace},
        "routing": {"agent_grace_s": 1.0, "customer_idle_close_s": 900,
                    "no_bot_channels": ["direct2", "direct3", "kill", "term", "outage"],
                    "channel_skills": {"direct2": "vip2", "direct3": "vip3", "kill": "kill", "term": "term",
                                       "outage": "outage"},
                    **routing},
        # every test customer comes from 127.0.0.1: the per-address limits out of the way
        "limits": {"customer_messages": 100, "agent_messages": 1000, "hello_timeout_s": 30,
                   "address_messages": 1_000_000, "address_hellos": 1_000_000},
        "sla": {"ack_target_s": 600},
        "agents": agents,
    }


@dataclass
class Cluster:
    procs: list[GatewayProcess]
    namespace: str
    redis_url: str

    def view(self) -> View:
        return View(self.redis_url, self.namespace)


@pytest.fixture(scope="module", params=["redis", "cluster"])
def trio(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three gateways on one redis-server, then (second param) on a 3-master Redis Cluster."""
    server: RedisServer | RedisClusterServer = request.getfixturevalue(
        "redis_server" if request.param == "redis" else "redis_cluster")
    tmp = tmp_path_factory.mktemp(f"trio-{request.param}")
    namespace = f"trio{uuid.uuid4().hex[:8]}"
    agents = [*LOAD_AGENTS, agent_spec("x1", ["vip2"], 5), agent_spec("x2", ["vip3"], 5), agent_spec("x3", ["vip3"], 5)]
    procs = spawn(tmp, base_config(namespace, agents), server.url, 3)
    yield Cluster(procs, namespace, server.url)
    stop_all(procs)  # logs stay in pytest's tmp dir (gateway-<port>.log)


# ------------------------------------------------------------------ Redis state, read directly


class View:
    """The store's state as the Redis keys hold it (not through any gateway)."""

    def __init__(self, url: str, namespace: str) -> None:
        if url.startswith("redis+cluster://"):
            nodes = [n.rsplit(":", 1) for n in url.split("://", 1)[1].split(",")]
            self.r: Any = RedisCluster(startup_nodes=[ClusterNode(h, int(p)) for h, p in nodes],
                                       decode_responses=True)
        else:
            self.r = Redis.from_url(url, decode_responses=True)
        self.k = Keys(namespace)

    async def close(self) -> None:
        await self.r.aclose()

    async def agent(self, aid: str) -> dict[str, Any]:
        h = await self.r.hgetall(self.k.agent(aid))
        held = await self.r.lrange(self.k.held(aid), 0, -1)
        return {**h, "capacity": int(h["capacity"]), "held": held}

    async def conv(self, cid: str) -> dict[str, str]:
        return await self.r.hgetall(self.k.conv(cid))  # type: ignore[no-any-return]

    async def queue(self, skill: str) -> list[str]:
        return await self.r.zrange(self.k.queue(skill), 0, -1)  # type: ignore[no-any-return]

    async def instances(self) -> set[str]:
        return await self.r.smembers(self.k.instances)  # type: ignore[no-any-return]

    async def timers(self, prefix: str = "") -> list[str]:
        """Timer keys still to fire: waiting to be due, or claimed by a live instance and not finished."""
        keys: list[str] = await self.r.zrange(self.k.timers, 0, -1)
        for instance in await self.instances():
            keys += await self.r.zrange(self.k.inflight(instance), 0, -1)
        return sorted(k for k in keys if k.startswith(prefix))


async def until(cond: Callable[[], Awaitable[bool]], timeout: float = T, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


# ------------------------------------------------------------------ clients


async def customer(url: str, cid: str, channel: str = "web", resume: dict[str, Any] | None = None,
                   ) -> tuple[Client, dict[str, Any]]:
    c = await Client.connect(f"{url}/ws/customer")
    hello: dict[str, Any] = {"type": "hello", "customer": {"id": cid, "name": cid}, "channel": channel}
    if resume:
        hello["resume"] = resume
    await c.send(hello)
    return c, await c.wait(is_("welcome"), T, "welcome")


async def agent(url: str, aid: str, status: str = "online") -> tuple[Client, dict[str, Any]]:
    a = await Client.connect(f"{url}/ws/agent")
    await a.send({"type": "hello", "agent": aid, "token": f"tok-{aid}", "status": status})
    return a, await a.wait(is_("welcome"), T, "agent welcome")


async def say(c: Client, mid: str, text: str, conversation: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "message", "id": mid, "text": text}
    if conversation:
        frame["conversation"] = conversation
    await c.send(frame)
    return await c.wait(is_("ack", id=mid), T, f"ack {mid}")


def entries(frames: list[dict[str, Any]], conversation: str | None = None) -> list[dict[str, Any]]:
    """Log entries as a client got them (frames with a seq), optionally of one conversation."""
    out = [f for f in frames if "seq" in f and f.get("type") != "ack"]
    return [f for f in out if conversation is None or f.get("conversation", conversation) == conversation]


def assert_in_order(es: list[dict[str, Any]]) -> None:
    seqs = [e["seq"] for e in es]
    assert seqs == sorted(set(seqs)), f"out of order or duplicated: {seqs}"


async def admin_log(url: str, conversation: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, \
            http.get(f"{url}/api/conversations/{conversation}", headers=ADMIN) as r:
        assert r.status == 200
        return list((await r.json())["messages"])


def held_by_frames(frames: list[dict[str, Any]], cap: int | None = None) -> set[str]:
    """Replay an agent's assigned/unassigned frames; with ``cap``, check it is never exceeded."""
    held: set[str] = set()
    for f in frames:
        if f.get("type") == "welcome":
            held |= {c["id"] for c in f["conversations"]}
        elif f.get("type") == "assigned" and isinstance(f.get("conversation"), dict):
            cid = f["conversation"]["id"]
            assert cid not in held, f"{cid} assigned twice to the same agent"
            held.add(cid)
        elif f.get("type") == "unassigned":
            held.discard(f["conversation"])
        if cap is not None:
            assert len(held) <= cap, f"over capacity: {len(held)} > {cap}"
    return held


# ------------------------------------------------------------------ two and three instances


async def test_customer_on_a_agent_on_b_both_directions_in_order(trio: Cluster) -> None:
    a_url, b_url = trio.procs[0].ws_url, trio.procs[1].ws_url
    x1, _ = await agent(b_url, "x1")
    c, w = await customer(a_url, "u-two", channel="direct2")
    conv = w["conversation"]
    await say(c, "m0", "你好，我要找人工")
    got = await c.wait(is_("assigned"), T)
    assert got["agent"]["id"] == "x1"
    af = await x1.wait(lambda f: f.get("type") == "assigned" and f["conversation"]["id"] == conv, T)
    assert [m["text"] for m in af["conversation"]["messages"] if m.get("from") == "customer"] == ["你好，我要找人工"]
    # both sides talk at once, without waiting for each other
    n = 15
    for i in range(n):
        await c.send({"type": "message", "id": f"m{i + 1}", "text": f"顾客{i + 1}"})
        await x1.send({"type": "message", "id": f"r{i + 1}", "conversation": conv, "text": f"客服{i + 1}"})
    await c.wait_count(lambda f: f.get("type") == "message" and f.get("from") == "agent", n, T)
    await x1.wait_count(lambda f: f.get("type") == "message" and f.get("from") == "customer"
                        and f.get("conversation") == conv and f["text"] != "你好，我要找人工", n, T)
    await c.wait_count(lambda f: f.get("type") == "ack", n + 1, T)
    await x1.wait_count(lambda f: f.get("type") == "ack", n, T)
    from_agent = [e["text"] for e in entries(c.frames) if e.get("from") == "agent"]
    from_customer = [e["text"] for e in entries(x1.frames, conv) if e.get("from") == "customer"]
    assert from_agent == [f"客服{i + 1}" for i in range(n)]
    assert from_customer[-n:] == [f"顾客{i + 1}" for i in range(n)]
    assert_in_order(entries(c.frames))
    assert_in_order([*af["conversation"]["messages"], *entries(x1.frames, conv)])
    log = await admin_log(trio.procs[2].http_url, conv)  # any instance reads the same log
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    # every entry reached the customer exactly once (its own messages through acks)
    acked = {f["seq"] for f in c.of(is_("ack"))}
    got_seqs = {e["seq"] for e in entries(c.frames)}
    assert acked | got_seqs == {e["seq"] for e in log} and not acked & got_seqs
    await c.send({"type": "close"})
    await c.wait(is_("closed"), T)
    await x1.wait(is_("unassigned", conversation=conv, reason="closed"), T)
    await c.close()
    await x1.close()


async def test_three_instances_transfer_across_and_resume_on_another(trio: Cluster) -> None:
    a, b, cc = (p.ws_url for p in trio.procs)
    x2, _ = await agent(b, "x2")
    x3, _ = await agent(cc, "x3")
    c, w = await customer(a, "u-three", channel="direct3")
    conv, token = w["conversation"], w["token"]
    await say(c, "m0", "人工")
    assert (await c.wait(is_("assigned"), T))["agent"]["id"] == "x2"  # both idle: the smaller id
    await x2.wait(lambda f: f.get("type") == "assigned" and f["conversation"]["id"] == conv, T)
    await say(x2, "r1", "我是小二", conv)
    await say(c, "m1", "订单12345678有问题")
    await x2.wait(lambda f: f.get("text") == "订单12345678有问题", T)
    # x2 (on B) hands it to x3 (on C)
    await x2.send({"type": "transfer", "id": "t1", "conversation": conv, "agent": "x3"})
    await x2.wait(is_("ack", id="t1"), T)
    await x2.wait(is_("unassigned", conversation=conv, reason="transferred"), T)
    moved = await x3.wait(lambda f: f.get("type") == "assigned" and f["conversation"]["id"] == conv, T)
    assert "订单12345678有问题" in [m.get("text") for m in moved["conversation"]["messages"]]
    await c.wait(lambda f: f.get("type") == "assigned" and f["agent"]["id"] == "x3", T)
    last = max(e["seq"] for e in entries(c.frames))
    await c.close()
    # meanwhile x3 writes; the customer comes back on B and gets exactly what it missed
    await say(x3, "r2", "我是小三，接手您的问题", conv)
    await say(x3, "r3", "请稍等", conv)
    c2, w2 = await customer(b, "u-three", resume={"conversation": conv, "token": token, "after": last})
    assert w2["conversation"] == conv
    assert [m.get("text") for m in w2["messages"]] == ["我是小三，接手您的问题", "请稍等"]
    assert [m["seq"] for m in w2["messages"]] == [last + 1, last + 2]
    await say(c2, "m2", "好的谢谢")
    await x3.wait(lambda f: f.get("text") == "好的谢谢", T)
    await say(x3, "r4", "不客气", conv)
    await c2.wait(lambda f: f.get("text") == "不客气", T)
    assert_in_order([*w2["messages"], *entries(c2.frames)])
    assert_in_order([*moved["conversation"]["messages"], *entries(x3.frames, conv)])
    assert not [f for f in x2.frames if f.get("conversation") == conv and f.get("text") == "好的谢谢"]
    await x3.send({"type": "close", "id": "k", "conversation": conv, "resolution": "resolved"})
    await c2.wait(is_("survey"), T)
    for cl in (c2, x2, x3):
        await cl.close()


# ------------------------------------------------------------------ concurrency


async def _check_state(view: View, specs: list[dict[str, Any]], convs: list[str]) -> dict[str, list[str]]:
    """Redis holds the routing rules; returns each agent's holdings."""
    holdings: dict[str, list[str]] = {}
    holder: dict[str, str] = {}
    for s in specs:
        st = await view.agent(s["id"])
        assert len(st["held"]) <= st["capacity"], f"{s['id']} over capacity"
        for cid in st["held"]:
            assert cid not in holder, f"{cid} held by {holder.get(cid)} and {s['id']}"
            holder[cid] = s["id"]
            c = await view.conv(cid)
            assert (c["state"], c["agent"]) == ("assigned", s["id"])
        holdings[s["id"]] = st["held"]
    for cid in convs:
        c = await view.conv(cid)
        if c["state"] == "assigned":
            assert holder.get(cid) == c["agent"], f"{cid} says {c['agent']} but that agent does not hold it"
    for skill in ("presale", "aftersale"):
        if await view.queue(skill):
            for s in specs:
                st = await view.agent(s["id"])
                if skill in s["skills"] and st["status"] == "online":
                    assert len(st["held"]) == st["capacity"], f"{skill} waits while {s['id']} has room"
    return holdings


async def test_300_customers_20_agents_3_instances(trio: Cluster) -> None:
    procs, view = trio.procs, trio.view()
    seats = sum(LOAD_CAPS)
    try:
        custs: list[tuple[Client, dict[str, Any]]] = []
        for wave in range(0, 300, 50):  # sign in in waves; the asking is what happens at once
            custs += await asyncio.gather(*[customer(procs[i % 3].ws_url, f"load-{i}") for i in range(wave, wave + 50)])
        convs = [w["conversation"] for _, w in custs]
        by_conv = {w["conversation"]: c for c, w in custs}

        async def ask(c: Client) -> None:
            await say(c, "h1", "转人工")

        # everyone asks for a person while the agents sign in, all at once
        t0 = time.monotonic()
        results = await asyncio.gather(*[ask(c) for c, _ in custs],
                                       *[agent(procs[i % 3].ws_url, s["id"]) for i, s in enumerate(LOAD_AGENTS)])
        agents = {s["id"]: r[0] for s, r in zip(LOAD_AGENTS, results[300:], strict=True)}
        caps = {s["id"]: s["capacity"] for s in LOAD_AGENTS}

        async def settled(closed: int) -> bool:
            states = [(await view.conv(cid))["state"] for cid in convs]
            return (states.count("assigned"), states.count("closed")) == (seats, closed)

        await until(lambda: settled(0), T, "60 assigned")
        t_assign = time.monotonic() - t0
        holdings = await _check_state(view, LOAD_AGENTS, convs)
        assert sum(map(len, holdings.values())) == seats
        assert len(await view.queue("presale")) == 300 - seats

        async def frames_agree() -> bool:
            return all(held_by_frames(agents[a].frames) == set(h) for a, h in holdings.items())

        await until(frames_agree, T, "agents' frames to match Redis")
        for aid, a in agents.items():
            held_by_frames(a.frames, caps[aid])
        for aid, held in holdings.items():
            for cid in held:
                await by_conv[cid].wait(is_("assigned"), T)
                assert [f["agent"]["id"] for f in by_conv[cid].of(is_("assigned"))] == [aid]
        waiting = set(await view.queue("presale"))
        for cid in waiting:
            await by_conv[cid].wait(is_("queued"), T)
            assert not by_conv[cid].of(is_("assigned"))

        # every agent closes everything it holds, all at once: each close pulls the next in line
        await asyncio.gather(*[agents[aid].send({"type": "close", "id": f"k-{cid}", "conversation": cid,
                                                 "resolution": "resolved"})
                               for aid, held in holdings.items() for cid in held])
        await until(lambda: settled(seats), T, "the next 60 assigned")
        second = await _check_state(view, LOAD_AGENTS, convs)
        assert not {c for h in second.values() for c in h} & {c for h in holdings.values() for c in h}
        assert len(await view.queue("presale")) == 300 - 2 * seats
        queue_now = await view.queue("presale")
        # the pulls took the first in line: those still waiting arrived after every pulled one
        tickets = {cid: int((await view.conv(cid))["ticket"]) for cid in convs}
        assert max(tickets[c] for h in second.values() for c in h) < min(tickets[c] for c in queue_now)

        async def frames_agree_again() -> bool:
            return all(held_by_frames(agents[a].frames) == set(h) for a, h in second.items())

        await until(frames_agree_again, T, "agents' frames to match Redis after the closes")
        for aid, a in agents.items():
            held_by_frames(a.frames, caps[aid])  # never over capacity, in the order the agent saw it
        for held in holdings.values():
            for cid in held:
                await by_conv[cid].wait(is_("closed"), T)
                await by_conv[cid].wait(is_("survey"), T)
        print(f"\n300 handoffs + 20 sign-ins to 60 assigned: {t_assign:.2f}s")
        await asyncio.gather(*[c.close() for c, _ in custs], *[a.close() for a in agents.values()])
    finally:
        await view.close()
