"""``gateway faq eval --faq FAQ_FILE CASES.jsonl [--json] [--config CONFIG.toml] [--errors]
[--without-faq-skills]``.

Each CASES line: ``{"text": "…", "expect": "<faq id>" | null, "skill": "…"?, "priority": "…"?}``;
``null`` means the message must not be answered from the FAQ. A ``null`` case with a ``skill`` or
``priority`` label must be handed off: agreement on those is also reported on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from gateway.bot.engine import FaqBot
from gateway.bot.faq import load_faq
from gateway.bot.settings import BotSettings
from gateway.bot.types import BotDecision, DecisionKind
from gateway.errors import ConfigError


@dataclass(slots=True, frozen=True)
class Case:
    text: str
    expect: str | None
    skill: str | None = None
    priority: str | None = None
    vip: bool = False


@dataclass(slots=True)
class EvalReport:
    cases: int = 0
    in_scope: int = 0
    correct: int = 0
    wrong: int = 0
    suggested: int = 0
    missed: int = 0
    out_of_scope: int = 0
    out_of_scope_answered: int = 0
    skill_correct: int = 0
    skill_total: int = 0
    priority_correct: int = 0
    priority_total: int = 0
    accuracy: float = 0.0
    wrong_rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    # added later: agreement on the labels as shares (0 when nothing is labelled), overall and on
    # the cases that must be handed off (expect null, with a skill or priority label)
    skill_agreement: float = 0.0
    priority_agreement: float = 0.0
    must_handoff: int = 0
    must_handoff_handed_off: int = 0
    handoff_skill_correct: int = 0
    handoff_skill_total: int = 0
    handoff_skill_agreement: float = 0.0
    handoff_priority_correct: int = 0
    handoff_priority_total: int = 0
    handoff_priority_agreement: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The contract keys of ``--json`` (no failure details)."""
        d = asdict(self)
        d.pop("failures")
        return d


def read_cases(path: str | Path) -> list[Case]:
    """Parse a JSONL cases file; raise ``ConfigError`` naming the bad line."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise ConfigError("cases", f"cannot read {p}: {exc.strerror or exc}") from None
    out: list[Case] = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{p.name}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(where, f"not valid JSON: {exc}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or "expect" not in obj:
            raise ConfigError(where, 'needs {"text": "...", "expect": "<faq id>" | null}')
        expect = obj["expect"]
        if expect is not None and not isinstance(expect, str):
            raise ConfigError(where, "expect must be a FAQ id or null")
        skill, priority = obj.get("skill"), obj.get("priority")
        if skill is not None and not isinstance(skill, str):
            raise ConfigError(where, "skill must be a string")
        if priority is not None and priority not in ("normal", "high", "urgent"):
            raise ConfigError(where, "priority must be normal, high or urgent")
        out.append(Case(obj["text"], expect, skill, priority, bool(obj.get("vip", False))))
    return out


def evaluate(
    decide: Callable[..., BotDecision],
    cases: Iterable[Case],
    *,
    known_ids: Sequence[str] | None = None,
) -> EvalReport:
    """Run every case through ``decide`` and count; ``failures`` lists the cases that were not right."""
    r = EvalReport()
    times: list[float] = []
    known = set(known_ids) if known_ids is not None else None
    for c in cases:
        t0 = time.perf_counter()
        d = decide(c.text, vip=c.vip)
        times.append((time.perf_counter() - t0) * 1000.0)
        r.cases += 1
        answered = d.kind is DecisionKind.ANSWER
        outcome: str
        if c.expect is None:
            r.out_of_scope += 1
            if answered:
                r.out_of_scope_answered += 1
                outcome = "out_of_scope_answered"
            else:
                outcome = "ok"
        else:
            r.in_scope += 1
            if known is not None and c.expect not in known:
                outcome = "unknown_id"
                r.missed += 1
            elif answered and d.faq == c.expect:
                r.correct += 1
                outcome = "ok"
            elif answered:
                r.wrong += 1
                outcome = "wrong"
            elif d.kind is DecisionKind.SUGGEST and any(s.faq == c.expect for s in d.suggestions):
                r.suggested += 1
                outcome = "suggested"
            else:
                r.missed += 1
                outcome = "missed"
        bad_labels: list[str] = []
        must_handoff = c.expect is None and (c.skill is not None or c.priority is not None)
        if must_handoff:
            r.must_handoff += 1
            r.must_handoff_handed_off += d.kind is DecisionKind.HANDOFF
        if c.skill is not None:
            right = d.skill == c.skill
            r.skill_total += 1
            r.skill_correct += right
            r.handoff_skill_total += must_handoff
            r.handoff_skill_correct += must_handoff and right
            if not right:
                bad_labels.append(f"skill {d.skill or '-'}!={c.skill}")
        if c.priority is not None:
            right = d.priority.value == c.priority
            r.priority_total += 1
            r.priority_correct += right
            r.handoff_priority_total += must_handoff
            r.handoff_priority_correct += must_handoff and right
            if not right:
                bad_labels.append(f"priority {d.priority.value}!={c.priority}")
        if outcome != "ok" or bad_labels:
            r.failures.append(
                {
                    "text": c.text,
                    "expect": c.expect,
                    "outcome": outcome,
                    "got": d.faq or d.kind.value,
                    "suggestions": [s.faq for s in d.suggestions],
                    "score": round(d.score, 3),
                    "labels": bad_labels,
                }
            )
    r.accuracy = _share(r.correct, r.in_scope)
    r.wrong_rate = _share(r.wrong, r.in_scope)
    r.skill_agreement = _share(r.skill_correct, r.skill_total)
    r.priority_agreement = _share(r.priority_correct, r.priority_total)
    r.handoff_skill_agreement = _share(r.handoff_skill_correct, r.handoff_skill_total)
    r.handoff_priority_agreement = _share(r.handoff_priority_correct, r.handoff_priority_total)
    r.p50_ms = _percentile(times, 50)
    r.p99_ms = _percentile(times, 99)
    return r


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(pct / 100.0 * (len(s) - 1))))
    return round(s[k], 4)


def settings_from_config(path: str | Path) -> BotSettings:
    """The ``[bot]`` table of a gateway config file as ``BotSettings``."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("config", f"cannot read {p}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{p}: not valid TOML: {exc}") from None
    return BotSettings.from_mapping(data.get("bot", {}))


