"""Config validation: a bad file names the key; the CLI exits non-zero without a traceback."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError
from tests.support import DEMO_CONFIG, ROOT, write_config


def test_demo_config_loads() -> None:
    cfg = load_config(DEMO_CONFIG)
    assert {a.id for a in cfg.agents} == {"a1", "a2", "a3"}
    assert set(cfg.skills) >= {"presale", "aftersale", "logistics"}
    assert cfg.store_url == "memory://"
    assert cfg.ack_target_s == 30
    a3 = cfg.agent("a3")
    assert a3 is not None and a3.token_sha256 == hashlib.sha256(b"demo-a3").hexdigest()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"server": {"port": "eighty"}}, "server.port"),
        ({"server": {"port": 70000}}, "server.port"),
        ({"routing": {"agent_grace_s": -1}}, "routing.agent_grace_s"),
        ({"routing": {"default_skill": 3}}, "routing.default_skill"),
        ({"limits": {"customer_messages": 0}}, "limits.customer_messages"),
        ({"sla": {"ack_target_s": "soon"}}, "sla.ack_target_s"),
        ({"agents": [{"id": "x", "skills": ["presale"], "capacity": 2}]}, "agents[0].token"),
        ({"agents": [{"id": "x", "skills": [], "token": "t"}]}, "agents[0].skills"),
        ({"agents": [{"id": "x", "skills": ["a"], "token_sha256": "zz"}]}, "agents[0].token_sha256"),
        ({"agents": [{"id": "x", "skills": ["a"], "token": "t", "capacity": 0}]}, "agents[0].capacity"),
        ({"agents": [{"id": "x", "skills": ["a"], "token": "t"}, {"id": "x", "skills": ["a"], "token": "u"}]},
         "agents[1].id"),
        ({"bot": {"faq": "/nonexistent/faq.toml"}}, "bot.faq"),
        ({"nonsense": {"a": 1}}, "nonsense"),
        ({"texts": {"handof": "typo"}}, "texts.handof"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, override: dict, key: str) -> None:
    path = write_config(tmp_path, override)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.key == key


def test_cli_bad_config_exits_2_with_the_key_and_no_traceback(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"routing": {"customer_idle_close_s": "never"}})
    r = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(path), "--port", "0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "routing.customer_idle_close_s" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_invalid_toml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1\n")
    r = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(bad)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not valid TOML" in r.stderr and "Traceback" not in r.stderr


def test_cli_check_validates_the_demo() -> None:
    r = subprocess.run([sys.executable, "-m", "gateway", "serve", "--check"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "config OK" in r.stdout


def test_cli_bad_shop_names_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"shops": [{"platform": "nowhere", "shop_id": "s1"}]})
    r = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(path), "--check"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "shops[0]" in r.stderr and "Traceback" not in r.stderr
