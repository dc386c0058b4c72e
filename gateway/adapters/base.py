"""The adapter contract: what comes in (records, events), what goes out (messages), who sends.

Each platform module only translates its own format into these types, checks its
signature and calls its API; ingestion (``ingest``), outbound routing
(``outbound``) and delivery (``outbox``) never branch on a platform's fields.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson


class Kind(enum.StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    EMOJI = "emoji"
    GOODS_CARD = "goods_card"
    ORDER_CARD = "order_card"
    EVENT = "event"  # a chat-level event: withdrawn message, transfer notice …
    OTHER = "other"  # anything we do not know: stored as a placeholder


PLACEHOLDERS = {
    Kind.IMAGE: "[图片]",
    Kind.VIDEO: "[视频]",
    Kind.EMOJI: "[表情]",
    Kind.GOODS_CARD: "[商品卡片]",
    Kind.ORDER_CARD: "[订单卡片]",
    Kind.EVENT: "[系统消息]",
    Kind.OTHER: "[暂不支持的消息类型]",
}

# Native message types as the public bridges name them (PLATFORMS.md §4), to our kinds.
_NAMES = {
    "text": Kind.TEXT, "txt": Kind.TEXT,
    "image": Kind.IMAGE, "img": Kind.IMAGE, "picture": Kind.IMAGE, "user_local_image": Kind.IMAGE,
    "video": Kind.VIDEO, "user_local_video": Kind.VIDEO,
    "emoji": Kind.EMOJI, "emotion": Kind.EMOJI, "sticker": Kind.EMOJI,
    "goods_card": Kind.GOODS_CARD, "goods_inquiry": Kind.GOODS_CARD, "goods": Kind.GOODS_CARD,
    "order_card": Kind.ORDER_CARD, "order_info": Kind.ORDER_CARD, "order": Kind.ORDER_CARD,
    "event": Kind.EVENT, "withdraw": Kind.EVENT, "system_transfer": Kind.EVENT, "system": Kind.EVENT,
}
_EVENT_TEXT = {"withdraw": "[买家撤回了一条消息]", "system_transfer": "[会话转接]"}

# PDD's numeric ``type`` (JC0v0/PDD-customer-bot): 0 text (sub_type 0 goods card, 1 order),
# 1 image, 5 emotion, 14 video, 24 transfer, 64 goods inquiry, 1002 withdraw.
_PDD_TYPES = {1: "image", 5: "emotion", 14: "video", 24: "system_transfer", 64: "goods_inquiry", 1002: "withdraw"}


def map_kind(platform: str, kind: Any, sub_type: Any = None) -> tuple[Kind, str]:
    """A native or normalized message type to (kind, native name) — never raises.

    Accepts our kind names, the bridges' enum names (TEXT, EMOTION, ORDER_INFO …,
    any case), 抖音 ``message_type`` strings and PDD's numeric types.
    """
    if platform == "pdd" and isinstance(kind, int) and not isinstance(kind, bool):
        if kind == 0:
            name = {0: "goods_card", 1: "order_info"}.get(sub_type, "text") if isinstance(sub_type, int) else "text"
        else:
            name = _PDD_TYPES.get(kind, str(kind))
    elif isinstance(kind, str):
        name = kind.strip().lower()
    else:
        name = str(kind)
    return _NAMES.get(name, Kind.OTHER), name


def placeholder(kind: Kind, native: str = "", detail: str = "") -> str:
    """The Chinese text stored for a non-text message: ``[图片]``, ``[商品卡片] 标题`` …"""
    base = _EVENT_TEXT.get(native) or PLACEHOLDERS.get(kind, PLACEHOLDERS[Kind.OTHER])
    return f"{base} {detail}".strip() if detail else base


def customer_key(platform: str, shop: str, buyer: str) -> str:
    """The customer id of a platform buyer: one conversation history per (platform, shop, buyer)."""
    return f"{platform}:{shop}:{buyer}"


@dataclass(slots=True, frozen=True)
class InboundRecord:
    """One buyer message, normalized."""

    platform: str
    shop: str
    buyer_id: str
    buyer_nick: str
    msg_id: str  # the platform's message id: idempotency key
    kind: Kind
    text: str  # the text, or a placeholder for other kinds
    order: str = ""  # an order number the message carries (order card)
    time: float = 0.0  # when the buyer sent it (Unix seconds), 0 if unknown
    media_url: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)  # the payload as received
    delivery_id: str = ""  # the push's own id when the platform gives one (抖音 Msg-Id): dedupe on it

    @property
    def customer_id(self) -> str:
        return customer_key(self.platform, self.shop, self.buyer_id)

    @property
    def dedupe_id(self) -> str:
        return self.delivery_id or self.msg_id


class BadPayload(ValueError):
    """A push or relay body we cannot take: answered 400, nothing stored."""


class EventCategory(enum.StrEnum):
    ORDER = "order"  # attach to the buyer's open conversation as context
    AFTERSALE = "aftersale"  # open or update an after-sales conversation
    IGNORED = "ignored"  # acknowledged, nothing else


@dataclass(slots=True, frozen=True)
class PlatformEvent:
    """An order or after-sales event from a platform's push or message stream."""

    platform: str
    shop: str
    event_id: str  # the platform's message id (dedupe)
    category: EventCategory
    topic: str  # 抖店 tag, PDD type, TMC topic
    label: str  # what happened, in Chinese, for the agent
    order: str = ""
    aftersale_id: str = ""
    buyer_id: str = ""  # when the platform says (Taobao); else found through the order index
    buyer_nick: str = ""
    opens: bool = True  # an after-sales event that may open a conversation (not for 退款成功, 关闭)
    urgent: bool = False  # platform arbitration (仲裁客服介入)
    time: float = 0.0
    business_key: str = ""  # a second dedupe key for redeliveries under a new id
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class OutboundMessage:
    """One reply to a platform buyer (a log entry of a platform conversation)."""

    platform: str
    shop: str
    buyer: str
    conversation: str
    seq: int  # 0 for the one message that is not a log entry: the thanks for a rating
    text: str
    sender: str = "bot"  # bot | agent | system
    agent: Mapping[str, str] | None = None
    route: str = ""  # relay | douyin_im | "" (no way back to this buyer)
    reply: Mapping[str, Any] = field(default_factory=dict)  # route details kept in the conversation meta

    @property
    def key(self) -> str:
        """Our idempotency key for this send (relays dedupe on it)."""
        return f"gw-{self.conversation}-{self.seq}" if self.seq else f"gw-{self.conversation}-rated"


