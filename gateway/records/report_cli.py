"""``gateway report --from 2026-11-01 --to 2026-12-01 [--by …] [--format table|json|csv]``: the archive read
directly (``[archive] url`` of the config, or ``--archive``); ``--format json`` prints what ``GET /api/reports``
answers."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.records.figures import GROUPS, ReportOptions
from gateway.records.query import add_period_arguments
from gateway.records.report_format import to_csv, to_table
from gateway.records.reports import FORMATS, config_reopen_s, options_from_query, read_report

DEFAULT_CONFIG = "configs/gateway.toml"


async def _read(url: str, options: ReportOptions) -> dict[str, Any]:
    from gateway.records.open import open_archive

    archive = open_archive(url)
    await archive.start()
    try:
        return await read_report(archive, options)
    finally:
        await archive.close()


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        return to_csv(report)
    return to_table(report)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="gateway report",
        description="Service figures of a period from the archive (README: Reports and what each figure means).")
    add_period_arguments(p, DEFAULT_CONFIG)
    p.add_argument("--by", choices=GROUPS, help="one row per agent (the last that held it), skill, channel, day "
                                                "or category")
    p.add_argument("--format", choices=FORMATS, default="table", help="table (default), json (as GET "
                                                                      "/api/reports) or csv")
    args = p.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"gateway: bad config: {e}", file=sys.stderr)
        return 2
    query = {"from": args.from_, "to": args.to, "by": args.by or "", "utc_offset_h": args.utc_offset}
    try:
        options = options_from_query({k: v for k, v in query.items() if v}, target_s=config.ack_target_s,
                                     reopen_s=config_reopen_s(config), now=time.time())
    except ValueError as e:
        print(f"gateway report: {e}", file=sys.stderr)
        return 2
    url = args.archive or config.archive.url
    try:
        report = asyncio.run(_read(url, options))
    except ConfigError as e:
        print(f"gateway: bad config: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # the archive's database cannot be opened or read
        print(f"gateway report: cannot read the archive {url.split('@')[-1]}: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(render(report, args.format))
    return 0
