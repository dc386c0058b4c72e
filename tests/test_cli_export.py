"""``gateway export``: the archive of a config, a date range, jsonl and csv, errors."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.records.open import open_archive
from tests.records_contract import msg, rec
from tests.support import ROOT, write_config

DAY = 1_764_000_000.0  # 2025-11-25T00:00:00+08:00 (China: the default --utc-offset)


async def _fill(url: str) -> None:
    archive = open_archive(url)
    await archive.start()
    for i, at in enumerate((DAY - 1, DAY, DAY + 3600, DAY + 86399, DAY + 86400)):
        await archive.put(rec(f"c-{i}", at, agents=("a1", "a2") if i == 2 else ("a1",), orders=("O-1",),
                              rating=i, customer_name="张三",
                              messages=[msg("customer", f"第{i}个问题", 1), msg("agent", "好的", 2)]))
    await archive.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_config(tmp_path, {"archive": {"url": "sqlite:///data/archive.sqlite3"}})
    asyncio.run(_fill(f"sqlite:///{tmp_path}/data/archive.sqlite3"))
    return path


def test_jsonl_is_whole_records_oldest_first_of_the_days(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--config", str(config), "--from", "2025-11-25", "--to", "2025-11-26"]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in lines] == ["c-1", "c-2", "c-3"]  # the day in China, nothing either side
    assert lines[1]["agents"] == ["a1", "a2"] and lines[1]["customer_name"] == "张三"
    assert [m["text"] for m in lines[0]["messages"]] == ["第1个问题", "好的"]
    assert "3 conversations" in err
    assert main(["export", "--config", str(config), "--from", "2025-11-25", "--to", "2025-11-26",
                 "--utc-offset", "0"]) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == ["c-3", "c-4"]


def test_csv_rows_and_unix_second_bounds(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--config", str(config), "--from", str(DAY), "--to", str(DAY + 3601),
                 "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["id"] for r in rows] == ["c-1", "c-2"]
    assert rows[1]["agents"] == "a1;a2" and rows[1]["orders"] == "O-1" and rows[1]["rating"] == "2"
    assert rows[0]["rating"] == "1" and float(rows[0]["created_at"]) == DAY and rows[0]["handoff_at"] == ""
    assert "messages" not in rows[0]


def test_empty_range_and_errors(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--config", str(config), "--from", "2020-01-01", "--to", "2020-01-31",
                 "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("id,customer_id,")
    with pytest.raises(SystemExit) as e:
        main(["export", "--config", str(config), "--from", "someday", "--to", "2025-11-25"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        main(["export", "--config", str(config), "--from", "2025-11-25", "--to", "2025-11-26", "--utc-offset", "x"])
    with pytest.raises(SystemExit):
        main(["export", "--config", str(config), "--from", "2025-11-25", "--to", "2025-11-01"])
    missing = write_config(tmp_path, {"archive": {"url": "sqlite:///nowhere/a.sqlite3"}})
    assert main(["export", "--config", str(missing), "--from", "2025-11-25", "--to", "2025-11-26"]) == 1
    assert "no archive at" in capsys.readouterr().err
    bad = write_config(tmp_path, {"archive": {"url": "mysql://x"}})
    assert main(["export", "--config", str(bad), "--from", "2025-11-25", "--to", "2025-11-26"]) == 2
    assert "archive.url" in capsys.readouterr().err


def test_the_installed_command(config: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "gateway", "export", "--config", str(config), "--from", "2025-11-24",
                          "--to", "2025-11-27"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert [json.loads(line)["id"] for line in out.stdout.splitlines()] == ["c-0", "c-1", "c-2", "c-3", "c-4"]
