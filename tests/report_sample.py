"""A month of archive records (November 2026, China time), seeded: what the ``/reports`` page draws in the
browser test and the README's screenshot."""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
from datetime import datetime, timedelta, timezone

from gateway.records.model import Record
from gateway.records.open import open_archive

CN = timezone(timedelta(hours=8))
MONTH_FROM, MONTH_TO = "2026-11-01", "2026-12-01"


def month_of_records(seed: int = 14) -> list[Record]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=CN).timestamp()
    out: list[Record] = []
    for day in range(30):
        weekend = day % 7 in (0, 6)
        for i in range(rng.randint(14, 22) + (8 if weekend else 0)):
            at = start + day * 86400 + rng.uniform(8.5, 22.5) * 3600
            rid, customer = f"s-{day:02d}-{i:02d}", f"u{rng.randrange(400)}"
            channel = rng.choice(["web", "web", "web", "douyin", "pdd", "taobao"])
            if rng.random() < 0.45:
                out.append(Record(id=rid, customer_id=customer, channel=channel, created_at=at,
                                  closed_at=at + rng.uniform(60, 600), close_reason="idle", bot_only=True))
                continue
            handoff = at + rng.uniform(20, 120)
            fr = min(900.0, rng.lognormvariate(2.9 + (0.5 if weekend else 0.0), 0.8))
            agents = (rng.choice(["a1", "a2", "a3"]),)
            transfers = 1 if rng.random() < 0.08 else 0
            if transfers:
                agents = (*agents, rng.choice(["a1", "a2", "a3"]))
            assigned = handoff + min(fr, rng.uniform(1, 10))
            closed = assigned + rng.uniform(120, 1500)
            resolution = rng.choices(["resolved", "unresolved", "pending"], [8, 1, 1])[0]
            rating = rng.choices([0, 1, 2, 3, 4, 5], [4, 1, 1, 2, 4, 8])[0]
            follow_up = closed + 86400 if resolution == "pending" else None
            out.append(Record(
                id=rid, customer_id=customer, channel=channel, created_at=at, bot_only=False,
                skill=rng.choice(["presale", "aftersale", "logistics"]), agents=agents, handoff_at=handoff,
                assigned_at=assigned, first_response_at=handoff + fr, first_response_s=fr, closed_at=closed,
                close_reason=resolution, resolution=resolution, rating=rating, transfers=transfers,
                category=rng.choice(["quality", "logistics", "usage", "service", "other"]),
                response_times_s=tuple(rng.uniform(5, 90) for _ in range(rng.randint(1, 5))),
                follow_up_at=follow_up,
                follow_up_done_at=follow_up + 600 if follow_up and rng.random() < 0.6 else None))
    return out


def fill_archive(url: str, records: list[Record]) -> None:
    """Write ``records`` into the archive at ``url`` (sync, on a thread of its own: Playwright's sync API
    keeps a loop running on the caller's)."""

    async def fill() -> None:
        archive = open_archive(url)
        await archive.start()
        try:
            for rec in records:
                await archive.put(rec)
        finally:
            await archive.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, fill()).result()
