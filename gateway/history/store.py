"""The health history on the device: one SQLite file (stdlib ``sqlite3``, WAL mode).

One row per pack and day (``pack_day``) and one per cell and day (``cell_day``), written in one
transaction per day record, so a process killed mid-write (SIGKILL, power cut) leaves either the
previous or the new version of the day, never half of one. WAL with ``synchronous=NORMAL`` keeps
every committed transaction across a process crash; a power cut may lose the last one, never the
file (https://www.sqlite.org/wal.html, https://www.sqlite.org/pragma.html#pragma_synchronous).

The schema version is SQLite's ``user_version``; ``MIGRATIONS[v]`` takes a database from version
``v - 1`` to ``v``. A new database runs them all, an older one the missing ones, each in its own
transaction. A database newer than this code is refused (its rows could mean something else).

Rows are bounded by ``prune``: days older than the retention are deleted. Unknown values (NaN)
are stored as NULL. Blocking: call from a thread (``asyncio.to_thread``) in the daemon.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from gateway.core.daily import CellDay, DayRecord, PackDay
from gateway.errors import HistoryError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "HistoryStore"]

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE pack_day (
            day INTEGER PRIMARY KEY,
            energy_in_wh REAL, energy_out_wh REAL, charge_in_ah REAL, charge_out_ah REAL,
            cycles REAL, high_soc_s REAL, covered_s REAL
        )""",
        """CREATE TABLE cell_day (
            day INTEGER NOT NULL, cell INTEGER NOT NULL,
            capacity_ah REAL, r0_mohm REAL, bled_ah REAL, moved_ah REAL, rest_dv_mv REAL,
            v_min_v REAL, v_max_v REAL, t_min_c REAL, t_max_c REAL,
            PRIMARY KEY (day, cell)
        ) WITHOUT ROWID""",
    ),
    # v2: the capacity's uncertainty and the rest SoC offset (self-discharge from the estimator's
    # view of the charge, not only the balancing effort); the length and SoC of the day's rest.
    2: (
        "ALTER TABLE cell_day ADD COLUMN capacity_sigma_ah REAL",
        "ALTER TABLE cell_day ADD COLUMN rest_dsoc_pct REAL",
        "ALTER TABLE pack_day ADD COLUMN rest_s REAL",
        "ALTER TABLE pack_day ADD COLUMN rest_soc_pct REAL",
    ),
}
"""Schema migrations: version -> statements (run in one transaction)."""

SCHEMA_VERSION = max(MIGRATIONS)
"""The schema this code writes."""

_PACK_COLS = tuple(f.name for f in fields(PackDay))
_CELL_COLS = tuple(f.name for f in fields(CellDay))


