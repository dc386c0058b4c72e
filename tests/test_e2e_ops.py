"""Operations: health, metrics, admin API, FAQ hot reload (HTTP and SIGHUP), graceful shutdown."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from pathlib import Path

import aiohttp

from tests.e2e import agent, customer, say
from tests.support import DEMO_FAQ, is_

ADMIN = {"Authorization": "Bearer demo-admin"}

NEW_FAQ = '''
[[faq]]
id = "e_cny"
question = "支持数字人民币付款吗"
similar = ["能用数字人民币吗", "可以用数币支付吗"]
keywords = ["数字人民币", "数币"]
answer = "支持，结算时选择数字人民币钱包即可。"
skill = "presale"
'''
DEMO_FAQ_TEXT = DEMO_FAQ.read_text(encoding="utf-8")  # read at import, not on a test's loop


async def test_health_ready_metrics_stats(gateway_app) -> None:
    app = await gateway_app()
    c, _ = await customer(app.ws_url, "u-ops")
    await say(c, "m1", "什么时候发货")
    async with aiohttp.ClientSession() as http:
        async with http.get(app.http_url + "/healthz") as r:
            assert r.status == 200
        async with http.get(app.http_url + "/readyz") as r:
            assert r.status == 200 and (await r.json())["ready"] is True
        async with http.get(app.http_url + "/metrics") as r:
            body = await r.text()
            assert 'gateway_messages_total{sender="customer"}' in body
        async with http.get(app.http_url + "/api/stats") as r:
            assert r.status == 401
        async with http.get(app.http_url + "/api/stats",
                            headers={"Authorization": "Bearer demo-a1", "X-Agent-Id": "a1"}) as r:
            s = await r.json()
            assert set(s["queues"]) >= {"presale", "aftersale", "logistics"}
            assert {a["id"] for a in s["agents"]} == {"a1", "a2", "a3"} and s["agents_online"] == 0
        async with http.get(app.http_url + "/api/conversations/c-nope", headers=ADMIN) as r:
            assert r.status == 404
        async with http.get(app.http_url + "/api/conversations/c-nope") as r:
            assert r.status == 401


async def test_faq_reload_swaps_atomically_and_bad_file_keeps_old(gateway_app, tmp_path: Path) -> None:
    faq = tmp_path / "faq.toml"
    await asyncio.to_thread(shutil.copy, DEMO_FAQ, faq)  # file I/O off the loop
    app = await gateway_app({"bot": {"faq": str(faq)}})
    c, _ = await customer(app.ws_url, "u-reload")
    await say(c, "m1", "支持数字人民币付款吗")
    first = await c.wait(lambda f: f.get("type") == "message" and f.get("from") in ("bot", "system"))
    assert first.get("faq") != "e_cny"
    async with aiohttp.ClientSession() as http:
        await asyncio.to_thread(faq.write_text, "[[faq]]\nid = 1\n", encoding="utf-8")  # broken
        async with http.post(app.http_url + "/api/faq/reload", headers=ADMIN) as r:
            body = await r.json()
            assert r.status == 422 and body["ok"] is False and body["error"]
        c2, _ = await customer(app.ws_url, "u-reload-2")
        await say(c2, "m1", "什么时候发货")
        ans = await c2.wait(lambda f: f.get("from") == "bot")
        assert ans.get("faq") == "ship_time", "the old FAQ still answers"
        await asyncio.to_thread(faq.write_text, DEMO_FAQ_TEXT + NEW_FAQ, encoding="utf-8")
        async with http.post(app.http_url + "/api/faq/reload") as r:
            assert r.status == 401
        async with http.post(app.http_url + "/api/faq/reload", headers=ADMIN) as r:
            body = await r.json()
            assert r.status == 200 and body["ok"] is True and body["entries"] >= 2
    c3, _ = await customer(app.ws_url, "u-reload-3")
    await say(c3, "m1", "支持数字人民币付款吗")
    ans = await c3.wait(lambda f: f.get("from") == "bot")
    assert ans.get("faq") == "e_cny"
    assert c.close_code is None, "sessions survive a reload"


async def test_sighup_reloads_and_sigterm_drains_with_1012(gateway_proc, tmp_path: Path) -> None:
    faq = tmp_path / "faq.toml"
    await asyncio.to_thread(shutil.copy, DEMO_FAQ, faq)  # file I/O off the loop
    gw = gateway_proc({"bot": {"faq": str(faq)}})
    c, _ = await customer(gw.ws_url, "u-hup")
    a, _ = await agent(gw.ws_url, "a1", "demo-a1")
    await asyncio.to_thread(faq.write_text, DEMO_FAQ_TEXT + NEW_FAQ, encoding="utf-8")
    gw.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "entries=" not in gw.log().split("faq_loaded")[-1] or gw.log().count("faq_loaded") < 2:
        assert time.monotonic() < deadline, gw.log()
        await asyncio.sleep(0.1)
    await say(c, "m1", "支持数字人民币付款吗")
    ans = await c.wait(lambda f: f.get("from") == "bot")
    assert ans.get("faq") == "e_cny"
    started = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    assert await c.wait_closed(10) == 1012
    assert await a.wait_closed(10) == 1012
    rc = await asyncio.to_thread(gw.proc.wait, 15)
    assert rc == 0 and time.monotonic() - started < 15
    assert c.of(is_("welcome"))


async def test_a_queue_nobody_can_serve_shows_on_readyz_and_in_metrics(gateway_app) -> None:
    import aiohttp

    from tests.e2e import customer, say
    from tests.support import is_

    app = await gateway_app({"routing": {"channel_skills": {"app": "nobody-skill"}, "max_queue_s": 0}})
    c, _ = await customer(app.ws_url, "u-stranded", channel="app")
    await say(c, "m1", "转人工")
    await c.wait(is_("queued"))
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{app.http_url}/readyz") as r:
            ready = await r.json()
        async with s.get(f"{app.http_url}/metrics") as r:
            text = await r.text()
    assert r.status == 200 and ready["ready"] is True and ready["unserved_queues"] == {"nobody-skill": 1}
    assert 'gateway_unserved_queue_length{skill="nobody-skill"} 1.0' in text
    assert 'gateway_queue_length{skill="nobody-skill"} 1.0' in text
