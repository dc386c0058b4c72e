"""The container deployment: ``Dockerfile`` and ``compose.yaml`` built and run for real.

``compose up --build`` (two gateways on one Redis with AOF), both gateways' /readyz,
a customer on one gateway answered by an agent on the other, then ``compose down -v``.
Needs docker or podman with a reachable daemon and compose (and network access for the
image build); skips with the reason otherwise, unless ``GATEWAY_REQUIRE_CONTAINER=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import pytest

from tests.support import ROOT, Client, free_port, is_

T = 30.0
ADMIN_TOKEN = f"adm-{uuid.uuid4().hex[:8]}"


def _ok(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_compose() -> list[str]:
    """The compose command of the first engine whose daemon answers; skips (or fails) without one."""
    reasons: list[str] = []
    for engine, standalone in (("docker", "docker-compose"), ("podman", "podman-compose")):
        exe = shutil.which(engine)
        if exe is None:
            reasons.append(f"{engine} is not installed")
            continue
        if not _ok([exe, "info"]):
            reasons.append(f"{engine} has no reachable daemon ({engine} info failed)")
            continue
        for compose in ([exe, "compose"], [standalone]):
            if shutil.which(compose[0]) and _ok([*compose, "version"]):
                return compose
        reasons.append(f"{engine} has no compose ({engine} compose / {standalone})")
    reason = "; ".join(reasons)
    if os.environ.get("GATEWAY_REQUIRE_CONTAINER") == "1":
        pytest.fail(f"GATEWAY_REQUIRE_CONTAINER=1 but {reason}")
    pytest.skip(reason)


def readyz(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {}
    except OSError:
        return 0, {}


@dataclass
class Stack:
    compose: list[str]
    ports: tuple[int, int]

    def logs(self) -> str:
        r = subprocess.run([*self.compose, "logs", "--no-color"], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
        return (r.stdout + r.stderr)[-6000:]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    base = find_compose()
    compose = [*base, "-p", f"gwtest{uuid.uuid4().hex[:8]}", "-f", str(ROOT / "compose.yaml")]
    ports = (free_port(), free_port())
    env = {**os.environ, "GATEWAY1_PORT": str(ports[0]), "GATEWAY2_PORT": str(ports[1]),
           "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    st = Stack(compose, ports)
    try:
        up = subprocess.run([*compose, "up", "-d", "--build"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=1500)
        assert up.returncode == 0, f"compose up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        end = time.monotonic() + 180
        while not all(readyz(p)[0] == 200 for p in ports):
            assert time.monotonic() < end, f"gateways not ready: {[readyz(p) for p in ports]}\n{st.logs()}"
            time.sleep(1)
        yield st
    finally:
        subprocess.run([*compose, "down", "-v", "--remove-orphans", "--timeout", "30"], cwd=ROOT, env=env,
                       capture_output=True, timeout=300)


@pytest.mark.timeout(1800)
def test_both_gateways_ready_on_one_redis(stack: Stack) -> None:
    answers = [readyz(p) for p in stack.ports]
    assert [code for code, _ in answers] == [200, 200]
    assert all(body["ready"] is True for _, body in answers)
    assert answers[0][1]["instance"] != answers[1][1]["instance"]


@pytest.mark.timeout(1800)
async def test_customer_on_one_gateway_answered_from_the_other(stack: Stack) -> None:
    g1, g2 = (f"ws://127.0.0.1:{p}" for p in stack.ports)
    agent = await Client.connect(f"{g1}/ws/agent")
    await agent.send({"type": "hello", "agent": "a1", "token": "demo-a1", "status": "online"})
    await agent.wait(is_("welcome"), T, "agent welcome")
    cust = await Client.connect(f"{g2}/ws/customer")
    await cust.send({"type": "hello", "customer": {"id": f"u-{uuid.uuid4().hex[:6]}", "name": "容器"}})
    conv = (await cust.wait(is_("welcome"), T, "welcome"))["conversation"]
    await cust.send({"type": "message", "id": "m1", "text": "转人工"})
    assert (await cust.wait(is_("assigned"), T))["agent"]["id"] == "a1"
    await agent.wait(lambda f: f.get("type") == "assigned" and f["conversation"]["id"] == conv, T)
    await agent.send({"type": "message", "id": "r1", "conversation": conv, "text": "您好，我来帮您"})
    await cust.wait(lambda f: f.get("from") == "agent" and f.get("text") == "您好，我来帮您", T)
    await cust.send({"type": "message", "id": "m2", "text": "谢谢"})
    await agent.wait(lambda f: f.get("conversation") == conv and f.get("text") == "谢谢", T)
    await agent.send({"type": "close", "id": "k1", "conversation": conv, "resolution": "resolved"})
    await cust.wait(is_("closed"), T)
    # the admin API (token from the environment) of the first gateway has the whole log
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{stack.ports[0]}/api/conversations/{conv}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as r:
        assert r.status == 200
        texts = [m.get("text") for m in (await r.json())["messages"]]
    assert {"转人工", "您好，我来帮您", "谢谢"} <= set(texts)
    for c in (cust, agent):
        await c.close()
