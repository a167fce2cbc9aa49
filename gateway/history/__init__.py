"""Health history: the daily SQLite store and the supervisor-side recorder."""

from gateway.history.recorder import HistoryRecorder, history_path, local_day
from gateway.history.store import MIGRATIONS, SCHEMA_VERSION, HistoryStore

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "HistoryRecorder",
    "HistoryStore",
    "history_path",
    "local_day",
]
