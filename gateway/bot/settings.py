"""The bot's settings: the ``[bot]`` table of the gateway config, validated once."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.bot.words_routing import (
    DEFAULT_HANDOFF_PHRASES,
    DEFAULT_HIGH_WORDS,
    DEFAULT_ISSUE_WORDS,
    DEFAULT_NOT_HANDOFF_PHRASES,
    DEFAULT_NOT_URGENT_PHRASES,
    DEFAULT_SAFETY_WORDS,
    DEFAULT_SERVICE_QUESTION_WORDS,
    DEFAULT_SKILL_KEYWORDS,
    DEFAULT_SKILL_WEAK_WORDS,
    DEFAULT_SYMPTOM_WORDS,
    DEFAULT_URGENT_WORDS,
)
from gateway.bot.words_text import (
    DEFAULT_BYE_WORDS,
    DEFAULT_FILLERS,
    DEFAULT_GREETING_WORDS,
    DEFAULT_SYNONYMS,
    DEFAULT_THANKS_WORDS,
)
from gateway.errors import ConfigError


@dataclass(slots=True, frozen=True)
class BotSettings:
    """Every knob of the FAQ bot; ``from_mapping`` validates the ``[bot]`` table.

    All keys are optional; the defaults are tuned on ``tests/data/faq_cases.jsonl``.
    """

    faq: str = "configs/faq.toml"
    enabled: bool = True
    # decision thresholds (scores are 0..1)
    answer_threshold: float = 0.30
    suggest_threshold: float = 0.20
    min_margin: float = 0.10
    max_suggestions: int = 3
    skill_hint_threshold: float = 0.40
    handoff_on_urgent: bool = True
    vip_priority: str = "high"
    # customer-facing texts (Chinese)
    suggest_text: str = "您是不是想问："
    greeting_reply: str = "您好，我是智能客服小助手，请问有什么可以帮您？"
    thanks_reply: str = "不客气～还有其他问题随时问我哦。"
    bye_reply: str = "感谢您的光临，祝您生活愉快，再见～"
    chatter_reply: str = "亲，请问有什么可以帮您？您可以直接描述您的问题，或输入“转人工”联系人工客服。"
    handoff_reply: str = "正在为您转接人工客服，请稍候～"
    # vocabularies: built in from data/routing.toml and data/text.toml; a list in the config
    # replaces the built-in one, ``extra_<name>`` in the config adds to it (``from_mapping``)
    handoff_phrases: tuple[str, ...] = DEFAULT_HANDOFF_PHRASES
    not_handoff_phrases: tuple[str, ...] = DEFAULT_NOT_HANDOFF_PHRASES
    service_question_words: tuple[str, ...] = DEFAULT_SERVICE_QUESTION_WORDS
    urgent_words: tuple[str, ...] = DEFAULT_URGENT_WORDS
    safety_words: tuple[str, ...] = DEFAULT_SAFETY_WORDS
    symptom_words: tuple[str, ...] = DEFAULT_SYMPTOM_WORDS
    not_urgent_phrases: tuple[str, ...] = DEFAULT_NOT_URGENT_PHRASES
    high_words: tuple[str, ...] = DEFAULT_HIGH_WORDS
    issue_words: tuple[str, ...] = DEFAULT_ISSUE_WORDS
    skill_keywords: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_SKILL_KEYWORDS)
    )
    skill_weak_words: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_SKILL_WEAK_WORDS)
    )
    synonyms: tuple[tuple[str, ...], ...] = DEFAULT_SYNONYMS
    fillers: tuple[str, ...] = DEFAULT_FILLERS
    greeting_words: tuple[str, ...] = DEFAULT_GREETING_WORDS
    thanks_words: tuple[str, ...] = DEFAULT_THANKS_WORDS
    bye_words: tuple[str, ...] = DEFAULT_BYE_WORDS
    stop_words: tuple[str, ...] = ()  # added to the built-in list

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> BotSettings:
        """Validate the ``[bot]`` table; raise ``ConfigError("bot.<key>", …)`` on a bad value.

        A vocabulary (a list of words, a table of team = [words], the synonym groups) given in
        the table replaces the built-in one; ``extra_<name>`` adds to it (to the built-in list,
        or to the replacement given in the same table): words already there are not repeated,
        and for a table each team's words are added to that team (a new team is created).
        """
        if not isinstance(d, Mapping):
            raise ConfigError("bot", "must be a table")
        known = {f.name for f in dataclasses.fields(cls)}
        extras = {f"extra_{name}" for name in _VOCABULARIES}
        unknown = sorted(set(d) - known - extras)
        if unknown:
            raise ConfigError(
                f"bot.{unknown[0]}", f"unknown key (known: {', '.join(sorted(known | extras))})"
            )
        values: dict[str, Any] = {}
        for name, raw in d.items():
            if name in extras:
                continue
            key = f"bot.{name}"
            default = getattr(_DEFAULTS, name)
            if isinstance(default, bool):
                if not isinstance(raw, bool):
                    raise ConfigError(key, "must be true or false")
                values[name] = raw
            elif isinstance(default, int):
                if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1 or raw > 10:
                    raise ConfigError(key, "must be an integer between 1 and 10")
                values[name] = raw
            elif isinstance(default, float):
                if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0.0 <= float(raw) <= 1.0:
                    raise ConfigError(key, "must be a number between 0 and 1")
                values[name] = float(raw)
            elif isinstance(default, str):
                if not isinstance(raw, str):
                    raise ConfigError(key, "must be a string")
                values[name] = raw
            elif name in ("skill_keywords", "skill_weak_words"):
                values[name] = _skill_keywords(key, raw)
            elif name == "synonyms":
                values[name] = _synonyms(key, raw)
            else:
                values[name] = _words(key, raw)
        for extra in sorted(set(d) & extras):
            name = extra.removeprefix("extra_")
            base = values.get(name, getattr(_DEFAULTS, name))
            values[name] = _extend(f"bot.{extra}", name, base, d[extra])
        settings = cls(**values)
        if settings.vip_priority not in ("normal", "high", "urgent"):
            raise ConfigError("bot.vip_priority", "must be one of normal, high, urgent")
        if settings.suggest_threshold > settings.answer_threshold:
            raise ConfigError("bot.suggest_threshold", "must not be above bot.answer_threshold")
        for name in ("suggest_text", "greeting_reply", "thanks_reply", "bye_reply", "chatter_reply"):
            if not getattr(settings, name).strip():
                raise ConfigError(f"bot.{name}", "must not be empty")
        return settings


def _extend(key: str, name: str, base: Any, raw: Any) -> Any:
    """The vocabulary ``name`` (``base``) with the words of ``extra_<name>`` added (validated as ``key``)."""
    if name in ("skill_keywords", "skill_weak_words"):
        out = dict(base)
        for team, words in _skill_keywords(key, raw).items():
            out[team] = _union(out.get(team, ()), words)
        return out
    if name == "synonyms":
        return (*base, *_synonyms(key, raw))
    return _union(base, _words(key, raw))


def _union(base: tuple[str, ...], more: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*base, *more)))


def _words(key: str, raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list | tuple) or not all(isinstance(w, str) for w in raw):
        raise ConfigError(key, "must be a list of strings")
    words = tuple(w.strip() for w in raw if w.strip())
    return words


def _skill_keywords(key: str, raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, "must be a table of skill = [words]")
    out: dict[str, tuple[str, ...]] = {}
    for skill, words in raw.items():
        if not isinstance(skill, str) or not skill:
            raise ConfigError(key, "skill names must be non-empty strings")
        out[skill] = _words(f"{key}.{skill}", words)
    return out


def _synonyms(key: str, raw: Any) -> tuple[tuple[str, ...], ...]:
    """Accept ``[["快递", "物流"], …]`` or ``{快递 = ["物流", …]}`` (canonical word first)."""
    groups: list[tuple[str, ...]] = []
    if isinstance(raw, Mapping):
        for canonical, words in raw.items():
            if not isinstance(canonical, str) or not canonical.strip():
                raise ConfigError(key, "synonym keys must be non-empty strings")
            groups.append((canonical.strip(), *_words(f"{key}.{canonical}", words)))
    elif isinstance(raw, list | tuple):
        for i, group in enumerate(raw):
            words = _words(f"{key}[{i}]", group)
            if len(words) < 2:
                raise ConfigError(f"{key}[{i}]", "a synonym group needs at least two words")
            groups.append(words)
    else:
        raise ConfigError(key, "must be a list of word lists or a table of word = [synonyms]")
    return tuple(groups)


_DEFAULTS = BotSettings()
# the keys that take an ``extra_<name>``: word lists, team tables and the synonym groups
_VOCABULARIES = frozenset(
    f.name for f in dataclasses.fields(BotSettings) if isinstance(getattr(_DEFAULTS, f.name), tuple | Mapping)
)
