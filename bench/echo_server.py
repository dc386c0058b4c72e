"""The bare baseline: an aiohttp websocket server that echoes every text frame.

Same stack as the gateway (aiohttp on uvloop, one process, the same websocket
settings: 64 KiB frames, 30 s heartbeat, permessage-deflate declined like the
gateway does; ``--compress`` accepts it), and none of its work. The load generator drives it exactly as it drives the gateway, so
the gateway's numbers can be read as ratios to "websockets alone" on this machine.

    python -m bench.echo_server --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import aiohttp
from aiohttp import web

COMPRESS = False


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=64 * 1024, heartbeat=30.0, compress=COMPRESS)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
            break
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def build_app() -> web.Application:
    app = web.Application()
    for path in ("/ws/customer", "/ws/agent", "/ws"):
        app.router.add_get(path, echo)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    return app


async def serve(host: str, port: int) -> None:
    runner = web.AppRunner(build_app(), handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"echo listening on http://{host}:{port}", flush=True)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--compress", action="store_true", help="accept permessage-deflate (aiohttp's default)")
    args = p.parse_args(argv)
    global COMPRESS
    COMPRESS = args.compress
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
