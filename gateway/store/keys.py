"""Every Redis key and channel of one namespace, built in one place.

All keys share the hash tag ``{ns}`` (``gw:{ns}:…``), so a namespace lives in
one Redis Cluster slot and every Lua script touches only that slot. The Lua
scripts get ``prefix`` as ``KEYS[1]`` and build the same names from it; the
suffixes below are the only spelling of the layout (``lua/includes/`` mirrors
them).

Layout (``<p>`` is the prefix)::

    <p>secret                  string   shared secret for resume tokens (hex)
    <p>conv:<conv>             hash     conversation state (Conversation.to_dict, meta as JSON;
                                        ``queue``: the skill queue it waits in; ``fb:<seq>``: the
                                        customer's feedback on bot message <seq>, "1" or "0")
    <p>log:<conv>              stream   the log; entry id ``0-<seq>``, field ``e`` = entry JSON
    <p>dedupe:<conv>           hash     client id -> seq
    <p>cust:<customer>         string   the customer's current conversation
    <p>agents                  set      every registered agent id
    <p>agent:<agent>           hash     name, skills (JSON), capacity, status, last_assigned,
                                        stamp_us, fm (its free-set member), ref (JSON {"id","name"}),
                                        session, instance
    <p>held:<agent>            list     held conversations, assignment order
    <p>followups:<agent>       zset     the agent's pending cases (closed ``pending``), score follow_up_at
    <p>free:<skill>            zset     online agents with room, score held/capacity,
                                        member "<last assigned µs, 16 digits>:<agent>"
    <p>queue:<skill>           zset     waiting conversations, score priority.rank*1e13 + ticket
    <p>queues                  set      skills that ever had a queue
    <p>tickets                 counter  arrival tickets
    <p>stamp                   string   last assignment stamp (strictly increasing)
    <p>timers                  zset     timer key, score due (Unix seconds)
    <p>inflight:<instance>     zset     timers an instance claimed and has not yet finished
    <p>instances               set      instances believed alive
    <p>hb:<instance>           string   heartbeat, expires after the instance TTL
    <p>inst_agents:<instance>  set      agents whose session lives on that instance
    <p>claim:<key>             string   claim_once value, expires with its TTL
    <p>dead                    list     dead letters (JSON), newest first, trimmed
    <p>outbox                  zset     archive outbox: conversation, score when it was queued (its
                                        oldest change the archive does not have yet); the version to
                                        write is the conversation's ``arch_v`` field (absent: 1)
    <p>outbox_retry            zset     claimed outbox entries: conversation, score when a claim not
                                        reported ``archived`` may be claimed again (backoff)
    <p>outbox_tries            hash     conversation -> claims of its current version so far
    <p>bus                     channel  pub/sub doorbell: JSON [topic, payload]
"""

from __future__ import annotations

from gateway.errors import ConfigError

SUFFIXES = {
    "secret": "secret", "agents": "agents", "queues": "queues", "tickets": "tickets", "stamp": "stamp",
    "timers": "timers", "instances": "instances", "bus": "bus", "dead": "dead", "claim": "claim:",
    "conv": "conv:", "log": "log:", "dedupe": "dedupe:", "cust": "cust:", "agent": "agent:", "held": "held:",
    "free": "free:", "queue": "queue:", "hb": "hb:", "inflight": "inflight:", "inst_agents": "inst_agents:",
    "outbox": "outbox", "outbox_retry": "outbox_retry", "outbox_tries": "outbox_tries",
    "followups": "followups:",
}
"""The one spelling of every key suffix; the Lua scripts get them generated as ``K_<NAME>``."""

_S = SUFFIXES


class Keys:
    __slots__ = ("namespace", "prefix")

    def __init__(self, namespace: str) -> None:
        if not namespace or any(ch in namespace for ch in "{}\r\n "):
            raise ConfigError("store.namespace", f"{namespace!r}: must be non-empty, without braces or spaces")
        self.namespace = namespace
        self.prefix = f"gw:{{{namespace}}}:"

    # namespace-wide
    @property
    def secret(self) -> str:
        return self.prefix + _S["secret"]

    @property
    def agents(self) -> str:
        return self.prefix + _S["agents"]

    @property
    def queues(self) -> str:
        return self.prefix + _S["queues"]

    @property
    def tickets(self) -> str:
        return self.prefix + _S["tickets"]

    @property
    def stamp(self) -> str:
        return self.prefix + _S["stamp"]

    @property
    def timers(self) -> str:
        return self.prefix + _S["timers"]

    @property
    def instances(self) -> str:
        return self.prefix + _S["instances"]

    @property
    def bus(self) -> str:
        return self.prefix + _S["bus"]

    @property
    def dead_letters(self) -> str:
        return self.prefix + _S["dead"]

    @property
    def outbox(self) -> str:
        return self.prefix + _S["outbox"]

    @property
    def outbox_retry(self) -> str:
        return self.prefix + _S["outbox_retry"]

    @property
    def outbox_tries(self) -> str:
        return self.prefix + _S["outbox_tries"]

    def claim(self, key: str) -> str:
        return self.prefix + _S["claim"] + key

    # per conversation
    def conv(self, conversation: str) -> str:
        return self.prefix + _S["conv"] + conversation

    def log(self, conversation: str) -> str:
        return self.prefix + _S["log"] + conversation

    def dedupe(self, conversation: str) -> str:
        return self.prefix + _S["dedupe"] + conversation

    def customer(self, customer: str) -> str:
        return self.prefix + _S["cust"] + customer

    # per agent / skill
    def agent(self, agent: str) -> str:
        return self.prefix + _S["agent"] + agent

    def held(self, agent: str) -> str:
        return self.prefix + _S["held"] + agent

    def follow_ups(self, agent: str) -> str:
        return self.prefix + _S["followups"] + agent

    def free(self, skill: str) -> str:
        return self.prefix + _S["free"] + skill

    def queue(self, skill: str) -> str:
        return self.prefix + _S["queue"] + skill

    # per instance
    def heartbeat(self, instance: str) -> str:
        return self.prefix + _S["hb"] + instance

    def inflight(self, instance: str) -> str:
        return self.prefix + _S["inflight"] + instance

    def instance_agents(self, instance: str) -> str:
        return self.prefix + _S["inst_agents"] + instance
