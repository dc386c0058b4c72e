"""``gateway report``: the archive read directly (a SQLite archive holding the scripted day of
tests/test_records_figures.py), as a table, JSON (the API's) and CSV; its argument errors."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.records.figures import ReportOptions, report
from gateway.records.open import open_archive
from tests import test_records_figures as day
from tests.support import write_config


async def _fill(url: str) -> None:
    archive = open_archive(url)
    await archive.start()
    try:
        for rec in [*day.OUTSIDE, *day.DAY]:
            await archive.put(rec)
    finally:
        await archive.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path / 'archive.sqlite3'}"
    asyncio.run(_fill(url))
    return write_config(tmp_path, {"archive": {"url": url}, "sla": {"ack_target_s": 30}})


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_is_the_reports_figures(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "--config", str(config), "--from", "2026-11-10", "--to", "2026-11-11",
                          "--by", "skill", "--format", "json")
    assert code == 0, err
    body = json.loads(out)
    reopen_s = body["reopen_s"]
    assert body == report([*day.OUTSIDE, *day.DAY], ReportOptions(
        from_ts=day.D, to_ts=day.D + 24 * day.H, by="skill", target_s=30.0, reopen_s=reopen_s, now=body["now"]))
    assert body["totals"]["conversations"] == 18 and body["totals"]["first_response"]["p90_s"] == 90.0
    assert [r["key"] for r in body["rows"]] == ["aftersale", "logistics", "presale", "-"]


def test_table_and_csv(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--config", str(config), "--from", "2026-11-10", "--to", "2026-11-11")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("2026-11-10T00:00:00+08:00 .. 2026-11-11T00:00:00+08:00")
    assert lines[-1].split()[:4] == ["total", "18", "44.4%", "10"]
    code, out, _ = _run(capsys, "--config", str(config), "--from", "2026-11-10", "--to", "2026-11-11",
                        "--by", "channel", "--format", "csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert [r[0] for r in rows] == ["channel", "douyin", "pdd", "web", "total"]


def test_argument_errors_exit_2(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "--config", str(config), "--from", "2026-11-10", "--to", "2026-11-01")
    assert code == 2 and "to must be after from" in err
    code, _, err = _run(capsys, "--config", str(config), "--from", "11/10", "--to", "2026-11-11")
    assert code == 2 and "not a date" in err
    with pytest.raises(SystemExit) as e:
        main(["report", "--config", str(config), "--from", "2026-11-10", "--to", "2026-11-11", "--by", "moon"])
    assert e.value.code == 2


def test_an_archive_that_cannot_be_read_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-directory").mkdir()
    cfg = write_config(tmp_path, {"archive": {"url": f"sqlite:///{tmp_path / 'a-directory'}"}})
    code, _, err = _run(capsys, "--config", str(cfg), "--from", "2026-11-10", "--to", "2026-11-11")
    assert code == 1 and "cannot read the archive" in err
