"""The FAQ bot: pure decisions over a FAQ file (see README.md (The FAQ bot))."""

from gateway.bot.engine import FaqBot
from gateway.bot.faq import FaqEntry, FaqList, load_faq, parse_faq
from gateway.bot.settings import BotSettings
from gateway.bot.types import BotDecision, DecisionKind, Suggestion

__all__ = [
    "BotDecision",
    "BotSettings",
    "DecisionKind",
    "FaqBot",
    "FaqEntry",
    "FaqList",
    "Suggestion",
    "load_faq",
    "parse_faq",
]
