"""Word segmentation: one private dictionary per built bot, never jieba's global one.

jieba's dictionary is loaded once per process (about a second) and copied for each
bot; the FAQ's own words are added to the copy. ``Segmenter.cut`` is jieba's
"accurate mode without HMM" (the most probable path through the word DAG) written
as one tight loop: the same words as ``jieba.Tokenizer.cut(text, HMM=False)`` at
about a third of the cost, which matters when a 5,000-entry FAQ is indexed.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterable

import jieba
import jieba.finalseg as finalseg

jieba.setLogLevel(logging.WARNING)

_base_lock = threading.Lock()
_base: tuple[dict[str, float], int] | None = None

_PREFIX = -math.inf  # log-frequency of a string that only starts dictionary words
_RARE = math.log(2000)

# jieba's own block pattern: runs of these are segmented, anything else is one token per char.
_HAN_RE = re.compile("([\u4e00-\u9fd5a-zA-Z0-9+#&._%\\-]+)")
_ENG = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")

# Words that carry no meaning for matching (after fillers are stripped).
STOP_WORDS = frozenset(
    """
    的 了 吗 么 呢 啊 吧 呀 哦 噢 嘛 哈 啦 呐 哇 额 嗯 捏 滴 哟 喔 诶 欸 哎 唉 呗
    我 你 您 他 她 它 我们 你们 他们 咱 咱们 俺 人家 自己 本人
    是 在 就 都 也 还 又 再 才 得 地 着 过 和 与 跟 及 或 或者 而 但 但是 然后 那 那么 这么
    这 那个 这个 这边 那边 这里 那里 一下 一下子 下 个 些 点 一点 一些 有点
    请 请问 想 想要 要 需要 问 问下 问问 咨询 一个 麻烦 谢谢 亲 您好 你好 在吗 老板 客服
    呵呵 哈哈 嘿嘿 emmm 嗯嗯 好的 好 是的 是不是 有没有 有木有 是否 吧 啦 耶 哇塞 所以 因为 如果 的话 就是 其实 已经
    刚刚 刚才 昨天 一直 还是 到底 究竟 呃 嗷 哒 噻 撒
    东西 商品 宝贝 产品 一般 大概 大约 通常
    """.split()
)

_CACHE_MAX = 50_000


def _base_dictionary() -> tuple[dict[str, float], int]:
    """jieba's default dictionary as word -> log frequency, loaded once per process (about a second)."""
    global _base
    with _base_lock:
        if _base is None:
            tk = jieba.Tokenizer()
            tk.initialize()
            log = math.log
            _base = ({w: log(f) if f else _PREFIX for w, f in tk.FREQ.items()}, int(tk.total))
        return _base


class Segmenter:
    """A private copy of jieba's dictionary with the FAQ's own words added as user words."""

    def __init__(self, user_words: Iterable[str] = ()) -> None:
        logf, total = _base_dictionary()
        # Copy the loaded dictionary instead of reading it again: a bot is rebuilt on every reload.
        self._logf: dict[str, float] = dict(logf)
        self._total = total
        self._cache: dict[str, list[str]] = {}
        self._hmm: dict[str, list[str]] = {}  # jieba's HMM split of unknown runs (FAQ texts only)
        self.version = 0  # bumped by every new word (callers' caches depend on the dictionary)
        for w in user_words:
            self.add_word(w)

    def add_word(self, word: str, freq: int | None = None) -> None:
        word = word.strip()
        if len(word) >= 2 and " " not in word:
            # A high frequency makes jieba keep the word whole even inside longer text.
            f = freq if freq is not None else 20000
            lf = math.log(f) if f > 0 else _PREFIX
            if self._logf.get(word) == lf:
                return  # already there (a keyword of many entries): nothing changes
            self._logf[word] = lf
            self._total += f
            for i in range(1, len(word)):
                self._logf.setdefault(word[:i], _PREFIX)
            self._cache.clear()
            self.version += 1

    def clear_cache(self) -> None:
        """Forget segmented texts (benchmarks measuring cold queries)."""
        self._cache.clear()

    def knows(self, word: str) -> bool:
        return self._logf.get(word, _PREFIX) != _PREFIX

    def is_rare(self, word: str) -> bool:
        """Not a word, or a rare one in jieba's dictionary (漂: 424 of 60 million; 出: 85,847)."""
        return self._logf.get(word, _PREFIX) < _RARE

    def cut(self, text: str) -> list[str]:
        """Dictionary words only (no HMM guessing), so a query and a FAQ text split alike."""
        hit = self._cache.get(text)
        if hit is None:
            hit = []
            for blk in _HAN_RE.split(text):
                if not blk:
                    continue
                if _HAN_RE.fullmatch(blk):
                    self._cut_block(blk, hit)
                else:
                    hit.extend(ch for ch in blk if not ch.isspace())
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[text] = hit
        return list(hit)

    def _route(self, s: str) -> list[int]:
        """jieba's DAG + max-probability route (ties: the longer word), in one backward pass.

        ``route[k]`` is the end of the word that starts at ``k``.
        """
        get = self._logf.get
        logtotal = math.log(self._total)
        n = len(s)
        score = [0.0] * (n + 1)
        nxt = [0] * n
        for k in range(n - 1, -1, -1):
            best = -math.inf
            end = k
            i = k
            frag = s[k]
            found = False
            while i < n:
                lf = get(frag)
                if lf is None:
                    break
                if lf != _PREFIX:
                    found = True
                    v = lf - logtotal + score[i + 1]
                    if v >= best:
                        best = v
                        end = i
                i += 1
                frag = s[k : i + 1]
            if not found:
                best = -logtotal + score[k + 1]
                end = k
            score[k] = best
            nxt[k] = end + 1
        return nxt

    def _cut_block(self, s: str, out: list[str]) -> None:
        """``jieba.Tokenizer.cut(HMM=False)`` of one block: latin letters and digits stay together."""
        nxt = self._route(s)
        n = len(s)
        x = 0
        buf = ""
        while x < n:
            y = nxt[x]
            word = s[x:y]
            if y - x == 1 and word in _ENG:
                buf += word
            else:
                if buf:
                    out.append(buf)
                    buf = ""
                out.append(word)
            x = y
        if buf:
            out.append(buf)

    def discover(self, text: str) -> list[str]:
        """New multi-character words that jieba's HMM finds in ``text`` (FAQ texts only).

        As ``jieba.Tokenizer.cut(HMM=True)``: runs of single characters the dictionary
        does not know as a word go through jieba's HMM (``finalseg``).
        """
        found: list[str] = []
        for blk in _HAN_RE.split(text):
            if not blk or not _HAN_RE.fullmatch(blk):
                continue
            nxt = self._route(blk)
            runs: list[str] = []
            x = 0
            buf = ""
            while x < len(blk):
                y = nxt[x]
                if y - x == 1:
                    buf += blk[x]
                else:
                    runs.append(buf)
                    buf = ""
                x = y
            runs.append(buf)
            for run in runs:
                if len(run) >= 2 and not self.knows(run):
                    words = self._hmm.get(run)
                    if words is None:
                        words = self._hmm[run] = list(finalseg.cut(run))
                    found.extend(w for w in words if len(w) >= 2 and not self.knows(w))
        return found
