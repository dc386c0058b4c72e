"""Conversation ids: web ones ``c-…``, platform ones ``p-…``."""

from __future__ import annotations

import uuid

PLATFORM_ID_PREFIX = "p-"
"""Conversations opened for a platform buyer (``meta.platform`` set) have ids with this
prefix, so an instance's outbound relay knows a web conversation without reading it."""


def new_conversation_id(platform: bool = False) -> str:
    return f"{PLATFORM_ID_PREFIX if platform else 'c-'}{uuid.uuid4().hex[:20]}"


def is_platform_conversation(conversation: str) -> bool:
    return conversation.startswith(PLATFORM_ID_PREFIX)
