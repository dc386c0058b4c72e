"""The console's closed loop in a real headless Chromium (issue 14): the close controls (resolution,
category, a pending case's follow-up time and note), the follow-ups list (due when the time comes,
ended from the list), and a returning customer's conversation marked 再次来访 with its history.

Helpers and fixtures come from ``test_pages_browser`` (skips without Chromium, unless
GATEWAY_REQUIRE_BROWSER=1).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tests import test_pages_browser as pages
from tests.test_pages_browser import (
    Tab,
    admin_get,
    conversation_id,
    expect,
    hand_off,
    on_duty,
    open_chat,
    say,
    shoot,
)

pytestmark = pytest.mark.browser
browser, tabs, gateway = pages.browser, pages.tabs, pages.gateway  # the pages' fixtures


def archived(url: str, customer: str, conv: str) -> bool:
    q = urllib.parse.urlencode({"customer": customer})
    return conv in [i["id"] for i in admin_get(url, f"/api/conversations?{q}")["items"]]


def test_close_pending_follow_up_due_and_the_returning_customer(gateway: Any, tabs: Callable[..., Tab]) -> None:
    url = gateway.http_url
    cust = tabs()
    customer = open_chat(cust, url)
    consoles = on_duty(tabs, url)
    first, agent = hand_off(customer, consoles)
    console = consoles[agent].page
    console.locator(f'.conv-item[data-id="{first}"]').click()
    console.wait_for_selector(".history .from-customer")

    # unresolved, with a category from the welcome's list
    assert console.locator(".category option").all_inner_texts() == [
        "问题分类（可选）", "质量问题", "物流问题", "使用咨询", "服务问题", "其他"]
    assert console.locator(".pending-fields").is_hidden()
    console.select_option(".resolution", "unresolved")
    console.select_option(".category", "logistics")
    console.click(".close-btn")
    console.wait_for_selector(".ended:not([hidden])")
    customer.wait_for_selector(".gw-closed")
    cid = admin_get(url, f"/api/conversations/{first}")["customer_id"]
    pages.wait_until(console, lambda: archived(url, cid, first))

    # the customer comes back: reopened, to the same agent, with the history
    say(customer, "还是没有收到货")
    customer.wait_for_selector(".gw-assigned >> nth=1")
    second = conversation_id(customer)
    assert second != first
    item = console.locator(f'.conv-item[data-id="{second}"]')
    item.wait_for()
    item.click()
    expect(console.locator(".conv-title .badge.reopened")).to_have_text("再次来访")
    expect(console.locator(".conv-title .badge.prio-high")).to_have_count(1)
    hist = console.locator(".cust-history")
    expect(hist.locator("summary")).to_contain_text("1 次")
    hist.locator("summary").click()
    row = hist.locator(f'.hist-item[data-id="{first}"]')
    expect(row).to_contain_text("未解决")
    expect(row).to_contain_text("物流问题")
    expect(row).to_contain_text("我要转人工")

    # pending: a follow-up a few seconds ahead, with a note
    console.select_option(".resolution", "pending")
    expect(console.locator(".pending-fields")).to_be_visible()
    assert console.input_value(".follow-up-at"), "a default time (tomorrow 10:00) is filled in"
    soon = datetime.fromtimestamp(time.time() + 4).strftime("%Y-%m-%dT%H:%M:%S")
    console.fill(".follow-up-at", soon)
    console.fill(".follow-up-note", "等仓库核实后回电")
    console.select_option(".category", "logistics")
    console.click(".close-btn")
    console.wait_for_selector(".ended:not([hidden])")
    fu = console.locator(f'.fu-item[data-id="{second}"]')
    expect(fu).to_contain_text("等仓库核实后回电")
    expect(fu).to_contain_text("物流问题")
    expect(console.locator(".fu-count")).to_have_text("1")
    customer.wait_for_selector(".gw-closed >> nth=1")
    assert any("北京时间" in t for t in customer.locator(".gw-notice").all_inner_texts()), "the promised time"
    # the time comes: the server's follow_up_due (and the page's own clock) mark it
    expect(fu).to_have_attribute("data-state", "due", timeout=15_000)
    expect(console.locator(".toast", has_text="跟进提醒")).to_have_count(1, timeout=15_000)
    expect(console.locator(".fu-due-count")).to_have_text("1 个到期")
    shoot(console, "console-follow-ups.png")
    fu.locator(".fu-resolved").click()
    expect(fu).to_have_count(0)
    expect(console.locator(".fu-empty")).to_be_visible()
    done = admin_get(url, f"/api/conversations/{second}")
    assert done["resolution"] == "resolved" and done["follow_up_done_at"] and done["category"] == "logistics"
    for tab in (cust, *consoles.values()):
        tab.assert_clean()
