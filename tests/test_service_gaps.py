"""gateway/service/gaps.py: which messages of a log are gaps, the bounded walk over a store, the report."""

from __future__ import annotations

import time
from typing import Any

from gateway.bot.gaps import GapItem, GapKind
from gateway.model import Conversation, ConvState
from gateway.service.botholder import BotHolder
from gateway.service.gaps import GapLimits, gaps_report, gather, items_of
from gateway.store import MemoryStore
from tests.support import DEMO_FAQ

H, S, U = GapKind.HANDOFF, GapKind.SUGGESTED, GapKind.UNHELPFUL


def entry(seq: int, sender: str, text: str, ts: float = 100.0, **kw: Any) -> dict[str, Any]:
    return {"type": "message", "seq": seq, "ts": ts, "from": sender, "text": text, **kw}


def conv(reasons: list[str] | None = None, feedback: dict[int, bool] | None = None) -> Conversation:
    meta: dict[str, Any] = {"reasons": reasons} if reasons is not None else {}
    return Conversation("c1", "u1", meta=meta, feedback=feedback or {})


SUGGESTIONS = [{"faq": "ship_time", "question": "什么时候发货"}]


def test_items_of_a_log_suggested_unhelpful_and_handed_off() -> None:
    log = [
        entry(1, "system", "您好"),
        entry(2, "customer", "快递"),
        entry(3, "customer", "几号发"),
        # the answers came in the other order (two sockets): in_reply_to pairs them right
        entry(4, "bot", "您是不是想问：", in_reply_to=3, suggestions=SUGGESTIONS),
        entry(5, "bot", "48小时内发货", in_reply_to=2, faq="ship_time"),
        entry(6, "customer", "你们有实体店吗"),
        entry(7, "system", "正在为您转接人工客服", in_reply_to=6),
        {"type": "assigned", "seq": 8, "ts": 100.0, "agent": {"id": "a1", "name": "小王"}},
        entry(9, "agent", "您好"),
    ]
    got = items_of(conv(["no_match", "skill:presale"], {5: False}), log)
    assert got == [
        GapItem("几号发", S, "c1", 3, 100.0),
        GapItem("快递", U, "c1", 2, 100.0, "ship_time"),
        GapItem("你们有实体店吗", H, "c1", 6, 100.0),
    ]
    # helpful (or no verdict) is no gap
    assert [i.kind for i in items_of(conv(["no_match"], {5: True}), log)] == [S, H]


def test_items_of_leaves_out_what_is_no_gap_of_the_faq() -> None:
    log = [entry(1, "customer", "转人工"), entry(2, "system", "正在为您转接", in_reply_to=1)]
    for reasons in (["handoff:转人工", "no_match"], ["urgent:投诉"], ["no_question", "order:2406"],
                    ["channel without bot"], ["bot error"], None):
        assert items_of(conv(reasons), log) == [], reasons
    # a notice without in_reply_to (an after-sales event's hand-off) names no message
    assert items_of(conv(["no_match"]), [entry(1, "customer", "在吗"), entry(2, "system", "正在为您转接")]) == []
    # small talk and answers nobody judged
    talk = [entry(1, "customer", "谢谢"), entry(2, "bot", "不客气～", in_reply_to=1),
            entry(3, "customer", "什么时候发货"), entry(4, "bot", "48小时内", in_reply_to=3, faq="ship_time")]
    assert items_of(conv(), talk) == []


def test_items_of_keeps_only_turns_since_and_pairs_old_entries_by_position() -> None:
    log = [entry(1, "customer", "快递", ts=10.0), entry(2, "bot", "您是不是想问：", ts=11.0, suggestions=SUGGESTIONS),
           entry(3, "customer", "物流", ts=50.0), entry(4, "bot", "您是不是想问：", ts=51.0, suggestions=SUGGESTIONS)]
    # entries stored before in_reply_to existed reply to the customer message before them
    assert [(i.text, i.seq) for i in items_of(conv(), log)] == [("快递", 1), ("物流", 3)]
    assert [(i.text, i.seq) for i in items_of(conv(), log, since=40.0)] == [("物流", 3)]


async def _store_with(n: int, *, suggested_each: int = 1) -> MemoryStore:
    s = MemoryStore("t")
    await s.start(lambda t, p: None)
    for i in range(n):
        cid = f"c{i:03d}"
        await s.create_conversation(Conversation(cid, f"u{i}", created_at=1000.0))
        for k in range(suggested_each):
            q = await s.append(cid, {"type": "message", "from": "customer", "text": f"问题{i}-{k}"})
            await s.append(cid, {"type": "message", "from": "bot", "text": "您是不是想问：",
                                 "suggestions": SUGGESTIONS, "in_reply_to": q.entry["seq"]})
    return s


async def test_gather_walks_the_store_within_its_bounds() -> None:
    s = await _store_with(25, suggested_each=2)
    whole = await gather(s, 0.0, GapLimits(page=7))
    assert (whole.conversations, len(whole.items), whole.truncated) == (25, 50, "")
    assert {i.conversation for i in whole.items} == {f"c{i:03d}" for i in range(25)}
    few = await gather(s, 0.0, GapLimits(page=7, max_conversations=10))
    assert (few.conversations, len(few.items), few.truncated) == (10, 20, "max_conversations")
    capped = await gather(s, 0.0, GapLimits(page=7, max_items=9))
    assert (len(capped.items), capped.truncated) == (9, "max_items")
    short = await gather(s, 0.0, GapLimits(page=7, max_scanned=14))
    assert (short.conversations, short.truncated) == (14, "max_scanned")
    # closed before the window and every turn before it: nothing
    for i in range(25):
        await s.close_conversation(f"c{i:03d}", "resolved")
    later = await gather(s, 1e12, GapLimits(page=7))
    assert (later.conversations, later.items) == (0, [])


async def test_the_report_counts_clusters_and_says_what_it_read() -> None:
    s = MemoryStore("t")
    await s.start(lambda t, p: None)
    holder = BotHolder(str(DEMO_FAQ), {})
    await holder.load()
    texts = ["你们有实体店吗", "有没有实体店呀", "积分能兑换什么礼品", "积分可以兑换礼品吗"]
    for i, text in enumerate(texts):
        cid = f"r{i}"
        await s.create_conversation(Conversation(cid, f"u{i}", created_at=time.time()))
        q = await s.append(cid, {"type": "message", "from": "customer", "text": text})
        a = await s.append(cid, {"type": "message", "from": "bot", "text": "答", "faq": "member_points",
                                 "in_reply_to": q.entry["seq"]})
        await s.feedback(cid, a.entry["seq"], False)
    report = await gaps_report(s, holder, 7)
    assert report["items"] == 4 and report["conversations"] == 4 and report["truncated"] is None
    assert report["kinds"] == {"handoff": 0, "suggested": 0, "unhelpful": 4}
    assert report["total_clusters"] == len(report["clusters"]) == 2
    points = next(c for c in report["clusters"] if "积分可以兑换礼品吗" in c["examples"])
    assert points["answered_by"] == {"member_points": 2} and points["closest"]["id"] == "member_points"
    assert points["suggestion"] == "review_answer"  # its own answer did not help: fix the answer
    assert report["limits"]["max_items"] == GapLimits().max_items
    # ten days on, a one-day window reads the open conversations but finds no turn in it
    empty = await gaps_report(s, holder, 1, now=time.time() + 10 * 86400)
    assert (empty["items"], empty["clusters"]) == (0, [])
    assert empty["conversations"] == 4
    still = await s.get_conversation("r0")  # reading changed nothing
    assert still is not None and still.state is ConvState.BOT and still.feedback == {2: False}
