"""The bot's text handling: segmentation, normalization rules, issue words, margin, index edge cases."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import jieba
import pytest

from gateway.bot import BotSettings, DecisionKind, FaqBot, FaqEntry, load_faq
from gateway.bot.engine import _lead
from gateway.bot.eval import read_cases
from gateway.bot.normalize import (
    _A_NOT_A_RE,
    _NFKC_SIMPLE_RE,
    _NOISE_RE,
    _NUMERAL_RE,
    _PARTICLE_REPEAT_RE,
    _REPEAT_RE,
    _numeral,
    clauses,
    clauses_many,
    clauses_of_nfkc,
    fold,
    nfkc,
)
from gateway.bot.orders import extract_orders, split_orders, strip_orders
from gateway.bot.pinyin import HomophoneFixer, sound
from gateway.bot.segment import Segmenter
from gateway.bot.slots import read_slots

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="module")
def bot() -> FaqBot:
    return FaqBot.build(load_faq(ROOT / "configs" / "faq.toml"), BotSettings())


def _texts() -> list[str]:
    out: list[str] = []
    for faq, cases in (
        (ROOT / "configs" / "faq.toml", DATA / "faq_cases.jsonl"),
        (DATA / "heldout_faq.toml", DATA / "heldout_cases.jsonl"),
    ):
        out.extend(t for e in load_faq(faq) for t in e.texts)
        out.extend(c.text for c in read_cases(cases))
    return out


def test_segmenter_cuts_like_jieba() -> None:
    """Same dictionary, same words as jieba's accurate mode without HMM, and the same HMM finds."""
    user = ["运费险", "以旧换新", "7天"]
    seg = Segmenter(user)
    tk = jieba.Tokenizer()
    tk.initialize()
    for w in user:
        tk.add_word(w, 20000)
    sample = [c for t in _texts() for c in clauses(t)]
    sample += ["iphone15promax多少钱", "abc12中文x", "㐀测试", "运费险怎么理赔48小时"]
    for c in [*random.Random(3).sample(sample, 400), *sample[-4:]]:
        assert seg.cut(c) == [w for w in tk.cut(c, HMM=False) if w.strip()], c
        assert seg.discover(c) == [w for w in tk.cut(c, HMM=True) if len(w) >= 2 and not seg.knows(w)], c


def test_segmenter_repeated_word_changes_nothing() -> None:
    seg = Segmenter(["运费险"])
    version = seg.version
    seg.add_word("运费险")
    assert seg.version == version


def test_normalization_rules() -> None:
    assert clauses("包不包邮？") == ["包邮"]
    assert clauses("能不能发顺丰") == ["能发顺丰"]
    assert clauses("有没有货") == ["有货"]
    assert clauses("七天无理由") == ["7天无理由"]
    assert clauses("十五天价保，两件包邮") == ["15天价保", "2件包邮"]
    assert clauses("等一下") == ["等一下"]  # no unit: not a number
    assert clauses("什麼時候發貨！！") == ["什么时候发货"]


def test_clauses_many_equals_clauses() -> None:
    texts = [*_texts()[:500], "啊啊啊", "ＡＢＣ好", "line\nbreak", ""]
    assert clauses_many(texts) == [clauses(t) for t in texts]


def test_order_labels_go_with_the_number() -> None:
    assert strip_orders("订单号：231127-123456789012345").strip() == ""
    assert strip_orders("订单6919839412342345678什么时候发货").strip() == "什么时候发货"


def test_aspect_particle_inside_a_word(bot: FaqBot) -> None:
    analyze = bot._analyzer.analyze
    assert analyze("付完款多久发货", query=True).terms == analyze("付款多久发货", query=True).terms
    assert "下单" in bot._analyzer._rejoin("下了单还能改吗")


def test_issue_words_keep_problem_reports_from_answers(bot: FaqBot) -> None:
    d = bot.decide("优惠券过期了还能用吗")
    assert d.kind is not DecisionKind.ANSWER and "issue:过期" in d.reasons
    # an entry about that very problem still answers it
    d = bot.decide("发错货了怎么办")
    assert d.kind is DecisionKind.ANSWER and d.faq == "wrong_item"
    # 少 counts as a word of its own, not inside 多少
    assert not any(r.startswith("issue:") for r in bot.decide("运费多少钱").reasons)


def test_margin_is_compared_on_log_odds() -> None:
    assert _lead(0.99, 0.95) > 0.10
    assert _lead(0.60, 0.56) < 0.10
    assert _lead(0.5, 0.0) > 0.49
    assert _lead(0.7, 0.7) == pytest.approx(0.0)


def test_empty_faq_and_entry_without_words() -> None:
    empty = FaqBot.build([])
    assert empty.faq_count == 0
    assert empty.decide("什么时候发货").kind is DecisionKind.HANDOFF
    assert empty.decide("你好").kind is DecisionKind.SMALLTALK
    b = FaqBot.build(
        [FaqEntry("hi", "你好吗", "好"), FaqEntry("ship", "包邮吗", "满99包邮", keywords=("包邮",))]
    )
    assert b.decide("包不包邮").faq == "ship"
    assert b.decide("你好吗").faq == "hi"  # its question is all fillers, yet typing it answers


def test_feature_rows_match_single_entry_features(bot: FaqBot) -> None:
    index = bot._index
    q = index.prepare(bot._analyzer.analyze("亲，快递一般几天能到呀", query=True))
    cands = index.candidates(q)
    assert cands
    matrix = index.feature_matrix(q, cands)
    for row, e in zip(matrix.tolist(), cands, strict=True):
        assert tuple(index.features(q, e)) == pytest.approx(tuple(row))


