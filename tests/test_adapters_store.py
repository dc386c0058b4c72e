"""The Store methods the adapters added (claims, dead letters), on the memory store.

The Redis store must give the same outcomes; these tests are written against the
``Store`` interface so they can run on it too.
"""

from __future__ import annotations

import asyncio

from gateway.store import MemoryStore, Store


def _store() -> Store:
    return MemoryStore("t")


async def test_claim_once_is_first_wins_until_it_expires() -> None:
    s = _store()
    assert await s.claim_once("k", 60) is True
    assert await s.claim_once("k", 60, "other") is False
    assert await s.get_claim("k") == "1"
    assert await s.claim_once("short", 0.05, "v") is True
    assert await s.get_claim("short") == "v"
    await asyncio.sleep(0.08)
    assert await s.get_claim("short") is None
    assert await s.claim_once("short", 60, "w") is True
    assert await s.get_claim("short") == "w"


async def test_release_claim_lets_it_be_claimed_again() -> None:
    s = _store()
    assert await s.claim_once("k", 60)
    await s.release_claim("k")
    await s.release_claim("never-set")
    assert await s.get_claim("k") is None
    assert await s.claim_once("k", 60, "again")
    assert await s.get_claim("k") == "again"


async def test_concurrent_claims_have_one_winner() -> None:
    s = _store()
    results = await asyncio.gather(*[s.claim_once("same", 60) for _ in range(20)])
    assert results.count(True) == 1


async def test_many_expired_claims_are_swept() -> None:
    s = _store()
    for i in range(3000):
        assert await s.claim_once(f"k{i}", 0.0001)
    await asyncio.sleep(0.01)
    assert await s.claim_once("last", 60)
    assert await s.get_claim("k1") is None
    assert await s.get_claim("last") == "1"


async def test_dead_letters_newest_first_and_trimmed() -> None:
    s = _store()
    assert await s.dead_letters() == []
    for i in range(5):
        await s.add_dead_letter({"n": i}, keep=3)
    assert [r["n"] for r in await s.dead_letters()] == [4, 3, 2]
    assert [r["n"] for r in await s.dead_letters(limit=2)] == [4, 3]
    assert await s.dead_letters(limit=0) == []
