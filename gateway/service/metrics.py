"""Prometheus metrics (one set per process, served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter("gateway_messages_total", "Messages stored", ["sender"], registry=r)
        self.bot_decisions = Counter("gateway_bot_decisions_total", "Bot decisions", ["kind"], registry=r)
        self.handoffs = Counter("gateway_handoffs_total", "Handoffs to people", ["skill", "priority"], registry=r)
        self.assignments = Counter("gateway_assignments_total", "Conversations assigned to agents", registry=r)
        self.conversations_opened = Counter("gateway_conversations_opened_total", "Conversations opened", registry=r)
        self.conversations_discarded = Counter(
            "gateway_conversations_discarded_total", "Conversations forgotten: opened, then left without a message",
            registry=r,
        )
        self.conversations_closed = Counter("gateway_conversations_closed_total", "Conversations closed", registry=r)
        self.ratings = Counter("gateway_ratings_total", "Ratings", ["score"], registry=r)
        self.bot_feedback = Counter("gateway_bot_feedback_total", "Customers' verdicts on bot answers",
                                    ["helpful"], registry=r)
        self.sla_waiting_notices = Counter(
            "gateway_sla_waiting_notices_total", "Queued conversations past the ack target", registry=r
        )
        # hand-off -> first agent message; the buckets hold the default [sla] ack_target_s (30)
        self.first_response = Histogram(
            "gateway_first_response_seconds", "Hand-off to the first agent message", ["channel", "skill"],
            buckets=(5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0, 600.0, 1800.0), registry=r,
        )
        self.sla_breaches = Counter(
            "gateway_sla_breaches_total",
            "Hand-offs without an agent message within [sla] ack_target_s, counted as the target passes",
            ["channel", "skill"], registry=r,
        )
        self.turns_recovered = Counter(
            "gateway_turns_recovered_total", "Bot turns finished by a timer (their instance died or stalled)",
            registry=r,
        )
        self.errors = Counter("gateway_errors_total", "Error frames sent", ["code"], registry=r)
        self.customers_connected = Gauge("gateway_customers_connected", "Customer sockets", registry=r)
        self.agents_connected = Gauge("gateway_agents_connected", "Agent sockets", registry=r)
        self.queue_length = Gauge("gateway_queue_length", "Conversations waiting, per skill queue (at scrape)",
                                  ["skill"], registry=r)
        self.unserved_queue_length = Gauge(
            "gateway_unserved_queue_length", "Conversations waiting in a skill no configured agent has (at scrape)",
            ["skill"], registry=r,
        )
        self.connections_open = Gauge("gateway_connections", "Open TCP connections (HTTP and websocket)",
                                      registry=r)
        self.connections_refused = Counter(
            "gateway_connections_refused_total", "Connections refused with 503: a cap was reached",
            ["cap"], registry=r,
        )
        self.connections_closed = Counter(
            "gateway_connections_closed_total",
            "Connections closed before their first request: header_timeout, or evicted to make room",
            ["reason"], registry=r,
        )
        self.follow_ups_due = Gauge(
            "gateway_follow_ups_due", "Pending cases whose promised follow-up time has come (at scrape)", registry=r,
        )
        self.ack_seconds = Histogram(
            "gateway_ack_seconds", "Frame received to ack sent",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0), registry=r,
        )
        self.store_unavailable = Counter("gateway_store_unavailable_total", "Store calls that failed", registry=r)
        self.archive_writes = Counter(
            "gateway_archive_writes_total",
            "Archive record writes by the archiver: ok, error (retried later), skipped (gone or open again)",
            ["result"], registry=r,
        )
        self.archive_outbox_depth = Gauge(
            "gateway_archive_outbox_depth", "Conversations waiting for the archive (the store's outbox, at scrape)",
            registry=r,
        )
        self.archive_outbox_lag = Gauge(
            "gateway_archive_outbox_lag_seconds",
            "How long the oldest conversation waiting for the archive has waited (at scrape; 0: none waits)",
            registry=r,
        )
        # Children resolved once: labels() costs a lock and a dict lookup on every message.
        self.customer_messages = self.messages.labels("customer")
        self.agent_messages = self.messages.labels("agent")
        self.decisions_by_kind = {k: self.bot_decisions.labels(k) for k in ("answer", "suggest", "smalltalk", "handoff")}


METRICS = Metrics()
