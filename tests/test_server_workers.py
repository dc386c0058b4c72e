"""``gateway serve --workers N``: N processes on one port (SO_REUSEPORT) under one supervisor.

- two workers (children of the supervisor) share the port and both serve HTTP and
  websockets, each its own store instance; the listening line is printed once;
- a customer on one worker is answered by an agent on the other;
- a worker killed with -9 is restarted; SIGHUP reaches every worker; SIGTERM closes
  the clients with 1012 and the supervisor exits 0 after its workers; killing the
  supervisor with -9 takes its workers along;
- the memory store refuses more than one worker (exit 2) and defaults to one process;
  a port held by another program is a start failure (exit 1).

Which worker holds a websocket is read from /proc (the socket's inode in the
worker's open files), so nothing in the server is there only for these tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from gateway.server.workers import default_workers, resolve_workers
from tests.conftest import GatewayProcess, RedisServer, wait_http
from tests.support import DEMO_CONFIG, ROOT, Client, free_port, is_, write_config
from tests.test_redis_instances import T, View, agent, agent_spec, base_config, customer, say

pytestmark = [pytest.mark.redis,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; SO_REUSEPORT spreading")]


# ------------------------------------------------------------------ processes, seen through /proc


def stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def children(pid: int) -> set[int]:
    out: set[int] = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (s := stat(int(d.name))) is not None and s[1] == pid and s[0] != "Z":
            out.add(int(d.name))
    return out


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")


def alive(pid: int) -> bool:
    s = stat(pid)
    return s is not None and s[0] != "Z"


def holder(server_port: int, ws: Client, pids: set[int]) -> int:
    """The process that holds the server side of this client's TCP connection."""
    client_port = ws.ws.local_address[1]
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == server_port and int(f[2].rsplit(":", 1)[1], 16) == client_port:
                inodes.add(f[9])
    assert inodes, f"no server socket for client port {client_port}"
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return pid
    raise AssertionError(f"none of {pids} holds the connection from port {client_port}")


def healthz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return dict(json.loads(r.read()))


def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


@dataclass
class Supervised:
    proc: subprocess.Popen[bytes]
    port: int
    out: Path
    err: Path
    url: str

    def workers(self) -> set[int]:
        return children(self.proc.pid)

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def log(self) -> str:
        return self.err.read_text(errors="replace")


LISTENING = re.compile(r"gateway listening on http://127\.0\.0\.1:(\d+) .*, (\d+) workers$", re.M)


def start(tmp: Path, config: Path, store: str, workers: int = 2) -> Supervised:
    """``gateway serve --workers N --port 0``: the port comes from the one listening line."""
    tag = uuid.uuid4().hex[:6]
    out, err = tmp / f"sup-{tag}.out", tmp / f"sup-{tag}.log"
    cmd = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--host", "127.0.0.1",
           "--port", "0", "--store", store, "--workers", str(workers)]
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=o, stderr=e)
    sup = Supervised(proc, 0, out, err, store)
    end = time.monotonic() + 60
    while not (m := LISTENING.search(sup.stdout())):
        if proc.poll() is not None or time.monotonic() > end:
            stop(sup)
            raise AssertionError(f"supervisor did not start (exit {proc.returncode})\n{sup.log()[-3000:]}")
        time.sleep(0.1)
    assert int(m.group(2)) == workers
    sup.port = int(m.group(1))
    return sup


def stop(sup: Supervised) -> None:
    if sup.proc.poll() is None:
        sup.proc.send_signal(signal.SIGTERM)
        try:
            sup.proc.wait(30)
        except subprocess.TimeoutExpired:
            sup.proc.kill()
            sup.proc.wait(5)


@dataclass
class Pair:
    sup: Supervised
    namespace: str
    redis_url: str