class SendError(Exception):
    """A send the platform refused or that did not get through.

    ``retryable`` for 5xx, timeouts and connection errors (retried with back-off);
    not for 4xx and for platform error codes that say the request is wrong.
    """

    def __init__(self, message: str, *, retryable: bool, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


class OutboundSender(Protocol):
    """Sends one message to one shop's platform or relay; raises SendError when it did not."""

    async def send(self, msg: OutboundMessage) -> None: ...


def http_error(status: int, body: str) -> SendError:
    """The SendError for an HTTP status outside 2xx: retry 5xx and 429, not other 4xx."""
    return SendError(f"HTTP {status}: {body[:200]}", retryable=status >= 500 or status == 429, status=status)


def business_key(topic: str, content: Any) -> str:
    """Topic + a digest of the content: the same event redelivered under another message id."""
    canon = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    return f"{topic}:{hashlib.sha1(canon, usedforsecurity=False).hexdigest()}"


def classify(topic: str, refund_prefix: str, trade_prefix: str, labels: Mapping[str, str]) -> tuple[EventCategory, str, bool]:
    """(category, label, may open a conversation) of an event-stream topic (PDD type, TMC topic)."""
    if topic.startswith(refund_prefix):
        terminal = topic.endswith(("Success", "Closed", "Close"))
        return EventCategory.AFTERSALE, labels.get(topic, f"售后消息（{topic}）"), not terminal
    if topic.startswith(trade_prefix):
        return EventCategory.ORDER, labels.get(topic, f"订单消息（{topic}）"), False
    return EventCategory.IGNORED, topic, False


def short_error(e: BaseException) -> str:
    """One short line for logs (aiohttp errors repr with every header)."""
    status = getattr(e, "status", None)
    text = f"{type(e).__name__}" + (f" status={status}" if status else "") + f": {str(e)[:160]}"
    return text.replace("\n", " ")
