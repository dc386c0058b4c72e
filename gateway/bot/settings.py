"""The bot's settings: the ``[bot]`` table of the gateway config, validated once."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import ConfigError

_DEFAULT_HANDOFF_PHRASES = (
    "转人工",
    "人工",
    "真人",
    "找客服",
    "联系客服",
    "叫客服",
    "客服出来",
    "要客服",
    "客服呢",
    "接客服",
    "活人",
    "找你们领导",
    "找领导",
    "找经理",
    "机器人",
)

_DEFAULT_URGENT_WORDS = (
    "投诉",
    "12315",
    "12345",
    "消协",
    "消费者协会",
    "工商",
    "市场监管",
    "曝光",
    "媒体",
    "记者",
    "律师",
    "起诉",
    "法院",
    "报警",
    "举报",
    "差评",
    "维权",
    "冒烟",
    "起火",
    "着火",
    "火灾",
    "爆炸",
    "炸了",
    "自燃",
    "漏电",
    "触电",
    "电到",
    "烫伤",
    "烧伤",
    "受伤",
    "划伤",
    "误食",
    "吞下",
    "中毒",
    "过敏了",
    "过敏反应",
    "起疹子",
    "红肿",
    "拉肚子",
    "腹泻",
    "呕吐",
    "食物中毒",
    "送医",
    "进医院",
    "去医院",
    "住院",
    "骗子",
    "诈骗",
)

_DEFAULT_HIGH_WORDS = (
    "扣款",
    "扣费",
    "扣钱",
    "扣了",
    "多扣",
    "重复扣",
    "扣两次",
    "付了两次",
    "付款失败",
    "支付失败",
    "付不了款",
    "付不了钱",
    "付不了",
    "无法支付",
    "付款不成功",
    "支付不成功",
    "付款异常",
    "支付异常",
    "钱没了",
    "钱付了",
    "付了钱",
    "已付款",
    "已经付款",
    "退款没到",
    "退款还没到",
    "没收到退款",
    "盗刷",
    "失败",
)

# Words of a problem report (过期, 丢了, 写错, 失败 …; a single character only as a word of its
# own: 少 in 少东西 but not in 多少). A message reporting a problem the best FAQ entry does not
# mention (优惠券过期了还能用吗 vs. 有优惠券吗) asks something else: the bot suggests or hands
# off instead of answering.
_DEFAULT_ISSUE_WORDS = (
    "丢",
    "坏",
    "错",
    "破",
    "漏",
    "少",
    "烂",
    "碎",
    "丢了",
    "丢失",
    "弄丢",
    "过期",
    "失败",
    "错了",
    "写错",
    "填错",
    "开错",
    "发错",
    "拍错",
    "下错",
    "坏了",
    "坏掉",
    "坏的",
    "破了",
    "破损",
    "漏发",
    "少发",
    "少了",
    "没到",
    "没收到",
    "收不到",
    "不能用",
    "用不了",
    "打不开",
    "异常",
    "故障",
    "不对",
    "驳回",
    "被拒",
    "拒绝",
    "被取消",
    "被封",
    "重开",
    "补发",
    "扣了",
    "没退",
    "少退",
)

_DEFAULT_SKILL_KEYWORDS: dict[str, tuple[str, ...]] = {
    "presale": (
        "优惠",
        "优惠券",
        "券",
        "满减",
        "活动",
        "价格",
        "便宜",
        "降价",
        "价保",
        "保价",
        "尺码",
        "尺寸",
        "码数",
        "大小",
        "颜色",
        "材质",
        "面料",
        "有货",
        "现货",
        "库存",
        "缺货",
        "补货",
        "预售",
        "推荐",
        "适合",
        "正品",
        "发票",
        "会员",
        "积分",
        "赠品",
        "下单",
        "拍下",
        "购买",
        "怎么买",
        "付款方式",
        "支付方式",
        "规格",
        "型号",
        "参数",
        "功能",
        "区别",
        "保质期",
    ),
    "aftersale": (
        "退货",
        "退款",
        "退钱",
        "换货",
        "退换",
        "售后",
        "维修",
        "保修",
        "质保",
        "坏了",
        "坏的",
        "破损",
        "损坏",
        "质量",
        "瑕疵",
        "少发",
        "漏发",
        "发错",
        "错发",
        "不能用",
        "用不了",
        "故障",
        "假货",
        "赔偿",
        "补偿",
        "退运费",
        "运费险",
        "安装",
        "使用",
        "说明书",
        "起火",
        "着火",
        "冒烟",
        "爆炸",
        "漏电",
        "异味",
        "有味道",
        "不满意",
        "不喜欢",
        "色差",
    ),
    "logistics": (
        "快递",
        "物流",
        "发货",
        "到货",
        "送货",
        "配送",
        "派送",
        "签收",
        "收货",
        "包裹",
        "单号",
        "运单",
        "到哪",
        "几天到",
        "多久到",
        "顺丰",
        "中通",
        "圆通",
        "韵达",
        "申通",
        "京东快递",
        "邮政",
        "ems",
        "地址",
        "改地址",
        "驿站",
        "丢件",
        "不更新",
        "没更新",
        "丢了",
        "没收到",
        "催",
        "运费",
        "包邮",
        "偏远",
    ),
}

_DEFAULT_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("快递", "物流", "包裹", "快件"),
    ("退款", "退钱", "返钱", "把钱退"),
    ("发货", "寄出", "发出", "发"),
    ("多久", "多长时间", "几天", "多少天", "啥时候", "什么时候", "何时", "哪天"),
    ("怎么", "如何", "咋", "怎样", "怎么样"),
    ("什么", "啥", "神马"),
    ("哪里", "哪儿", "哪", "哪边"),
    ("哪个", "哪家", "哪一个", "哪一家"),
    ("可以", "能", "能不能", "可不可以", "行不行", "行吗"),
    ("优惠券", "优惠卷", "券", "卷"),
    ("价格", "价钱", "多少钱"),
    ("衣服", "衣裳"),
    ("地址", "收货地址"),
    ("修改", "更改", "改", "换"),
    ("取消", "撤销", "不要了"),
    ("发票", "开票"),
    ("尺码", "码数", "尺寸", "号码"),
    ("折扣", "打折", "折"),
    ("真假", "真伪"),
    ("缺货", "没货", "无货", "断货"),
    ("纯棉", "全棉"),
    ("购买", "买", "拍", "拍下", "下单"),
    ("收到", "收货", "拿到"),
    ("坏了", "坏掉", "损坏", "坏"),
    ("拒收", "拒签", "不签收"),
    ("货到付款", "到付"),
    ("电话", "手机号", "手机号码", "电话号码", "联系电话"),
    ("正品", "真品", "真货", "保真"),
    ("保修", "质保", "保固"),
    ("价保", "保价"),
    ("顺丰", "sf", "顺丰快递"),
    ("京东快递", "京东物流"),
)

_DEFAULT_FILLERS = (
    "亲亲",
    "亲爱的",
    "亲",
    "请问一下",
    "请问下",
    "请问",
    "我想问一下",
    "我想问下",
    "我想问问",
    "想问一下",
    "想问下",
    "想问问",
    "问一下",
    "问下",
    "我想咨询一下",
    "我想咨询下",
    "咨询一下",
    "咨询下",
    "你好",
    "您好",
    "在吗",
    "在么",
    "在不在",
    "有人吗",
    "有人在吗",
    "麻烦问下",
    "麻烦问一下",
    "麻烦",
    "谢谢",
    "谢啦",
    "哈喽",
    "hello",
    "hi",
    "老板",
    "店家",
    "掌柜",
    "小姐姐",
    "小哥哥",
    "宝宝",
    "客官",
)

_DEFAULT_GREETING_WORDS = (
    "你好",
    "您好",
    "在吗",
    "在么",
    "在不在",
    "有人吗",
    "有人在吗",
    "哈喽",
    "hello",
    "hi",
    "嗨",
    "亲",
    "早上好",
    "晚上好",
    "下午好",
    "中午好",
    "早",
    "老板",
    "店家",
    "客服",
)

_DEFAULT_THANKS_WORDS = (
    "谢谢",
    "多谢",
    "感谢",
    "谢啦",
    "谢了",
    "thanks",
    "thank",
    "thx",
    "辛苦",
    "麻烦你了",
    "好的",
    "好",
    "嗯",
    "嗯嗯",
    "哦",
    "噢",
    "ok",
    "okay",
    "知道了",
    "明白",
    "明白了",
    "了解",
    "收到",
    "行",
    "可以",
    "没问题",
    "👍",
    "赞",
)

_DEFAULT_BYE_WORDS = ("再见", "拜拜", "bye", "88", "回见", "没事了", "没有了", "不用了", "没别的了")


@dataclass(slots=True, frozen=True)
class BotSettings:
    """Every knob of the FAQ bot; ``from_mapping`` validates the ``[bot]`` table.

    All keys are optional; the defaults are tuned on ``tests/data/faq_cases.jsonl``.
    """

    faq: str = "configs/faq.toml"
    enabled: bool = True
    # decision thresholds (scores are 0..1)
    answer_threshold: float = 0.35
    suggest_threshold: float = 0.20
    min_margin: float = 0.10
    max_suggestions: int = 3
    skill_hint_threshold: float = 0.40
    handoff_on_urgent: bool = True
    vip_priority: str = "high"
    # customer-facing texts (Chinese)
    suggest_text: str = "您是不是想问："
    greeting_reply: str = "您好，我是智能客服小助手，请问有什么可以帮您？"
    thanks_reply: str = "不客气～还有其他问题随时问我哦。"
    bye_reply: str = "感谢您的光临，祝您生活愉快，再见～"
    chatter_reply: str = "亲，请问有什么可以帮您？您可以直接描述您的问题，或输入“转人工”联系人工客服。"
    handoff_reply: str = "正在为您转接人工客服，请稍候～"
    # vocabularies
    handoff_phrases: tuple[str, ...] = _DEFAULT_HANDOFF_PHRASES
    urgent_words: tuple[str, ...] = _DEFAULT_URGENT_WORDS
    high_words: tuple[str, ...] = _DEFAULT_HIGH_WORDS
    issue_words: tuple[str, ...] = _DEFAULT_ISSUE_WORDS
    skill_keywords: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(_DEFAULT_SKILL_KEYWORDS)
    )
    synonyms: tuple[tuple[str, ...], ...] = _DEFAULT_SYNONYMS
    fillers: tuple[str, ...] = _DEFAULT_FILLERS
    greeting_words: tuple[str, ...] = _DEFAULT_GREETING_WORDS
    thanks_words: tuple[str, ...] = _DEFAULT_THANKS_WORDS
    bye_words: tuple[str, ...] = _DEFAULT_BYE_WORDS
    stop_words: tuple[str, ...] = ()  # added to the built-in list

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> BotSettings:
        """Validate the ``[bot]`` table; raise ``ConfigError("bot.<key>", …)`` on a bad value."""
        if not isinstance(d, Mapping):
            raise ConfigError("bot", "must be a table")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"bot.{unknown[0]}", f"unknown key (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for name, raw in d.items():
            key = f"bot.{name}"
            default = getattr(_DEFAULTS, name)
            if isinstance(default, bool):
                if not isinstance(raw, bool):
                    raise ConfigError(key, "must be true or false")
                values[name] = raw
            elif isinstance(default, int):
                if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1 or raw > 10:
                    raise ConfigError(key, "must be an integer between 1 and 10")
                values[name] = raw
            elif isinstance(default, float):
                if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0.0 <= float(raw) <= 1.0:
                    raise ConfigError(key, "must be a number between 0 and 1")
                values[name] = float(raw)
            elif isinstance(default, str):
                if not isinstance(raw, str):
                    raise ConfigError(key, "must be a string")
                values[name] = raw
            elif name == "skill_keywords":
                values[name] = _skill_keywords(key, raw)
            elif name == "synonyms":
                values[name] = _synonyms(key, raw)
            else:
                values[name] = _words(key, raw)
        settings = cls(**values)
        if settings.vip_priority not in ("normal", "high", "urgent"):
            raise ConfigError("bot.vip_priority", "must be one of normal, high, urgent")
        if settings.suggest_threshold > settings.answer_threshold:
            raise ConfigError("bot.suggest_threshold", "must not be above bot.answer_threshold")
        for name in ("suggest_text", "greeting_reply", "thanks_reply", "bye_reply", "chatter_reply"):
            if not getattr(settings, name).strip():
                raise ConfigError(f"bot.{name}", "must not be empty")
        return settings


def _words(key: str, raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list | tuple) or not all(isinstance(w, str) for w in raw):
        raise ConfigError(key, "must be a list of strings")
    words = tuple(w.strip() for w in raw if w.strip())
    return words


def _skill_keywords(key: str, raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, "must be a table of skill = [words]")
    out: dict[str, tuple[str, ...]] = {}
    for skill, words in raw.items():
        if not isinstance(skill, str) or not skill:
            raise ConfigError(key, "skill names must be non-empty strings")
        out[skill] = _words(f"{key}.{skill}", words)
    return out


def _synonyms(key: str, raw: Any) -> tuple[tuple[str, ...], ...]:
    """Accept ``[["快递", "物流"], …]`` or ``{快递 = ["物流", …]}`` (canonical word first)."""
    groups: list[tuple[str, ...]] = []
    if isinstance(raw, Mapping):
        for canonical, words in raw.items():
            if not isinstance(canonical, str) or not canonical.strip():
                raise ConfigError(key, "synonym keys must be non-empty strings")
            groups.append((canonical.strip(), *_words(f"{key}.{canonical}", words)))
    elif isinstance(raw, list | tuple):
        for i, group in enumerate(raw):
            words = _words(f"{key}[{i}]", group)
            if len(words) < 2:
                raise ConfigError(f"{key}[{i}]", "a synonym group needs at least two words")
            groups.append(words)
    else:
        raise ConfigError(key, "must be a list of word lists or a table of word = [synonyms]")
    return tuple(groups)


_DEFAULTS = BotSettings()
