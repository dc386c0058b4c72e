"""The Redis store on a Redis Cluster (``redis+cluster://``): one namespace, one slot, one node.

The store contract suite and the multi-instance tests run over the cluster too
(``cluster`` params in test_store_contract.py and test_redis_instances.py);
these check what only a cluster has: namespaces spread over the nodes, and a
namespace's slot moving to another node while a store is using it (ASK during
the migration, MOVED after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from gateway.errors import ConfigError
from gateway.model import AgentProfile, AgentStatus, Conversation, Priority
from gateway.store import open_store
from gateway.store.keys import Keys
from gateway.store.redis import RedisStore
from tests.conftest import RedisClusterServer

pytestmark = pytest.mark.redis

Events = list[tuple[str, dict[str, Any]]]


class Nodes:
    """A plain client per cluster node, and who holds which slot."""

    def __init__(self, cluster: RedisClusterServer) -> None:
        self.by_port = {p: Redis(host="127.0.0.1", port=p, decode_responses=True) for p in cluster.ports}

    async def close(self) -> None:
        for r in self.by_port.values():
            await r.aclose()

    async def owner(self, slot: int) -> int:
        """The port of the master that serves ``slot``."""
        any_node = next(iter(self.by_port.values()))
        for start, end, master, *_ in await any_node.execute_command("CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                return int(master[1])
        raise AssertionError(f"slot {slot} is not served")

    async def node_id(self, port: int) -> str:
        return str(await self.by_port[port].execute_command("CLUSTER", "MYID"))

    async def keys(self, port: int, namespace: str) -> list[str]:
        return [k async for k in self.by_port[port].scan_iter(match=f"gw:{{{namespace}}}:*", count=1000)]


@pytest.fixture
async def nodes(redis_cluster: RedisClusterServer) -> AsyncIterator[Nodes]:
    n = Nodes(redis_cluster)
    yield n
    await n.close()


@contextlib.asynccontextmanager
async def opened(url: str, namespace: str, events: Events | None = None) -> AsyncIterator[RedisStore]:
    s = RedisStore(url, namespace, instance=f"t-{uuid.uuid4().hex[:6]}")
    await s.start(lambda t, p: events.append((t, p)) if events is not None else None)
    try:
        yield s
    finally:
        await s.close()


def slot(namespace: str) -> int:
    return key_slot(Keys(namespace).prefix.encode())


async def until_seen(events: Events, topic: str, pred: Any, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not any(t == topic and pred(p) for t, p in events):
        assert time.monotonic() < end, f"no {topic} on the bus"
        await asyncio.sleep(0.02)


async def some_traffic(s: RedisStore, tag: str) -> None:
    """A little of everything: scripts, plain reads, a MULTI/EXEC, a hand-off to an agent."""
    await s.register_agent(AgentProfile(f"a-{tag}", "客服", ("presale",), 2))
    await s.agent_connected(f"a-{tag}", f"s-{tag}", AgentStatus.ONLINE, s.instance)
    await s.create_conversation(Conversation(f"c-{tag}", f"u-{tag}"))
    await s.append(f"c-{tag}", {"type": "message", "from": "customer", "text": "转人工"}, client_id="m1")
    placed = await s.assign_or_enqueue(f"c-{tag}", "presale", Priority.NORMAL)
    assert placed is not None and placed.agent == f"a-{tag}"
    agent = await s.get_agent(f"a-{tag}")
    assert agent is not None and agent.held == [f"c-{tag}"]
    assert [e["text"] for e in await s.read_log(f"c-{tag}") if e.get("type") == "message"] == ["转人工"]


async def test_two_namespaces_on_two_nodes_both_work(redis_cluster: RedisClusterServer, nodes: Nodes) -> None:
    # namespaces are picked so their slots live on different masters (one per shop, say)
    first = f"shop-{uuid.uuid4().hex[:6]}"
    first_node = await nodes.owner(slot(first))
    second = next(ns for ns in (f"shop-{uuid.uuid4().hex[:6]}" for _ in range(1000))
                  if ns != first and slot(ns) != slot(first))
    while await nodes.owner(slot(second)) == first_node:
        second = f"shop-{uuid.uuid4().hex[:6]}"
    second_node = await nodes.owner(slot(second))
    ev1: Events = []
    ev2: Events = []
    async with opened(redis_cluster.url, first, ev1) as s1, opened(redis_cluster.url, second, ev2) as s2:
        assert s1._runner.client.addr == ("127.0.0.1", first_node)
        assert s2._runner.client.addr == ("127.0.0.1", second_node)
        await asyncio.gather(some_traffic(s1, "one"), some_traffic(s2, "two"))
        await until_seen(ev1, "c:c-one", lambda p: p.get("type") == "assigned")
        await until_seen(ev2, "c:c-two", lambda p: p.get("type") == "assigned")
        assert not [t for t, _ in ev1 if t == "c:c-two"]  # each namespace hears only its own bus
        # every key of a namespace is on its own node, and nowhere else
        k1, k2 = await nodes.keys(first_node, first), await nodes.keys(second_node, second)
        assert len(k1) > 5 and len(k2) > 5
        assert {key_slot(k.encode()) for k in k1} == {slot(first)}
        for port in redis_cluster.ports:
            if port != first_node:
                assert await nodes.keys(port, first) == []
            if port != second_node:
                assert await nodes.keys(port, second) == []
        assert s1._runner.client.redirects == 0 and s2._runner.client.redirects == 0


async def migrate(nodes: Nodes, s: int, src: int, dst: int, *, finish: bool = True) -> None:
    """Move slot ``s`` from ``src`` to ``dst`` the way ``redis-cli --cluster reshard`` does."""
    src_r, dst_r = nodes.by_port[src], nodes.by_port[dst]
    src_id, dst_id = await nodes.node_id(src), await nodes.node_id(dst)
    await dst_r.execute_command("CLUSTER", "SETSLOT", s, "IMPORTING", src_id)
    await src_r.execute_command("CLUSTER", "SETSLOT", s, "MIGRATING", dst_id)
    while keys := await src_r.execute_command("CLUSTER", "GETKEYSINSLOT", s, 100):
        await src_r.execute_command("MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys)
    if finish:
        await finish_migration(nodes, s, dst)


async def finish_migration(nodes: Nodes, s: int, dst: int) -> None:
    dst_id = await nodes.node_id(dst)
    await nodes.by_port[dst].execute_command("CLUSTER", "SETSLOT", s, "NODE", dst_id)
    for port, r in nodes.by_port.items():
        if port != dst:
            await r.execute_command("CLUSTER", "SETSLOT", s, "NODE", dst_id)


async def test_a_namespace_whose_slot_moves_follows_it(redis_cluster: RedisClusterServer, nodes: Nodes) -> None:
    namespace = f"move-{uuid.uuid4().hex[:8]}"
    s_ = slot(namespace)
    src = await nodes.owner(s_)
    dst = next(p for p in redis_cluster.ports if p != src)
    events: Events = []
    async with opened(redis_cluster.url, namespace, events) as s:
        await some_traffic(s, "before")
        await s.create_conversation(Conversation("c1", "u1"))
        await s.append("c1", {"type": "message", "from": "customer", "text": "one"})
        assert s._runner.client.addr == ("127.0.0.1", src)

        # keys moved, slot still migrating: the old node answers ASK, and the store asks the new one
        await migrate(nodes, s_, src, dst, finish=False)
        assert await nodes.keys(src, namespace) == []
        conv = await s.get_conversation("c1")  # one key: ASKING + HGETALL on the new node
        assert conv is not None and conv.id == "c1"
        assert s._runner.client.addr == ("127.0.0.1", src)  # an ASK is a one-off
        asked = s._runner.client.redirects
        assert asked >= 1
        # a script (several keys) cannot run mid-migration (TRYAGAIN: it did not run): it is tried
        # again until the slot has moved, then MOVED says where it lives now
        client, refused = s._runner.client, asyncio.Event()
        pause = client._pause  # the back-off before a command the cluster did not run is sent again

        async def paused(waited: float) -> float:
            if asyncio.current_task() is pending:
                refused.set()
            return await pause(waited)

        client._pause = paused
        pending = asyncio.create_task(
            s.append("c1", {"type": "message", "from": "customer", "text": "two"}, client_id="m2"))
        await asyncio.wait_for(refused.wait(), 5)  # barrier: it reached the cluster and was refused
        assert not pending.done()  # ... and waits to be sent again
        client._pause = pause
        await finish_migration(nodes, s_, dst)
        assert await nodes.owner(s_) == dst
        res = await pending
        assert res.entry["seq"] == 2 and not res.duplicate
        assert s._runner.client.addr == ("127.0.0.1", dst)
        res = await s.append("c1", {"type": "message", "from": "customer", "text": "three"}, client_id="m3")
        assert res.entry["seq"] == 3
        moved = s._runner.client.redirects
        assert moved > asked
        # many sessions at once, after the move: no more redirects, and everything is there
        got = await asyncio.gather(*[s.append("c1", {"type": "message", "text": f"n{i}"}) for i in range(20)],
                                   some_traffic(s, "after"))
        assert sorted(r.entry["seq"] for r in got[:20]) == list(range(4, 24))  # type: ignore[union-attr]
        assert s._runner.client.redirects == moved
        assert [e["seq"] for e in await s.read_log("c1")] == list(range(1, 24))
        assert await s.dead_letters() == [] and await s.queue_lengths() == {}
        assert await nodes.keys(src, namespace) == [] and len(await nodes.keys(dst, namespace)) > 5
        # the bus still rings (a classic PUBLISH reaches every node, so the subscription may stay put)
        await until_seen(events, "c:c1", lambda p: p.get("seq") == 23)
        assert await s.ping()


def test_open_store_takes_a_cluster_url() -> None:
    s = open_store("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", "shop-1", instance="i")
    assert isinstance(s, RedisStore)
    assert s._runner.target.cluster and s._runner.target.nodes == (("127.0.0.1", 7000), ("127.0.0.1", 7001))
    with pytest.raises(ConfigError):
        open_store("redis+cluster://127.0.0.1:notaport", "shop-1")
    with pytest.raises(ConfigError):
        open_store("rediscluster://x", "shop-1")
