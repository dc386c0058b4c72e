"""The web pages (customer chat, widget.js, agent console) in a real headless Chromium.

Each test starts ``gateway serve`` as a process on a loopback port (``gateway_proc``)
and drives Debian's /usr/bin/chromium through Playwright (browsers cannot be
downloaded here). Without Chromium the tests skip, unless GATEWAY_REQUIRE_BROWSER=1.
Screenshots go to tests/artifacts/; GATEWAY_UPDATE_SCREENSHOTS=1 (or a missing
file) also copies them to docs/screenshots/ for the README.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import DEMO_CONFIG, DEMO_FAQ, ROOT, other_origin_page

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the fixture below skips (or fails under GATEWAY_REQUIRE_BROWSER=1)
    expect = sync_playwright = None

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
WAIT_MS = 10_000

DEMO = tomllib.loads(DEMO_CONFIG.read_text(encoding="utf-8"))
ADMIN_TOKEN = DEMO["server"]["admin_token"]
AGENTS = {"a1": ("小王", "demo-a1"), "a2": ("小李", "demo-a2"), "a3": ("小张", "demo-a3")}
# a2 + a3 together cover every skill, and both take logistics (where an order question goes).
DUTY = ("a2", "a3")
CANNED = list(DEMO["console"]["canned"])
FAQ_ANSWERS = {e["question"]: e["answer"] for e in tomllib.loads(DEMO_FAQ.read_text(encoding="utf-8"))["faq"]}
ORDER_NO = "240601123456789012"
HANDOFF_TEXT = f"我要转人工，订单号 {ORDER_NO}"


def _browser_missing() -> str | None:
    if sync_playwright is None:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return "no /usr/bin/chromium (apt-get install chromium); browser tests skipped"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _browser_missing()
    if reason:
        if os.environ.get("GATEWAY_REQUIRE_BROWSER") == "1":
            pytest.fail(f"GATEWAY_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Tab:
    """A page in its own browser context (own sessionStorage), with what it raised."""

    page: Any
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page fetched

    def loaded(self, name: str) -> bool:
        """Whether the page fetched /static/`name` (from whichever origin)."""
        return any(u.split("?")[0].endswith(f"/static/{name}") for u in self.requests)

    def assert_clean(self) -> None:
        assert self.dialogs == [], f"a dialog opened (script ran): {self.dialogs}"
        assert self.errors == [], f"uncaught page errors: {self.errors}"


# Counts WebAudio oscillators, i.e. console beeps, without touching the page's code.
COUNT_BEEPS = """
(() => {
  window.__oscillators = 0;
  const C = window.AudioContext;
  if (!C) return;
  const orig = C.prototype.createOscillator;
  C.prototype.createOscillator = function () { window.__oscillators += 1; return orig.call(this); };
})();
"""


@pytest.fixture
def tabs(browser: Any) -> Iterator[Callable[..., Tab]]:
    contexts: list[Any] = []

    def open_tab(viewport: dict[str, int] = DESKTOP) -> Tab:
        ctx = browser.new_context(viewport=viewport, locale="zh-CN")
        contexts.append(ctx)
        ctx.add_init_script(COUNT_BEEPS)
        page = ctx.new_page()
        page.set_default_timeout(WAIT_MS)
        tab = Tab(page)

        def on_dialog(d: Any) -> None:
            tab.dialogs.append(f"{d.type}: {d.message}")
            d.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda e: tab.errors.append(str(e)))
        page.on("request", lambda r: tab.requests.append(r.url))
        return tab

    yield open_tab
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def gateway(gateway_proc: Callable[..., Any]) -> Any:
    return gateway_proc()


# ------------------------------------------------------------------ helpers


def open_chat(tab: Tab, url: str) -> Any:
    page = tab.page
    page.goto(url + "/")
    page.wait_for_function("() => !!sessionStorage.getItem('gateway.chat')")  # welcome received
    return page


def conversation_id(page: Any) -> str:
    return str(page.evaluate("() => JSON.parse(sessionStorage.getItem('gateway.chat')).conversation"))


def say(page: Any, text: str) -> None:
    """Type and send with Enter; wait until the server acked it (the row has its seq)."""
    rows = page.locator(".gw-from-customer")
    n = rows.count()
    page.fill(".gw-input", text)
    page.press(".gw-input", "Enter")
    expect(rows.nth(n)).to_have_attribute("data-seq", re.compile(r"^[0-9]+$"))


def wait_count(page: Any, selector: str, n: int) -> None:
    """Wait for at least n matches (locators also look inside the widget's shadow root)."""
    page.locator(selector).nth(n - 1).wait_for(state="attached")


def bot_bubbles(page: Any) -> list[str]:
    return [t.strip() for t in page.locator(".gw-from-bot .gw-bubble").all_inner_texts()]


def chat_rows(page: Any) -> list[tuple[str, str, str]]:
    """(class, seq, text) of every row in the customer chat, in order."""
    return [tuple(r) for r in page.eval_on_selector_all(
        ".gw-messages .gw-row",
        "rows => rows.map(r => [r.className, r.dataset.seq || '', r.querySelector('.gw-bubble, .gw-notice').textContent])")]


def sign_in(tab: Tab, url: str, agent: str, token: str | None = None) -> Any:
    page = tab.page
    page.goto(url + "/console")
    page.fill("input[name=agent]", agent)
    page.fill("input[name=token]", token if token is not None else AGENTS[agent][1])
    page.click(".signin-card button[type=submit]")
    if token is None:
        page.wait_for_selector(".conn-state[data-state=online]")
    return page


def on_duty(tabs: Callable[..., Tab], url: str, viewport: dict[str, int] = DESKTOP) -> dict[str, Tab]:
    consoles = {a: tabs(viewport) for a in DUTY}
    for agent, tab in consoles.items():
        sign_in(tab, url, agent)
    return consoles


def holder_of(consoles: dict[str, Tab], conv: str, timeout: float = 10.0) -> str:
    """The agent whose console lists conversation `conv`."""
    selector = f'.conv-item[data-id="{conv}"]'
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for agent, tab in consoles.items():
            if tab.page.locator(selector).count():
                return agent
        next(iter(consoles.values())).page.wait_for_timeout(100)
    raise AssertionError(f"no console shows {conv}")


def hand_off(customer: Any, consoles: dict[str, Tab], text: str = HANDOFF_TEXT) -> tuple[str, str]:
    """Ask for a person; return (conversation id, holding agent)."""
    say(customer, text)
    customer.wait_for_selector(".gw-assigned")
    conv = conversation_id(customer)
    return conv, holder_of(consoles, conv)


def wait_until(page: Any, condition: Callable[[], bool], timeout: float = WAIT_MS / 1000) -> None:
    """Poll a Python-side condition while Playwright keeps delivering events."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        page.wait_for_timeout(50)


@dataclass
class Relay:
    """Sits between a page and the gateway on its websockets (route_web_socket) and drops
    them as a restarting server (1012), a too slow reader (1013) or a network loss would.
    While `up` is False, new sockets open but reach no server."""

    page: Any
    sockets: list[Any] = field(default_factory=list)
    up: bool = True

    def __post_init__(self) -> None:
        def through(ws: Any) -> None:
            if self.up:
                ws.connect_to_server()
            self.sockets.append(ws)

        self.page.route_web_socket(re.compile(r".*/ws/(customer|agent)$"), through)

    def drop(self, code: int, reason: str = "") -> None:
        """Close the newest socket towards the page with `code`."""
        self.sockets[-1].close(code=code, reason=reason)

    def wait_sockets(self, n: int, timeout: float = WAIT_MS / 1000) -> float:
        """Wait until the page has opened n sockets in all; the seconds it took."""
        start = time.monotonic()
        wait_until(self.page, lambda: len(self.sockets) >= n, timeout)
        assert len(self.sockets) == n, f"{len(self.sockets)} sockets, expected {n}"
        return time.monotonic() - start


def console_rows(page: Any) -> list[tuple[str, str, str]]:
    """(class, seq, text) of every row in the console's open conversation, in order."""
    return [tuple(r) for r in page.eval_on_selector_all(
        ".history .msg",
        "rows => rows.map(r => [r.className, r.dataset.seq || '', "
        "(r.querySelector('.bubble, .notice') || r).firstChild.textContent])")]


def assert_seqs_once(rows: list[tuple[str, str, str]]) -> None:
    """Every row stored (has its seq), each seq once, in order."""
    seqs = [int(seq) for _, seq, _ in rows]
    assert seqs == sorted(set(seqs)), rows


def admin_get(url: str, path: str) -> Any:
    req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def shoot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.locator(".toast").first.wait_for(state="detached")  # the console's short notices
    page.wait_for_timeout(300)  # let scrolling and fonts settle
    page.screenshot(path=str(path))
    target = SCREENSHOTS / name
    if os.environ.get("GATEWAY_UPDATE_SCREENSHOTS") == "1" or not target.exists():
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1"))


# ------------------------------------------------------------------ tests


def test_faq_answer_and_suggestion_chip(gateway: Any, tabs: Callable[..., Tab]) -> None:
    tab = tabs()
    page = open_chat(tab, gateway.http_url)

    say(page, "什么时候发货")
    wait_count(page, ".gw-from-bot", 1)
    assert bot_bubbles(page) == [FAQ_ANSWERS["什么时候发货"]]

    say(page, "快递")  # close to several questions: the bot offers them as chips
    wait_count(page, ".gw-from-bot", 2)
    chips = page.locator(".gw-from-bot").nth(1).locator(".gw-chip")
    assert chips.count() >= 2
    question = chips.first.inner_text().strip()
    assert question in FAQ_ANSWERS

    chips.first.click()
    wait_count(page, ".gw-from-bot", 3)
    assert page.locator(".gw-from-customer .gw-bubble").last.inner_text() == question
    assert bot_bubbles(page)[-1] == FAQ_ANSWERS[question]
    assert page.locator(".gw-from-bot").last.locator(".gw-chip").count() == 0
    tab.assert_clean()


def test_feedback_buttons_under_bot_answers(gateway: Any, tabs: Callable[..., Tab]) -> None:
    url = gateway.http_url
    cust = tabs()
    customer = open_chat(cust, url)
    say(customer, "什么时候发货")
    say(customer, "包邮吗")
    wait_count(customer, ".gw-from-bot", 2)
    first, second = customer.locator(".gw-from-bot").nth(0), customer.locator(".gw-from-bot").nth(1)
    assert first.locator(".gw-fb").all_inner_texts() == ["有帮助", "没帮助"]
    say(customer, "快递")  # only suggestions: nothing to judge
    wait_count(customer, ".gw-from-bot", 3)
    assert customer.locator(".gw-from-bot").nth(2).locator(".gw-chip").count() >= 2
    assert customer.locator(".gw-from-bot").nth(2).locator(".gw-fb").count() == 0

    first.locator(".gw-fb-no").click()
    expect(first.locator(".gw-feedback")).to_have_text("已反馈")  # acked: stored
    conv = conversation_id(customer)
    seq = int(first.get_attribute("data-seq") or 0)
    body = admin_get(url, f"/api/conversations/{conv}")
    assert body["feedback"] == {str(seq): False}
    assert [m.get("helpful") for m in body["messages"] if m["seq"] == seq] == [False]

    # A reload resumes the history; the verdict given stays given, the other answer still asks.
    customer.reload()
    wait_count(customer, ".gw-from-bot", 3)
    first, second = customer.locator(".gw-from-bot").nth(0), customer.locator(".gw-from-bot").nth(1)
    expect(first.locator(".gw-feedback")).to_have_text("已反馈")
    assert second.locator(".gw-fb").count() == 2

    # The agent who takes over sees the verdict on the bot's answer, and a later one live.
    consoles = on_duty(tabs, url)
    say(customer, "转人工")
    customer.wait_for_selector(".gw-assigned")
    console = consoles[holder_of(consoles, conv)].page
    console.locator(f'.conv-item[data-id="{conv}"]').click()
    bot_rows = console.locator(".history .from-bot")
    expect(bot_rows.nth(0).locator(".helpful-tag")).to_have_text("客户反馈：没帮助")
    assert bot_rows.nth(1).locator(".helpful-tag").count() == 0
    second.locator(".gw-fb-yes").click()
    expect(second.locator(".gw-feedback")).to_have_text("已反馈")
    expect(bot_rows.nth(1).locator(".helpful-tag")).to_have_text("客户反馈：有帮助")
    for tab in (cust, *consoles.values()):
        tab.assert_clean()


def test_queue_handoff_reply_close_and_rating(gateway: Any, tabs: Callable[..., Tab]) -> None:
    url = gateway.http_url
    cust = tabs()
    customer = open_chat(cust, url)

    # Nobody is online yet: the customer waits in a queue and is told the position.
    say(customer, HANDOFF_TEXT)
    customer.wait_for_selector(".gw-queue:not([hidden])")
    assert "第 1 位" in customer.inner_text(".gw-queue")

    consoles = on_duty(tabs, url)
    customer.wait_for_selector(".gw-assigned")
    assert customer.locator(".gw-queue").is_hidden()
    conv = conversation_id(customer)
    agent = holder_of(consoles, conv)
    name = AGENTS[agent][0]
    assert customer.inner_text(".gw-sub") == f"客服 {name} 为您服务"

    console = consoles[agent].page
    item = console.locator(f'.conv-item[data-id="{conv}"]')
    assert item.locator(".unread").inner_text() == "1"  # the unanswered request
    assert "等待" in item.locator(".wait").inner_text()
    assert console.evaluate("() => window.__oscillators") >= 1  # the new-assignment beep

    item.click()
    assert item.locator(".unread").is_hidden()
    console.wait_for_selector(".history .from-customer")
    assert console.locator(".history .from-customer .bubble").first.inner_text() == HANDOFF_TEXT
    assert ORDER_NO in console.locator(".conv-info .order-chip").all_inner_texts()
    assert console.inner_text(".handoff-reason") not in ("", "—")

    # Typing is shown to the customer; a canned reply goes out with Enter.
    console.type(".reply-input", "您")
    customer.wait_for_selector(".gw-typing:not([hidden])")
    console.fill(".reply-input", "")
    console.locator(".canned-chip").first.click()
    assert console.input_value(".reply-input") == CANNED[0]
    console.press(".reply-input", "Enter")
    customer.wait_for_selector(".gw-from-agent .gw-bubble")
    assert customer.inner_text(".gw-from-agent .gw-bubble") == CANNED[0]
    assert customer.inner_text(".gw-from-agent .gw-name") == name
    console.wait_for_selector(".history .from-agent[data-seq]")

    # The customer's typing shows on the console (the page sends it at most every 2.5 s).
    customer.wait_for_timeout(2600)
    customer.type(".gw-input", "好")
    console.wait_for_selector(".typing:not([hidden])")
    expect(item.locator(".preview")).to_have_text("正在输入…")
    customer.fill(".gw-input", "")
    say(customer, "好的，谢谢")
    console.wait_for_selector(".history .from-customer >> nth=1")
    assert console.locator(".history .from-customer .bubble").last.inner_text() == "好的，谢谢"

    # The live panel: three queues, both agents online.
    expect(console.locator(".stats-online")).to_have_text("在线客服 2 人")  # polled every 3 s
    expect(console.locator(".stats-agents li")).to_have_count(3)
    assert console.locator(".stats-queues li").count() >= 3

    console.select_option(".resolution", "resolved")
    console.click(".close-btn")
    console.wait_for_selector(".ended:not([hidden])")
    assert item.count() == 0

    customer.wait_for_selector(".gw-closed")
    customer.wait_for_selector(".gw-rating:not([hidden])")
    customer.reload()  # the stars wait across a reload, under the resumed history
    customer.wait_for_selector(".gw-closed")
    customer.wait_for_selector(".gw-rating:not([hidden])")
    assert customer.locator(".gw-from-agent .gw-bubble").inner_text() == CANNED[0]
    customer.locator(".gw-star").nth(3).click()
    customer.fill(".gw-comment", "回复很快")
    customer.click(".gw-rate-submit")
    customer.wait_for_selector(".gw-rated")

    rating = admin_get(url, f"/api/conversations/{conv}").get("rating")
    score = rating.get("score") if isinstance(rating, dict) else rating
    assert score == 4, rating
    if isinstance(rating, dict) and "comment" in rating:
        assert rating["comment"] == "回复很快"

    # Away: the panel shows it at the next poll.
    console.click(".status-switch button[data-status=away]")
    console.wait_for_selector(".stats-agents li.status-away")
    for tab in (cust, *consoles.values()):
        tab.assert_clean()


def test_html_in_messages_is_shown_as_text(gateway: Any, tabs: Callable[..., Tab]) -> None:
    url = gateway.http_url
    consoles = on_duty(tabs, url)
    cust = tabs()
    customer = open_chat(cust, url)
    conv, agent = hand_off(customer, consoles, "转人工")
    console = consoles[agent].page
    console.click(f'.conv-item[data-id="{conv}"]')

    from_customer = "<img src=x onerror=alert(1)>"
    from_agent = "<script>alert(2)</script><b onclick=alert(3)>粗体</b>"
    say(customer, from_customer)
    console.wait_for_function(
        "t => [...document.querySelectorAll('.history .from-customer .bubble')].some(b => b.textContent === t)",
        arg=from_customer)
    assert console.locator(".conv-item .preview").first.inner_text() == from_customer
    console.fill(".reply-input", from_agent)
    console.press(".reply-input", "Enter")
    customer.wait_for_selector(".gw-from-agent .gw-bubble")

    assert customer.locator(".gw-from-customer .gw-bubble").last.text_content() == from_customer
    assert customer.locator(".gw-from-agent .gw-bubble").last.text_content() == from_agent
    assert console.locator(".history .from-agent .bubble").last.text_content() == from_agent
    for page, scope in ((customer, ".gw-messages"), (console, ".history")):
        assert page.locator(f"{scope} img, {scope} script, {scope} b").count() == 0
    customer.wait_for_timeout(500)  # an onerror would have fired by now
    cust.assert_clean()
    consoles[agent].assert_clean()


def test_reload_resumes_with_history(gateway: Any, tabs: Callable[..., Tab]) -> None:
    tab = tabs()
    page = open_chat(tab, gateway.http_url)
    say(page, "什么时候发货")
    wait_count(page, ".gw-from-bot", 1)
    say(page, "快递")
    wait_count(page, ".gw-from-bot .gw-chip", 1)
    before = chat_rows(page)
    conv = conversation_id(page)
    assert len(before) == 4

    page.reload()
    wait_count(page, ".gw-messages .gw-row", len(before))
    page.wait_for_timeout(500)  # nothing more may arrive: no doubles
    after = chat_rows(page)
    assert after == before
    assert conversation_id(page) == conv

    # The resumed chat goes on: a chip still works, seqs continue without a gap.
    page.locator(".gw-chip").first.click()
    wait_count(page, ".gw-from-bot", 3)
    seqs = [int(seq) for _, seq, _ in chat_rows(page)]
    assert seqs == list(range(1, len(seqs) + 1))
    tab.assert_clean()


def test_reconnect_after_restart_or_network_loss(gateway: Any, tabs: Callable[..., Tab]) -> None:
    """The test sits between page and server (Relay) and drops the socket."""
    tab = tabs()
    page = tab.page
    relay = Relay(page)
    open_chat(tab, gateway.http_url)
    assert tab.loaded("ws-conn.js")  # the shared socket module, as on the console
    say(page, "什么时候发货")
    wait_count(page, ".gw-from-bot", 1)

    # 1012 (server restarting): the page comes back at once and resumes after its last seq.
    relay.drop(1012, "restart")
    assert relay.wait_sockets(2) < 2.0
    expect(page.locator(".gw-status")).to_be_hidden()
    say(page, "发货")
    wait_count(page, ".gw-from-bot", 2)

    # 1013 (too slow to read): the same.
    relay.drop(1013, "too slow, reconnect and resume")
    assert relay.wait_sockets(3) < 2.0
    expect(page.locator(".gw-status")).to_be_hidden()

    # Network loss: a message typed meanwhile waits, then goes out once after reconnecting.
    relay.up = False
    relay.drop(4000, "network lost")
    expect(page.locator(".gw-status")).to_contain_text("正在重新连接")
    relay.wait_sockets(4)  # a retry that reaches nothing
    page.fill(".gw-input", "尺码怎么选")
    page.press(".gw-input", "Enter")
    expect(page.locator(".gw-from-customer").last.locator(".gw-meta")).to_have_text("发送中…")
    relay.up = True
    relay.drop(4000, "still down")
    relay.wait_sockets(5)
    expect(page.locator(".gw-status")).to_be_hidden()
    wait_count(page, ".gw-from-bot", 3)
    assert bot_bubbles(page)[-1] == FAQ_ANSWERS["尺码怎么选"]

    page.wait_for_timeout(300)
    rows = chat_rows(page)
    seqs = [int(seq) for _, seq, _ in rows]
    assert seqs == list(range(1, len(seqs) + 1)), rows  # nothing lost, nothing doubled
    assert [text for cls, _, text in rows if "customer" in cls] == ["什么时候发货", "发货", "尺码怎么选"]
    tab.assert_clean()


def test_stale_resume_starts_afresh(gateway: Any, tabs: Callable[..., Tab]) -> None:
    """A stored conversation the server refuses to resume (4401) gives way to a new one."""
    tab = tabs()
    page = open_chat(tab, gateway.http_url)
    page.evaluate("""() => sessionStorage.setItem('gateway.chat',
        JSON.stringify({conversation: 'c-gone', token: 'not-its-token', seq: 3}))""")
    page.reload()
    page.wait_for_selector(".gw-notice:has-text('之前的会话已失效')")
    page.wait_for_function("() => JSON.parse(sessionStorage.getItem('gateway.chat')).conversation !== 'c-gone'")
    expect(page.locator(".gw-status")).to_be_hidden()
    say(page, "什么时候发货")
    wait_count(page, ".gw-from-bot", 1)
    tab.assert_clean()


def test_console_reconnects_and_resumes(gateway: Any, tabs: Callable[..., Tab]) -> None:
    """The console on the same shared socket module: 1012, 1013 and a network loss."""
    url = gateway.http_url
    consoles = {a: tabs() for a in DUTY}
    relays = {a: Relay(tab.page) for a, tab in consoles.items()}
    for agent, tab in consoles.items():
        sign_in(tab, url, agent)
        assert tab.loaded("ws-conn.js")
    cust = tabs()
    customer = open_chat(cust, url)
    conv, agent = hand_off(customer, consoles)
    agent_tab, relay = consoles[agent], relays[agent]
    console = agent_tab.page
    item = console.locator(f'.conv-item[data-id="{conv}"]')
    item.click()
    console.wait_for_selector(".history .from-customer")
    console.fill(".reply-input", "您好，我来查一下")
    console.press(".reply-input", "Enter")
    console.wait_for_selector(".history .from-agent[data-seq]")
    customer.wait_for_selector(".gw-from-agent")
    before = console_rows(console)
    online = console.locator(".conn-state")

    # 1012 (server restarting) and 1013 (too slow): back at once; the welcome lists the
    # conversation again and merges its history without doubling a row.
    for n, code in ((2, 1012), (3, 1013)):
        relay.drop(code, "reconnect")
        assert relay.wait_sockets(n) < 2.0
        expect(online).to_have_attribute("data-state", "online")
        console.wait_for_timeout(300)
        assert console_rows(console) == before
        assert item.count() == 1

    # Network loss: the customer writes meanwhile and the agent's reply waits; once back,
    # the customer's message shows once and the reply goes out once.
    relay.up = False
    relay.drop(4000, "network lost")
    expect(online).to_have_attribute("data-state", "reconnecting")
    relay.wait_sockets(4)  # a retry that reaches nothing
    say(customer, "还在吗")
    console.fill(".reply-input", "在的，稍等")
    console.press(".reply-input", "Enter")
    expect(console.locator(".history .from-agent").last).to_have_attribute("data-local", "1")
    console.wait_for_timeout(500)
    assert "还在吗" not in [t for _, _, t in console_rows(console)]  # offline indeed
    relay.up = True
    relay.drop(4000, "still down")
    relay.wait_sockets(5)
    expect(online).to_have_attribute("data-state", "online")
    expect(console.locator(".history .from-agent").last).to_have_attribute("data-seq", re.compile(r"^[0-9]+$"))
    customer.wait_for_selector(".gw-from-agent >> nth=1")

    console.wait_for_timeout(500)
    rows = console_rows(console)
    assert_seqs_once(rows)
    assert rows[:len(before)] == before
    said = [(("agent" if "from-agent" in cls else "customer"), text) for cls, _, text in rows
            if "from-agent" in cls or "from-customer" in cls]
    assert said == [("customer", HANDOFF_TEXT), ("agent", "您好，我来查一下"),
                    ("customer", "还在吗"), ("agent", "在的，稍等")], rows
    cust_rows = chat_rows(customer)
    assert [t for cls, _, t in cust_rows if "gw-from-agent" in cls] == ["您好，我来查一下", "在的，稍等"]
    seqs = [int(seq) for _, seq, _ in cust_rows]
    assert seqs == list(range(1, len(seqs) + 1)), cust_rows
    agent_tab.assert_clean()
    cust.assert_clean()


def test_transfer_to_another_agent(gateway: Any, tabs: Callable[..., Tab]) -> None:
    url = gateway.http_url
    consoles = on_duty(tabs, url)
    cust = tabs()
    customer = open_chat(cust, url)
    conv, agent = hand_off(customer, consoles)
    other = next(a for a in DUTY if a != agent)

    console = consoles[agent].page
    console.click(f'.conv-item[data-id="{conv}"]')
    console.select_option(".transfer-target", f"agent:{other}")
    console.click(".transfer-btn")
    console.wait_for_selector(".ended:not([hidden])")
    assert "转接" in console.inner_text(".ended")
    consoles[other].page.wait_for_selector(f'.conv-item[data-id="{conv}"]')
    customer.wait_for_function("t => document.querySelector('.gw-sub').textContent === t",
                               arg=f"客服 {AGENTS[other][0]} 为您服务")
    for tab in (cust, *consoles.values()):
        tab.assert_clean()


def test_console_refuses_a_bad_token(gateway: Any, tabs: Callable[..., Tab]) -> None:
    tab = tabs()
    page = sign_in(tab, gateway.http_url, "a2", "not-the-token")
    page.wait_for_selector(".signin-error:not([hidden])")
    assert "错误" in page.inner_text(".signin-error")
    assert page.evaluate("() => sessionStorage.getItem('gateway.agent')") is None
    tab.assert_clean()


def test_second_sign_in_takes_over_without_a_fight(gateway: Any, tabs: Callable[..., Tab]) -> None:
    first, second = tabs(), tabs()
    sign_in(first, gateway.http_url, "a2")
    sign_in(second, gateway.http_url, "a2")
    first.page.wait_for_selector(".replaced:not([hidden])")
    second.page.wait_for_timeout(1500)  # a reconnecting first tab would have kicked it by now
    expect(second.page.locator(".conn-state")).to_have_attribute("data-state", "online")
    expect(first.page.locator(".conn-state")).to_have_attribute("data-state", "replaced")

    first.page.click(".resume-here")  # take it back, on purpose
    first.page.wait_for_selector(".conn-state[data-state=online]")
    second.page.wait_for_selector(".replaced:not([hidden])")
    first.assert_clean()
    second.assert_clean()


SHOP_HTML = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>某某服饰旗舰店</title>
<style>body{margin:0;font-family:sans-serif;background:#fafafa;color:#333}
header{background:#222;color:#fff;padding:14px 24px;font-size:20px}
main{display:flex;gap:24px;padding:24px;flex-wrap:wrap}
.item{background:#fff;border:1px solid #eee;border-radius:8px;width:220px;padding:12px}
.pic{height:180px;background:linear-gradient(135deg,#ffd9c7,#ffeedd);border-radius:6px}
.price{color:#ff5000;font-size:20px;margin-top:6px}</style></head>
<body><header>某某服饰旗舰店</header><main>
<div class="item"><div class="pic"></div><div>夏季新款碎花连衣裙</div><div class="price">¥199</div></div>
<div class="item"><div class="pic"></div><div>纯棉宽松短袖T恤</div><div class="price">¥79</div></div>
</main>
<!-- the one tag a shop adds (here with its own text for the feedback acknowledgement): -->
<script src="{GATEWAY}/widget.js" data-text-feedback-done="感谢您的反馈" async></script>
</body></html>"""


@pytest.fixture
def shop_page(gateway: Any) -> Iterator[str]:
    """A shop page on another origin (localhost vs 127.0.0.1) that embeds widget.js with one tag.

    A real loopback server, not a routed fake: Chromium refuses loopback
    subresources to a page it takes for public (Private Network Access).
    """
    body = SHOP_HTML.replace("{GATEWAY}", gateway.http_url).encode()

    with other_origin_page(body) as url:
        yield url


def _static_allows_other_origins(url: str) -> bool:
    req = urllib.request.Request(url + "/static/widget-embed.js", headers={"Origin": "http://localhost"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.headers.get("Access-Control-Allow-Origin") in ("*", "http://localhost")


def test_widget_on_a_shop_page_of_another_origin(gateway: Any, tabs: Callable[..., Tab], shop_page: str) -> None:
    # widget.js import()s its modules from the gateway: a cross-origin module load needs CORS.
    assert _static_allows_other_origins(gateway.http_url)
    tab = tabs()
    page = tab.page
    relay = Relay(page)
    page.goto(shop_page)
    page.click(".gw-launcher")  # Playwright's CSS engine pierces the widget's shadow root
    page.wait_for_selector(".gw-panel:not([hidden])")
    page.wait_for_function(
        "() => Object.keys(sessionStorage).some(k => k.startsWith('gateway.widget:'))")
    assert tab.loaded("ws-conn.js")  # cross-origin, through the widget's import() chain
    say(page, "什么时候发货")
    wait_count(page, ".gw-from-bot", 1)
    assert bot_bubbles(page) == [FAQ_ANSWERS["什么时候发货"]]
    shoot(page, "widget-desktop.png")
    page.locator(".gw-from-bot .gw-fb-yes").click()  # the shop's own text, from the tag's data-text-*
    expect(page.locator(".gw-from-bot .gw-feedback")).to_have_text("感谢您的反馈")

    # The server restarts (1012): the widget comes back and resumes, nothing doubled.
    relay.drop(1012, "restart")
    assert relay.wait_sockets(2) < 2.0
    expect(page.locator(".gw-status")).to_be_hidden()
    say(page, "发货")
    wait_count(page, ".gw-from-bot", 2)
    page.wait_for_timeout(300)
    seqs = [int(seq) for _, seq, _ in chat_rows(page)]
    assert seqs == list(range(1, len(seqs) + 1))
    page.click(".gw-close")
    page.wait_for_selector(".gw-panel", state="hidden")

    # A reload of the shop page keeps the conversation: the widget reconnects and resumes.
    page.reload()
    page.click(".gw-launcher")
    wait_count(page, ".gw-from-bot", 2)
    assert bot_bubbles(page)[0] == FAQ_ANSWERS["什么时候发货"]
    tab.assert_clean()


def test_screenshots_desktop_and_phone(gateway: Any, tabs: Callable[..., Tab]) -> None:
    url = gateway.http_url
    consoles = on_duty(tabs, url)
    cust = tabs()
    customer = open_chat(cust, url)
    say(customer, "什么时候发货")
    wait_count(customer, ".gw-from-bot", 1)
    say(customer, "发货")
    wait_count(customer, ".gw-from-bot", 2)
    conv, agent = hand_off(customer, consoles)
    console = consoles[agent].page
    console.click(f'.conv-item[data-id="{conv}"]')
    console.locator(".canned-chip").nth(1).click()
    console.press(".reply-input", "Enter")
    customer.wait_for_selector(".gw-from-agent")
    say(customer, "好的，订单号就是上面那个")
    console.wait_for_selector(".history .from-customer >> nth=-1")
    console.wait_for_function("() => document.querySelectorAll('.stats-agents li').length === 3")

    shoot(customer, "customer-desktop.png")
    shoot(console, "console-desktop.png")
    for page in (customer, console):
        page.set_viewport_size(PHONE)
    assert no_horizontal_scroll(customer)
    assert no_horizontal_scroll(console)
    shoot(customer, "customer-phone.png")
    shoot(console, "console-phone.png")
    console.click(".back")  # phone: back to the list
    console.wait_for_selector(".conv-list")
    assert no_horizontal_scroll(console)
    shoot(console, "console-list-phone.png")
    for tab in (cust, *consoles.values()):
        tab.assert_clean()


# ------------------------------------------------------------------ /reports

# Counted in the page before its own scripts run: a Content-Security-Policy violation would land here.
COUNT_CSP = "window.__csp = []; document.addEventListener('securitypolicyviolation', " \
            "(e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"


def test_reports_page_draws_its_charts(gateway_proc: Callable[..., Any], tabs: Callable[..., Tab],
                                       tmp_path: Path) -> None:
    from tests.report_sample import MONTH_FROM, MONTH_TO, fill_archive, month_of_records

    url = f"sqlite:///{tmp_path / 'reports.sqlite3'}"
    records = month_of_records()
    fill_archive(url, records)
    gw = gateway_proc({"archive": {"url": url}})
    tab = tabs()
    page = tab.page
    page.add_init_script(COUNT_CSP)
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.goto(gw.http_url + "/reports")
    page.fill("input[name=token]", "wrong")
    page.click(".signin-card button[type=submit]")
    expect(page.locator(".signin-error")).to_contain_text("令牌错误")
    console_errors.clear()  # the browser logs the refused request (401) as an error: expected here
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click(".signin-card button[type=submit]")
    page.fill("input[name=from]", MONTH_FROM)
    page.fill("input[name=to]", MONTH_TO)
    page.select_option("select[name=by]", "agent")
    page.click(".period button[type=submit]")
    page.wait_for_selector("body[data-state=ready]")
    for name in ("volume", "first-response", "sla", "satisfaction"):
        chart = page.locator(f'.chart[data-chart="{name}"]')
        expect(chart).to_have_attribute("data-drawn", "1")
        painted = page.evaluate(
            """(name) => {
                 const c = document.querySelector(`.chart[data-chart="${name}"] canvas`);
                 const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 let n = 0;
                 for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n += 1;
                 return n;
               }""", name)
        assert painted > 1000, (name, painted)  # axes, bars and lines on the canvas
    report = admin_get(gw.http_url, f"/api/reports?from={MONTH_FROM}&to={MONTH_TO}&by=agent")
    cards = page.locator(".cards .card .v").all_inner_texts()
    assert cards[0] == str(report["totals"]["conversations"]) == str(len(records))
    assert page.locator(".group-table tbody tr").count() == len(report["rows"]) + 1  # and the total
    assert page.locator(".group-table tbody tr").first.get_attribute("data-key") == "a1"
    assert page.evaluate("() => window.__csp") == []
    assert console_errors == []
    assert tab.loaded("vendor/uPlot.iife.min.js") and not any("cdn" in u for u in tab.requests)
    tab.assert_clean()
    page.set_viewport_size({"width": 1280, "height": 1280})  # the whole page: cards, four charts, the table
    page.wait_for_timeout(400)
    shoot(page, "reports.png")
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(400)  # the charts follow the width
    assert no_horizontal_scroll(page)
