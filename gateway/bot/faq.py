"""The FAQ file: ``[[faq]]`` entries (TOML, or the same structure as JSON) and optional synonyms."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

_ENTRY_KEYS = {"id", "question", "similar", "keywords", "answer", "skill"}


@dataclass(slots=True, frozen=True)
class FaqEntry:
    id: str
    question: str
    answer: str
    similar: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    skill: str = ""

    @property
    def texts(self) -> tuple[str, ...]:
        """The question first, then its paraphrases."""
        return (self.question, *self.similar)


class FaqList(list[FaqEntry]):
    """The entries of a FAQ file; ``synonyms`` holds its synonym groups (canonical word first)."""

    synonyms: tuple[tuple[str, ...], ...] = ()


def load_faq(path: str | Path) -> FaqList:
    """Read and validate a FAQ file (``.toml`` or ``.json``).

    Raises ``ConfigError`` whose key names the file and the bad entry, e.g.
    ``faq[3].answer`` or ``faq[ship_time].similar``.
    """
    p = Path(path)
    try:
        raw_bytes = p.read_bytes()
    except OSError as exc:
        raise ConfigError("bot.faq", f"cannot read {p}: {exc.strerror or exc}") from None
    try:
        text = raw_bytes.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError("bot.faq", f"{p} is not UTF-8") from None
    return parse_faq(text, fmt="json" if p.suffix.lower() == ".json" else "toml", source=str(p))


def parse_faq(text: str, *, fmt: str = "toml", source: str = "<faq>") -> FaqList:
    """Parse FAQ file content; see ``load_faq``."""
    try:
        data: Any = json.loads(text) if fmt == "json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("bot.faq", f"{source}: not valid {fmt.upper()}: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError("faq", f"{source}: the top level must be a table/object with a 'faq' list")
    unknown = sorted(set(data) - {"faq", "synonyms"})
    if unknown:
        raise ConfigError(
            unknown[0], f"{source}: unknown top-level key (expected 'faq' and optional 'synonyms')"
        )
    items = data.get("faq")
    if not isinstance(items, list) or not items:
        raise ConfigError("faq", f"{source}: needs a non-empty list of [[faq]] entries")
    out = FaqList()
    seen_ids: dict[str, int] = {}
    seen_questions: dict[str, str] = {}
    for i, item in enumerate(items):
        entry = _entry(i, item, source)
        if entry.id in seen_ids:
            raise ConfigError(
                f"faq[{entry.id}].id", f"{source}: duplicate id (entries {seen_ids[entry.id]} and {i})"
            )
        seen_ids[entry.id] = i
        qkey = _question_key(entry.question)
        if qkey in seen_questions:
            raise ConfigError(
                f"faq[{entry.id}].question",
                f"{source}: same question as entry {seen_questions[qkey]!r}",
            )
        seen_questions[qkey] = entry.id
        out.append(entry)
    out.synonyms = _synonym_groups(data.get("synonyms", ()), source)
    return out


def _question_key(question: str) -> str:
    from gateway.bot.normalize import clauses

    return "".join(clauses(question))


def _entry(i: int, item: Any, source: str) -> FaqEntry:
    where = f"faq[{i}]"
    if not isinstance(item, Mapping):
        raise ConfigError(where, f"{source}: each entry must be a table")
    ident = item.get("id")
    if not isinstance(ident, str) or not ident.strip():
        raise ConfigError(f"{where}.id", f"{source}: missing or empty id")
    ident = ident.strip()
    where = f"faq[{ident}]"
    unknown = sorted(set(item) - _ENTRY_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}", f"{source}: unknown key (known: {', '.join(sorted(_ENTRY_KEYS))})"
        )
    for key in ("question", "answer"):
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}.{key}", f"{source}: missing or empty {key}")
    skill = item.get("skill", "")
    if not isinstance(skill, str):
        raise ConfigError(f"{where}.skill", f"{source}: must be a string")
    return FaqEntry(
        id=ident,
        question=str(item["question"]).strip(),
        answer=str(item["answer"]).strip(),
        similar=_strings(f"{where}.similar", item.get("similar", []), source),
        keywords=_strings(f"{where}.keywords", item.get("keywords", []), source),
        skill=skill.strip(),
    )


def _strings(key: str, raw: Any, source: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise ConfigError(key, f"{source}: must be a list of strings")
    return tuple(s.strip() for s in raw if s.strip())


def _synonym_groups(raw: Any, source: str) -> tuple[tuple[str, ...], ...]:
    """``[synonyms]`` as ``快递 = ["物流", "包裹"]`` or a list of word lists."""
    groups: list[tuple[str, ...]] = []
    if isinstance(raw, Mapping):
        for canonical, words in raw.items():
            groups.append((str(canonical).strip(), *_strings(f"synonyms.{canonical}", words, source)))
    elif isinstance(raw, Sequence) and not isinstance(raw, str):
        for i, words in enumerate(raw):
            group = _strings(f"synonyms[{i}]", words, source)
            if len(group) < 2:
                raise ConfigError(f"synonyms[{i}]", f"{source}: a synonym group needs at least two words")
            groups.append(group)
    else:
        raise ConfigError("synonyms", f"{source}: must be a table or a list of word lists")
    return tuple(groups)
