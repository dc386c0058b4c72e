"""Token buckets (gateway/service/ratelimit.py, pure: the caller passes the clock).

The limits kept beyond one connection (per conversation, per client address) are in
tests/test_server_limits.py, with the server that applies them.
"""

from __future__ import annotations

from gateway.service.ratelimit import TokenBucket


def test_token_bucket() -> None:
    b = TokenBucket(3, 3.0, now=0.0)
    assert [b.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.allow(1.01)  # one token back after a third of the window
    assert not b.allow(1.02)
