"""``gateway serve``, ``gateway faq eval``, ``gateway faq gaps`` and ``gateway export``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from gateway.config import Config, load_config
from gateway.errors import ConfigError

DEFAULT_CONFIG = "configs/gateway.toml"


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )


def _run(coro_main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional on odd platforms
        asyncio.run(coro_main)
        return
    uvloop.run(coro_main)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {n}")
    return n


def _worker_argv(args: argparse.Namespace, host: str, port: int) -> Callable[[int], list[str]]:
    """How the supervisor starts worker ``i``: this command again, one process, SO_REUSEPORT."""
    base = [sys.executable, "-m", "gateway", "serve", "--config", args.config, "--host", host,
            "--port", str(port), "--log-level", args.log_level, "--workers", "1", "--reuse-port",
            "--supervisor-pid", str(os.getpid())]
    if args.store:
        base += ["--store", args.store]
    return lambda i: [*base, "--worker-index", str(i)]


def _supervise(args: argparse.Namespace, config: Config, n: int) -> int:
    from gateway.server.workers import reserve_port, supervise

    try:
        reserved = reserve_port(config.host, config.port)
    except OSError as e:
        print(f"gateway: cannot start: {e}", file=sys.stderr)
        return 1
    with reserved:
        port = int(reserved.getsockname()[1])
        try:
            return supervise(_worker_argv(args, config.host, port), n)
        except KeyboardInterrupt:
            return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.server.app import serve
    from gateway.server.workers import READY_MARK, die_with_parent, resolve_workers

    try:
        config = load_config(args.config).with_overrides(host=args.host, port=args.port, store=args.store)
        if config.faq_path and not Path(config.faq_path).is_file():
            raise ConfigError("bot.faq", f"file not found: {config.faq_path}")
        from gateway.service.botholder import BotHolder

        BotHolder(config.faq_path, config.bot)  # validates [bot] before anything listens
        from gateway.adapters.config import parse_adapters

        parse_adapters(config)  # validates [[shops]] and [adapters]
        workers = resolve_workers(args.workers, args.config, config.store_url)
        if args.check:
            BotHolder(config.faq_path, config.bot).build()
            print(f"config OK: {args.config}")
            return 0
    except ConfigError as e:
        print(f"gateway: bad config: {e}", file=sys.stderr)
        return 2
    _setup_logging(args.log_level)
    if workers > 1:
        return _supervise(args, config, workers)
    instance, ready_prefix = None, ""
    if args.worker_index is not None:  # started by the supervisor
        die_with_parent(args.supervisor_pid)
        instance = f"{socket.gethostname()}-w{args.worker_index}-{uuid.uuid4().hex[:6]}"
        ready_prefix = READY_MARK
    try:
        _run(serve(config, reuse_port=args.reuse_port, instance=instance, ready_prefix=ready_prefix))
    except ConfigError as e:
        print(f"gateway: bad config: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"gateway: cannot start: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of days, got {text!r}") from None
    if not 0 < days <= 365:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 365 days, got {text}")
    return days


def _gaps_over_http(url: str, token: str, since_days: float, limit: int) -> dict[str, Any]:
    """Ask a running gateway (``GET /api/faq/gaps``): the memory store lives inside its process."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    query = urllib.parse.urlencode({"since_days": repr(since_days), "limit": limit})
    req = urllib.request.Request(f"{url.rstrip('/')}/api/faq/gaps?{query}",
                                 headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            body: dict[str, Any] = json.load(r)
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")[:300]
        raise SystemExit(f"gateway faq gaps: {url} answered {e.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        raise SystemExit(f"gateway faq gaps: cannot reach {url}: {e}") from None
    return body


async def _gaps_from_store(config: Config, since_days: float, limit: int) -> dict[str, Any]:
    """Read a shared (Redis) store directly, with the bot of the config's FAQ."""
    from gateway.service.botholder import BotHolder
    from gateway.service.gaps import GapLimits, gaps_report
    from gateway.store import open_store

    holder = BotHolder(config.faq_path, config.bot)
    await holder.load()
    store = open_store(config.store_url, config.namespace)  # not started: reads only, no heartbeat
    try:
        return await gaps_report(store, holder, since_days, limits=GapLimits(max_clusters=limit))
    finally:
        await store.close()


def cmd_gaps(argv: list[str]) -> int:
    from gateway.bot.gaps import MAX_CLUSTERS, format_table

    p = argparse.ArgumentParser(
        prog="gateway faq gaps",
        description="Cluster the customer messages the FAQ bot handed off, only suggested for, or answered "
                    "unhelpfully, with the closest FAQ entry of each cluster.")
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"TOML config (default {DEFAULT_CONFIG})")
    p.add_argument("--since", type=_days, default=7.0, metavar="DAYS", help="look back this many days (default 7)")
    p.add_argument("--limit", type=_positive, default=MAX_CLUSTERS, metavar="N",
                   help=f"clusters to show, the biggest (default {MAX_CLUSTERS})")
    p.add_argument("--json", action="store_true", help="print the report as JSON (as GET /api/faq/gaps)")
    p.add_argument("--url", help="ask a running gateway, e.g. http://127.0.0.1:8080 (needed on the memory "
                                 "store, whose conversations live inside the gateway's process)")
    p.add_argument("--token", help="the admin token for --url (default: $GATEWAY_ADMIN_TOKEN)")
    p.add_argument("--store", help="read this Redis store directly (overrides [store] url)")
    args = p.parse_args(argv)
    if args.url:
        token = args.token or os.environ.get("GATEWAY_ADMIN_TOKEN", "")
        if not token:
            print("gateway faq gaps: --url needs the admin token (--token or $GATEWAY_ADMIN_TOKEN)", file=sys.stderr)
            return 2
        report = _gaps_over_http(args.url, token, args.since, args.limit)
    else:
        try:
            config = load_config(args.config).with_overrides(store=args.store)
        except ConfigError as e:
            print(f"gateway: bad config: {e}", file=sys.stderr)
            return 2
        if config.store_url.startswith("memory"):
            print(f"gateway faq gaps: the memory store lives inside the running gateway: ask it with "
                  f"--url http://{config.host}:{config.port} --token <admin token>", file=sys.stderr)
            return 2
        _setup_logging("warning")
        report = asyncio.run(_gaps_from_store(config, args.since, args.limit))
    if args.json:
        import json

        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(format_table(report), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["faq", "eval"]:
        from gateway.bot.eval import main as eval_main

        return eval_main(argv[2:])
    if argv[:2] == ["faq", "gaps"]:
        return cmd_gaps(argv[2:])
    if argv[:1] == ["report"]:
        from gateway.records.report_cli import main as report_main

        return report_main(argv[1:])
    if argv[:1] == ["export"]:
        from gateway.records.export import main as export_main

        return export_main(argv[1:], DEFAULT_CONFIG)
    p = argparse.ArgumentParser(prog="gateway", description="Chat-routing and FAQ-bot gateway")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--config", default=DEFAULT_CONFIG, help=f"TOML config (default {DEFAULT_CONFIG})")
    s.add_argument("--host", help="listen address (overrides [server] host)")
    s.add_argument("--port", type=int, help="listen port (overrides [server] port)")
    s.add_argument("--store", help="memory://, redis://host:port/db or redis+cluster://host:port[,host:port] "
                                    "(overrides [store] url)")
    s.add_argument("--workers", type=_positive, metavar="N",
                   help="processes sharing the port (overrides [server] workers; default: one per CPU, "
                        "1 on the memory store)")
    s.add_argument("--reuse-port", action="store_true",
                   help="bind with SO_REUSEPORT, so several processes can share the port")
    s.add_argument("--log-level", default="info")
    s.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    s.add_argument("--supervisor-pid", type=int, default=0, help=argparse.SUPPRESS)
    s.add_argument("--check", action="store_true", help="validate the config and FAQ, then exit")
    f = sub.add_parser("faq", help="FAQ tools: gateway faq eval --faq FAQ CASES.jsonl [--json]; "
                                    "gateway faq gaps [--since DAYS] [--json] [--url URL --token TOKEN]")
    f.add_argument("action", choices=["eval", "gaps"])
    sub.add_parser("report", help="service figures of a period from the archive: gateway report --from DATE "
                                  "--to DATE [--by agent|skill|channel|day|category] [--format table|json|csv]")
    sub.add_parser("export", help="archived conversations to stdout: gateway export --from DATE --to DATE "
                                  "[--format jsonl|csv] [--config PATH]")
    args = p.parse_args(argv)
    if args.cmd == "serve":
        return cmd_serve(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
