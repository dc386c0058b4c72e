"""The one validated, frozen config object, built at start from a TOML file.

Nothing else in the gateway reads files or environment variables for settings.
A bad file raises ConfigError naming the key; the CLI prints it and exits 2.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.model import AgentProfile


@dataclass(slots=True, frozen=True)
class AgentConfig:
    profile: AgentProfile
    token_sha256: str  # hex digest; plain tokens are hashed at load
    role: str = "agent"  # agent | supervisor (a supervisor's token also opens the records API)

    @property
    def id(self) -> str:
        return self.profile.id


@dataclass(slots=True, frozen=True)
class Texts:
    """Customer-facing texts (Chinese, configurable)."""

    handoff: str = "正在为您转接人工客服，请稍候～"
    sla_waiting: str = "当前咨询人数较多，您已进入排队，客服会尽快回复您，请耐心等待。"
    closed_idle: str = "由于您长时间未回复，本次会话已结束。如需帮助请随时联系我们。"
    queue_overflow: str = "当前排队较久，已为您转接其他客服，请稍候～"
    greeting: str = ""  # optional first log entry of every new conversation
    platform_survey: str = "本次服务已结束，请回复 1-5 为客服打分（5 分最满意）。"
    follow_up: str = "您的问题我们已记录，客服将在 {time}（北京时间）前跟进并回复您处理结果，请留意消息。"


@dataclass(slots=True, frozen=True)
class Limits:
    customer_messages: int = 10
    customer_window_s: float = 10.0
    agent_messages: int = 60
    agent_window_s: float = 10.0
    hello_timeout_s: float = 10.0
    max_frame_bytes: int = 64 * 1024
    max_text_chars: int = 4000
    send_queue: int = 1024  # frames buffered per socket before it is dropped as too slow
    address_messages: int = 60  # customer frames (typing excluded) per client address ...
    address_window_s: float = 10.0  # ... per this many seconds
    address_hellos: int = 30  # customer hellos per client address ...
    address_hello_window_s: float = 10.0  # ... per this many seconds
    header_timeout_s: float = 10.0  # a connection must complete a request's headers this soon after opening
    keepalive_timeout_s: float = 15.0  # an idle keep-alive connection is closed this long after its last response
    max_connections: int = 0  # per instance (process); 0: the file-descriptor limit less a reserve
    max_connections_per_address: int = 256  # per client (peer) address; trusted proxies are exempt
    # [server] trusted_proxies: proxies (IPs or CIDRs) whose X-Forwarded-For names the client address
    trusted_proxies: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class RoutingConfig:
    default_skill: str = "presale"
    agent_grace_s: float = 60.0
    customer_idle_close_s: float = 900.0
    channel_skills: Mapping[str, str] = field(default_factory=dict)  # channel -> default skill
    no_bot_channels: tuple[str, ...] = ()  # channels handed straight to people
    turn_retry_s: float = 5.0  # a customer message whose bot turn is unfinished this long is taken over
    max_queue_s: float = 600.0  # queued this long in another skill: offered to default_skill (0 = never)


ARCHIVE_DEFAULT_URL = "sqlite:///var/archive.sqlite3"  # relative to the config file's directory
AGENT_ROLES = ("agent", "supervisor")


@dataclass(slots=True, frozen=True)
class ArchiveConfig:
    """``[archive]``: where closed conversations' records go (``gateway.records.open.open_archive``)."""

    url: str = ARCHIVE_DEFAULT_URL  # sqlite:///PATH (relative: to the config file's directory) or postgresql://…
    keep_hot_s: float = 86400.0  # an archived conversation stays in the store this long after it is archived


DEFAULT_CATEGORIES = ("quality", "logistics", "usage", "service", "other")


@dataclass(slots=True, frozen=True)
class RecordsConfig:
    """``[records]``: what an agent's close may record, and when a customer's return reopens a case."""

    reopen_s: float = 7 * 86400.0  # a message this soon after an unresolved / pending close or a 1-2 rating reopens
    categories: tuple[str, ...] = DEFAULT_CATEGORIES  # the categories an agent's close may name


