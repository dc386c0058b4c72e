"""End to end over real websockets: a customer's feedback on bot answers, what agents and the admin API
see of it, and the gaps report (``GET /api/faq/gaps`` and ``gateway faq gaps`` against the running server).

``tests/test_redis_e2e.py`` runs these again with the gateway on Redis (there the CLI also reads Redis
directly).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import aiohttp

from tests.e2e import agent, agents_cfg, barrier, bus_barrier, customer, say
from tests.support import ROOT, is_

ADMIN = "demo-admin"  # configs/gateway.toml
ALL_SKILLS = agents_cfg(("a1", ["presale", "aftersale", "logistics"], 5))


def bot_reply(seq: int) -> Any:
    return lambda f: f.get("type") == "message" and f.get("from") in ("bot", "system") and f.get("in_reply_to") == seq


async def feedback(c: Any, fid: str, seq: Any, helpful: Any) -> dict[str, Any]:
    await c.send({"type": "feedback", "id": fid, "seq": seq, "helpful": helpful})
    return await c.wait(lambda f: f.get("id") == fid and f.get("type") in ("ack", "error"), what=f"reply to {fid}")


async def api(app: Any, path: str, token: str | None = ADMIN) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(app.http_url + path, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def cli(*args: str) -> tuple[int, str, str]:
    """``gateway faq gaps`` as its own process (the way an operator runs it)."""
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_ADMIN_TOKEN"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "faq", "gaps", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_feedback_is_acked_validated_and_kept_on_the_bot_entry(gateway_app) -> None:
    app = await gateway_app({"limits": {"customer_messages": 50}})  # every frame below counts, refused or not
    c, w = await customer(app.ws_url, "u-fb")
    conv = w["conversation"]
    q = await say(c, "m1", "什么时候发货")
    answer = await c.wait(bot_reply(q["seq"]), what="the answer")
    assert answer["from"] == "bot" and answer["faq"] == "ship_time" and answer["seq"] == q["seq"] + 1

    ack = await feedback(c, "f1", answer["seq"], False)
    assert ack["type"] == "ack" and set(ack) == {"type", "id", "ts"}  # like rate: no seq, nothing logged
    stored = await app.ctx.store.get_conversation(conv)
    assert stored is not None and stored.feedback == {answer["seq"]: False}
    assert (await feedback(c, "f2", answer["seq"], True))["type"] == "ack"
    stored = await app.ctx.store.get_conversation(conv)
    assert stored is not None and stored.feedback == {answer["seq"]: True}  # the second replaces the first

    # refused, each with its frame id, nothing stored
    for fid, seq, helpful, code in (
        ("b1", "2", False, "bad_frame"), ("b2", 0, False, "bad_frame"), ("b3", True, False, "bad_frame"),
        ("b4", 2.0, False, "bad_frame"), ("b5", answer["seq"], "no", "bad_frame"), ("b6", answer["seq"], None, "bad_frame"),
        ("b7", q["seq"], False, "not_found"),  # the customer's own message
        ("b8", 999, False, "not_found"),  # no such entry
    ):
        got = await feedback(c, fid, seq, helpful)
        assert (got["type"], got.get("code")) == ("error", code), (fid, got)
    await c.send({"type": "feedback", "seq": answer["seq"]})  # no id: still refused
    err = await c.wait(lambda f: f.get("type") == "error" and "id" not in f and f.get("code") == "bad_frame")
    assert "helpful" in err["message"]
    stored = await app.ctx.store.get_conversation(conv)
    assert stored is not None and stored.feedback == {answer["seq"]: True}
    assert [e["seq"] for e in await app.ctx.store.read_log(conv)] == [1, 2], "feedback logs nothing"
    # the customer is not sent the agents' feedback ring
    await bus_barrier(app, conv, c)
    assert not c.of(is_("feedback"))


async def test_feedback_counts_against_the_customer_rate_limit(gateway_app) -> None:
    app = await gateway_app({"limits": {"customer_messages": 2, "customer_window_s": 600}})
    c, w = await customer(app.ws_url, "u-limit")
    q = await say(c, "m1", "什么时候发货")
    answer = await c.wait(bot_reply(q["seq"]))
    assert (await feedback(c, "f1", answer["seq"], False))["type"] == "ack"
    over = await feedback(c, "f2", answer["seq"], True)
    assert (over["type"], over["code"]) == ("error", "rate_limited")
    stored = await app.ctx.store.get_conversation(w["conversation"])
    assert stored is not None and stored.feedback == {answer["seq"]: False}


async def test_agents_see_helpful_on_the_entry_and_live(gateway_app) -> None:
    app = await gateway_app({"agents": ALL_SKILLS})
    c, w = await customer(app.ws_url, "u-agent")
    conv = w["conversation"]
    q = await say(c, "m1", "什么时候发货")
    answer = await c.wait(bot_reply(q["seq"]))
    await feedback(c, "f1", answer["seq"], False)
    await say(c, "m2", "转人工")
    x, welcome = await agent(app.ws_url, "a1", "tok-a1")
    # pulled at sign-in: listed in the welcome, or (had the pull raced it) in an ``assigned`` frame
    held = [v for v in welcome["conversations"] if v["id"] == conv] or [
        (await x.wait(lambda f: f.get("type") == "assigned" and f["conversation"]["id"] == conv))["conversation"]]
    messages = held[0]["messages"]
    bot_entry = next(m for m in messages if m["seq"] == answer["seq"])
    assert bot_entry["helpful"] is False and bot_entry["faq"] == "ship_time"
    assert all("helpful" not in m for m in messages if m["seq"] != answer["seq"])
    # a later verdict reaches the holding agent at once
    await feedback(c, "f2", answer["seq"], True)
    live = await x.wait(is_("feedback"))
    assert live == {"type": "feedback", "conversation": conv, "entry_seq": answer["seq"], "helpful": True}
    # the admin API shows it on the entry, and the verdicts by seq
    status, body = await api(app, f"/api/conversations/{conv}")
    assert status == 200 and body["feedback"] == {str(answer["seq"]): True}
    assert [m.get("helpful") for m in body["messages"] if m["seq"] == answer["seq"]] == [True]


async def test_gaps_api_and_cli_against_the_running_gateway(gateway_app, tmp_path) -> None:
    app = await gateway_app()
    # one customer: a suggestion, an answer judged unhelpful, then a question the FAQ has nothing for
    c, w = await customer(app.ws_url, "u-gaps")
    suggested = await say(c, "m1", "快递")
    reply = await c.wait(bot_reply(suggested["seq"]))
    assert reply.get("suggestions") and not reply.get("faq")
    asked = await say(c, "m2", "什么时候发货")
    answer = await c.wait(bot_reply(asked["seq"]))
    await feedback(c, "f1", answer["seq"], False)
    handed = await say(c, "m3", "你们有实体店吗")
    notice = await c.wait(bot_reply(handed["seq"]))
    assert notice["from"] == "system"
    # another asks for a person outright: not a gap of the FAQ; a third is answered and says nothing
    d, _ = await customer(app.ws_url, "u-person")
    await say(d, "m1", "转人工")
    e, _ = await customer(app.ws_url, "u-happy")
    ok = await say(e, "m1", "什么时候发货")
    await e.wait(bot_reply(ok["seq"]))
    for client in (c, d, e):
        await barrier(client)  # every turn of theirs is stored by now

    assert (await api(app, "/api/faq/gaps", token=None))[0] == 401
    assert (await api(app, "/api/faq/gaps", token="wrong"))[0] == 401
    assert (await api(app, "/api/faq/gaps?since_days=0"))[0] == 400
    assert (await api(app, "/api/faq/gaps?since_days=x"))[0] == 400
    status, report = await api(app, "/api/faq/gaps?since_days=1")
    assert status == 200, report
    assert report["kinds"] == {"handoff": 1, "suggested": 1, "unhelpful": 1}
    assert report["items"] == 3 and report["truncated"] is None and report["conversations"] >= 3
    examples = {ex: cl for cl in report["clusters"] for ex in cl["examples"]}
    assert set(examples) == {"快递", "什么时候发货", "你们有实体店吗"}
    assert examples["你们有实体店吗"]["kinds"]["handoff"] == 1
    assert examples["你们有实体店吗"]["conversations"] == [w["conversation"]]
    unhelpful = examples["什么时候发货"]
    assert unhelpful["answered_by"] == {"ship_time": 1} and unhelpful["closest"]["id"] == "ship_time"
    assert unhelpful["suggestion"] == "review_answer"
    assert examples["快递"]["suggestion"] == "add_to_entry" and examples["快递"]["closest"]["score"] > 0

    # the CLI asks the running gateway (the memory store lives in its process)
    code, out, err = await cli("--url", app.http_url, "--token", ADMIN, "--since", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["clusters"] == report["clusters"]
    code, table, err = await cli("--url", app.http_url, "--token", ADMIN, "--since", "1")
    assert code == 0, err
    assert "你们有实体店吗" in table and "review_answer" in table and "ship_time" in table
    code, _, err = await cli("--url", app.http_url, "--token", "wrong")
    assert code != 0 and "401" in err
    if app.config.store_url.startswith("redis"):
        # on Redis it may read the store directly, with the config's FAQ
        code, out, err = await cli("--config", str(app.config_path), "--store", app.config.store_url, "--since", "1",
                                   "--json")
        assert code == 0, err
        direct = json.loads(out)
        assert direct["kinds"] == report["kinds"] and direct["clusters"] == report["clusters"]
    else:
        code, _, err = await cli("--config", str(app.config_path))
        assert code == 2 and "--url" in err