def print_report(r: EvalReport, out: TextIO, *, errors: bool = False) -> None:
    """The report as a table (``gateway faq eval`` without ``--json``)."""
    rows = [
        ("cases", r.cases),
        ("in_scope", r.in_scope),
        ("correct", r.correct),
        ("wrong", r.wrong),
        ("suggested", r.suggested),
        ("missed", r.missed),
        ("out_of_scope", r.out_of_scope),
        ("out_of_scope_answered", r.out_of_scope_answered),
        ("skill", f"{r.skill_correct}/{r.skill_total} ({r.skill_agreement:.3f})"),
        ("priority", f"{r.priority_correct}/{r.priority_total} ({r.priority_agreement:.3f})"),
        ("must_handoff", f"{r.must_handoff_handed_off}/{r.must_handoff} handed off"),
        (
            "handoff_skill",
            f"{r.handoff_skill_correct}/{r.handoff_skill_total} ({r.handoff_skill_agreement:.3f})",
        ),
        (
            "handoff_priority",
            f"{r.handoff_priority_correct}/{r.handoff_priority_total} ({r.handoff_priority_agreement:.3f})",
        ),
        ("accuracy", f"{r.accuracy:.3f}"),
        ("wrong_rate", f"{r.wrong_rate:.3f}"),
        ("p50_ms", f"{r.p50_ms:.3f}"),
        ("p99_ms", f"{r.p99_ms:.3f}"),
    ]
    for k, v in rows:
        print(f"{k:<22} {v}", file=out)
    if errors and r.failures:
        print("\nfailures:", file=out)
        for f in r.failures:
            print(
                f"  [{f['outcome']}] {f['text']!r} expect={f['expect']} got={f['got']} "
                f"sugg={f['suggestions']} score={f['score']} {' '.join(f['labels'])}",
                file=out,
            )


def main(argv: list[str]) -> int:
    """Entry point of ``gateway faq eval``; returns the process exit code (2 on bad input)."""
    ap = argparse.ArgumentParser(
        prog="gateway faq eval", description="Measure the FAQ bot on labelled cases."
    )
    ap.add_argument("--faq", required=True, help="FAQ file (.toml or .json)")
    ap.add_argument("cases", help="JSONL file of labelled cases")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--config", help="gateway config whose [bot] table sets thresholds and words")
    ap.add_argument("--errors", action="store_true", help="also list every case that was not right")
    ap.add_argument(
        "--without-faq-skills",
        action="store_true",
        help="ignore the FAQ entries' skill (a shop's first FAQ file): teams from the built-in words only",
    )
    args = ap.parse_args(argv)
    try:
        settings = settings_from_config(args.config) if args.config else BotSettings()
        entries = load_faq(args.faq)
        cases = read_cases(args.cases)
        if args.without_faq_skills:
            bot = FaqBot.build([replace(e, skill="") for e in entries], settings, synonyms=entries.synonyms)
        else:
            bot = FaqBot.build(entries, settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = evaluate(bot.decide, cases, known_ids=[e.id for e in entries])
    if args.json:
        summary = report.summary()
        if args.errors:
            summary["failures"] = report.failures
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print_report(report, sys.stdout, errors=args.errors)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
