"""Resume tokens and customer signatures (gateway/service/tokens.py, pure)."""

from __future__ import annotations

from gateway.service.tokens import (
    check_customer_signature,
    check_resume_token,
    customer_signature,
    resume_token,
)


def test_resume_token_binds_conversation_and_customer() -> None:
    secret = b"s" * 32
    tok = resume_token(secret, "c-1", "u-1")
    assert check_resume_token(secret, "c-1", "u-1", tok)
    assert not check_resume_token(secret, "c-2", "u-1", tok)
    assert not check_resume_token(secret, "c-1", "u-2", tok)
    assert not check_resume_token(b"t" * 32, "c-1", "u-1", tok)


def test_customer_signature() -> None:
    sig = customer_signature("k", "u-123")
    assert check_customer_signature("k", "u-123", sig)
    assert check_customer_signature("k", "u-123", sig.upper())
    assert not check_customer_signature("k", "u-124", sig)
