"""``gateway export --from DATE --to DATE [--format jsonl|csv]``: archived conversations to stdout.

Reads the archive of ``[archive] url`` directly (no running gateway needed), oldest first.
``jsonl``: one whole record per line (every field and the whole log). ``csv``: one row per conversation,
the search API's fields flattened, no log (``agents`` and ``orders`` joined with ``;``). Dates are
``YYYY-MM-DD`` (midnight in China, UTC+8, unless ``--utc-offset``), ISO 8601 times or Unix seconds;
``--to`` is not included: ``--from 2026-11-01 --to 2026-12-01`` is November, as in ``gateway report``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import orjson

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.records.errors import ArchiveUnavailable
from gateway.records.model import Record
from gateway.records.open import open_archive
from gateway.records.query import BadParameter, add_period_arguments, parse_offset, parse_time

CSV_COLUMNS = ("id", "customer_id", "customer_name", "channel", "shop", "skill", "priority", "agents",
               "created_at", "handoff_at", "first_response_s", "closed_at", "close_reason", "resolution",
               "category", "rating", "comment", "orders", "bot_only", "reopened_from", "transfers",
               "customer_messages", "agent_messages", "first_customer_text")


def csv_row(rec: Record) -> list[Any]:
    d = rec.to_dict()
    d["agents"], d["orders"] = ";".join(rec.agents), ";".join(rec.orders)
    d["rating"] = rec.rating or ""
    return ["" if d[c] is None else d[c] for c in CSV_COLUMNS]


def write_header(fmt: str, out: TextIO) -> None:
    if fmt == "csv":
        csv.writer(out, lineterminator="\n").writerow(CSV_COLUMNS)


def write_records(records: Iterable[Record], fmt: str, out: TextIO) -> int:
    """Write ``records`` as ``fmt`` (no header); the number written."""
    n = 0
    w = csv.writer(out, lineterminator="\n")
    for rec in records:
        if fmt == "csv":
            w.writerow(csv_row(rec))
        else:
            out.write(orjson.dumps(rec.to_dict()).decode() + "\n")
        n += 1
    return n


async def export(url: str, from_ts: float, to_ts: float, fmt: str, out: TextIO) -> int:
    """Every record created in [from_ts, to_ts) written to ``out``, oldest first; how many."""
    archive = open_archive(url)
    try:
        await archive.start()
        write_header(fmt, out)
        n = 0
        async for rec in archive.between(from_ts, to_ts):
            n += write_records((rec,), fmt, out)
        return n
    finally:
        await archive.close()


def main(argv: list[str], default_config: str = "configs/gateway.toml") -> int:
    p = argparse.ArgumentParser(
        prog="gateway export",
        description="Write the archived conversations created in [--from, --to) to stdout, oldest first.")
    add_period_arguments(p, default_config)
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                   help="jsonl: whole records with their logs (default); csv: one row per conversation")
    args = p.parse_args(argv)
    try:
        offset = parse_offset(args.utc_offset, "--utc-offset")
        from_ts, to_ts = parse_time(args.from_, "--from", offset), parse_time(args.to, "--to", offset)
    except BadParameter as e:
        p.error(str(e))
    if to_ts < from_ts:
        p.error("--to must not be before --from")
    try:
        url = args.archive or load_config(args.config).archive.url
        if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
            print(f"gateway export: no archive at {url[len('sqlite:///'):]} (nothing archived yet?)", file=sys.stderr)
            return 1
        n = asyncio.run(export(url, from_ts, to_ts, args.format, sys.stdout))
    except ConfigError as e:
        print(f"gateway: bad config: {e}", file=sys.stderr)
        return 2
    except ArchiveUnavailable as e:
        print(f"gateway export: {e}", file=sys.stderr)
        return 1
    print(f"gateway export: {n} conversations", file=sys.stderr)
    return 0
