"""HTTP hardening (issue 12, item 6): security headers, the /metrics token, ``[server] allowed_origins``.

In-process gateways on loopback (``gateway_app``) for the headers and the checks; the
last tests load the pages in headless Chromium under the policy (fixtures shared with
tests/test_pages_browser.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.server.http import STATIC
from tests import test_pages_browser as pb
from tests.conftest import RunningApp
from tests.support import other_origin_page

AppFactory = Callable[..., Awaitable[RunningApp]]
ADMIN = {"Authorization": f"Bearer {pb.ADMIN_TOKEN}"}


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers or {}) as r:
        await r.read()
        return r.status, r.headers


def _script_src(csp: str) -> str:
    return next(d for d in csp.split(";") if d.strip().startswith("script-src")).strip()


# ------------------------------------------------------------------ headers


async def test_every_response_carries_nosniff_and_a_csp_without_inline_script(gateway_app: AppFactory) -> None:
    gw = await gateway_app()
    paths = ["/", "/console", "/widget.js", "/static/console.js", "/static/chat.css", "/static/index.html",
             "/static/console.html", "/healthz", "/readyz", "/metrics", "/api/stats", "/no-such-page",
             "/static/no-such-file.js"]
    for path in paths:
        status, h = await _get(gw.http_url + path)
        assert status in (200, 401, 404), (path, status)
        assert h.get("X-Content-Type-Options") == "nosniff", path
        csp = h.get("Content-Security-Policy", "")
        assert _script_src(csp) == "script-src 'self'", (path, csp)
        assert "'unsafe-eval'" not in csp and "object-src 'none'" in csp, path


async def test_console_refuses_frames_and_the_customer_page_allows_them(gateway_app: AppFactory) -> None:
    gw = await gateway_app()
    for path in ("/console", "/static/console.html", "/api/stats", "/metrics"):
        _, h = await _get(gw.http_url + path)
        assert h.get("X-Frame-Options") == "DENY", path
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"], path
    for path in ("/", "/static/index.html"):  # shops may frame the customer chat
        _, h = await _get(gw.http_url + path)
        assert "X-Frame-Options" not in h, path
        assert "frame-ancestors" not in h["Content-Security-Policy"], path
    # widget.js and its modules stay loadable from any origin
    _, h = await _get(gw.http_url + "/static/widget-embed.js", {"Origin": "https://shop.example"})
    assert h.get("Access-Control-Allow-Origin") == "*"


def test_pages_have_no_inline_script() -> None:
    """What the policy enforces, checked in the files: scripts only by src, no on* handlers, no javascript: URLs."""
    for page in sorted(STATIC.glob("*.html")):
        html = page.read_text(encoding="utf-8")
        for tag in re.findall(r"<script\b[^>]*>", html, re.I):
            assert re.search(r"\bsrc=", tag), (page.name, tag)
        assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html, re.I), page.name
        assert not re.search(r"\son[a-z]+\s*=", html, re.I), page.name
        assert "javascript:" not in html.lower(), page.name


# ------------------------------------------------------------------ /metrics token


async def test_metrics_open_without_a_token(gateway_app: AppFactory) -> None:
    gw = await gateway_app()
    status, _ = await _get(gw.http_url + "/metrics")
    assert status == 200


async def test_metrics_behind_its_bearer_token(gateway_app: AppFactory) -> None:
    gw = await gateway_app({"server": {"metrics_token": "scrape-me"}})
    url = gw.http_url + "/metrics"
    status, h = await _get(url)
    assert status == 401 and h.get("WWW-Authenticate", "").startswith("Bearer")
    assert (await _get(url, {"Authorization": "Bearer wrong"}))[0] == 401
    assert (await _get(url, ADMIN))[0] == 401  # the admin token is not the metrics token
    async with aiohttp.ClientSession() as s, s.get(url, headers={"Authorization": "Bearer scrape-me"}) as r:
        assert r.status == 200
        assert "gateway_" in await r.text()
    assert (await _get(gw.http_url + "/healthz"))[0] == 200  # probes stay open


def test_metrics_token_sha256_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    digest = hashlib.sha256(b"scrape-me").hexdigest()
    assert parse_config({"server": {"metrics_token": "scrape-me"}}, tmp_path).metrics_token_sha256 == digest
    assert parse_config({"server": {"metrics_token_sha256": digest.upper()}}, tmp_path).metrics_token_sha256 == digest
    monkeypatch.setenv("GW_METRICS", "scrape-me")
    assert parse_config({"server": {"metrics_token_env": "GW_METRICS"}}, tmp_path).metrics_token_sha256 == digest
    assert parse_config({}, tmp_path).metrics_token_sha256 == ""
    with pytest.raises(ConfigError, match=r"server\.metrics\.token_sha256"):
        parse_config({"server": {"metrics_token_sha256": "abc"}}, tmp_path)
    with pytest.raises(ConfigError, match=r"server\.metrics\.token_env"):
        parse_config({"server": {"metrics_token_env": "GW_NOT_SET_ANYWHERE"}}, tmp_path)


# ------------------------------------------------------------------ allowed_origins

CONSOLE_ORIGIN = "https://console.example.com"


def test_allowed_origins_config(tmp_path: Path) -> None:
    c = parse_config({"server": {"allowed_origins": ["HTTPS://Console.Example.com/", "http://127.0.0.1:8080"]}},
                     tmp_path)
    assert c.allowed_origins == ("https://console.example.com", "http://127.0.0.1:8080")
    assert parse_config({}, tmp_path).allowed_origins == ()
    for bad in (["console.example.com"], ["https://x.example/path"], ["ftp://x.example"], "https://x.example", [1]):
        with pytest.raises(ConfigError, match=r"server\.allowed_origins"):
            parse_config({"server": {"allowed_origins": bad}}, tmp_path)


async def _ws_status(url: str, origin: str | None) -> int:
    """101 when the upgrade went through, else the HTTP status of the refusal."""
    headers = {"Origin": origin} if origin else {}
    async with aiohttp.ClientSession() as s:
        try:
            async with s.ws_connect(url, headers=headers):
                return 101
        except aiohttp.WSServerHandshakeError as e:
            return e.status


async def test_agent_socket_and_console_api_refuse_other_origins(gateway_app: AppFactory) -> None:
    gw = await gateway_app({"server": {"allowed_origins": [CONSOLE_ORIGIN]}})
    agent = gw.ws_url + "/ws/agent"
    assert await _ws_status(agent, "https://evil.example") == 403
    assert await _ws_status(agent, "null") == 403
    assert await _ws_status(agent, CONSOLE_ORIGIN) == 101
    assert await _ws_status(agent, CONSOLE_ORIGIN.upper()) == 101
    assert await _ws_status(agent, None) == 101  # not a browser: the agent token still decides

    stats = gw.http_url + "/api/stats"
    assert (await _get(stats, {**ADMIN, "Origin": "https://evil.example"}))[0] == 403
    assert (await _get(stats, {**ADMIN, "Origin": CONSOLE_ORIGIN}))[0] == 200
    assert (await _get(stats, ADMIN))[0] == 200
    # the console page itself and the probes are plain GETs, not checked
    assert (await _get(gw.http_url + "/console", {"Origin": "https://evil.example"}))[0] == 200


async def test_customer_socket_stays_open_to_any_origin(gateway_app: AppFactory) -> None:
    gw = await gateway_app({"server": {"allowed_origins": [CONSOLE_ORIGIN]}})
    assert await _ws_status(gw.ws_url + "/ws/customer", "https://any-shop.example") == 101
    status, _ = await _get(gw.http_url + "/widget.js", {"Origin": "https://any-shop.example"})
    assert status == 200


async def test_without_allowed_origins_any_origin_is_served(gateway_app: AppFactory) -> None:
    gw = await gateway_app()
    assert await _ws_status(gw.ws_url + "/ws/agent", "https://evil.example") == 101
    assert (await _get(gw.http_url + "/api/stats", {**ADMIN, "Origin": "https://evil.example"}))[0] == 200


# ------------------------------------------------------------------ the pages under the policy, in Chromium

browser = pb.browser
tabs = pb.tabs
gateway = pb.gateway


def _csp_reports(tab: pb.Tab) -> list[str]:
    reports: list[str] = []
    tab.page.on("console", lambda m: reports.append(m.text) if "Content Security Policy" in m.text else None)
    return reports


@pytest.mark.browser
def test_pages_work_under_the_policy(gateway: Any, tabs: Callable[..., pb.Tab]) -> None:
    url = gateway.http_url
    cust = tabs()
    cust_reports = _csp_reports(cust)
    pb.open_chat(cust, url)
    pb.say(cust.page, "什么时候发货")
    pb.wait_count(cust.page, ".gw-from-bot", 1)
    agent = tabs()
    agent_reports = _csp_reports(agent)
    pb.sign_in(agent, url, "a2")
    agent.page.wait_for_function("() => document.querySelector('.stats-updated').textContent.trim() !== ''")
    assert cust_reports == [] and agent_reports == []
    cust.assert_clean()
    agent.assert_clean()


@pytest.fixture
def framing_page(gateway: Any) -> Iterator[str]:
    """A page on another origin that frames the customer chat and the console."""
    body = (f'<!doctype html><iframe id="chat" src="{gateway.http_url}/"></iframe>'
            f'<iframe id="console" src="{gateway.http_url}/console"></iframe>').encode()

    with other_origin_page(body) as url:
        yield url


@pytest.mark.browser
def test_customer_chat_frames_and_the_console_does_not(gateway: Any, tabs: Callable[..., pb.Tab],
                                                       framing_page: str) -> None:
    tab = tabs()
    tab.page.goto(framing_page)
    chat = tab.page.frame_locator("#chat")
    chat.locator("textarea.gw-input").wait_for()  # the chat UI ran inside the frame
    tab.page.wait_for_timeout(300)
    frame = tab.page.query_selector("#console").content_frame()
    assert frame is not None
    assert frame.url.startswith("chrome-error:") or frame.query_selector(".signin-card") is None, frame.url
