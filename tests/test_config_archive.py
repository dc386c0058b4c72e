"""``[archive]`` and ``[[agents]] role``: defaults, paths made absolute, errors naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import ARCHIVE_DEFAULT_URL, parse_config
from gateway.errors import ConfigError

AGENT = {"id": "a1", "skills": ["presale"], "token": "t"}


def cfg(tmp_path: Path, **raw: Any) -> Any:
    return parse_config(raw, tmp_path)


def test_the_default_archive_is_a_file_under_var_beside_the_config(tmp_path: Path) -> None:
    c = cfg(tmp_path)
    assert ARCHIVE_DEFAULT_URL == "sqlite:///var/archive.sqlite3"
    assert c.archive.url == f"sqlite:///{tmp_path.resolve()}/var/archive.sqlite3"
    assert c.archive.keep_hot_s == 86400.0


def test_archive_urls(tmp_path: Path) -> None:
    assert cfg(tmp_path, archive={"url": "sqlite:///data/a.db"}).archive.url == f"sqlite:///{tmp_path.resolve()}/data/a.db"
    assert cfg(tmp_path, archive={"url": "sqlite:////srv/a.db"}).archive.url == "sqlite:////srv/a.db"
    pg = "postgresql://gw@db:5432/gw?schema=shop1"
    c = cfg(tmp_path, archive={"url": pg, "keep_hot_s": 0})
    assert (c.archive.url, c.archive.keep_hot_s) == (pg, 0.0)


@pytest.mark.parametrize(("archive", "key"), [
    ({"url": "mysql://x"}, "archive.url"),
    ({"url": "sqlite:///"}, "archive.url"),
    ({"url": 5}, "archive.url"),
    ({"keep_hot_s": -1}, "archive.keep_hot_s"),
    ({"keep_hot_s": "1d"}, "archive.keep_hot_s"),
    ({"path": "x"}, "archive.path"),
])
def test_bad_archive_tables_name_the_key(tmp_path: Path, archive: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        cfg(tmp_path, archive=archive)
    assert e.value.key == key


def test_agent_roles(tmp_path: Path) -> None:
    c = cfg(tmp_path, agents=[AGENT, {**AGENT, "id": "s1", "role": "supervisor"}])
    assert [a.role for a in c.agents] == ["agent", "supervisor"]
    with pytest.raises(ConfigError) as e:
        cfg(tmp_path, agents=[{**AGENT, "role": "boss"}])
    assert e.value.key == "agents[0].role"
