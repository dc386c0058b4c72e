"""Stores: the embedded memory store and the Redis store behind one interface."""

from __future__ import annotations

from gateway.errors import ConfigError
from gateway.store import lua as _lua  # noqa: F401  (reads the Lua scripts now, before any event loop runs)
from gateway.store.base import (
    TIMER_PREFIXES,
    TOPIC_PREFIXES,
    AppendResult,
    BusListener,
    CloseOutcome,
    CloseResult,
    Guard,
    HandoffRequest,
    OutboxEntry,
    OutboxStats,
    PendingTurn,
    Placement,
    Store,
    TransferResult,
    agent_topic,
    conv_topic,
    follow_up_timer,
    grace_timer,
    idle_timer,
    overflow_timer,
    queue_topic,
    sla_timer,
    turn_timer,
)
from gateway.store.memory import MemoryStore

__all__ = [
    "TIMER_PREFIXES",
    "TOPIC_PREFIXES",
    "AppendResult",
    "BusListener",
    "CloseOutcome",
    "CloseResult",
    "Guard",
    "HandoffRequest",
    "MemoryStore",
    "OutboxEntry",
    "OutboxStats",
    "PendingTurn",
    "Placement",
    "Store",
    "TransferResult",
    "agent_topic",
    "conv_topic",
    "follow_up_timer",
    "grace_timer",
    "idle_timer",
    "open_store",
    "overflow_timer",
    "queue_topic",
    "sla_timer",
    "turn_timer",
]


def open_store(url: str, namespace: str, instance: str = "") -> Store:
    """A store for ``url``: ``memory://``, ``redis://host:port/db`` (also ``rediss://``, ``unix://``) or
    ``redis+cluster://host:port[,host:port…]`` (a Redis Cluster; ``rediss+cluster://`` with TLS)."""
    if url.startswith("memory://") or url == "memory":
        return MemoryStore(namespace)
    if url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")):
        from gateway.store.redis import RedisStore

        try:
            store: Store = RedisStore(url, namespace, instance=instance)
        except ValueError as e:
            raise ConfigError("store.url", f"{url!r}: {e}") from e
        return store
    raise ConfigError("store.url", f"unsupported store URL {url!r} "
                      "(use memory://, redis://host:port/db or redis+cluster://host:port,host:port)")