_ODD_TEXTS = [
    "订单１２３４５６７８９０１２３４５６什么时候发货",
    "订单\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661发货",
    "订单\x00号什么时候发货",
    "订单号：1234567890 能退吗",
    "13812345678 什么时候发货",
    "P123456789012345678 到哪了",
    "ORDER NO. 6919839412342345678 发货了吗",
    "单号①②③④⑤⑥⑦⑧⑨⑩",
    "e1234567890\u0301",
    "啊啊啊啊呀呀",
    "发货发货发货",
    "不不不没没没有",
    "能不能退，包不包邮？？",
    "\n\n\n",
    "",
]


def test_split_orders_equals_extract_and_strip() -> None:
    for t in [*_texts()[:300], *_ODD_TEXTS]:
        assert split_orders(t) == (extract_orders(t), unicodedata.normalize("NFKC", strip_orders(t))), t


def test_clauses_skip_only_rules_that_cannot_apply() -> None:
    def reference(text: str) -> list[str]:  # every rule on every text
        text = fold(text)
        text = _REPEAT_RE.sub(r"\1", text)
        text = _PARTICLE_REPEAT_RE.sub(r"\1", text)
        text = _A_NOT_A_RE.sub(r"\1", text)
        text = read_slots(_NUMERAL_RE.sub(_numeral, text))
        return [c for c in _NOISE_RE.split(text) if c]

    for t in [*_texts(), *_ODD_TEXTS]:
        assert clauses(t) == reference(t), t
        assert clauses_of_nfkc(unicodedata.normalize("NFKC", t)) == reference(t), t


def test_query_analysis_clause_by_clause_equals_whole(bot: FaqBot) -> None:
    a = bot._analyzer
    texts = [*_texts(), *_ODD_TEXTS, "亲，什么时候发货？谢谢", "你好，发漂怎么开，急"]
    for warm in (False, True):
        if not warm:
            bot.clear_caches()
        for t in texts:
            parts = a.clauses(t)
            assert a.analyze_clauses(parts, query=True) == a._analyze(parts, query=True), t


def _fix_reference(fixer: HomophoneFixer, tokens: list[str]) -> tuple[list[str], list[str]]:
    """``HomophoneFixer.fix`` as first written: the sound of every span computed afresh."""
    out: list[str] = []
    fixes: list[str] = []
    i = 0
    n = len(tokens)
    voc, by_sound = fixer.vocabulary, fixer._by_sound
    while i < n:
        replaced = False
        if tokens[i] not in voc:
            span = ""
            best: tuple[int, str] | None = None
            for j in range(i, min(n, i + 4)):
                if tokens[j] in voc and not (j == i + 1 and len(tokens[i]) == 1):
                    break
                span += tokens[j]
                if len(span) > 4:
                    break
                if j == i and len(span) >= 2 and fixer._is_word(span):
                    break
                if len(span) >= 2:
                    word = by_sound.get(sound(span))
                    if word is not None and word != span:
                        best = (j, word)
            if best is not None:
                j, word = best
                fixes.append(f"{''.join(tokens[i : j + 1])}>{word}")
                out.append(word)
                i = j + 1
                replaced = True
            elif len(tokens[i]) == 1 and out and len(out[-1]) >= 2 and fixer._is_rare(tokens[i]):
                span = out[-1][-1] + tokens[i]
                word = by_sound.get(sound(span))
                if word is not None and word != span and len(word) == 2:
                    fixes.append(f"{out[-1]}{tokens[i]}>{out[-1][:-1]}{word}")
                    out[-1] = out[-1][:-1]
                    out.append(word)
                    i += 1
                    replaced = True
        if not replaced:
            out.append(tokens[i])
            i += 1
    return out, fixes


def test_homophone_fix_equals_reference(bot: FaqBot) -> None:
    fixer = bot._analyzer._fixer
    assert fixer is not None
    cut = bot._analyzer.segmenter.cut
    extra = ["发漂怎么开", "积份怎么用", "法货了吗", "冲电器坏了", "开发漂", "abc发漂", "x发漂y", "㐀发漂"]
    clauses_ = [c for t in [*_texts(), *_ODD_TEXTS, *extra] for c in bot._analyzer.clauses(t)]
    fixed = 0
    for c in clauses_:
        tokens = cut(c)
        got = fixer.fix(list(tokens))
        assert got == _fix_reference(fixer, list(tokens)), c
        fixed += bool(got[1])
    assert fixed >= 10


def test_nfkc_shortcut_equals_unicodedata() -> None:
    simple = [chr(cp) for cp in range(0x110000) if 0xD800 > cp or cp > 0xDFFF]
    simple = [c for c in simple if _NFKC_SIMPLE_RE.fullmatch(c)]
    assert len(simple) > 20_000
    # no character of the class combines with its neighbour: no combining marks, and none is
    # the second half of a canonical composition
    seconds = set()
    for cp in range(0x110000):
        d = unicodedata.decomposition(chr(cp))
        if d and not d.startswith("<") and len(d.split()) == 2:
            seconds.add(chr(int(d.split()[1], 16)))
    assert not [c for c in simple if unicodedata.combining(c) or c in seconds]
    for c in simple:
        assert nfkc(c) == unicodedata.normalize("NFKC", c), hex(ord(c))
    rnd = random.Random(5)
    pool = [*simple[:200], *"，。？！～　…①ｶﾞé\u0301\u3099가각ㄱ\u1161", *rnd.sample(simple, 300)]
    for t in [
        *_texts(),
        *_ODD_TEXTS,
        *("".join(rnd.choices(pool, k=rnd.randint(1, 12))) for _ in range(5000)),
    ]:
        assert nfkc(t) == unicodedata.normalize("NFKC", t), t
