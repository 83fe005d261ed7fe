"""History: the one contract between running (sim or live) and analysis."""

from msgstorm.history.reader import History, HistoryMissing, read_history
from msgstorm.history.schema import DELIVERIES, EVENTS, MESSAGES, RUN, STATUSES, TABLES
from msgstorm.history.writer import HistoryWriter

__all__ = [
    "DELIVERIES",
    "EVENTS",
    "MESSAGES",
    "RUN",
    "STATUSES",
    "TABLES",
    "History",
    "HistoryMissing",
    "HistoryWriter",
    "read_history",
]
