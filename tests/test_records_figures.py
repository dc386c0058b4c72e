"""The report's figures on a scripted day whose every figure was computed by hand (README, "Reports and
what each figure means"), plus the edge cases: an empty period, no hand-offs, shares of nothing."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from gateway.records.figures import ReportOptions, check_period, nearest_rank, parse_day, report
from gateway.records.model import Record
from gateway.records.report_format import flatten, to_csv, to_table

CN = timezone(timedelta(hours=8))
D = datetime(2026, 11, 10, tzinfo=CN).timestamp()  # 2026-11-10 00:00 in China
H = 3600.0
TARGET = 30.0
REOPEN = H  # a new conversation of the same customer within an hour of a close undoes first-contact resolution
NOW = D + 20 * H


def bot(rid: str, customer: str, at: float, channel: str = "web") -> Record:
    """Answered by the bot alone, closed 5 minutes after it opened."""
    return Record(id=rid, customer_id=customer, channel=channel, created_at=at, closed_at=at + 300,
                  close_reason="idle", bot_only=True)


def person(rid: str, customer: str, at: float, *, skill: str, agents: tuple[str, ...], fr: float, handle: float,
           resolution: str, rating: int = 0, responses: tuple[float, ...] = (), channel: str = "web",
           category: str = "", transfers: int = 0, **kw: Any) -> Record:
    """Handed off 60 s after it opened, assigned 2 s later, first agent message ``fr`` s after the hand-off,
    closed ``handle`` s after the assignment."""
    handoff = at + 60
    assigned = handoff + 2
    return Record(id=rid, customer_id=customer, channel=channel, skill=skill, agents=agents, created_at=at,
                  handoff_at=handoff, assigned_at=assigned, first_response_at=handoff + fr, first_response_s=fr,
                  closed_at=assigned + handle, close_reason=resolution, resolution=resolution, category=category,
                  rating=rating, bot_only=False, transfers=transfers, response_times_s=responses, **kw)


def unanswered(rid: str, customer: str, at: float, waited: float) -> Record:
    """Handed off 60 s after it opened; nobody answered; closed ``waited`` s after the hand-off."""
    return Record(id=rid, customer_id=customer, skill="presale", created_at=at, handoff_at=at + 60,
                  closed_at=at + 60 + waited, close_reason="customer", bot_only=False)


H1 = person("H1", "c7", D + 9 * H, skill="presale", agents=("a1",), fr=10, handle=480, resolution="resolved",
            rating=5, responses=(10, 20, 30), category="logistics")
H2 = person("H2", "c8", D + 23 * H + 600, skill="presale", agents=("a1",), fr=25, handle=300, resolution="resolved",
            rating=4, responses=(25, 15), category="other")
H3 = person("H3", "c9", D + 11 * H, skill="aftersale", agents=("a2",), fr=40, handle=200, resolution="resolved",
            rating=2, responses=(40,), category="quality")
H4 = person("H4", "c10", D + 12 * H, skill="aftersale", agents=("a1", "a2"), fr=5, handle=900,
            resolution="unresolved", rating=1, responses=(5, 50, 45), channel="douyin", category="quality",
            transfers=1)
H5 = person("H5", "c11", D + 13 * H, skill="presale", agents=("a1",), fr=30, handle=100, resolution="pending",
            responses=(30,), category="logistics", follow_up_at=D + 18 * H)  # due before NOW, not done: overdue
H6 = person("H6", "c12", D + 14 * H, skill="logistics", agents=("a3",), fr=90, handle=400, resolution="resolved",
            rating=3, responses=(90, 10), channel="pdd", category="logistics", follow_up_at=D + 12 * H,
            follow_up_done_at=D + 13 * H)
H7 = unanswered("H7", "c13", D + 15 * H, waited=20)  # left before the target: not counted for the SLA
H8 = unanswered("H8", "c14", D + 16 * H, waited=120)  # waited past the target: counts against it
H9 = person("H9", "c15", D + 17 * H, skill="presale", agents=("a3",), fr=15, handle=250, resolution="resolved",
            rating=5, responses=(15,), category="service", reopened_from="OLD-1")  # reopens an earlier one
H10 = person("H10", "c16", D + 14 * H, skill="aftersale", agents=("a1",), fr=20, handle=500, resolution="resolved",
             responses=(20, 25), category="usage")

DAY = [
    bot("B1", "c1", D + 9 * H), bot("B2", "c2", D + 9 * H + 600), bot("B3", "c3", D + 10 * H),
    bot("B4", "c4", D + 11 * H), bot("B5", "c5", D + 13 * H, channel="douyin"), bot("B6", "c6", D + 23 * H + 3000),
    bot("B7", "c7", H1.closed_at + 1800),  # c7 again 30 min after H1 closed: H1 is no first-contact resolution
    bot("B8", "c16", H10.closed_at + 2 * H),  # c16 again 2 h after H10 closed: past the hour, H10 still counts
    H1, H2, H3, H4, H5, H6, H7, H8, H9, H10,
]
OUTSIDE = [
    bot("OLD-1", "c15", D - H),  # the day before: not in the period
    Record(id="R2", customer_id="c8", created_at=D + 24 * H + 300, closed_at=D + 24 * H + 360, bot_only=True,
           reopened_from="H2"),  # 00:05 the next day (read for the look-ahead): reopens H2, closed at 23:16
]


def opts(**kw: Any) -> ReportOptions:
    base: dict[str, Any] = {"from_ts": D, "to_ts": D + 24 * H, "target_s": TARGET, "reopen_s": REOPEN, "now": NOW}
    return ReportOptions(**{**base, **kw})


def test_the_scripted_day_every_figure_by_hand() -> None:
    rep = report([*OUTSIDE, *DAY], opts())
    assert rep["from"] == "2026-11-10T00:00:00+08:00" and rep["to"] == "2026-11-11T00:00:00+08:00"
    assert rep["by"] is None and "rows" not in rep
    assert rep["totals"] == {
        "conversations": 18,  # B1-B8 and H1-H10 (OLD-1 and R2 are outside the day)
        "bot_only": 8,
        "bot_only_share": 0.4444,  # 8 / 18
        "handoffs": 10,  # H1-H10
        "first_response": {
            "answered": 8,  # H7 and H8 never got an agent message
            # sorted: 5 10 15 20 25 30 40 90; p50: rank ceil(0.5*8)=4 -> 20; p90: rank ceil(0.9*8)=8 -> 90
            "p50_s": 20.0,
            "p90_s": 90.0,
            "target_s": 30.0,
            "within_target": 6,  # 5 10 15 20 25 30 (30 itself is within)
            "unanswered_late": 1,  # H8 waited 120 s > 30; H7 left after 20 s
            "within_target_share": 0.6667,  # 6 / (8 answered + 1 unanswered late)
            "histogram": [{"le": 10.0, "count": 2},  # 5 10
                          {"le": 20.0, "count": 2},  # 15 20
                          {"le": 30.0, "count": 2},  # 25 30
                          {"le": 60.0, "count": 1},  # 40
                          {"le": 120.0, "count": 1},  # 90
                          {"le": 300.0, "count": 0}, {"le": 600.0, "count": 0}, {"le": "+Inf", "count": 0}],
        },
        # 3+2+1+3+1+2+1+2 = 15 responses; (60+40+40+100+30+100+15+45) = 430; 430 / 15 = 28.6667
        "response_time": {"responses": 15, "avg_s": 28.667},
        # handle: 480 300 200 900 100 400 250 500 = 3130 / 8 = 391.25; sorted 100 200 250 300 400 480 500 900:
        # p50 rank 4 -> 300, p90 rank 8 -> 900
        "handle_time": {"count": 8, "avg_s": 391.25, "p50_s": 300.0, "p90_s": 900.0},
        # closed by an agent with a resolution: H1-H6, H9, H10 = 8; resolved: H1 H2 H3 H6 H9 H10 = 6
        "resolution": {"closed_by_agent": 8, "resolved": 6, "unresolved": 1, "pending": 1, "rate": 0.75},
        # resolved, and: H1 (c7 back in 30 min: no), H2 (reopened by R2: no), H3 yes, H6 yes,
        # H9 (itself a reopening: no), H10 (c16 back after 2 h > 1 h: yes) -> 3 / 8
        "fcr": {"count": 3, "rate": 0.375},
        "transfers": {"total": 1, "per_conversation": 0.1},  # 1 / 10 hand-offs
        "satisfaction": {
            "surveyed": 8,  # an agent took part: H1-H6, H9, H10
            "rated": 6,  # H1 5, H2 4, H3 2, H4 1, H6 3, H9 5
            "response_rate": 0.75,  # 6 / 8
            "average": 3.3333,  # 20 / 6
            "distribution": {"1": 1, "2": 1, "3": 1, "4": 1, "5": 2},
        },
        # H5 due at 18:00, not done, now 20:00: open and overdue; H6 done
        "follow_ups": {"open": 1, "overdue": 1, "done": 1},
    }


def test_by_agent_the_last_agent_that_held_it() -> None:
    rows = {r["key"]: r for r in report([*OUTSIDE, *DAY], opts(by="agent"))["rows"]}
    assert list(rows) == ["a1", "a2", "a3", "-"]  # sorted, records no agent held last
    a1 = rows["a1"]  # H1 H2 H5 H10 (H4 ended with a2)
    assert a1["conversations"] == 4 and a1["handoffs"] == 4
    # 10 25 30 20 -> sorted 10 20 25 30: p50 rank 2 -> 20, p90 rank ceil(3.6)=4 -> 30; all 4 within 30 s
    assert (a1["first_response"]["p50_s"], a1["first_response"]["p90_s"]) == (20.0, 30.0)
    assert a1["first_response"]["within_target_share"] == 1.0
    assert a1["resolution"]["rate"] == 0.75  # H1 H2 H10 of 4 (H5 pending)
    assert a1["fcr"] == {"count": 1, "rate": 0.25}  # only H10
    # without the next day's records R2 is not seen, and H2 counts as resolved at first contact
    assert {r["key"]: r for r in report(DAY, opts(by="agent"))["rows"]}["a1"]["fcr"]["count"] == 2
    assert a1["satisfaction"]["rated"] == 2 and a1["satisfaction"]["average"] == 4.5  # (5 + 4) / 2
    assert a1["satisfaction"]["response_rate"] == 0.5  # 2 / 4
    assert a1["follow_ups"] == {"open": 1, "overdue": 1, "done": 0}
    a2 = rows["a2"]  # H3 H4
    assert (a2["first_response"]["p50_s"], a2["first_response"]["p90_s"]) == (5.0, 40.0)  # rank 1, rank 2
    assert a2["first_response"]["within_target_share"] == 0.5
    assert a2["transfers"] == {"total": 1, "per_conversation": 0.5}
    assert a2["satisfaction"]["average"] == 1.5 and a2["fcr"]["rate"] == 0.5  # (2+1)/2; H3 of 2
    nobody = rows["-"]  # B1-B8, H7, H8
    assert nobody["conversations"] == 10 and nobody["bot_only"] == 8 and nobody["handoffs"] == 2
    assert nobody["first_response"]["p50_s"] is None
    assert nobody["first_response"]["within_target_share"] == 0.0  # 0 / (0 + H8)
    assert nobody["resolution"]["rate"] is None and nobody["satisfaction"]["response_rate"] is None
    assert sum(r["conversations"] for r in rows.values()) == 18


def test_by_channel_skill_and_category() -> None:
    channel = {r["key"]: r["conversations"] for r in report(DAY, opts(by="channel"))["rows"]}
    assert channel == {"douyin": 2, "pdd": 1, "web": 15}  # B5 H4; H6; the rest
    skill = report(DAY, opts(by="skill"))["rows"]
    assert [(r["key"], r["conversations"]) for r in skill] == [
        ("aftersale", 3), ("logistics", 1), ("presale", 6), ("-", 8)]  # H3 H4 H10; H6; H1 H2 H5 H7 H8 H9; bots
    presale = skill[2]
    # answered 10 25 30 15 (H7 H8 not): within 4, plus H8 unanswered late: 4 / 5
    assert presale["first_response"]["within_target_share"] == 0.8
    category = {r["key"]: r["conversations"] for r in report(DAY, opts(by="category"))["rows"]}
    assert category == {"logistics": 3, "other": 1, "quality": 2, "service": 1, "usage": 1, "-": 10}


def test_by_day_lists_every_day_of_the_period() -> None:
    rep = report([*OUTSIDE, *DAY], opts(from_ts=D - 24 * H, to_ts=D + 48 * H, by="day"))
    rows = rep["rows"]
    assert [r["key"] for r in rows] == ["2026-11-09", "2026-11-10", "2026-11-11"]
    assert [r["conversations"] for r in rows] == [1, 18, 1]  # OLD-1; the day; R2
    assert rows[1]["first_response"]["within_target_share"] == 0.6667
    assert rows[2]["handoffs"] == 0 and rows[2]["first_response"]["within_target_share"] is None
    assert rep["totals"]["conversations"] == 20
    # B6 at 23:50 China time is 15:50 UTC: still the 10th
    late = report([bot("X", "x", D + 23 * H + 3000)], opts(from_ts=D, to_ts=D + 48 * H, by="day"))["rows"]
    assert [r["conversations"] for r in late] == [1, 0]


def test_an_empty_period_is_zeros_and_nulls() -> None:
    rep = report([], opts(by="skill"))
    t = rep["totals"]
    assert t["conversations"] == 0 and t["bot_only_share"] is None and t["handoffs"] == 0
    assert t["first_response"]["p50_s"] is None and t["first_response"]["within_target_share"] is None
    assert t["response_time"]["avg_s"] is None and t["handle_time"]["avg_s"] is None
    assert t["resolution"]["rate"] is None and t["fcr"]["rate"] is None
    assert t["transfers"]["per_conversation"] is None
    assert t["satisfaction"] == {"surveyed": 0, "rated": 0, "response_rate": None, "average": None,
                                 "distribution": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0}}
    assert t["follow_ups"] == {"open": 0, "overdue": 0, "done": 0}
    assert rep["rows"] == []


def test_no_handoffs_only_the_bot() -> None:
    t = report([bot("B1", "c1", D + H), bot("B2", "c2", D + 2 * H)], opts())["totals"]
    assert t["conversations"] == 2 and t["bot_only_share"] == 1.0 and t["handoffs"] == 0
    assert t["first_response"]["answered"] == 0 and t["first_response"]["within_target_share"] is None
    assert t["transfers"] == {"total": 0, "per_conversation": None}
    assert t["resolution"]["closed_by_agent"] == 0 and t["resolution"]["rate"] is None


def test_follow_up_not_yet_due_is_open_not_overdue() -> None:
    t = report(DAY, opts(now=D + 17 * H))["totals"]  # H5 is due at 18:00
    assert t["follow_ups"] == {"open": 1, "overdue": 0, "done": 1}


def test_nearest_rank() -> None:
    assert nearest_rank([], 50) is None
    assert nearest_rank([7.0], 90) == 7.0
    assert nearest_rank([4.0, 1.0, 3.0, 2.0], 50) == 2.0  # rank ceil(2) = 2
    assert nearest_rank([4.0, 1.0, 3.0, 2.0], 90) == 4.0  # rank ceil(3.6) = 4
    assert nearest_rank([float(i) for i in range(1, 11)], 90) == 9.0  # rank 9 of 10


def test_unknown_group_and_bad_periods() -> None:
    with pytest.raises(ValueError, match="by must be one of"):
        report(DAY, opts(by="weather"))
    with pytest.raises(ValueError, match="after"):
        check_period(D, D)
    with pytest.raises(ValueError, match="366 days"):
        check_period(D, D + 400 * 24 * H)
    assert parse_day("2026-11-10") == D
    assert parse_day("2026-11-10T00:00:00+00:00") == D + 8 * H
    assert parse_day(str(int(D))) == D  # Unix seconds, as gateway export and the records API take them
    for bad in ("10/11/2026", "0001-01-01", "9999-12-31T23:59:59-14:00", "2026-02-30"):
        with pytest.raises(ValueError, match="not a date"):
            parse_day(bad)


def test_csv_and_table() -> None:
    rep = report(DAY, opts(by="channel"))
    rows = list(csv.reader(io.StringIO(to_csv(rep))))
    assert rows[0][:3] == ["channel", "conversations", "bot_only"]
    assert [r[0] for r in rows[1:]] == ["douyin", "pdd", "web", "total"]
    head = rows[0]
    total = dict(zip(head, rows[-1], strict=True))
    assert total["first_response.p90_s"] == "90.0" and total["first_response.histogram.le_+Inf"] == "0"
    assert total["first_response.histogram.le_10"] == "2"
    pdd = dict(zip(head, rows[2], strict=True))
    assert pdd["satisfaction.average"] == "3.0" and pdd["resolution.rate"] == "1.0"
    assert dict(zip(head, rows[1], strict=True))["first_response.p50_s"] == "5.0"
    assert flatten({"a": {"b": None}}) == {"a.b": None}
    table = to_table(rep).splitlines()
    assert table[0].startswith("2026-11-10T00:00:00+08:00 .. 2026-11-11T00:00:00+08:00")
    assert table[1].split()[:3] == ["channel", "conv", "bot"]
    assert table[-1].split()[:3] == ["total", "18", "44.4%"]
