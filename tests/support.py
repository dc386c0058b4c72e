"""Test helpers: a recording websocket client, config building, free ports."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import http.server
import inspect
import json
import socket
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import websockets

from bench.config import toml_dumps

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "configs" / "gateway.toml"
DEMO_FAQ = ROOT / "configs" / "faq.toml"
T = 5.0

Frame = dict[str, Any]
Pred = Callable[[Frame], bool]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_(type_: str, **kv: Any) -> Pred:
    return lambda f: f.get("type") == type_ and all(f.get(k) == v for k, v in kv.items())


class Client:
    """A real websocket client that records every frame it receives."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Frame] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self._new = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, **kw: Any) -> Client:
        return cls(await websockets.connect(url, open_timeout=T, max_size=2**22, **kw))

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.frames.append(json.loads(raw) if isinstance(raw, str) else {"type": "<binary>"})
                self._new.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code if self.ws.close_code is not None else 1006
            self.close_reason = self.ws.close_reason or ""
            self._new.set()

    async def send(self, obj: Frame) -> None:
        await self.ws.send(json.dumps(obj, ensure_ascii=False))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def wait(self, pred: Pred, timeout: float = T, what: str = "frame") -> Frame:
        end = time.monotonic() + timeout
        while True:
            for f in self.frames:
                if pred(f):
                    return f
            if self.close_code is not None or time.monotonic() >= end:
                raise AssertionError(f"no {what} (closed={self.close_code}); last frames: {self.frames[-6:]}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), max(0.0, end - time.monotonic()))
            except TimeoutError:
                pass

    async def wait_count(self, pred: Pred, n: int, timeout: float = T) -> list[Frame]:
        end = time.monotonic() + timeout
        while True:
            got = [f for f in self.frames if pred(f)]
            if len(got) >= n:
                return got
            if self.close_code is not None or time.monotonic() >= end:
                raise AssertionError(f"wanted {n} frames, got {len(got)}; last: {self.frames[-6:]}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), max(0.0, end - time.monotonic()))
            except TimeoutError:
                pass

    async def wait_closed(self, timeout: float = T) -> int:
        try:
            await asyncio.wait_for(self._task, timeout)
        except TimeoutError as e:
            raise AssertionError(f"still open; last frames: {self.frames[-4:]}") from e
        assert self.close_code is not None
        return self.close_code

    def of(self, pred: Pred) -> list[Frame]:
        return [f for f in self.frames if pred(f)]

    async def close(self) -> None:
        await self.ws.close()
        try:
            await asyncio.wait_for(self._task, 2)
        except (TimeoutError, Exception):
            self._task.cancel()


async def until(cond: Callable[[], Any], timeout: float = T, what: str = "condition") -> Any:
    """Poll ``cond`` (a function, sync or async) until it returns something true, for at most ``timeout`` s.

    For positive checks only ("it happened"): that something did NOT happen is shown with a barrier
    (``tests.e2e.barrier``, ``tests.e2e.bus_barrier``) or an injected clock (``tests.e2e.run_timers``),
    never by waiting a while and looking.
    """
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if inspect.isawaitable(v):
            v = await v
        if v:
            return v
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------ config


def demo_config() -> dict[str, Any]:
    return tomllib.loads(DEMO_CONFIG.read_text(encoding="utf-8"))


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def write_config(tmp: Path, overrides: dict[str, Any] | None = None) -> Path:
    cfg = merge(demo_config(), overrides or {})
    # one process per gateway in tests (the default is one worker per CPU on Redis); tests of
    # --workers pass the flag, which overrides this
    cfg.setdefault("server", {}).setdefault("workers", 1)
    cfg.setdefault("bot", {})
    faq = cfg["bot"].get("faq", "faq.toml")
    if not Path(faq).is_absolute():
        cfg["bot"]["faq"] = str((DEMO_CONFIG.parent / faq).resolve())
    path = tmp / f"gateway-{time.monotonic_ns()}.toml"
    path.write_text(toml_dumps(cfg), encoding="utf-8")
    return path


@contextlib.contextmanager
def other_origin_page(body: bytes) -> Iterator[str]:
    """Serve ``body`` as an HTML page on ``http://localhost:<port>/``: another origin than the gateway's
    127.0.0.1 (a shop framing or embedding it). A real loopback server, not a routed fake: Chromium
    refuses loopback subresources to a page it takes for public (Private Network Access)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{srv.server_address[1]}/"
    finally:
        srv.shutdown()
        srv.server_close()
