"""The texts a bench customer sends, checked with the gateway's own bot.

Run as a script (``python bench/texts.py CONFIG CASES``) so that it imports the
gateway under test (the working tree, or a ``--snapshot`` on PYTHONPATH) and
nothing of the bench; prints one JSON object: questions, handoffs, note.

Questions are customer phrasings from the FAQ eval cases (typos, particles,
traditional characters, emoji: they take the bot's ranking path) that the bot
answers with the expected entry, interleaved with the FAQ's own questions
(exact hits). Handoff texts are the ones the bot hands to a person.

Prefixes and suffixes (greetings, asking phrases, particles, punctuation) turn
the questions into hundreds of thousands of texts the bot has never seen, so
the bench can send every text once per gateway process and no decision cache
answers any of it from memory; a prefix or suffix is kept only if the bot gives
every sampled question the same answer with it as without.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HANDOFF_CANDIDATES = ("转人工", "人工客服", "我要找人工")
# greetings, asking phrases, particles, punctuation, emoji: short, as customers type them; with the
# questions they make a few hundred thousand variants, more than a full run sends to one gateway
# process (about 150,000 in the faq scenario), so none repeats there
PREFIXES = ("", "亲，", "你好，", "您好，", "在吗？", "请问", "请问一下，", "老板，", "客服你好，", "麻烦问下，",
            "hello，", "在不在，", "问一下", "亲亲，", "哈喽，", "亲在吗？", "你好呀，", "掌柜的，", "客服，",
            "hi，", "我想问下，", "想问一下，", "咨询一下，", "那个，", "嗯，", "亲，请问", "你好，请问", "在吗，问一下")
SUFFIXES = ("", "？", "?", "呀", "呢", "啊", "~", "！", "。", "😊", "谢谢", "，谢谢", "？？", "哈",
            "呀？", "呢？", "啊？", "~~", "！！", "哈哈", "嘛", "…", "🙏", "👍", "～", "!", "吧", "哦", "啦",
            "，谢谢啦", "??", "。。")


def pick(config_path: str, cases_path: str, limit: int = 400) -> dict[str, Any]:
    from gateway.bot import load_faq
    from gateway.bot.types import DecisionKind
    from gateway.config import load_config
    from gateway.service.botholder import BotHolder

    cfg = load_config(config_path)
    bot = BotHolder(cfg.faq_path, cfg.bot).build()
    phrasings: list[str] = []
    cases = Path(cases_path)
    if cases.is_file():
        for line in cases.read_text(encoding="utf-8").splitlines():
            case = json.loads(line) if line.strip() else {}
            text, want = case.get("text"), case.get("expect")
            if not text or not want or case.get("vip"):
                continue
            d = bot.decide(text)
            if d.kind is DecisionKind.ANSWER and d.faq == want:
                phrasings.append(text)
    exact: list[str] = []
    for e in load_faq(cfg.faq_path):
        d = bot.decide(e.question)
        if d.kind is DecisionKind.ANSWER and d.faq == e.id:
            exact.append(e.question)
    mixed: list[str] = []
    for i in range(max(len(phrasings), len(exact))):  # interleave: about half and half
        mixed += [x[i] for x in (phrasings, exact) if i < len(x)]
    questions = list(dict.fromkeys(mixed))[:limit]
    handoffs = [t for t in HANDOFF_CANDIDATES if bot.decide(t).kind is DecisionKind.HANDOFF]
    # the answer each question gets, then the prefixes/suffixes that never change it on a sample
    answer = {q: bot.decide(q).faq for q in questions}
    sample = questions[:: max(1, len(questions) // 12)][:12]

    def keeps(pre: str, suf: str) -> bool:
        for q in sample:
            d = bot.decide(pre + q + suf)
            if d.kind is not DecisionKind.ANSWER or d.faq != answer[q]:
                return False
        return True

    prefixes = [p for p in PREFIXES if keeps(p, "")]
    suffixes = [x for x in SUFFIXES if keeps("", x)]
    note = (f"{len(questions)} texts the bot answers: {len(phrasings)} customer phrasings from "
            f"{cases.name} and {len(exact)} FAQ questions; {len(prefixes)} prefixes x {len(suffixes)} suffixes "
            f"make {len(questions) * (len(prefixes) * len(suffixes) - 1)} fresh variants")
    return {"questions": questions, "handoffs": handoffs, "prefixes": prefixes, "suffixes": suffixes,
            "note": note}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python bench/texts.py CONFIG CASES", file=sys.stderr)
        return 2
    print(json.dumps(pick(argv[0], argv[1]), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
