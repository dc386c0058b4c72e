"""What every handler shares on one instance."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config import Config
from gateway.records.archive import Archive
from gateway.server.connections import Guard
from gateway.service.archiver import Archiver
from gateway.service.conversations import ConversationService
from gateway.service.delivery import Hub, Peer
from gateway.service.ratelimit import CustomerLimits
from gateway.store import Store


@dataclass(slots=True)
class Context:
    config: Config
    store: Store
    service: ConversationService
    hub: Hub
    instance: str
    peers: set[Peer] = field(default_factory=set)  # every open socket, for shutdown
    accepting: bool = True
    archive: Archive | None = None  # [archive] url, opened by build_app (started with the app)
    archiver: Archiver | None = None  # drains the store's archive outbox into ``archive`` (a task of the app)
    # limits that outlive a connection (per conversation, per client address): one set per instance
    customer_limits: CustomerLimits = field(init=False)
    # TCP connection caps and the header deadline (``GuardedSite``)
    connections: Guard = field(init=False)

    def __post_init__(self) -> None:
        self.customer_limits = CustomerLimits(self.config.limits)
        self.connections = Guard(self.config.limits)
