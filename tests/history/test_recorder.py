"""The supervisor-side recorder: day rollover, daily analysis, resume after a restart."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from gateway.core.health import HealthConfig, HealthReport
from gateway.history import HistoryRecorder, HistoryStore, local_day
from tests.core.test_daily import output

NOON = 1_780_000_000.0  # some Unix time; days are local midnights


def recorder(path: Path, wall: list[float], reports: list[HealthReport]) -> HistoryRecorder:
    return HistoryRecorder(
        HealthConfig(flush_s=0.05),
        path,
        cells=2,
        temp_sensors=1,
        capacity_ah=100.0,
        on_report=reports.append,
        wall_clock=lambda: wall[0],
        sample_s=0.0,
    )


async def _until(pred: object, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not pred():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_days_roll_over_are_written_analysed_and_resumed(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    wall = [NOON]
    reports: list[HealthReport] = []
    rec = recorder(path, wall, reports)
    day0 = local_day(NOON)
    task = asyncio.create_task(rec.run())
    await _until(lambda: len(reports) == 1)  # the report at start (nothing yet)
    assert reports[0].days == 0
    rec.on_step(output(0.0), bled_ah=[0.0, 0.0])
    rec.on_step(output(1.0), bled_ah=[0.4, 0.1])
    wall[0] += 86400.0  # midnight passes
    rec.on_step(output(2.0), bled_ah=[0.5, 0.1])
    await _until(lambda: len(reports) == 2)  # the daily analysis
    assert reports[1].last_day == day0
    assert reports[1].days == 1
    rec.request_report()
    await _until(lambda: len(reports) == 3)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    store = HistoryStore(path)
    d0 = store.day(day0)
    d1 = store.day(day0 + 1)
    store.close()
    assert d0 is not None
    assert [c.bled_ah for c in d0.cells] == pytest.approx([0.4, 0.1])
    assert d1 is not None  # the day so far, written when stopped
    assert [c.bled_ah for c in d1.cells] == pytest.approx([0.1, 0.0])
    # A restart the same day goes on from the written partial day.
    again = recorder(path, wall, reports)
    task = asyncio.create_task(again.run())
    await _until(lambda: len(reports) == 4)
    again.on_step(output(10.0), bled_ah=[0.0, 0.0])
    again.on_step(output(11.0), bled_ah=[0.2, 0.2])
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    store = HistoryStore(path)
    d1 = store.day(day0 + 1)
    store.close()
    assert d1 is not None
    assert [c.bled_ah for c in d1.cells] == pytest.approx([0.3, 0.2])


async def test_unusable_history_is_retried_and_never_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    reports: list[HealthReport] = []
    rec = recorder(blocker / "h.sqlite", [NOON], reports)
    task = asyncio.create_task(rec.run())
    await _until(lambda: rec.failures >= 1)
    rec.on_step(output(0.0), bled_ah=[0.0, 0.0])  # the control step goes on
    assert not task.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert "health history unavailable" in caplog.text
    assert reports == []
