"""``GET /api/reports`` (the same JSON as ``gateway report --format json``), its parameter checks, who may
call it, the ``/reports`` page and the chart library served from ``/static/vendor/`` (no CDN)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from gateway.records.figures import ReportOptions, report
from gateway.records.model import Record
from gateway.records.reports import DEFAULT_REOPEN_S
from gateway.server import reports_http
from tests import test_records_figures as day
from tests.conftest import RunningApp
from tests.e2e import agents_cfg
from tests.test_pages_browser import ADMIN_TOKEN

AppFactory = Callable[..., Awaitable[RunningApp]]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DAY_QUERY = {"from": "2026-11-10", "to": "2026-11-11"}


class ListArchive:
    """The part of the Archive interface reports read: ``between``."""

    def __init__(self, records: list[Record], *, fail: bool = False) -> None:
        self.records = records
        self.fail = fail
        self.asked: list[tuple[float, float]] = []

    async def between(self, from_ts: float, to_ts: float) -> AsyncIterator[Record]:
        self.asked.append((from_ts, to_ts))
        if self.fail:
            raise ConnectionError("database down")
        for r in sorted(self.records, key=lambda r: r.created_at):
            if from_ts <= r.created_at < to_ts:
                yield Record.from_dict(r.to_dict())


@pytest.fixture
def archive(monkeypatch: pytest.MonkeyPatch) -> ListArchive:
    a = ListArchive([*day.OUTSIDE, *day.DAY])
    monkeypatch.setattr(reports_http, "archive_of", lambda ctx: a)
    return a


async def _get(url: str, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
               ) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers or {}, params=params or {}) as r:
        body = await r.json() if r.content_type == "application/json" else await r.read()
        return r.status, body, r.headers


async def test_the_report_is_the_figures_of_the_archive(gateway_app: AppFactory, archive: ListArchive) -> None:
    gw = await gateway_app({"sla": {"ack_target_s": 30}})
    status, body, _ = await _get(gw.http_url + "/api/reports", ADMIN, {**DAY_QUERY, "by": "agent"})
    assert status == 200, body
    # the period, then reopen_s more for the look-ahead (R2, the next day, reopens H2)
    assert archive.asked == [(day.D, day.D + 24 * day.H + DEFAULT_REOPEN_S)]
    expected = report([*day.OUTSIDE, *day.DAY], ReportOptions(
        from_ts=day.D, to_ts=day.D + 24 * day.H, by="agent", target_s=30.0,
        reopen_s=DEFAULT_REOPEN_S, now=body["now"]))
    assert body == expected
    # with the default 7-day reopen window, c16 coming back 2 h after H10 undoes H10 too: H3 and H6 remain
    assert body["totals"]["conversations"] == 18 and body["totals"]["fcr"]["count"] == 2
    assert [r["key"] for r in body["rows"]] == ["a1", "a2", "a3", "-"]


async def test_bad_parameters_are_400(gateway_app: AppFactory, archive: ListArchive) -> None:
    gw = await gateway_app()
    url = gw.http_url + "/api/reports"
    for params, words in [
        ({}, "required"),
        ({"from": "2026-11-10"}, "required"),
        ({"from": "2026-11-10", "to": "next week"}, "not a date"),
        ({"from": "2026-11-10", "to": "2026-11-10"}, "after"),
        ({"from": "2026-11-11", "to": "2026-11-10"}, "after"),
        ({"from": "2025-01-01", "to": "2026-11-10"}, "366 days"),
        ({**DAY_QUERY, "by": "weather"}, "by must be one of"),
        ({**DAY_QUERY, "utc_offset_h": "99"}, "utc_offset_h"),
        ({**DAY_QUERY, "utc_offset_h": "east"}, "utc_offset_h"),
        ({**DAY_QUERY, "limit": "3"}, "unknown parameter"),
    ]:
        status, body, _ = await _get(url, ADMIN, params)
        assert status == 400, (params, body)
        assert body["error"] == "bad_request" and words in body["message"], (params, body)
    assert archive.asked == []  # nothing read for a bad request


async def test_who_may_read_reports(gateway_app: AppFactory, archive: ListArchive) -> None:
    """The admin token, or a supervisor's id and token; not a plain agent's (403), nobody else (401)."""
    gw = await gateway_app({"agents": [*agents_cfg(("p1", ["presale"], 5)),
                                       {**agents_cfg(("s1", ["presale"], 5))[0], "role": "supervisor"}]})
    url = gw.http_url + "/api/reports"
    assert (await _get(url, None, DAY_QUERY))[0] == 401
    assert (await _get(url, {"Authorization": "Bearer wrong"}, DAY_QUERY))[0] == 401
    assert (await _get(url, {"Authorization": "Bearer tok-p1", "X-Agent-Id": "p1"}, DAY_QUERY))[0] == 403
    assert (await _get(url, {"Authorization": "Bearer tok-p1", "X-Agent-Id": "s1"}, DAY_QUERY))[0] == 401
    assert (await _get(url, {"Authorization": "Bearer tok-s1", "X-Agent-Id": "s1"}, DAY_QUERY))[0] == 200
    assert (await _get(url, ADMIN, DAY_QUERY))[0] == 200


async def test_no_archive_or_a_failing_one_is_503(gateway_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = await gateway_app()
    url = gw.http_url + "/api/reports"
    monkeypatch.setattr(reports_http, "archive_of", lambda ctx: None)
    status, body, _ = await _get(url, ADMIN, DAY_QUERY)
    assert status == 503 and body["error"] == "unavailable"
    failing = ListArchive([], fail=True)
    monkeypatch.setattr(reports_http, "archive_of", lambda ctx: failing)
    status, body, _ = await _get(url, ADMIN, DAY_QUERY)
    assert status == 503 and body["error"] == "unavailable" and "database" not in body["message"]


async def test_the_page_and_its_chart_library_are_served_here(gateway_app: AppFactory) -> None:
    gw = await gateway_app()
    status, html, h = await _get(gw.http_url + "/reports")
    assert status == 200 and b"static/reports.js" in html
    assert b"static/vendor/uPlot.iife.min.js" in html and b"//cdn" not in html and b"https:" not in html
    assert h["X-Frame-Options"] == "DENY" and "script-src 'self'" in h["Content-Security-Policy"]
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE"):
        status, body, _ = await _get(gw.http_url + "/static/vendor/" + name)
        assert status == 200 and len(body) > 500, name
    status, body, _ = await _get(gw.http_url + "/static/vendor/uPlot.LICENSE")
    assert b"MIT License" in body and b"Leon Sorokin" in body
    for bad in ("/static/vendor/nope.js", "/static/vendor/..%2Fhttp.py", "/static/vendor/.."):
        assert (await _get(gw.http_url + bad))[0] == 404, bad
    assert (await _get(gw.http_url + "/static/reports.js"))[0] == 200
