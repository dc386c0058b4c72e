"""``GET /api/reviews`` and ``POST /api/reviews/{id}`` on a real gateway with its SQLite archive: the
cases rated 1-2 or closed unresolved, open then reviewed with a note, who may call, every parameter
checked, and a case that goes there end to end (an agent closes it unresolved; the archiver files it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.records.errors import ArchiveUnavailable
from gateway.records.model import Record
from tests.e2e import agent, customer, say
from tests.support import is_, until

ADMIN = {"Authorization": "Bearer demo-admin"}
SUPERVISOR = {"Authorization": "Bearer tok-s1", "X-Agent-Id": "s1"}
AGENT = {"Authorization": "Bearer tok-a1", "X-Agent-Id": "a1"}
AGENTS = [
    {"id": "a1", "name": "小王", "skills": ["presale"], "capacity": 5, "token": "tok-a1"},
    {"id": "s1", "name": "组长", "skills": ["aftersale"], "capacity": 5, "token": "tok-s1", "role": "supervisor"},
]
T0 = 1_764_000_000.0


def rec(rid: str, at: float, **kw: Any) -> Record:
    return Record(id=rid, customer_id=f"u-{rid}", created_at=at, closed_at=at + 300, bot_only=False, **kw)


RECORDS = [
    rec("c-low", T0 + 1, rating=1, comment="太慢", resolution="resolved", agents=("a1",)),
    rec("c-unres", T0 + 2, resolution="unresolved", category="quality", agents=("a1",)),
    rec("c-two", T0 + 3, rating=2, resolution="unresolved"),
    rec("c-fine", T0 + 4, rating=5, resolution="resolved"),
    rec("c-three", T0 + 5, rating=3),
]


@pytest.fixture
async def app(gateway_app: Any) -> AsyncIterator[Any]:
    running = await gateway_app({"agents": AGENTS})
    for r in RECORDS:
        await running.ctx.archive.put(r)
    yield running


async def call(app: Any, method: str, path: str, headers: dict[str, str] | None = None,
               body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        kw: dict[str, Any] = {"headers": ADMIN if headers is None else headers}
        if raw is not None:
            kw["data"] = raw
        elif body is not None:
            kw["json"] = body
        async with http.request(method, app.http_url + path, **kw) as r:
            return r.status, await r.json(content_type=None)


async def listed(app: Any, state: str = "open") -> list[str]:
    status, body = await call(app, "GET", f"/api/reviews?state={state}")
    assert status == 200, body
    assert body["state"] == state
    return [i["id"] for i in body["items"]]


async def test_low_ratings_and_unresolved_cases_are_open_until_reviewed(app: Any) -> None:
    assert await listed(app) == ["c-two", "c-unres", "c-low"], "newest first; 3 and 5 stars are not cases"
    status, body = await call(app, "GET", "/api/reviews")  # open by default
    item = next(i for i in body["items"] if i["id"] == "c-two")
    assert item["review"]["state"] == "open" and set(item["review"]["reasons"]) == {"low_rating", "unresolved"}
    assert item["rating"] == 2 and item["resolution"] == "unresolved"
    assert await listed(app, "reviewed") == []

    status, body = await call(app, "POST", "/api/reviews/c-low", SUPERVISOR, {"note": "已回电，补发优惠券"})
    assert status == 200 and body == {"id": "c-low", "state": "reviewed", "note": "已回电，补发优惠券", "by": "s1"}
    assert await listed(app) == ["c-two", "c-unres"]
    status, body = await call(app, "GET", "/api/reviews?state=reviewed")
    assert [(i["id"], i["review"]["state"], i["review"]["note"], i["review"]["by"]) for i in body["items"]] == [
        ("c-low", "reviewed", "已回电，补发优惠券", "s1")]
    assert sorted(await listed(app, "all")) == ["c-low", "c-two", "c-unres"]
    # the admin too, without a note; a case not on the list is 404
    assert (await call(app, "POST", "/api/reviews/c-unres", ADMIN, {}))[0] == 200
    assert (await call(app, "POST", "/api/reviews/c-fine", ADMIN, {"note": "x"}))[0] == 404
    assert (await call(app, "POST", "/api/reviews/c-nope", ADMIN, {"note": "x"}))[0] == 404
    assert await listed(app) == ["c-two"]


async def test_who_may_call_and_what_is_refused(app: Any) -> None:
    assert (await call(app, "GET", "/api/reviews", {}))[0] == 401
    assert (await call(app, "GET", "/api/reviews", AGENT))[0] == 403, "a plain agent's token"
    assert (await call(app, "POST", "/api/reviews/c-low", AGENT, {"note": "x"}))[0] == 403
    assert (await call(app, "GET", "/api/reviews", SUPERVISOR))[0] == 200
    for query, parameter in (("state=done", "state"), ("limit=0", "limit"), ("limit=abc", "limit"),
                             ("limit=501", "limit"), ("sort=x", "sort")):
        status, body = await call(app, "GET", f"/api/reviews?{query}")
        assert status == 400 and body["error"] == "bad_request" and body["parameter"] == parameter, (query, body)
    for payload, parameter in (([1], "body"), ({"note": 5}, "note"), ({"note": "长" * 2001}, "note"),
                               ({"note": "x", "by": "me"}, "by")):
        status, body = await call(app, "POST", "/api/reviews/c-low", ADMIN, payload)
        assert status == 400 and body["parameter"] == parameter, (payload, body)
    status, body = await call(app, "POST", "/api/reviews/c-low", ADMIN, raw=b"{not json")
    assert status == 400 and body["parameter"] == "body"
    assert await listed(app) == ["c-two", "c-unres", "c-low"], "nothing was marked"


async def test_an_archive_that_is_down_is_503(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async def down(*a: Any, **kw: Any) -> Any:
        raise ArchiveUnavailable("database is down")

    monkeypatch.setattr(app.ctx.archive, "reviews", down)
    monkeypatch.setattr(app.ctx.archive, "mark_reviewed", down)
    status, body = await call(app, "GET", "/api/reviews")
    assert status == 503 and body["error"] == "unavailable"
    assert (await call(app, "POST", "/api/reviews/c-low", ADMIN, {"note": "x"}))[0] == 503


async def test_a_case_closed_unresolved_reaches_the_list_end_to_end(app: Any) -> None:
    a1, _ = await agent(app.ws_url, "a1", "tok-a1")
    c, w = await customer(app.ws_url, "u-e2e")
    conv = w["conversation"]
    await say(c, "m1", "转人工")
    await a1.wait(is_("assigned"))
    await a1.send({"type": "close", "id": "k1", "conversation": conv, "resolution": "unresolved",
                   "category": "logistics"})
    await a1.wait(is_("ack", id="k1"))
    ids = await until(lambda: _listed_with(app, conv), what="the case on the review list")
    assert ids[0] == conv  # the newest
    status, body = await call(app, "GET", "/api/reviews")
    item = body["items"][0]
    assert (item["resolution"], item["category"], item["review"]["reasons"]) == ("unresolved", "logistics",
                                                                                 ["unresolved"])


async def _listed_with(app: Any, conv: str) -> list[str] | None:
    ids = await listed(app)
    return ids if conv in ids else None
