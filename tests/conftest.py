"""Fixtures that start real things: a gateway (in-process or as a process), a redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from blockbuster import BlockBuster, blockbuster_ctx

from bench.procs import wait_http
from gateway.config import Config, load_config
from gateway.server.app import build_app, make_runner, start_site
from gateway.server.context import Context
from tests.support import ROOT, free_port, write_config

# ------------------------------------------------------------------ blocking calls on the loop


# Test set-up that blocks on purpose, by (file, function), for any of blockbuster's functions: none
# of it is the gateway's work, and the test waits for it whatever thread it runs on.
_SETUP_MAY_BLOCK: list[tuple[str, set[str]]] = [
    # reads the demo config, writes a test's config file (tests/support.py also serves sync tests)
    ("tests/support.py", {"demo_config", "write_config"}),
    # redis-server, a Redis Cluster and `gateway serve` processes: started, waited for, stopped, logs read
    ("tests/conftest.py", {"start_redis", "start_redis_cluster", "_spawn_redis", "_stop_procs",
                           "start_gateway_process", "kill", "terminate", "log"}),
    ("tests/test_redis_instances.py", {"spawn", "stop_all"}),
    # the supervisor tests' process helpers: /proc read, logs read, a supervisor started, polled, stopped
    ("tests/test_server_workers.py", {"start", "stop", "children", "cmdline", "stat", "alive", "until", "holder",
                                      "healthz", "stdout", "log", "workers"}),
    # the gateway reads its config at start-up, before the loop (gateway.cli); only tests load one on theirs
    ("gateway/config.py", {"load_config", "parse_config"}),
    # redis-py >= 7.2 looks its own version up (importlib.metadata) for every client or connection built
    # without a DriverInfo: the clients the tests build to read Redis directly. The gateway's one redis-py
    # client (cluster discovery, gateway/store/redis_runner.py) passes a DriverInfo and never gets here.
    ("redis/utils.py", {"get_lib_version"}),
    # asyncpg resolves a connection's parameters as libpq does: ~/.pgpass, ~/.postgresql's certificates
    # (a stat or a small read, when a pool connection opens: at start and after a reconnect, never per query)
    ("asyncpg/connect_utils.py", {"_parse_connect_dsn_and_args"}),
]


# Tests that stall their loop on purpose, for one blocking function each.
_STALLS_ON_PURPOSE: list[tuple[str, str, set[str]]] = [
    # a stalled event loop (a callback that blocks) must not be taken for a dead Redis
    ("time.sleep", "tests/test_redis_store.py", {"data_received"}),
    ("socket.socket.send", "tests/test_redis_store.py", {"_stalled"}),
]


def _allow_test_setup(bb: BlockBuster) -> None:
    """The few places where a blocking call on the loop is deliberate (test set-up, not the gateway)."""
    for path, funcs in _SETUP_MAY_BLOCK:
        for f in bb.functions.values():
            f.can_block_in(path, funcs)
    for name, path, funcs in _STALLS_ON_PURPOSE:
        bb.functions[name].can_block_in(path, funcs)


@pytest.fixture(autouse=True)
def blockbuster(request: pytest.FixtureRequest) -> Iterator[BlockBuster | None]:
    """In every async test, a blocking call on the running loop (time.sleep, file or socket I/O in
    blocking mode, a held lock...) raises ``BlockingError`` and fails the test. Sync tests are left
    alone (they have no loop; a blocking call there blocks nobody)."""
    if request.node.get_closest_marker("asyncio") is None:
        yield None
        return
    with blockbuster_ctx() as bb:
        _allow_test_setup(bb)
        yield bb


@dataclass
class RunningApp:
    http_url: str
    ws_url: str
    config: Config
    ctx: Context
    config_path: Path


@pytest.fixture
async def gateway_app(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[RunningApp]]]:
    """Factory: a real gateway on a loopback port, in this test's event loop."""
    runners: list[web.AppRunner] = []

    async def start(overrides: dict[str, Any] | None = None, store: str | None = None) -> RunningApp:
        # file I/O off the loop (blockbuster fails a test that reads or writes files on it)
        path = await asyncio.to_thread(write_config, tmp_path, overrides)
        config = (await asyncio.to_thread(load_config, path)).with_overrides(host="127.0.0.1", port=0, store=store)
        app = await build_app(config)
        runner = make_runner(app, shutdown_timeout=2.0)
        await runner.setup()
        await start_site(runner, "127.0.0.1", 0)
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return RunningApp(f"http://{host}:{port}", f"ws://{host}:{port}", config, app["ctx"], path)

    yield start
    for r in reversed(runners):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(r.cleanup(), 10)


