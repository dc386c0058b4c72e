"""Word segmentation: one ``jieba.Tokenizer`` per built bot, never jieba's global one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import jieba

jieba.setLogLevel(logging.WARNING)

_base_lock = threading.Lock()
_base: jieba.Tokenizer | None = None

# Words that carry no meaning for matching (after fillers are stripped).
STOP_WORDS = frozenset(
    """
    的 了 吗 么 呢 啊 吧 呀 哦 噢 嘛 哈 啦 呐 哇 额 嗯 捏 滴 哟 喔 诶 欸 哎 唉 呗
    我 你 您 他 她 它 我们 你们 他们 咱 咱们 俺 人家 自己 本人
    是 在 就 都 也 还 又 再 才 得 地 着 过 和 与 跟 及 或 或者 而 但 但是 然后 那 那么 这么
    这 那个 这个 这边 那边 这里 那里 一下 一下子 下 个 些 点 一点 一些 有点
    请 请问 想 想要 要 需要 问 问下 问问 咨询 一个 麻烦 谢谢 亲 您好 你好 在吗 老板 客服
    呵呵 哈哈 嘿嘿 emmm 嗯嗯 好的 好 是的 是不是 有没有 有木有 是否 吧 啦 耶 哇塞 所以 因为 如果 的话 就是 其实 已经
    现在 刚刚 刚才 今天 昨天 一直 还是 到底 究竟 呃 嗷 哒 噻 撒
    """.split()
)


def _base_tokenizer() -> jieba.Tokenizer:
    """The default dictionary, loaded once per process (about a second), then copied per bot."""
    global _base
    with _base_lock:
        if _base is None:
            tk = jieba.Tokenizer()
            tk.initialize()
            _base = tk
        return _base


class Segmenter:
    """A private jieba tokenizer with the FAQ's own words added as user words."""

    def __init__(self, user_words: Iterable[str] = ()) -> None:
        base = _base_tokenizer()
        tk = jieba.Tokenizer()
        # Copy the loaded dictionary instead of reading it again: a bot is rebuilt on every reload.
        tk.FREQ = dict(base.FREQ)
        tk.total = base.total
        tk.initialized = True
        self._tk = tk
        for w in user_words:
            self.add_word(w)

    def add_word(self, word: str, freq: int | None = None) -> None:
        word = word.strip()
        if len(word) >= 2 and " " not in word:
            # A high frequency makes jieba keep the word whole even inside longer text.
            self._tk.add_word(word, freq if freq is not None else 20000)

    def knows(self, word: str) -> bool:
        return bool(self._tk.FREQ.get(word))

    def cut(self, text: str) -> list[str]:
        """Dictionary words only (no HMM guessing), so a query and a FAQ text split alike."""
        return [w for w in self._tk.cut(text, HMM=False) if w.strip()]

    def discover(self, text: str) -> list[str]:
        """New multi-character words that jieba's HMM finds in ``text`` (FAQ texts only)."""
        return [w for w in self._tk.cut(text, HMM=True) if len(w) >= 2 and not self.knows(w)]
