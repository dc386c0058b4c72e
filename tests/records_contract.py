"""The archive contract: one suite, run over every backend (``test_records_sqlite``, ``test_records_postgres``).

A backend's test module subclasses ``ArchiveContract`` and gives an ``archive`` fixture: a started,
empty archive. Every async test runs under blockbuster, so a backend that touches its database on
the event loop fails here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.records import rows
from gateway.records.archive import Archive
from gateway.records.model import Record, SearchFilters
from gateway.records.query import BadParameter, decode_cursor

T0 = 1_764_000_000.0  # 2025-11-24


def msg(who: str, text: str, seq: int = 1, **kw: Any) -> dict[str, Any]:
    return {"type": "message", "seq": seq, "ts": T0 + seq, "from": who, "text": text, **kw}


def rec(rid: str, at: float = T0, **kw: Any) -> Record:
    kw.setdefault("customer_id", "u-1")
    kw.setdefault("messages", [msg("customer", "你好，在吗", 1)])
    kw.setdefault("closed_at", at + 300)
    return Record(id=rid, created_at=at, **kw)


async def ids(archive: Archive, limit: int = 50, cursor: str = "", **filters: Any) -> list[str]:
    found, _ = await archive.search(SearchFilters(**filters), limit, cursor)
    return [r.id for r in found]


async def put_all(archive: Archive, *records: Record) -> None:
    for r in records:
        await archive.put(r)


class ArchiveContract:
    # ------------------------------------------------------------ lifecycle and writes

    async def test_start_is_idempotent_and_records_the_schema_version(self, archive: Archive) -> None:
        await archive.start()
        await archive.start()
        version = await archive.schema_version()  # type: ignore[attr-defined]
        assert version >= 1

    async def test_put_then_get_returns_the_whole_record(self, archive: Archive) -> None:
        r = rec("c-1", customer_name="张三", channel="douyin", shop="s1", skill="aftersale", priority="high",
                agents=("a1", "a2"), handoff_at=T0 + 10, first_response_s=4.5, resolution="resolved",
                category="logistics", rating=5, comment="很好", orders=("O-1", "O-2"), bot_only=False,
                response_times_s=(4.5, 7.0), first_customer_text="你好，在吗",
                messages=[msg("customer", "你好，在吗", 1), msg("agent", "您好", 2, agent={"id": "a1", "name": "小王"})])
        await archive.put(r)
        back = await archive.get("c-1")
        assert back == r
        assert await archive.get("c-missing") is None

    async def test_put_keeps_the_highest_version(self, archive: Archive) -> None:
        await archive.put(rec("c-1", version=1, agents=("a1",), orders=("O-1",), rating=0))
        await archive.put(rec("c-1", version=1, agents=("a1",), orders=("O-1",), rating=0))  # redelivered
        await archive.put(rec("c-1", version=3, agents=("a2",), orders=("O-2",), rating=4))
        await archive.put(rec("c-1", version=2, agents=("a3",), orders=("O-3",), rating=1))  # late, older
        back = await archive.get("c-1")
        assert back is not None and (back.version, back.agents, back.rating) == (3, ("a2",), 4)
        assert await ids(archive) == ["c-1"]
        # the side indexes follow the kept version only
        assert await ids(archive, agent="a2") == ["c-1"]
        assert await ids(archive, agent="a1") == [] and await ids(archive, agent="a3") == []
        assert await ids(archive, order="O-2") == ["c-1"] and await ids(archive, order="O-1") == []

    async def test_concurrent_puts_all_land(self, archive: Archive) -> None:
        await asyncio.gather(*(archive.put(rec(f"c-{i:03d}", T0 + i)) for i in range(40)))
        assert len(await ids(archive, limit=100)) == 40

    # ------------------------------------------------------------ search

    async def test_search_is_newest_first_and_every_filter_narrows_it(self, archive: Archive) -> None:
        await put_all(
            archive,
            rec("c-1", T0 + 1, customer_id="u-1", channel="web", skill="presale", agents=("a1",),
                resolution="resolved", category="usage", rating=5, orders=("O-1",)),
            rec("c-2", T0 + 2, customer_id="u-2", channel="douyin", skill="aftersale", agents=("a1", "a2"),
                resolution="unresolved", category="quality", rating=2, orders=("O-2", "O-3")),
            rec("c-3", T0 + 3, customer_id="u-1", channel="web", skill="aftersale", agents=("a2",),
                resolution="pending", category="logistics", rating=0),
            rec("c-4", T0 + 4, customer_id="u-3", channel="pdd", bot_only=True),
        )
        assert await ids(archive) == ["c-4", "c-3", "c-2", "c-1"]
        assert await ids(archive, customer="u-1") == ["c-3", "c-1"]
        assert await ids(archive, agent="a1") == ["c-2", "c-1"]  # any of its agents
        assert await ids(archive, agent="a2") == ["c-3", "c-2"]
        assert await ids(archive, order="O-3") == ["c-2"]  # any of its orders
        assert await ids(archive, channel="web") == ["c-3", "c-1"]
        assert await ids(archive, skill="aftersale") == ["c-3", "c-2"]
        assert await ids(archive, category="quality") == ["c-2"]
        assert await ids(archive, resolution="pending") == ["c-3"]
        assert await ids(archive, rating_max=2) == ["c-2"]  # rated ones only: c-3 and c-4 are unrated
        assert await ids(archive, rating_max=5) == ["c-2", "c-1"]
        assert await ids(archive, from_ts=T0 + 2) == ["c-4", "c-3", "c-2"]
        assert await ids(archive, to_ts=T0 + 2) == ["c-1"]  # to is exclusive
        assert await ids(archive, from_ts=T0 + 2, to_ts=T0 + 4, customer="u-1") == ["c-3"]
        assert await ids(archive, agent="a9") == [] and await ids(archive, order="O-9") == []
        found, _ = await archive.search(SearchFilters(customer="u-2"))
        assert found[0].item()["customer"] == {"id": "u-2", "name": ""}

    async def test_cursor_pages_without_repeats_or_gaps(self, archive: Archive) -> None:
        # ties on created_at are broken by id, so no record is lost between pages
        await put_all(archive, *(rec(f"c-{i}", T0 + i // 2) for i in range(7)))
        seen: list[str] = []
        cursor = ""
        pages = 0
        while True:
            found, cursor = await archive.search(SearchFilters(), 3, cursor)
            seen += [r.id for r in found]
            pages += 1
            if not cursor:
                break
            decode_cursor(cursor)
        assert pages == 3
        assert seen == ["c-6", "c-5", "c-4", "c-3", "c-2", "c-1", "c-0"]
        found, cursor = await archive.search(SearchFilters(), 7)
        assert len(found) == 7 and cursor == ""  # exactly a page: no next
        with pytest.raises(BadParameter):
            await archive.search(SearchFilters(), 3, "not-a-cursor")

    async def test_cursor_keeps_the_filters_pages(self, archive: Archive) -> None:
        await put_all(archive, *(rec(f"c-{i}", T0 + i, agents=("a1",) if i % 2 else ("a2",)) for i in range(8)))
        first, cursor = await archive.search(SearchFilters(agent="a1"), 2)
        second, cursor2 = await archive.search(SearchFilters(agent="a1"), 2, cursor)
        assert [r.id for r in first + second] == ["c-7", "c-5", "c-3", "c-1"] and cursor2 == ""

    async def test_q_matches_chinese_words_of_the_messages(self, archive: Archive) -> None:
        await put_all(
            archive,
            rec("c-1", T0 + 1, messages=[msg("customer", "我想申请退款，快递一直没到", 1),
                                         msg("agent", "好的，已为您登记退款", 2)]),
            rec("c-2", T0 + 2, messages=[msg("customer", "这个iPhone手机壳什么时候发货？", 1),
                                         msg("bot", "现货商品付款后48小时内发货。", 2)]),
            rec("c-3", T0 + 3, messages=[msg("customer", "质量太差了，要求退货", 1),
                                         msg("system", "正在为您转接人工客服，请稍候～", 2)]),
        )
        assert await ids(archive, q="退款") == ["c-1"]
        assert await ids(archive, q="我要退款") == ["c-1"]  # stop words (我, 要) are not required
        assert await ids(archive, q="快递 退款") == ["c-1"]  # every word must occur
        assert await ids(archive, q="快递 发货") == []
        assert await ids(archive, q="发货") == ["c-2"]  # bot answers are searched
        assert await ids(archive, q="IPHONE") == ["c-2"]  # latin letters in any case
        assert await ids(archive, q="登记") == ["c-1"]  # agent messages are searched
        assert await ids(archive, q="转接") == []  # system notices are not
        assert await ids(archive, q="款") == []  # words, not characters
        assert await ids(archive, q="质量") == ["c-3"]
        assert await ids(archive, q="退货", customer="u-1") == ["c-3"]
        assert await ids(archive, q="退货", customer="u-2") == []
        assert await ids(archive, q="，。！") == []  # no word at all: nothing matches
        # no query syntax leaks through: quotes and stars are dropped, OR and NOT are words like any other
        assert await ids(archive, q='"退款"* -快递') == ["c-1"]
        assert await ids(archive, q="退款 OR 质量") == []

    async def test_q_follows_the_kept_version(self, archive: Archive) -> None:
        await archive.put(rec("c-1", version=1, messages=[msg("customer", "我想退款", 1)]))
        await archive.put(rec("c-1", version=2, messages=[msg("customer", "我想退款", 1), msg("agent", "已经发货", 2)]))
        assert await ids(archive, q="发货") == ["c-1"]
        await archive.put(rec("c-1", version=1, messages=[msg("customer", "换货", 1)]))
        assert await ids(archive, q="换货") == []

    # ------------------------------------------------------------ history and export

    async def test_history_is_the_customers_newest_first_without_the_current_one(self, archive: Archive) -> None:
        await put_all(
            archive,
            rec("c-1", T0 + 1, customer_id="u-1", resolution="resolved", category="usage", rating=5,
                first_customer_text="怎么用"),
            rec("c-2", T0 + 2, customer_id="u-1", resolution="unresolved", category="quality", rating=1,
                first_customer_text="坏了"),
            rec("c-3", T0 + 3, customer_id="u-1"),
            rec("c-9", T0 + 9, customer_id="u-2"),
        )
        got = await archive.history("u-1", 5, before="c-3")
        assert [h.id for h in got] == ["c-2", "c-1"]
        assert got[0].to_dict() == {"id": "c-2", "closed_at": T0 + 302, "resolution": "unresolved",
                                    "category": "quality", "rating": 1, "first_message": "坏了"}
        assert [h.id for h in await archive.history("u-1", 2)] == ["c-3", "c-2"]
        assert await archive.history("u-none") == []

    async def test_between_is_oldest_first_and_pages(self, archive: Archive, monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
        monkeypatch.setattr(rows, "PAGE", 3)
        await put_all(archive, *(rec(f"c-{i}", T0 + i // 2) for i in range(10)))
        got = [r async for r in archive.between(T0 + 1, T0 + 4)]
        assert [r.id for r in got] == ["c-2", "c-3", "c-4", "c-5", "c-6", "c-7"]
        assert all(r.messages for r in got)  # whole records: the export writes the logs
        assert [r.id async for r in archive.between(T0 + 100, T0 + 200)] == []

    # ------------------------------------------------------------ reviews

    async def test_low_ratings_and_unresolved_cases_are_open_reviews(self, archive: Archive) -> None:
        await put_all(
            archive,
            rec("c-1", T0 + 1, rating=2, resolution="resolved"),
            rec("c-2", T0 + 2, rating=0, resolution="unresolved"),
            rec("c-3", T0 + 3, rating=3, resolution="resolved"),
            rec("c-4", T0 + 4, rating=0, resolution="pending"),
            rec("c-5", T0 + 5, rating=1, resolution="unresolved"),
        )
        open_ = await archive.reviews()
        assert [r["id"] for r in open_] == ["c-5", "c-2", "c-1"]
        assert open_[0]["review"] == {"state": "open", "note": "", "by": "", "at": None,
                                      "reasons": ["low_rating", "unresolved"]}
        assert await archive.mark_reviewed("c-2", "已回电，客户接受补发", "sup1") is True
        assert [r["id"] for r in await archive.reviews()] == ["c-5", "c-1"]
        done = await archive.reviews("reviewed")
        assert [r["id"] for r in done] == ["c-2"]
        review = done[0]["review"]
        assert isinstance(review, dict)
        assert (review["state"], review["note"], review["by"]) == ("reviewed", "已回电，客户接受补发", "sup1")
        assert isinstance(review["at"], float) and review["at"] > T0
        assert [r["id"] for r in await archive.reviews("all")] == ["c-5", "c-2", "c-1"]
        assert [r["id"] for r in await archive.reviews("open", limit=1)] == ["c-5"]
        assert await archive.mark_reviewed("c-3", "x", "sup1") is False  # not a case
        assert await archive.mark_reviewed("c-missing", "x", "sup1") is False
        with pytest.raises(ValueError):
            await archive.reviews("closed")

    async def test_a_case_becomes_a_review_when_a_later_version_is_rated_low(self, archive: Archive) -> None:
        await archive.put(rec("c-1", version=1, resolution="resolved"))
        assert await archive.reviews() == []
        await archive.put(rec("c-1", version=2, resolution="resolved", rating=1, comment="太慢"))
        assert [(r["id"], r["comment"]) for r in await archive.reviews()] == [("c-1", "太慢")]
