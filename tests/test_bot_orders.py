"""Order numbers in customer messages."""

from __future__ import annotations

import pytest

from gateway.bot.orders import extract_orders, strip_orders


@pytest.mark.parametrize(
    ("text", "orders"),
    [
        ("订单6919839412342345678什么时候发货", ("6919839412342345678",)),  # Douyin, 19 digits
        ("淘宝订单号：123456789012345678", ("123456789012345678",)),  # Taobao, 18 digits
        ("231127-123456789012345 怎么还没发货", ("231127-123456789012345",)),  # PDD
        ("拼多多 231127－123456789012345", ("231127-123456789012345",)),  # full-width dash
        ("小红书P712345678901234567", ("P712345678901234567",)),
        ("快手 2234567890123456", ("2234567890123456",)),  # 16 digits
        ("京东订单 301234567890 到哪了", ("301234567890",)),  # short id right after 订单
        ("订单１２３４５６７８９０１２３４５６７８９", ("1234567890123456789",)),  # full-width digits
        ("两单 6919839412342345678 和 6919839412342345679", ("6919839412342345678", "6919839412342345679")),
        ("我的手机13812345678", ()),  # phone numbers are not orders
        ("订单号 13812345678", ()),
        ("买了3件，花了199元", ()),
        ("6919839412342345678 6919839412342345678", ("6919839412342345678",)),
    ],
)
def test_extract(text: str, orders: tuple[str, ...]) -> None:
    assert extract_orders(text) == orders


def test_strip_leaves_the_question() -> None:
    assert strip_orders("231127-123456789012345怎么还没发货").strip() == "怎么还没发货"
