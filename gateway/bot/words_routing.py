"""Built-in word lists that route a message: hand-off phrases, priority words (urgent complaints,
safety incidents and symptoms, payment problems), problem-report words and the team vocabularies
(see ``settings.BotSettings``), plus the grammar the rules read them with (``classify.Rules``).

The words live in ``data/routing.toml`` (package data, commented with where each list comes from),
read once at import.
"""

from __future__ import annotations

from gateway.bot.words_text import DATA_FILE as _TEXT_FILE
from gateway.bot.words_text import DataFileError, read_data, word_list, word_table

DATA_FILE = _TEXT_FILE.with_name("routing.toml")

_DATA = read_data(DATA_FILE)

DEFAULT_HANDOFF_PHRASES = word_list(_DATA, "handoff_phrases", DATA_FILE)
DEFAULT_NOT_HANDOFF_PHRASES = word_list(_DATA, "not_handoff_phrases", DATA_FILE)
DEFAULT_SERVICE_QUESTION_WORDS = word_list(_DATA, "service_question_words", DATA_FILE)
DEFAULT_URGENT_WORDS = word_list(_DATA, "urgent_words", DATA_FILE)
DEFAULT_SAFETY_WORDS = word_list(_DATA, "safety_words", DATA_FILE)
DEFAULT_SYMPTOM_WORDS = word_list(_DATA, "symptom_words", DATA_FILE)
DEFAULT_NOT_URGENT_PHRASES = word_list(_DATA, "not_urgent_phrases", DATA_FILE)
DEFAULT_HIGH_WORDS = word_list(_DATA, "high_words", DATA_FILE)
DEFAULT_ISSUE_WORDS = word_list(_DATA, "issue_words", DATA_FILE)
DEFAULT_SKILL_KEYWORDS = word_table(_DATA, "skill_keywords", DATA_FILE)
DEFAULT_SKILL_WEAK_WORDS = word_table(_DATA, "skill_weak_words", DATA_FILE)
if not set(DEFAULT_SKILL_WEAK_WORDS) <= set(DEFAULT_SKILL_KEYWORDS):
    raise DataFileError(f"{DATA_FILE}: every team of skill_weak_words must be a team of skill_keywords")

# The grammar around the words (not configurable: see the [grammar] table of the data file).
SERVICE_NOUNS = word_list(_DATA, "grammar.service_nouns", DATA_FILE)
REQUEST_VERBS = word_list(_DATA, "grammar.request_verbs", DATA_FILE)
REQUEST_LINKS = word_list(_DATA, "grammar.request_links", DATA_FILE)
REQUEST_FILLERS = word_list(_DATA, "grammar.request_fillers", DATA_FILE)
NEGATORS = word_list(_DATA, "grammar.negators", DATA_FILE)
NEGATION_LINKS = word_list(_DATA, "grammar.negation_links", DATA_FILE)
HYPOTHETICAL = word_list(_DATA, "grammar.hypothetical", DATA_FILE)
QUESTION_PARTICLES = word_list(_DATA, "grammar.question_particles", DATA_FILE)
INCIDENT_AFTER = word_list(_DATA, "grammar.incident_after", DATA_FILE)
INCIDENT_BEFORE = word_list(_DATA, "grammar.incident_before", DATA_FILE)
