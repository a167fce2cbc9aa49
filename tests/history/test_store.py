"""The SQLite history store: round trip, NaN as NULL, retention, migration, SIGKILL mid-write."""

from __future__ import annotations

import math
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.core.daily import CellDay, DayRecord, PackDay
from gateway.errors import HistoryError
from gateway.history.store import SCHEMA_VERSION, HistoryStore


def record(day: int, cells: int = 4, mark: float | None = None) -> DayRecord:
    """A day whose every value is derived from ``day`` (and ``mark``), so a torn write shows."""
    m = float(day) if mark is None else mark
    return DayRecord(
        day,
        PackDay(energy_in_wh=m, energy_out_wh=2 * m, cycles=0.5, high_soc_s=m, covered_s=86400.0),
        tuple(
            CellDay(
                capacity_ah=100.0 - k - m / 1000.0,
                capacity_sigma_ah=1.0,
                r0_mohm=0.7 + k / 100.0,
                bled_ah=m,
                rest_dv_mv=math.nan if k == 0 else -float(k),
                rest_dsoc_pct=m,
                v_min_v=3.0,
                v_max_v=3.4,
            )
            for k in range(cells)
        ),
    )


def same(a: DayRecord, b: DayRecord) -> bool:
    def eq(x: float, y: float) -> bool:
        return (math.isnan(x) and math.isnan(y)) or x == y

    return (
        a.day == b.day
        and all(eq(getattr(a.pack, f), getattr(b.pack, f)) for f in a.pack.__slots__)
        and len(a.cells) == len(b.cells)
        and all(
            eq(getattr(x, f), getattr(y, f))
            for x, y in zip(a.cells, b.cells, strict=True)
            for f in x.__slots__
        )
    )


def test_round_trip_wal_and_version(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "history.sqlite"
    store = HistoryStore(path)
    recs = [record(d) for d in (738000, 738001, 738002)]
    for r in recs:
        store.write(r)
    store.write(record(738001, mark=5.0))  # a day written again replaces it
    got = store.read()
    store.close()
    assert [r.day for r in got] == [738000, 738001, 738002]
    assert same(got[0], recs[0])
    assert same(got[2], recs[2])
    assert same(got[1], record(738001, mark=5.0))
    assert math.isnan(got[0].cells[0].rest_dv_mv)  # NaN stored as NULL and back
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.close()


def test_read_window_and_prune(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    for d in range(100, 110):
        store.write(record(d))
    assert [r.day for r in store.read(103, 105)] == [103, 104, 105]
    assert store.prune(107) == 7
    assert list(store.days()) == [107, 108, 109]
    assert store.day(100) is None
    assert store.day(108) is not None
    store.close()


def test_fewer_cells_replace_the_day_whole(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    store.write(record(5, cells=6))
    store.write(record(5, cells=4))
    got = store.day(5)
    store.close()
    assert got is not None
    assert len(got.cells) == 4


def test_migration_from_v1_keeps_rows(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    old = HistoryStore(path, target_version=1)
    assert old.version == 1
    con = sqlite3.connect(path)
    con.execute(
        "INSERT INTO pack_day (day, energy_in_wh, energy_out_wh, charge_in_ah, charge_out_ah,"
        " cycles, high_soc_s, covered_s) VALUES (10, 1000, 900, 20, 18, 0.18, 60, 86400)"
    )
    for k in range(3):
        con.execute(
            "INSERT INTO cell_day (day, cell, capacity_ah, r0_mohm, bled_ah, moved_ah,"
            " rest_dv_mv, v_min_v, v_max_v, t_min_c, t_max_c)"
            " VALUES (10, ?, 99.5, 0.7, 0.1, 0, 1.0, 3.0, 3.4, 20, 25)",
            (k,),
        )
    con.commit()
    con.close()
    old.close()
    with pytest.raises(sqlite3.OperationalError):  # v1 has no rest_dsoc_pct column
        sqlite3.connect(path).execute("SELECT rest_dsoc_pct FROM cell_day")
    store = HistoryStore(path)
    assert store.version == SCHEMA_VERSION == 2
    got = store.read()
    assert len(got) == 1
    assert len(got[0].cells) == 3
    assert got[0].pack.energy_in_wh == 1000
    assert math.isnan(got[0].pack.rest_s)
    assert got[0].cells[2].capacity_ah == 99.5
    assert math.isnan(got[0].cells[2].rest_dsoc_pct)  # added by v2: unknown for old rows
    store.write(record(11, cells=3))  # and the new columns are written
    assert store.day(11) is not None
    assert store.day(11).cells[1].rest_dsoc_pct == 11.0
    store.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    HistoryStore(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(HistoryError, match="newer"):
        HistoryStore(path)


def test_unusable_path_is_a_history_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(HistoryError, match=str(blocker)):
        HistoryStore(blocker / "history.sqlite")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(HistoryError, match="garbage"):
        HistoryStore(garbage)


_WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from history.test_store import record
from gateway.history.store import HistoryStore
store = HistoryStore(Path({path!r}))
print("ready", flush=True)
i = 0
while True:
    # Rewrite a window of days, each day's values marked with the pass number: a torn
    # transaction would leave a day with cells from two passes or missing cells.
    store.write(record(1000 + i % 20, cells=64, mark=float(i)))
    i += 1
"""


def test_sigkill_mid_write_leaves_whole_days(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    code = _WRITER.format(tests=str(Path(__file__).resolve().parent.parent), path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # some hundreds of transactions, then a kill mid-stream
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    store = HistoryStore(path)
    got = store.read()
    assert len(got) >= 5  # it got going before the kill
    for r in got:
        assert len(r.cells) == 64
        mark = r.pack.energy_in_wh
        assert all(c.bled_ah == mark for c in r.cells), f"day {r.day} is torn"
        assert same(r, record(r.day, cells=64, mark=mark))
    store.write(record(2000, cells=64))  # and the file is writable again
    store.close()
