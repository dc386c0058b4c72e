"""Built-in concept groups (``data/concepts.toml``): words shoppers use for the same thing."""

from __future__ import annotations

import tomllib
from pathlib import Path

DATA = Path(__file__).with_name("data") / "concepts.toml"


def load(path: Path = DATA) -> tuple[tuple[str, ...], ...]:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    return tuple(tuple(g) for g in raw.get("groups", ()) if len(g) >= 2)


CONCEPTS = load()
