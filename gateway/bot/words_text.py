"""Built-in word lists that read a message: synonym groups, fillers and the small-talk words of
greetings, thanks and goodbyes (see ``settings.BotSettings``).

The words live in ``data/text.toml`` (package data, commented with where each list comes from),
read once at import. The helpers here read and check any of the bot's data files.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).with_name("data") / "text.toml"


class DataFileError(RuntimeError):
    """A built-in data file is missing or malformed (a packaging or editing mistake, not config)."""


def read_data(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DataFileError(f"{path}: {exc}") from None


def word_list(data: dict[str, Any], key: str, path: Path) -> tuple[str, ...]:
    """``data[key]``: a list of non-empty strings (a dotted key reaches into a table)."""
    value: Any = data
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DataFileError(f"{path}: missing {key}")
        value = value[part]
    if not isinstance(value, list) or not all(isinstance(w, str) and w.strip() for w in value):
        raise DataFileError(f"{path}: {key} must be a list of non-empty strings")
    return tuple(w.strip() for w in value)


def word_groups(data: dict[str, Any], key: str, path: Path) -> tuple[tuple[str, ...], ...]:
    """``data[key]``: a list of word lists of two words or more (synonym groups)."""
    value = data.get(key)
    if not isinstance(value, list):
        raise DataFileError(f"{path}: {key} must be a list of word lists")
    out: list[tuple[str, ...]] = []
    for i, group in enumerate(value):
        words = word_list({"g": group}, "g", path) if isinstance(group, list) else ()
        if len(words) < 2:
            raise DataFileError(f"{path}: {key}[{i}] must be a list of two words or more")
        out.append(words)
    return tuple(out)


def word_table(data: dict[str, Any], key: str, path: Path) -> dict[str, tuple[str, ...]]:
    """``data[key]``: a table of name = [words] (the team vocabularies)."""
    value = data.get(key)
    if not isinstance(value, dict):
        raise DataFileError(f"{path}: {key} must be a table of name = [words]")
    return {name: word_list(value, name, path) for name in value}


_DATA = read_data(DATA_FILE)

DEFAULT_SYNONYMS = word_groups(_DATA, "synonyms", DATA_FILE)
DEFAULT_FILLERS = word_list(_DATA, "fillers", DATA_FILE)
DEFAULT_GREETING_WORDS = word_list(_DATA, "greeting_words", DATA_FILE)
DEFAULT_THANKS_WORDS = word_list(_DATA, "thanks_words", DATA_FILE)
DEFAULT_BYE_WORDS = word_list(_DATA, "bye_words", DATA_FILE)
