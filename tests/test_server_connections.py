"""Connections that cannot pile up (gateway/server/connections.py): the header deadline, the keep-alive
timeout, the caps per client address and per instance, eviction of silent connections when full."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.config import Limits, load_config
from gateway.server.connections import Guard, instance_cap
from tests.e2e import customer, say
from tests.support import T, until, write_config

# ------------------------------------------------------------------ the decisions, without sockets


class Conn:
    """What ``Guard`` needs of a connection: its address, and a close that releases it."""

    def __init__(self, guard: Guard, address: str) -> None:
        self.guard, self.address, self.closed = guard, address, ""

    def close(self, reason: str) -> None:
        self.closed = reason
        self.guard.release(self)  # type: ignore[arg-type]


def _guard(**kw: object) -> Guard:
    return Guard(Limits(**kw))  # type: ignore[arg-type]


def test_per_address_cap_refuses_and_a_release_makes_room() -> None:
    g = _guard(max_connections=100, max_connections_per_address=2)
    a, b = Conn(g, "10.0.0.1"), Conn(g, "10.0.0.1")
    assert g.admit(a) == "" and g.admit(b) == ""  # type: ignore[arg-type]
    assert g.admit(Conn(g, "10.0.0.1")) == "address"  # type: ignore[arg-type]
    assert g.admit(Conn(g, "10.0.0.2")) == ""  # type: ignore[arg-type]
    g.release(a)  # type: ignore[arg-type]
    assert g.admit(Conn(g, "10.0.0.1")) == ""  # type: ignore[arg-type]
    assert g.open == 3 and g.by_address == {"10.0.0.1": 2, "10.0.0.2": 1}


def test_full_instance_evicts_the_oldest_connection_still_waiting_for_a_request() -> None:
    g = _guard(max_connections=3, max_connections_per_address=10)
    conns = [Conn(g, f"10.0.0.{i}") for i in range(3)]
    for c in conns:
        assert g.admit(c) == ""  # type: ignore[arg-type]
    g.started(conns[0])  # type: ignore[arg-type]  # completed a request: no longer evictable
    assert g.full
    newcomer = Conn(g, "10.0.0.9")
    assert g.admit(newcomer) == ""  # type: ignore[arg-type]
    assert [c.closed for c in conns] == ["", "evicted", ""]
    assert g.open == 3 and "10.0.0.1" not in g.by_address


def test_full_of_busy_connections_refuses() -> None:
    g = _guard(max_connections=2, max_connections_per_address=10)
    for i in range(2):
        c = Conn(g, f"10.0.0.{i}")
        g.admit(c)  # type: ignore[arg-type]
        g.started(c)  # type: ignore[arg-type]
    assert g.admit(Conn(g, "10.0.0.5")) == "instance"  # type: ignore[arg-type]
    assert g.open == 2


def test_trusted_proxies_are_not_capped_per_address() -> None:
    g = _guard(max_connections=100, max_connections_per_address=1, trusted_proxies=("10.1.0.0/16",))
    for _ in range(5):
        assert g.admit(Conn(g, "10.1.2.3")) == ""  # type: ignore[arg-type]
    g.admit(Conn(g, "10.2.0.1"))  # type: ignore[arg-type]
    assert g.admit(Conn(g, "10.2.0.1")) == "address"  # type: ignore[arg-type]


def test_the_automatic_instance_cap_leaves_file_descriptors_for_the_rest() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert instance_cap(500) == 500
    if soft != resource.RLIM_INFINITY:
        assert 64 <= instance_cap(0) < soft


def test_connection_limits_config_and_defaults(tmp_path: Path) -> None:
    d = Limits()
    assert (d.header_timeout_s, d.keepalive_timeout_s, d.max_connections, d.max_connections_per_address) == \
        (10.0, 15.0, 0, 256)
    cfg = load_config(write_config(tmp_path, {"limits": {"header_timeout_s": 3, "keepalive_timeout_s": 4,
                                                         "max_connections": 900,
                                                         "max_connections_per_address": 9}}))
    lim = cfg.limits
    assert (lim.header_timeout_s, lim.keepalive_timeout_s, lim.max_connections, lim.max_connections_per_address) == \
        (3.0, 4.0, 900, 9)


# ------------------------------------------------------------------ over real sockets


@contextlib.asynccontextmanager
async def raw_connections(port: int, n: int, source: str = "127.0.0.1") -> AsyncIterator[
        list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]:
    conns = [await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)) for _ in range(n)]
    try:
        yield conns
    finally:
        for _, w in conns:
            w.close()


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the server sent before it closed the connection (TimeoutError if it does not)."""
    return await asyncio.wait_for(reader.read(), within)