@dataclass
class GatewayProcess:
    proc: subprocess.Popen[bytes]
    port: int
    config_path: Path
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 15) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@pytest.fixture
def gateway_proc(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Factory: ``gateway serve`` as a separate process on a free loopback port."""
    procs: list[GatewayProcess] = []

    def start_gateway_process(overrides: dict[str, Any] | None = None, store: str | None = None,
                              config_path: Path | None = None, wait: str = "/readyz") -> GatewayProcess:
        path = config_path or write_config(tmp_path, overrides)
        port = free_port()
        log_path = tmp_path / f"gateway-{port}.log"
        cmd = [sys.executable, "-m", "gateway", "serve", "--config", str(path), "--port", str(port),
               "--host", "127.0.0.1"]
        if store:
            cmd += ["--store", store]
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT)
        gp = GatewayProcess(proc, port, path, log_path)
        procs.append(gp)
        try:
            wait_http(gp.http_url + wait, proc=proc, timeout=20.0)
        except Exception as e:
            raise AssertionError(f"gateway did not start: {e}\n{gp.log()}") from e
        return gp

    yield start_gateway_process
    _stop_procs([gp.proc for gp in procs])


# ------------------------------------------------------------------ redis


@dataclass
class RedisServer:
    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None
    args: list[str]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc is not None:
            _stop_procs([self.proc])

    def start(self) -> None:
        """(Re)start on the same port and directory."""
        self.proc = _spawn_redis(self.args, self.port)


def _stop_procs(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, then SIGKILL what is still there after 10 s."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def _spawn_redis(args: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_redis(port, proc)
    return proc


def _wait_redis(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    import socket

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("redis-server did not start")


def start_redis(appendonly: bool = False) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("GATEWAY_REQUIRE_REDIS") == "1":
            pytest.fail(f"GATEWAY_REQUIRE_REDIS=1 but {reason}")
        pytest.skip(reason)
    port = free_port()
    d = Path(tempfile.mkdtemp(prefix="gw-redis-"))
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d), "--save", "",
            "--appendonly", "yes" if appendonly else "no", "--appendfsync", "always",
            "--maxmemory-policy", "noeviction", "--protected-mode", "no"]
    srv = RedisServer(port, d, None, args)
    srv.start()
    return srv


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session, on a free loopback port (tests use fresh namespaces)."""
    srv = start_redis()
    yield srv
    srv.stop()
    shutil.rmtree(srv.dir, ignore_errors=True)


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """A private redis-server per test (for stop/restart tests)."""
    servers: list[RedisServer] = []

    def make(appendonly: bool = False) -> RedisServer:
        srv = start_redis(appendonly)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()
        shutil.rmtree(srv.dir, ignore_errors=True)


# ------------------------------------------------------------------ redis cluster


@dataclass
class RedisClusterServer:
    """Three masters on loopback, slots split by ``redis-cli --cluster create``."""

    ports: list[int]
    dir: Path
    procs: list[subprocess.Popen[bytes]]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def node_url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        _stop_procs(self.procs)


def _need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        reason = f"{binary} is not installed (apt-get install redis-server; it brings redis-tools)"
        if os.environ.get("GATEWAY_REQUIRE_REDIS") == "1":
            pytest.fail(f"GATEWAY_REQUIRE_REDIS=1 but {reason}")
        pytest.skip(reason)
    return path


def _cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    import socket

    for _ in range(200):
        p = free_port()
        if p in taken or p + 10000 > 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 10000))
        except OSError:
            continue
        return p
    raise RuntimeError("no free port pair for a cluster node")


def _cluster_ok(cli: str, port: int) -> bool:
    out = subprocess.run([cli, "-p", str(port), "cluster", "info"], capture_output=True, timeout=5, check=False)
    return b"cluster_state:ok" in out.stdout


def start_redis_cluster(masters: int = 3) -> RedisClusterServer:
    server, cli = _need("redis-server"), _need("redis-cli")
    d = Path(tempfile.mkdtemp(prefix="gw-redis-cluster-"))
    ports: list[int] = []
    for _ in range(masters):
        ports.append(_cluster_port(set(ports)))
    procs: list[subprocess.Popen[bytes]] = []
    cluster = RedisClusterServer(ports, d, procs)
    try:
        for p in ports:
            args = [server, "--port", str(p), "--bind", "127.0.0.1", "--dir", str(d), "--cluster-enabled", "yes",
                    "--cluster-config-file", str(d / f"nodes-{p}.conf"), "--cluster-node-timeout", "5000",
                    "--save", "", "--appendonly", "no", "--protected-mode", "no"]
            procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for p, proc in zip(ports, procs, strict=True):
            _wait_redis(p, proc)
        out = subprocess.run([cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                              "--cluster-replicas", "0", "--cluster-yes"],
                             capture_output=True, timeout=60, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout.decode()[-2000:]}"
                               f"{out.stderr.decode()[-2000:]}")
        end = time.monotonic() + 30
        while not all(_cluster_ok(cli, p) for p in ports):
            if time.monotonic() > end:
                raise TimeoutError("the cluster did not reach cluster_state:ok")
            time.sleep(0.1)
    except BaseException:
        cluster.stop()
        shutil.rmtree(d, ignore_errors=True)
        raise
    return cluster


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServer]:
    """A 3-master Redis Cluster for the session, on free loopback ports (tests use fresh namespaces)."""
    cluster = start_redis_cluster()
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.dir, ignore_errors=True)
