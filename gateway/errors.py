"""One small exception hierarchy: protocol errors carry their wire code."""

from __future__ import annotations


class ConfigError(Exception):
    """A bad config or data file; ``key`` names what is wrong (e.g. ``routing.agent_grace_s``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class ProtocolError(Exception):
    """An error a client caused; becomes an ``error`` frame with ``code``."""

    code = "bad_frame"

    def __init__(self, message: str, *, frame_id: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.frame_id = frame_id
        if code is not None:
            self.code = code


class BadFrame(ProtocolError):
    code = "bad_frame"


class UnknownType(ProtocolError):
    code = "unknown_type"


class TooLarge(ProtocolError):
    code = "too_large"


class RateLimited(ProtocolError):
    code = "rate_limited"


class NotAssigned(ProtocolError):
    code = "not_assigned"


class NotFound(ProtocolError):
    code = "not_found"


class Unauthorized(ProtocolError):
    code = "unauthorized"


class Closed(ProtocolError):
    code = "closed"


class Unavailable(ProtocolError):
    """The store cannot be reached: nothing was stored, the client may retry."""

    code = "unavailable"


class StoreUnavailable(Exception):
    """Raised by a store when its backend cannot be reached."""