@pytest.fixture(scope="module")
def pair(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("workers")
    namespace = f"wk{uuid.uuid4().hex[:8]}"
    agents = [agent_spec(f"w{i}", ["vip2"], 5) for i in range(1, 9)]
    sup = start(tmp, write_config(tmp, base_config(namespace, agents)), redis_server.url)
    yield Pair(sup, namespace, redis_server.url)
    stop(sup)


@pytest.fixture
def own(redis_server: RedisServer, tmp_path: Path) -> Iterator[Callable[[], Supervised]]:
    """Factory: a private two-worker supervisor for tests that stop or kill it."""
    started: list[Supervised] = []

    def go() -> Supervised:
        cfg = write_config(tmp_path, base_config(f"wo{uuid.uuid4().hex[:8]}", [agent_spec("o1", ["vip2"], 5)]))
        started.append(start(tmp_path, cfg, redis_server.url))
        return started[-1]

    yield go
    for sup in started:
        stop(sup)


# ------------------------------------------------------------------ two workers, one port


async def test_two_workers_share_the_port_and_both_serve(pair: Pair) -> None:
    sup = pair.sup
    workers = sup.workers()
    assert len(workers) == 2, workers
    for pid in workers:
        assert "--reuse-port" in cmdline(pid)
    assert sup.stdout().count("gateway listening on") == 1
    # plain HTTP: every request is a new connection, the kernel spreads them over both
    seen = {h["pid"]: h["instance"] for h in (healthz(sup.port) for _ in range(40))}
    assert set(seen) == workers
    assert len(set(seen.values())) == 2  # one store instance each
    view = View(pair.redis_url, pair.namespace)
    try:
        assert set(seen.values()) <= await view.instances()
    finally:
        await view.close()
    # websockets too
    clients = [await customer(f"ws://127.0.0.1:{sup.port}", f"u-spread-{i}") for i in range(24)]
    held = {holder(sup.port, c, workers) for c, _ in clients}
    assert held == workers
    for c, _ in clients:
        await c.close()


async def test_customer_on_one_worker_answered_by_agent_on_the_other(pair: Pair) -> None:
    url, workers = f"ws://127.0.0.1:{pair.sup.port}", pair.sup.workers()
    w1, _ = await agent(url, "w1")
    agent_pid = holder(pair.sup.port, w1, workers)
    spare: list[Client] = []
    for i in range(40):  # connect until a customer lands on the other worker
        c, w = await customer(url, f"u-cross-{i}", channel="direct2")
        if holder(pair.sup.port, c, workers) != agent_pid:
            break
        spare.append(c)
    else:
        raise AssertionError("40 customers all landed on the agent's worker")
    conv = w["conversation"]
    await say(c, "m0", "转人工")
    assert (await c.wait(is_("assigned"), T))["agent"]["id"] == "w1"
    await w1.wait(lambda f: f.get("type") == "assigned" and f["conversation"]["id"] == conv, T)
    await say(w1, "r1", "您好，我来帮您", conv)
    await c.wait(lambda f: f.get("from") == "agent" and f.get("text") == "您好，我来帮您", T)
    await say(c, "m1", "谢谢")
    await w1.wait(lambda f: f.get("conversation") == conv and f.get("text") == "谢谢", T)
    await w1.send({"type": "close", "id": "k", "conversation": conv, "resolution": "resolved"})
    await c.wait(is_("closed"), T)
    for cl in (c, w1, *spare):
        await cl.close()


def test_a_killed_worker_is_restarted(pair: Pair) -> None:
    sup = pair.sup
    before = sup.workers()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    until(lambda: len(sup.workers()) == 2 and victim not in sup.workers(), T, "a new worker")
    (new,) = sup.workers() - before
    assert sup.proc.poll() is None
    assert re.search(r"event=worker_died worker=\d code=-9 restart_in_s=", sup.log())
    until(lambda: re.search(rf"event=worker_ready worker=\d pid={new}\b", sup.log()) is not None, T, "ready")
    assert new in {healthz(sup.port)["pid"] for _ in range(40)}
    assert sup.stdout().count("gateway listening on") == 1  # not announced again


# ------------------------------------------------------------------ signals


async def test_sighup_reaches_every_worker_and_sigterm_stops_all(own: Callable[[], Supervised]) -> None:
    sup = own()
    workers = sup.workers()
    loaded = sup.log().count("event=faq_loaded")
    sup.proc.send_signal(signal.SIGHUP)  # every worker reloads its FAQ
    until(lambda: sup.log().count("event=faq_loaded") == loaded + 2, T, "both workers to reload")
    url = f"ws://127.0.0.1:{sup.port}"
    clients: dict[int, Client] = {}
    for i in range(40):
        c, _ = await customer(url, f"u-term-{i}")
        pid = holder(sup.port, c, workers)
        if pid in clients:
            await c.close()
        else:
            clients[pid] = c
        if len(clients) == 2:
            break
    assert set(clients) == workers
    t0 = time.monotonic()
    sup.proc.send_signal(signal.SIGTERM)
    for c in clients.values():
        assert await c.wait_closed(T) == 1012
    assert await asyncio.to_thread(sup.proc.wait, 30) == 0 and time.monotonic() - t0 < 25
    assert not [pid for pid in workers if alive(pid)]
    assert "event=workers_stopped code=0" in sup.log()
    with pytest.raises(OSError):
        await asyncio.to_thread(lambda: socket.create_connection(("127.0.0.1", sup.port), timeout=2).close())


def test_killing_the_supervisor_takes_its_workers_along(own: Callable[[], Supervised]) -> None:
    sup = own()
    workers = sup.workers()
    assert len(workers) == 2
    sup.proc.kill()
    sup.proc.wait(10)
    until(lambda: not [pid for pid in workers if alive(pid)], T, "the workers to die with the supervisor")


# ------------------------------------------------------------------ the memory store, bad starts


def serve(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_memory_store_refuses_two_workers(tmp_path: Path) -> None:
    r = serve(["--config", str(write_config(tmp_path)), "--port", str(free_port()), "--workers", "2"])
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("gateway: bad config: server.workers: 2 workers need a shared store")
    assert "memory store" in r.stderr and "Traceback" not in r.stderr
    in_file = write_config(tmp_path, {"server": {"workers": 2}})
    r = serve(["--config", str(in_file), "--port", str(free_port())])
    assert r.returncode == 2 and "server.workers: 2 workers need a shared store" in r.stderr
    bad = write_config(tmp_path, {"server": {"workers": 0}})
    r = serve(["--config", str(bad), "--check"])
    assert r.returncode == 2 and "server.workers: must be an integer >= 1, got 0" in r.stderr
    r = serve(["--config", str(in_file), "--workers", "0"])
    assert r.returncode == 2 and "--workers: must be an integer >= 1" in r.stderr


def test_memory_store_defaults_to_one_process(gateway_proc: Callable[..., GatewayProcess]) -> None:
    gp = gateway_proc()  # the demo config as `make serve` runs it: memory store, no --workers
    assert healthz(gp.port)["pid"] == gp.proc.pid
    assert children(gp.proc.pid) == set()


def test_a_port_held_by_another_program_fails_the_start(tmp_path: Path, redis_server: RedisServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = serve(["--config", str(write_config(tmp_path)), "--port", str(port), "--store", redis_server.url,
                   "--workers", "2"])
    assert r.returncode == 1 and r.stderr.startswith("gateway: cannot start:"), r.stderr


def test_how_many_workers(tmp_path: Path) -> None:
    plain, three = DEMO_CONFIG, write_config(tmp_path, {"server": {"workers": 3}})  # the demo sets no workers
    redis = "redis://127.0.0.1:6379/0"
    assert 1 <= default_workers() <= (os.cpu_count() or 1)
    assert resolve_workers(None, str(plain), redis) == default_workers()
    assert resolve_workers(None, str(plain), "memory://") == 1
    assert resolve_workers(None, str(three), redis) == 3
    assert resolve_workers(1, str(three), redis) == 1  # the flag overrides the file
    assert resolve_workers(1, str(plain), "memory://") == 1
    with pytest.raises(ConfigError):
        resolve_workers(None, str(three), "memory://")


def test_one_worker_on_redis_is_one_process(gateway_proc: Callable[..., GatewayProcess],
                                            redis_server: RedisServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"server": {"workers": 1}, "store": {"namespace": f"w1{uuid.uuid4().hex[:6]}"}})
    gp = gateway_proc(store=redis_server.url, config_path=cfg)
    assert healthz(gp.port)["pid"] == gp.proc.pid and children(gp.proc.pid) == set()
    wait_http(gp.http_url + "/readyz")
