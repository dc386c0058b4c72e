"""End to end: a real gateway with its SQLite archive, records put through ``ctx.archive``, then
``GET /api/conversations`` (filters, cursor, q, parameter errors) and ``GET /api/conversations/{id}``
(live, archived, unknown), with the admin's and a supervisor's tokens (a plain agent's is refused).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from gateway.records.errors import ArchiveUnavailable
from gateway.records.model import Record
from tests.e2e import customer, say
from tests.records_contract import T0, msg, rec

ADMIN = {"Authorization": "Bearer demo-admin"}
SUPERVISOR = {"Authorization": "Bearer tok-s1", "X-Agent-Id": "s1"}
AGENT = {"Authorization": "Bearer tok-a1", "X-Agent-Id": "a1"}
AGENTS = [
    {"id": "a1", "name": "小王", "skills": ["presale", "aftersale"], "capacity": 5, "token": "tok-a1"},
    {"id": "s1", "name": "组长", "skills": ["aftersale"], "capacity": 5, "token": "tok-s1", "role": "supervisor"},
]
ITEM_KEYS = {"id", "customer", "channel", "shop", "skill", "priority", "agents", "created_at", "handoff_at",
             "first_response_s", "closed_at", "resolution", "category", "rating", "comment", "orders", "bot_only",
             "reopened_from"}

RECORDS = [
    rec("c-1", T0 + 1, customer_id="u-1", customer_name="张三", channel="web", skill="presale", agents=("a1",),
        resolution="resolved", category="usage", rating=5, orders=("O-100",), bot_only=False,
        messages=[msg("customer", "这款手机壳什么时候发货", 1), msg("agent", "今天下午发货", 2)]),
    rec("c-2", T0 + 2, customer_id="u-2", customer_name="李四", channel="douyin", shop="dy-1", skill="aftersale",
        agents=("a1", "s1"), resolution="unresolved", category="quality", rating=1, comment="太慢",
        orders=("O-200", "O-201"), bot_only=False, reopened_from="c-1",
        messages=[msg("customer", "收到的商品有质量问题，我要退款", 1), msg("agent", "已为您登记退款", 2)]),
    rec("c-3", T0 + 3, customer_id="u-1", customer_name="张三", channel="web", skill="logistics",
        messages=[msg("customer", "快递到哪了", 1), msg("bot", "您可以在订单详情查看物流", 2)]),
]


@pytest.fixture
async def app(gateway_app: Any) -> AsyncIterator[Any]:
    running = await gateway_app({"agents": AGENTS})
    for r in RECORDS:
        await running.ctx.archive.put(r)
    yield running


async def get(app: Any, path: str, headers: dict[str, str] | None = None, **params: Any) -> tuple[int, Any]:
    url = app.http_url + path + ("?" + urlencode(params) if params else "")
    async with aiohttp.ClientSession() as http, http.get(url, headers=ADMIN if headers is None else headers) as r:
        return r.status, await r.json(content_type=None)


async def ids(app: Any, **params: Any) -> list[str]:
    status, body = await get(app, "/api/conversations", **params)
    assert status == 200, body
    return [i["id"] for i in body["items"]]


async def test_search_items_newest_first_with_every_field(app: Any) -> None:
    status, body = await get(app, "/api/conversations")
    assert status == 200
    assert [i["id"] for i in body["items"]] == ["c-3", "c-2", "c-1"] and body["next"] is None
    item = body["items"][1]
    assert set(item) == ITEM_KEYS
    assert item == RECORDS[1].item()
    assert item["customer"] == {"id": "u-2", "name": "李四"} and item["rating"] == 1
    assert body["items"][0]["rating"] is None and body["items"][0]["reopened_from"] is None


async def test_filters_cursor_and_q(app: Any) -> None:
    assert await ids(app, customer="u-1") == ["c-3", "c-1"]
    assert await ids(app, agent="s1") == ["c-2"]
    assert await ids(app, order="O-201") == ["c-2"]
    assert await ids(app, channel="douyin") == ["c-2"]
    assert await ids(app, skill="presale") == ["c-1"]
    assert await ids(app, category="usage") == ["c-1"]
    assert await ids(app, resolution="unresolved") == ["c-2"]
    assert await ids(app, rating_max=2) == ["c-2"]
    assert await ids(app, **{"from": str(T0 + 2)}) == ["c-3", "c-2"]
    assert await ids(app, to=str(T0 + 2)) == ["c-1"]
    # bare dates are days in China (T0 is 2025-11-25 00:00 there); to is not included
    assert await ids(app, **{"from": "2025-11-25", "to": "2025-11-26"}) == ["c-3", "c-2", "c-1"]
    assert await ids(app, to="2025-11-25") == []
    assert await ids(app, **{"from": "2025-11-24", "to": "2025-11-25", "utc_offset_h": "0"}) == ["c-3", "c-2", "c-1"]
    assert await ids(app, **{"from": "2025-11-25T00:00:02+08:00"}) == ["c-3", "c-2"]
    assert await ids(app, q="退款") == ["c-2"]
    assert await ids(app, q="发货") == ["c-1"]
    assert await ids(app, q="物流", customer="u-1") == ["c-3"]
    status, page1 = await get(app, "/api/conversations", limit=2)
    assert [i["id"] for i in page1["items"]] == ["c-3", "c-2"] and page1["next"]
    status, page2 = await get(app, "/api/conversations", limit=2, cursor=page1["next"])
    assert [i["id"] for i in page2["items"]] == ["c-1"] and page2["next"] is None


@pytest.mark.parametrize(("params", "parameter"), [
    ({"rating_max": "0"}, "rating_max"),
    ({"rating_max": "x"}, "rating_max"),
    ({"limit": "0"}, "limit"),
    ({"limit": "201"}, "limit"),
    ({"from": "yesterday"}, "from"),
    ({"to": "2025-13-01"}, "to"),
    ({"from": "2025-11-24", "to": "2025-11-01"}, "to"),
    ({"resolution": "done"}, "resolution"),
    ({"utc_offset_h": "15"}, "utc_offset_h"),
    ({"utc_offset_h": "nan"}, "utc_offset_h"),
    ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
    ({"q": "，。！？"}, "q"),
    ({"q": "x" * 201}, "q"),
    ({"customer": "a\x00b"}, "customer"),
    ({"rating": "2"}, "rating"),
])
async def test_bad_parameters_are_400_naming_the_parameter(app: Any, params: dict[str, str], parameter: str) -> None:
    status, body = await get(app, "/api/conversations", **params)
    assert status == 400, body
    assert body["error"] == "bad_request" and body["parameter"] == parameter and body["message"]


async def test_a_repeated_parameter_is_400(app: Any) -> None:
    async with aiohttp.ClientSession() as http, http.get(
            app.http_url + "/api/conversations?customer=u-1&customer=u-2", headers=ADMIN) as r:
        assert r.status == 400 and (await r.json())["parameter"] == "customer"


async def test_who_may_read_records(app: Any) -> None:
    for path in ("/api/conversations", "/api/conversations/c-1"):
        assert (await get(app, path, headers={}))[0] == 401
        assert (await get(app, path, headers={"Authorization": "Bearer nope"}))[0] == 401
        assert (await get(app, path, headers={"Authorization": "Bearer tok-a1", "X-Agent-Id": "s1"}))[0] == 401
        status, body = await get(app, path, headers=AGENT)
        assert status == 403 and body["error"] == "forbidden"
        assert (await get(app, path, headers=SUPERVISOR))[0] == 200
        assert (await get(app, path, headers=ADMIN))[0] == 200


async def test_one_conversation_live_archived_or_unknown(app: Any) -> None:
    status, body = await get(app, "/api/conversations/c-2")
    assert status == 200
    assert body["archived"] is True and body["id"] == "c-2" and body["customer"]["name"] == "李四"
    assert [m["text"] for m in body["messages"]] == ["收到的商品有质量问题，我要退款", "已为您登记退款"]
    status, body = await get(app, "/api/conversations/c-unknown")
    assert (status, body["error"]) == (404, "not_found")
    # a live conversation comes from the store, as before
    c, welcome = await customer(app.ws_url, "u-live")
    await say(c, "m1", "你好")
    status, body = await get(app, f"/api/conversations/{welcome['conversation']}", headers=SUPERVISOR)
    assert status == 200 and "archived" not in body and body["customer_id"] == "u-live"
    assert body["messages"][0]["text"] == "你好"
    await c.close()


class _DownArchive:
    async def search(self, *a: Any, **kw: Any) -> tuple[list[Record], str]:
        raise ArchiveUnavailable("database down")

    async def get(self, *a: Any) -> Record | None:
        raise ArchiveUnavailable("database down")


async def test_an_archive_that_is_down_is_503(app: Any) -> None:
    real, app.ctx.archive = app.ctx.archive, _DownArchive()
    try:
        for path in ("/api/conversations", "/api/conversations/c-1"):
            status, body = await get(app, path)
            assert (status, body["error"]) == (503, "unavailable")
        assert (await get(app, "/api/conversations", rating_max="9"))[0] == 400  # parameters still checked first
    finally:
        app.ctx.archive = real
