"""Resume tokens and customer signatures (HMAC-SHA256, constant-time checks)."""

from __future__ import annotations

import base64
import hashlib
import hmac


def resume_token(secret: bytes, conversation: str, customer: str) -> str:
    """A token that lets ``customer``, and no one else, resume ``conversation``."""
    mac = hmac.new(secret, f"resume\x00{conversation}\x00{customer}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


def check_resume_token(secret: bytes, conversation: str, customer: str, token: str) -> bool:
    return hmac.compare_digest(resume_token(secret, conversation, customer).encode(), token.encode())


def customer_signature(secret: str, customer: str) -> str:
    """HMAC-SHA256(customer_secret, customer.id) as lowercase hex (PROTOCOL.md hello)."""
    return hmac.new(secret.encode(), customer.encode(), hashlib.sha256).hexdigest()


def check_customer_signature(secret: str, customer: str, signature: str) -> bool:
    return hmac.compare_digest(customer_signature(secret, customer).encode(), signature.lower().encode())


def check_token_sha256(expected_hex: str, token: str) -> bool:
    """Compare a presented token with a configured sha256 digest in constant time."""
    if not expected_hex:
        return False
    got = hashlib.sha256(token.encode()).hexdigest()
    return hmac.compare_digest(got.encode(), expected_hex.encode())