@dataclass(slots=True, frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    store_url: str = "memory://"
    namespace: str = "default"
    admin_token_sha256: str = ""
    metrics_token_sha256: str = ""  # empty: /metrics is open
    allowed_origins: tuple[str, ...] = ()  # browser origins for the console API and agent socket; empty: any
    customer_secret: str = ""
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    ack_target_s: float = 30.0
    limits: Limits = field(default_factory=Limits)
    texts: Texts = field(default_factory=Texts)
    agents: tuple[AgentConfig, ...] = ()
    canned: tuple[str, ...] = ()
    faq_path: str = ""
    bot: Mapping[str, Any] = field(default_factory=dict)  # the raw [bot] table; the bot validates it
    adapters: Mapping[str, Any] = field(default_factory=dict)  # raw [adapters] table
    shops: tuple[Mapping[str, Any], ...] = ()  # raw [[shops]]; the adapters validate them
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    records: RecordsConfig = field(default_factory=RecordsConfig)
    source: str = ""  # the file it came from

    @property
    def skills(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for a in self.agents:
            for s in a.profile.skills:
                seen[s] = None
        seen.setdefault(self.routing.default_skill, None)
        return tuple(seen)

    def agent(self, agent_id: str) -> AgentConfig | None:
        for a in self.agents:
            if a.id == agent_id:
                return a
        return None

    def with_overrides(self, *, host: str | None = None, port: int | None = None, store: str | None = None) -> Config:
        return replace(
            self,
            host=host if host is not None else self.host,
            port=port if port is not None else self.port,
            store_url=store if store is not None else self.store_url,
        )


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- validation


def _table(d: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    v = d.get(key, {})
    if not isinstance(v, dict):
        raise ConfigError(f"{where}{key}", "must be a table")
    return v


def _str(d: Mapping[str, Any], key: str, where: str, default: str) -> str:
    v = d.get(key, default)
    if not isinstance(v, str):
        raise ConfigError(f"{where}.{key}", f"must be a string, got {type(v).__name__}")
    return v


def _num(d: Mapping[str, Any], key: str, where: str, default: float, *, minimum: float = 0.0) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{where}.{key}", f"must be a number, got {type(v).__name__}")
    if v < minimum:
        raise ConfigError(f"{where}.{key}", f"must be >= {minimum}, got {v}")
    return float(v)


def _int(d: Mapping[str, Any], key: str, where: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{where}.{key}", f"must be an integer, got {type(v).__name__}")
    if v < minimum or (maximum is not None and v > maximum):
        raise ConfigError(f"{where}.{key}", f"must be between {minimum} and {maximum}, got {v}")
    return v


def _str_list(d: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    v = d.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{where}.{key}", "must be a list of strings")
    return tuple(v)


def _proxy(v: str, where: str) -> str:
    try:
        return str(ipaddress.ip_network(v.strip(), strict=False))
    except ValueError:
        raise ConfigError(where, f"must be an IP address or network, got {v!r}") from None


def _token_hash(d: Mapping[str, Any], where: str, *, required: bool) -> str:
    """A sha256 hex from ``token``, ``token_sha256`` or ``token_env`` (the env var's name)."""
    if "token_sha256" in d:
        h = _str(d, "token_sha256", where, "").lower()
        if len(h) != 64 or any(ch not in "0123456789abcdef" for ch in h):
            raise ConfigError(f"{where}.token_sha256", "must be 64 hex characters (sha256 of the token)")
        return h
    if "token_env" in d:
        name = _str(d, "token_env", where, "")
        value = os.environ.get(name, "")
        if not value:
            raise ConfigError(f"{where}.token_env", f"environment variable {name!r} is not set")
        return sha256_hex(value)
    token = _str(d, "token", where, "")
    if not token:
        if required:
            raise ConfigError(f"{where}.token", "missing (give token, token_sha256 or token_env)")
        return ""
    return sha256_hex(token)


def _origin(value: str, where: str) -> str:
    """A browser origin as the ``Origin`` header spells it: ``scheme://host[:port]``, lower case, no path."""
    o = value.strip().lower().rstrip("/")
    scheme, sep, rest = o.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or any(c in rest for c in "/?#@ "):
        raise ConfigError(where, f"must be an origin like https://shop.example.com, got {value!r}")
    return o


_KNOWN_TOP = {"server", "store", "customers", "limits", "routing", "sla", "texts", "console", "bot", "agents", "shops", "adapters"}
_KNOWN_TOP.add("archive")
_KNOWN_TOP.add("records")


def _records(t: Mapping[str, Any]) -> RecordsConfig:
    """``[records]``: ``reopen_s`` (seconds, 0 = never reopen) and ``categories`` (short names, no repeats)."""
    unknown = sorted(set(t) - {"reopen_s", "categories"})
    if unknown:
        raise ConfigError(f"records.{unknown[0]}", "unknown key (known: categories, reopen_s)")
    categories = _str_list(t, "categories", "records") if "categories" in t else DEFAULT_CATEGORIES
    if not categories or len(set(categories)) != len(categories) or not all(0 < len(c) <= 32 for c in categories):
        raise ConfigError("records.categories", "must list distinct names of 1-32 characters")
    return RecordsConfig(reopen_s=_num(t, "reopen_s", "records", 7 * 86400.0), categories=categories)


def _archive(t: Mapping[str, Any], base_dir: Path) -> ArchiveConfig:
    """``[archive]``: a relative ``sqlite:///PATH`` is made absolute against the config file's directory."""
    url = _str(t, "url", "archive", ARCHIVE_DEFAULT_URL).strip()
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if not path or path.startswith("?"):
            raise ConfigError("archive.url", "sqlite:///PATH needs a file path")
        if path != ":memory:" and not Path(path).is_absolute():
            url = "sqlite:///" + str((base_dir / path).resolve())
    elif not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("archive.url", f"must be sqlite:///PATH or postgresql://…, got {url[:60]!r}")
    unknown = sorted(set(t) - {"url", "keep_hot_s"})
    if unknown:
        raise ConfigError(f"archive.{unknown[0]}", "unknown key (known: keep_hot_s, url)")
    return ArchiveConfig(url=url, keep_hot_s=_num(t, "keep_hot_s", "archive", 86400.0, minimum=0.0))


def parse_config(raw: Mapping[str, Any], base_dir: Path, source: str = "") -> Config:
    unknown = sorted(set(raw) - _KNOWN_TOP)
    if unknown:
        raise ConfigError(unknown[0], f"unknown section (known: {', '.join(sorted(_KNOWN_TOP))})")
    server = _table(raw, "server", "")
    store = _table(raw, "store", "")
    customers = _table(raw, "customers", "")
    limits_t = _table(raw, "limits", "")
    routing_t = _table(raw, "routing", "")
    sla = _table(raw, "sla", "")
    texts_t = _table(raw, "texts", "")
    console = _table(raw, "console", "")
    bot = _table(raw, "bot", "")
    adapters = _table(raw, "adapters", "")

    admin = _token_hash({k[6:]: v for k, v in server.items() if k.startswith("admin_")}, "server.admin", required=False)
    metrics = _token_hash({k[8:]: v for k, v in server.items() if k.startswith("metrics_")}, "server.metrics",
                          required=False)
    origins = tuple(_origin(o, f"server.allowed_origins[{i}]")
                    for i, o in enumerate(_str_list(server, "allowed_origins", "server")))

    channel_skills = _table(routing_t, "channel_skills", "routing.")
    for ch, sk in channel_skills.items():
        if not isinstance(sk, str) or not sk:
            raise ConfigError(f"routing.channel_skills.{ch}", "must be a skill name")
    routing = RoutingConfig(
        default_skill=_str(routing_t, "default_skill", "routing", "presale"),
        agent_grace_s=_num(routing_t, "agent_grace_s", "routing", 60.0),
        customer_idle_close_s=_num(routing_t, "customer_idle_close_s", "routing", 900.0, minimum=1.0),
        channel_skills=dict(channel_skills),
        no_bot_channels=_str_list(routing_t, "no_bot_channels", "routing"),
        turn_retry_s=_num(routing_t, "turn_retry_s", "routing", 5.0, minimum=0.1),
        max_queue_s=_num(routing_t, "max_queue_s", "routing", 600.0, minimum=0.0),
    )
    if not routing.default_skill:
        raise ConfigError("routing.default_skill", "must not be empty")

    limits = Limits(
        customer_messages=_int(limits_t, "customer_messages", "limits", 10, minimum=1),
        customer_window_s=_num(limits_t, "customer_window_s", "limits", 10.0, minimum=0.001),
        agent_messages=_int(limits_t, "agent_messages", "limits", 60, minimum=1),
        agent_window_s=_num(limits_t, "agent_window_s", "limits", 10.0, minimum=0.001),
        hello_timeout_s=_num(limits_t, "hello_timeout_s", "limits", 10.0, minimum=0.1),
        send_queue=_int(limits_t, "send_queue", "limits", 1024, minimum=16),
        address_messages=_int(limits_t, "address_messages", "limits", 60, minimum=1),
        address_window_s=_num(limits_t, "address_window_s", "limits", 10.0, minimum=0.001),
        address_hellos=_int(limits_t, "address_hellos", "limits", 30, minimum=1),
        address_hello_window_s=_num(limits_t, "address_hello_window_s", "limits", 10.0, minimum=0.001),
        header_timeout_s=_num(limits_t, "header_timeout_s", "limits", 10.0, minimum=0.1),
        keepalive_timeout_s=_num(limits_t, "keepalive_timeout_s", "limits", 15.0, minimum=0.1),
        max_connections=_int(limits_t, "max_connections", "limits", 0, minimum=0),
        max_connections_per_address=_int(limits_t, "max_connections_per_address", "limits", 256, minimum=1),
        trusted_proxies=tuple(_proxy(p, f"server.trusted_proxies[{i}]")
                              for i, p in enumerate(_str_list(server, "trusted_proxies", "server"))),
    )
    defaults = Texts()
    texts = Texts(**{k: _str(texts_t, k, "texts", getattr(defaults, k)) for k in Texts.__slots__})
    unknown_texts = sorted(set(texts_t) - set(Texts.__slots__))
    if unknown_texts:
        raise ConfigError(f"texts.{unknown_texts[0]}", "unknown text key")

    agents_raw = raw.get("agents", [])
    if not isinstance(agents_raw, list):
        raise ConfigError("agents", "must be an array of tables ([[agents]])")
    agents: list[AgentConfig] = []
    seen: set[str] = set()
    for i, a in enumerate(agents_raw):
        where = f"agents[{i}]"
        if not isinstance(a, dict):
            raise ConfigError(where, "must be a table")
        aid = _str(a, "id", where, "")
        if not aid or len(aid) > 64:
            raise ConfigError(f"{where}.id", "must be a non-empty string of at most 64 characters")
        if aid in seen:
            raise ConfigError(f"{where}.id", f"duplicate agent id {aid!r}")
        seen.add(aid)
        skills = _str_list(a, "skills", where)
        if not skills:
            raise ConfigError(f"{where}.skills", "must list at least one skill")
        capacity = _int(a, "capacity", where, 5, minimum=1, maximum=1000)
        profile = AgentProfile(aid, _str(a, "name", where, aid) or aid, skills, capacity)
        role = _str(a, "role", where, "agent")
        if role not in AGENT_ROLES:
            raise ConfigError(f"{where}.role", f"must be one of {', '.join(AGENT_ROLES)}, got {role!r}")
        agents.append(AgentConfig(profile, _token_hash(a, where, required=True), role))

    shops_raw = raw.get("shops", [])
    if not isinstance(shops_raw, list) or not all(isinstance(s, dict) for s in shops_raw):
        raise ConfigError("shops", "must be an array of tables ([[shops]])")

    faq = _str(bot, "faq", "bot", "")
    faq_path = str((base_dir / faq).resolve()) if faq else ""
    if faq_path and not Path(faq_path).is_file():
        raise ConfigError("bot.faq", f"file not found: {faq_path}")

    port = _int(server, "port", "server", 8080, minimum=0, maximum=65535)
    return Config(
        host=_str(server, "host", "server", "127.0.0.1"),
        port=port,
        store_url=_str(store, "url", "store", "memory://"),
        namespace=_str(store, "namespace", "store", "default") or "default",
        admin_token_sha256=admin,
        metrics_token_sha256=metrics,
        allowed_origins=origins,
        customer_secret=_str(customers, "secret", "customers", ""),
        routing=routing,
        ack_target_s=_num(sla, "ack_target_s", "sla", 30.0, minimum=1.0),
        limits=limits,
        texts=texts,
        agents=tuple(agents),
        canned=_str_list(console, "canned", "console"),
        faq_path=faq_path,
        bot={k: v for k, v in bot.items() if k != "faq"},
        adapters=dict(adapters),
        shops=tuple(shops_raw),
        archive=_archive(_table(raw, "archive", ""), base_dir),
        records=_records(_table(raw, "records", "")),
        source=source,
    )


def load_config(path: str | Path) -> Config:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError("config", f"file not found: {p}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("config", f"{p} is not valid TOML: {e}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("config", f"cannot read {p}: {e}") from e
    return parse_config(raw, p.parent, str(p))
