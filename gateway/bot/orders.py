"""Order numbers in customer messages, for the agent.

Formats (as customers paste them from the apps):
- Pinduoduo (拼多多): ``YYMMDD-`` + 15 digits, e.g. ``231127-123456789012345``.
- Xiaohongshu (小红书): ``P`` + 18 digits.
- Douyin / 抖店 (19 digits), Taobao / Tmall (18 or 19 digits), Kuaishou (16 digits),
  Vipshop and others: a bare run of 16 to 20 digits.
- JD (京东) and other shorter ids (10 to 15 digits) only right after "订单"/"单号"
  so that phone numbers, prices and tracking numbers are not taken for orders.
"""

from __future__ import annotations

import re
import unicodedata

from gateway.bot.normalize import nfkc

_PDD_RE = re.compile(r"(?<![0-9])(\d{6})\s*[-－—_]\s*(\d{15})(?![0-9])")
_XHS_RE = re.compile(r"(?<![0-9a-z])p(\d{18})(?![0-9])", re.IGNORECASE)
_LONG_RE = re.compile(r"(?<![0-9a-z\-])(\d{16,20})(?![0-9])", re.IGNORECASE)
_CONTEXT_RE = re.compile(
    r"(?:订单|單號|单号|訂單|order)[^0-9]{0,6}?(?<![0-9])(\d{10,15})(?![0-9])", re.IGNORECASE
)
_PHONE_RE = re.compile(r"1[3-9]\d{9}")
# Every order format, and every run that ``strip_orders`` removes, has 10 digits in a row.
_TEN_DIGITS_RE = re.compile(r"\d{10}")


def split_orders(text: str) -> tuple[tuple[str, ...], str]:
    """``(extract_orders(text), strip_orders(text))``, the latter in NFKC.

    A text without 10 digits in a row (most messages) is normalized once and no
    pattern runs on it.
    """
    body = nfkc(text)
    if _MARK not in body and not _TEN_DIGITS_RE.search(body):
        return (), body
    return extract_orders(text), nfkc(strip_orders(text))


def extract_orders(text: str) -> tuple[str, ...]:
    """Order numbers in ``text`` in order of appearance, without duplicates."""
    text = unicodedata.normalize("NFKC", text)
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []

    def add(start: int, end: int, value: str) -> None:
        if any(s < end and start < e for s, e in taken):
            return
        taken.append((start, end))
        found.append((start, value))

    for m in _PDD_RE.finditer(text):
        add(m.start(), m.end(), f"{m.group(1)}-{m.group(2)}")
    for m in _XHS_RE.finditer(text):
        add(m.start(), m.end(), "P" + m.group(1))
    for m in _LONG_RE.finditer(text):
        add(m.start(1), m.end(1), m.group(1))
    for m in _CONTEXT_RE.finditer(text):
        if not _PHONE_RE.fullmatch(m.group(1)):
            add(m.start(1), m.end(1), m.group(1))
    seen: set[str] = set()
    out: list[str] = []
    for _, value in sorted(found):
        if value not in seen:
            seen.add(value)
            out.append(value)
    return tuple(out)


_MARK = "\x00"
# "订单号：" and the like right before a number: a label, not part of the question
_LABEL_RE = re.compile(
    r"(?:订单编号|订单号|订单|单号|訂單編號|訂單號|訂單|單號|order\s*(?:no\.?|id|number)?)[\s:：#]*\x00",
    re.IGNORECASE,
)


def strip_orders(text: str) -> str:
    """``text`` with order-like digit runs (10+ digits) and their labels replaced by a space."""
    text = unicodedata.normalize("NFKC", text)
    text = _PDD_RE.sub(_MARK, text)
    text = _XHS_RE.sub(_MARK, text)
    text = re.sub(r"\d{10,}", _MARK, text)
    return _LABEL_RE.sub(" ", text).replace(_MARK, " ")
