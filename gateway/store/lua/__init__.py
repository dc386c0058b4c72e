"""The Redis store's Lua scripts: one ``.lua`` file per atomic step.

A line ``-- @include "name"`` is replaced by ``includes/name.lua`` (once per
script, recursively), the way BullMQ assembles its commands.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
_INCLUDE = re.compile(r'^--\s*@include\s+"([\w-]+)"\s*$', re.M)


@dataclass(slots=True, frozen=True)
class LuaScript:
    name: str
    source: str
    sha: str  # SHA1 of source: what EVALSHA wants


def _expand(text: str, seen: set[str]) -> str:
    def include(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in seen:
            return f"-- (included {name} above)"
        seen.add(name)
        body = (HERE / "includes" / f"{name}.lua").read_text(encoding="utf-8")
        return _expand(body, seen)

    return _INCLUDE.sub(include, text)


def load(name: str) -> LuaScript:
    """The script ``name.lua`` with its includes expanded."""
    source = _expand((HERE / f"{name}.lua").read_text(encoding="utf-8"), set())
    return LuaScript(name, source, hashlib.sha1(source.encode()).hexdigest())


def names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.lua"))