def _db(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _py(x: Any) -> float:
    return math.nan if x is None else float(x)


class HistoryStore:
    """Daily rows of one pack in one SQLite file.

    Args:
        path: the database file (its directory is created).
        target_version: migrate only up to this version (tests build older databases with it).

    Raises:
        HistoryError: the file cannot be opened or migrated, or is of a newer schema.
    """

    def __init__(self, path: Path, *, target_version: int = SCHEMA_VERSION) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: autocommit; transactions are explicit (BEGIN ... COMMIT).
            self._con = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=5.0
            )
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
            self._migrate(target_version)
        except sqlite3.Error as e:
            raise HistoryError(f"history {self.path}: {e}") from None
        except OSError as e:
            raise HistoryError(f"history {self.path}: {e.strerror or e}") from None

    @property
    def version(self) -> int:
        """The schema version of the open file."""
        return int(self._con.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, target: int) -> None:
        current = self.version
        if current > SCHEMA_VERSION:
            raise HistoryError(
                f"history {self.path}: schema version {current} is newer than this gateway's "
                f"({SCHEMA_VERSION}); keep the file or move it away"
            )
        for v in range(current + 1, target + 1):
            self._con.execute("BEGIN IMMEDIATE")
            try:
                for stmt in MIGRATIONS[v]:
                    self._con.execute(stmt)
                self._con.execute(f"PRAGMA user_version = {v:d}")
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the file (a checkpoint folds the WAL back into it)."""
        try:
            self._con.close()
        except sqlite3.Error as e:
            raise HistoryError(f"history {self.path}: {e}") from None

    def write(self, record: DayRecord) -> None:
        """Insert or replace one day (the pack row and every cell row) in one transaction.

        Raises:
            HistoryError: the write failed; the day is as it was before.
        """
        pack_row = (record.day, *(_db(getattr(record.pack, c)) for c in _PACK_COLS))
        cell_rows = [
            (record.day, k, *(_db(getattr(c, col)) for col in _CELL_COLS))
            for k, c in enumerate(record.cells)
        ]
        pack_sql = (
            f"INSERT OR REPLACE INTO pack_day (day, {', '.join(_PACK_COLS)}) "
            f"VALUES ({', '.join('?' * (len(_PACK_COLS) + 1))})"
        )
        cell_sql = (
            f"INSERT OR REPLACE INTO cell_day (day, cell, {', '.join(_CELL_COLS)}) "
            f"VALUES ({', '.join('?' * (len(_CELL_COLS) + 2))})"
        )
        con = self._con
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute(pack_sql, pack_row)
                # A pack that lost cells since: their old rows of this day go too.
                con.execute(
                    "DELETE FROM cell_day WHERE day = ? AND cell >= ?", (record.day, len(cell_rows))
                )
                con.executemany(cell_sql, cell_rows)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise HistoryError(f"history {self.path}: write of day {record.day}: {e}") from None

    def read(self, first_day: int | None = None, last_day: int | None = None) -> list[DayRecord]:
        """Days within ``first_day..last_day`` (inclusive, ``None``: open), oldest first.

        A day whose cell rows are not numbered ``0..n-1`` is skipped (it cannot be whole).

        Raises:
            HistoryError: the read failed.
        """
        lo = -(2**62) if first_day is None else first_day
        hi = 2**62 if last_day is None else last_day
        try:
            packs = self._con.execute(
                f"SELECT day, {', '.join(_PACK_COLS)} FROM pack_day "
                "WHERE day BETWEEN ? AND ? ORDER BY day",
                (lo, hi),
            ).fetchall()
            cells = self._con.execute(
                f"SELECT day, cell, {', '.join(_CELL_COLS)} FROM cell_day "
                "WHERE day BETWEEN ? AND ? ORDER BY day, cell",
                (lo, hi),
            ).fetchall()
        except sqlite3.Error as e:
            raise HistoryError(f"history {self.path}: read: {e}") from None
        by_day: dict[int, list[tuple[Any, ...]]] = {}
        for row in cells:
            by_day.setdefault(int(row[0]), []).append(row)
        out: list[DayRecord] = []
        for row in packs:
            day = int(row[0])
            rows = by_day.get(day, [])
            if not rows or [int(r[1]) for r in rows] != list(range(len(rows))):
                continue
            pack = PackDay(*(_py(x) for x in row[1:]))
            out.append(DayRecord(day, pack, tuple(CellDay(*(_py(x) for x in r[2:])) for r in rows)))
        return out

    def day(self, day: int) -> DayRecord | None:
        """One day, or ``None`` when it is not recorded."""
        got = self.read(day, day)
        return got[0] if got else None

    def prune(self, keep_from_day: int) -> int:
        """Delete every day before ``keep_from_day``; returns the number of days deleted.

        Raises:
            HistoryError: the delete failed (nothing is deleted then).
        """
        con = self._con
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                n = con.execute("DELETE FROM pack_day WHERE day < ?", (keep_from_day,)).rowcount
                con.execute("DELETE FROM cell_day WHERE day < ?", (keep_from_day,))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise HistoryError(f"history {self.path}: prune: {e}") from None
        return int(n)

    def days(self) -> Sequence[int]:
        """Every recorded day number, oldest first."""
        try:
            return [int(r[0]) for r in self._con.execute("SELECT day FROM pack_day ORDER BY day")]
        except sqlite3.Error as e:
            raise HistoryError(f"history {self.path}: read: {e}") from None
