"""Every Redis key and channel of one namespace, built in one place.

All keys share the hash tag ``{ns}`` (``gw:{ns}:…``), so a namespace lives in
one Redis Cluster slot and every Lua script touches only that slot. The Lua
scripts get ``prefix`` as ``KEYS[1]`` and build the same names from it; the
suffixes below are the only spelling of the layout (``lua/includes/`` mirrors
them).

Layout (``<p>`` is the prefix)::

    <p>secret                  string   shared secret for resume tokens (hex)
    <p>conv:<conv>             hash     conversation state (Conversation.to_dict, meta as JSON;
                                        ``queue``: the skill queue it waits in)
    <p>log:<conv>              stream   the log; entry id ``0-<seq>``, field ``e`` = entry JSON
    <p>dedupe:<conv>           hash     client id -> seq
    <p>cust:<customer>         string   the customer's current conversation
    <p>agents                  set      every registered agent id
    <p>agent:<agent>           hash     name, skills (JSON), capacity, status, last_assigned,
                                        stamp_us, fm (its free-set member), ref (JSON {"id","name"}),
                                        session, instance
    <p>held:<agent>            list     held conversations, assignment order
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
    <p>bus                     channel  pub/sub doorbell: JSON [topic, payload]
"""

from __future__ import annotations

from gateway.errors import ConfigError


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
        return self.prefix + "secret"

    @property
    def agents(self) -> str:
        return self.prefix + "agents"

    @property
    def queues(self) -> str:
        return self.prefix + "queues"

    @property
    def tickets(self) -> str:
        return self.prefix + "tickets"

    @property
    def stamp(self) -> str:
        return self.prefix + "stamp"

    @property
    def timers(self) -> str:
        return self.prefix + "timers"

    @property
    def instances(self) -> str:
        return self.prefix + "instances"

    @property
    def bus(self) -> str:
        return self.prefix + "bus"

    @property
    def dead_letters(self) -> str:
        return self.prefix + "dead"

    def claim(self, key: str) -> str:
        return f"{self.prefix}claim:{key}"

    # per conversation
    def conv(self, conversation: str) -> str:
        return f"{self.prefix}conv:{conversation}"

    def log(self, conversation: str) -> str:
        return f"{self.prefix}log:{conversation}"

    def dedupe(self, conversation: str) -> str:
        return f"{self.prefix}dedupe:{conversation}"

    def customer(self, customer: str) -> str:
        return f"{self.prefix}cust:{customer}"

    # per agent / skill
    def agent(self, agent: str) -> str:
        return f"{self.prefix}agent:{agent}"

    def held(self, agent: str) -> str:
        return f"{self.prefix}held:{agent}"

    def free(self, skill: str) -> str:
        return f"{self.prefix}free:{skill}"

    def queue(self, skill: str) -> str:
        return f"{self.prefix}queue:{skill}"

    # per instance
    def heartbeat(self, instance: str) -> str:
        return f"{self.prefix}hb:{instance}"

    def inflight(self, instance: str) -> str:
        return f"{self.prefix}inflight:{instance}"

    def instance_agents(self, instance: str) -> str:
        return f"{self.prefix}inst_agents:{instance}"