async def get(url: str, path: str, source: str = "127.0.0.1") -> tuple[int, str]:
    conn = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with aiohttp.ClientSession(connector=conn) as s, s.get(url + path) as r:
        return r.status, await r.text()


def _port(app) -> int:  # type: ignore[no-untyped-def]
    return int(app.http_url.rsplit(":", 1)[1])


async def test_a_connection_that_sends_no_complete_request_is_closed_at_the_header_deadline(gateway_app) -> None:
    app = await gateway_app({"limits": {"header_timeout_s": 0.5, "keepalive_timeout_s": 60}})
    async with raw_connections(_port(app), 2) as ((silent_r, _), (drip_r, drip_w)):
        started = time.monotonic()
        drip_w.write(b"GET /healthz HTTP/1.1\r\n")

        async def drip() -> None:  # one header line now and then, never the blank line that ends them
            for i in range(100):
                await asyncio.sleep(0.1)
                drip_w.write(f"X-Drip-{i}: 1\r\n".encode())

        dripping = asyncio.create_task(drip())
        try:
            assert await closed_by_server(silent_r, T) == b""
            assert await closed_by_server(drip_r, T) == b""
        finally:
            dripping.cancel()
        assert time.monotonic() - started < 3.0  # the deadline (0.5 s), not the keep-alive (60 s)
    status, _ = await get(app.http_url, "/healthz")
    assert status == 200


async def test_an_idle_keep_alive_connection_is_closed_after_keepalive_timeout(gateway_app) -> None:
    app = await gateway_app({"limits": {"header_timeout_s": 60, "keepalive_timeout_s": 0.5}})
    async with raw_connections(_port(app), 1) as [(r, w)]:
        w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), T)
        assert head.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        await closed_by_server(r, T)  # the body, then the close
        assert time.monotonic() - started < 3.0


async def test_a_request_in_time_is_not_cut_by_the_header_deadline(gateway_app) -> None:
    app = await gateway_app({"limits": {"header_timeout_s": 0.3, "keepalive_timeout_s": 60}})
    c, _ = await customer(app.ws_url, "u-long")  # a websocket outlives the deadline many times
    deadline_passed = asyncio.Event()
    asyncio.get_running_loop().call_later(0.6, deadline_passed.set)
    await deadline_passed.wait()
    ack = await say(c, "m1", "你好")
    assert ack["seq"] >= 1
    await c.close()


async def test_per_address_cap_answers_503_and_other_addresses_are_served(gateway_app) -> None:
    app = await gateway_app({"limits": {"max_connections_per_address": 5, "header_timeout_s": 30}})
    async with raw_connections(_port(app), 5, "127.0.0.2"):
        async with raw_connections(_port(app), 1, "127.0.0.2") as [(r, _)]:
            refused = await closed_by_server(r, T)
        assert refused.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in refused
        assert (await get(app.http_url, "/healthz"))[0] == 200  # from 127.0.0.1
        c, _ = await customer(app.ws_url, "u-other-address")
        await say(c, "m", "你好")
        await c.close()
    await until(lambda: "127.0.0.2" not in app.ctx.connections.by_address)  # released when they close


async def test_a_full_instance_evicts_silent_connections_for_real_requests(gateway_app) -> None:
    app = await gateway_app({"limits": {"max_connections": 20, "header_timeout_s": 30}})
    async with raw_connections(_port(app), 20, "127.0.0.2") as silent:
        assert app.ctx.connections.full
        assert (await get(app.http_url, "/healthz"))[0] == 200
        assert await closed_by_server(silent[0][0], T) == b""  # the oldest silent one made room, without a word
        await until(lambda: app.ctx.connections.open == 19)  # the probe's own connection is gone too
        c, _ = await customer(app.ws_url, "u-while-full")  # takes the free place: full again
        assert app.ctx.connections.full
        assert (await get(app.http_url, "/healthz"))[0] == 200
        assert await closed_by_server(silent[1][0], T) == b""
        await say(c, "m", "你好")
        assert not any(r.at_eof() for r, _ in silent[2:])
        await c.close()


async def test_full_of_busy_connections_refuses_new_ones_and_readyz_says_full(gateway_app) -> None:
    app = await gateway_app({"limits": {"max_connections": 3, "header_timeout_s": 30}})
    busy = [(await customer(app.ws_url, f"u-{i}"))[0] for i in range(2)]
    status, body = await get(app.http_url, "/readyz")  # the third connection: the instance is now full
    assert status == 503 and '"full": true' in body.replace('":true', '": true')
    busy.append((await customer(app.ws_url, "u-2"))[0])
    async with raw_connections(_port(app), 1) as [(r, _)]:
        assert (await closed_by_server(r, T)).startswith(b"HTTP/1.1 503")
    for c in busy[:2]:
        await c.close()
    await until(lambda: app.ctx.connections.open == 1)  # the server's side of a close lands a moment later
    status, body = await get(app.http_url, "/readyz")  # the second of three: room for one more
    assert status == 200, body
    await busy[2].close()


