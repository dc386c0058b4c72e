"""Built-in concept groups (``data/concepts.toml``): words shoppers use for the same thing."""

from __future__ import annotations

from pathlib import Path

from gateway.bot.words_text import read_data, word_groups

DATA = Path(__file__).with_name("data") / "concepts.toml"


def load(path: Path = DATA) -> tuple[tuple[str, ...], ...]:
    """The groups of ``path`` (``DataFileError`` naming the file on a bad one)."""
    return word_groups(read_data(path), "groups", path)


CONCEPTS = load()
