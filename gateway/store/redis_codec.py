"""How the Redis store turns Python values into script arguments and replies back into Python."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from gateway.model import Conversation, Entry, MetaPatch
from gateway.store.base import Placement


def text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def num(v: float | int) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def placement(p: Sequence[Any]) -> Placement:
    return Placement(text(p[0]), text(p[1]), agent=text(p[2]), position=int(p[3]), from_queue=bool(int(p[4])))


def placements(ps: Sequence[Sequence[Any]] | None) -> list[Placement]:
    return [placement(p) for p in ps or ()]


def entry_body(entry: Entry | None) -> bytes:
    """The entry's JSON without ``seq``/``ts`` and without its closing brace ("" for None)."""
    if entry is None:
        return b""
    return orjson.dumps({k: v for k, v in entry.items() if k not in ("seq", "ts")})[:-1]


def conversation(fields: Any) -> Conversation:
    """A conversation from its hash (a dict, or a flat HGETALL reply from a script).

    Meta is one ``m:<key>`` field per key (JSON); the customer's feedback one
    ``fb:<seq>`` field per bot message ("1" helpful, "0" not); ``o:`` (merge
    bookkeeping) and ``pt:`` (pending turns) fields are not part of the conversation.
    """
    if not isinstance(fields, dict):
        fields = {text(fields[i]): fields[i + 1] for i in range(0, len(fields), 2)}
    d: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    feedback: dict[str, bool] = {}
    for k, v in fields.items():
        key = text(k)
        if key.startswith("m:"):
            meta[key[2:]] = orjson.loads(v)
        elif key.startswith("fb:"):
            feedback[key[3:]] = text(v) == "1"
        elif not key.startswith(("o:", "pt:")):
            d[key] = text(v)
    return Conversation.from_dict({**d, "meta": meta, "feedback": feedback})


def meta_fields(meta: dict[str, Any]) -> list[Any]:
    """``m:<key>``, JSON … pairs for HSET."""
    out: list[Any] = []
    for k, v in meta.items():
        out += [f"m:{k}", orjson.dumps(v)]
    return out


# Fields most conversations never set (the closed loop's): left out of the hash while empty, as
# ``conversation`` reads a missing field as the default.
_SPARSE = frozenset(("resolution", "category", "follow_up_at", "follow_up_note", "follow_up_done_at", "reopened_from",
                     "prefer_agent"))


def conversation_fields(conv: Conversation) -> list[Any]:
    out: list[Any] = []
    for key, value in conv.to_dict().items():
        if key in _SPARSE and not value:
            continue
        if key == "meta":
            out += meta_fields(value)
        elif key == "feedback":
            for seq, helpful in value.items():
                out += [f"fb:{seq}", "1" if helpful else "0"]
        else:
            out += [key, num(value) if isinstance(value, int | float) else str(value)]
    return out


def _by(item: Any, by: str) -> float:
    v = item.get(by) if isinstance(item, dict) else None
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def patch(p: MetaPatch | None) -> bytes:
    """The JSON the scripts' ``patch_meta`` takes: values stay opaque JSON text."""
    if not p:
        return b""
    return orjson.dumps({
        "set": {k: orjson.dumps(v).decode() for k, v in p.set.items() if v is not None},
        "del": [k for k, v in p.set.items() if v is None],
        "union": {k: list(items) for k, items in p.union.items() if items},
        "merge": {
            k: {"keep": m.keep, "items": {ik: [_by(iv, m.by), orjson.dumps(iv).decode()] for ik, iv in m.items.items()}}
            for k, m in p.merge.items()
        },
    })