# ------------------------------------------------------------------ the attacks of issue 12, on `gateway serve`


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, limits: dict[str, object], nofile: int | None = None) -> AsyncIterator[int]:
    """``gateway serve`` as its own process (optionally under ``ulimit -n nofile``); yields its port."""
    import resource
    import signal
    import sys

    from tests.support import ROOT, free_port

    def lower_nofile() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    path = await asyncio.to_thread(write_config, tmp_path, {"limits": limits})
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--config", str(path), "--port", str(port), "--host", "127.0.0.1",
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, preexec_fn=lower_nofile)
    try:
        end = time.monotonic() + 30
        while True:
            assert proc.returncode is None, "gateway exited"
            with contextlib.suppress(OSError, aiohttp.ClientError):
                if (await get(f"http://127.0.0.1:{port}", "/readyz"))[0] == 200:
                    break
            assert time.monotonic() < end, "gateway did not start"
            await asyncio.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 15)
        except TimeoutError:
            proc.kill()
            raise
        log = err.decode(errors="replace")
        assert "Too many open files" not in log and "Traceback" not in log, log[-3000:]


def _enough_fds(n: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            pytest.skip(f"this test holds {n} sockets; the hard file-descriptor limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


async def served_while_attacked(port: int) -> float:
    """``/healthz`` and a new customer (hello, message, bot answer) from 127.0.0.1; returns the seconds taken."""
    started = time.monotonic()
    assert (await get(f"http://127.0.0.1:{port}", "/healthz"))[0] == 200
    c, _ = await customer(f"ws://127.0.0.1:{port}", "u-during-attack")
    await say(c, "m", "什么时候发货")
    await c.wait(lambda f: f.get("from") == "bot", what="bot answer")
    await c.close()
    return time.monotonic() - started


async def test_slowloris_1500_connections_are_closed_and_customers_stay_served(tmp_path: Path) -> None:
    _enough_fds(4096)
    header_timeout = 2.0
    async with serve(tmp_path, {"header_timeout_s": header_timeout}) as port:
        conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        opened = time.monotonic()
        for i in range(1500):  # 250 from each of six addresses: under the per-address cap of 256
            conns.append(await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.0.0.{2 + i % 6}", 0)))
        dripping = conns[::2]  # half send one header line now and then, half send nothing at all
        for _, w in dripping:
            w.write(b"GET /healthz HTTP/1.1\r\n")

        async def drip() -> None:
            for n in range(100):
                await asyncio.sleep(0.5)
                for _, w in dripping:
                    if not w.is_closing():
                        w.write(f"X-Slow-{n}: 1\r\n".encode())

        task = asyncio.create_task(drip())
        try:
            took = await served_while_attacked(port)

            async def close_time(r: asyncio.StreamReader) -> float:
                with contextlib.suppress(ConnectionError):
                    await asyncio.wait_for(r.read(), header_timeout + 10)
                return time.monotonic() - opened

            closes = await asyncio.gather(*(close_time(r) for r, _ in conns))
        finally:
            task.cancel()
            for _, w in conns:
                w.close()
        print(f"slowloris: served a customer in {took * 1000:.0f} ms while 1500 were open; "
              f"all 1500 closed by {max(closes):.1f} s after opening began")
        assert max(closes) < header_timeout + 5


async def test_1200_silent_connections_under_ulimit_1024_leave_healthz_and_customers_served(tmp_path: Path) -> None:
    _enough_fds(4096)
    async with serve(tmp_path, {"header_timeout_s": 120}, nofile=1024) as port:
        conns = []
        for i in range(1200):  # 240 from each of five addresses: the instance cap, not the address cap, acts
            conns.append(await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.0.0.{2 + i % 5}", 0)))
        try:
            took = await served_while_attacked(port)
            evicted = sum(1 for r, _ in conns if r.at_eof())
            _, body = await get(f"http://127.0.0.1:{port}", "/readyz")
            print(f"fd exhaustion: 1200 silent connections under ulimit -n 1024; {evicted} evicted; "
                  f"customer served in {took * 1000:.0f} ms; readyz {body}")
            assert evicted >= 1200 - (1024 - 128)
        finally:
            for _, w in conns:
                w.close()
