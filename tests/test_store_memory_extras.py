"""The memory store's claims and dead letters (gateway/store/memory_extras.py, ``MemoryClaims``), on its
own clock (``MemoryStore.clock``, moved by the tests).

That every store gives the same outcomes is tests/test_store_contract.py (``test_claims``,
``test_dead_letters``); here also what only the memory store does: dropping expired claims.
"""

from __future__ import annotations

import asyncio

from gateway.store import MemoryStore

T0 = 1_700_000_000.0


class Clock:
    """The claims' clock (``MemoryStore.clock``), moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _store(clock: Clock | None = None) -> MemoryStore:
    s = MemoryStore("t")
    s.clock = clock or Clock()
    return s


async def test_claim_once_is_first_wins_until_it_expires() -> None:
    clock = Clock()
    s = _store(clock)
    assert await s.claim_once("k", 60) is True
    assert await s.claim_once("k", 60, "other") is False
    assert await s.get_claim("k") == "1"
    assert await s.claim_once("short", 0.05, "v") is True
    clock.now += 0.049
    assert await s.get_claim("short") == "v"
    clock.now += 0.001
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
    clock = Clock()
    s = _store(clock)
    for i in range(3000):
        assert await s.claim_once(f"k{i}", 0.0001)
        clock.now += 0.001  # each has expired by the next
    assert await s.claim_once("last", 60)
    assert len(s._claims) <= 1024  # the expired ones were dropped whenever the map had grown to 1024
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
