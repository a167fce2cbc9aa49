"""The supervisor: outputs are restarted in the process, critical tasks end the run, stops are
bounded even when a task swallows its cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest

from gateway.app import run_bounded
from gateway.supervisor import Supervisor, TaskKind, backoff_s


def test_backoff_is_jittered_and_capped() -> None:
    for attempt in (1, 2, 5, 10, 50):
        delays = [backoff_s(attempt, 4.0) for _ in range(200)]
        assert all(0.0 <= d <= min(4.0, 1.5**attempt) for d in delays)
        assert len(set(delays)) > 100  # jittered, not in step


async def test_failing_output_is_restarted_while_critical_task_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[tuple[str, dict[str, object]]] = []
    sup = Supervisor(backoff_max_s=0.01, event=lambda name, **d: events.append((name, d)))
    ticks = 0
    starts = 0
    restarted = asyncio.Event()

    async def control() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    async def broken_output() -> None:
        nonlocal starts
        starts += 1
        if starts >= 5:
            restarted.set()
        await asyncio.sleep(0)
        raise RecursionError("maximum recursion depth exceeded")

    async def quitting_output() -> None:
        return

    sup.add_critical("control", control)
    sup.add_output("mqtt", broken_output)
    sup.add_output("web", quitting_output)
    stop = asyncio.Event()
    runner = asyncio.create_task(sup.run(stop))
    await asyncio.wait_for(restarted.wait(), 5.0)
    ticks_then = ticks
    await asyncio.sleep(0.05)
    assert ticks > ticks_then  # the control loop never stopped
    status = {s.name: s for s in sup.status()}
    assert status["control"].running
    assert status["control"].restarts == 0
    assert status["mqtt"].kind is TaskKind.OUTPUT
    assert status["mqtt"].restarts >= 4
    assert "RecursionError" in status["mqtt"].last_error
    assert status["web"].last_error == "returned unexpectedly"
    mqtt_events = [d for name, d in events if name == "output_restart" and d["task"] == "mqtt"]
    assert [d["restarts"] for d in mqtt_events[:3]] == [1, 2, 3]
    # The traceback once, then one line per failure.
    tracebacks = [r for r in caplog.records if r.name == "gateway.supervisor" and r.exc_info]
    assert len([r for r in tracebacks if "mqtt" in r.getMessage()]) == 1
    stop.set()
    await asyncio.wait_for(runner, 2.0)
    assert not any(s.running for s in sup.status())


async def test_critical_failure_ends_the_run_and_cancels_outputs() -> None:
    sup = Supervisor()
    output_cancelled = asyncio.Event()

    async def output() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            output_cancelled.set()
            raise

    async def can_input() -> None:
        await asyncio.sleep(0.01)
        raise OSError("CAN interface went down")

    sup.add_output("mqtt", output)
    sup.add_critical("can", can_input)
    with pytest.raises(BaseExceptionGroup) as info:
        await asyncio.wait_for(sup.run(asyncio.Event()), 2.0)
    assert isinstance(info.value.exceptions[0], OSError)
    assert output_cancelled.is_set()


async def test_stop_is_bounded_when_a_task_swallows_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sup = Supervisor(grace_s=0.2)
    release = asyncio.Event()

    async def stubborn() -> None:
        # What the MQTT loop did: catch the cancellation and go on reconnecting.
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.01)

    sup.add_output("stubborn", stubborn)
    stop = asyncio.Event()
    runner = asyncio.create_task(sup.run(stop))
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    stop.set()
    await asyncio.wait_for(runner, 2.0)
    assert time.monotonic() - t0 < 1.0
    assert any("stubborn did not stop" in r.getMessage() for r in caplog.records)
    release.set()
    await asyncio.sleep(0.05)


def test_run_bounded_exits_despite_a_task_that_ignores_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> int:
        async def stubborn() -> None:
            while True:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0.01)

        asyncio.get_running_loop().create_task(stubborn(), name="stubborn")
        await asyncio.sleep(0.02)
        return 0

    caplog.set_level(logging.ERROR)
    t0 = time.monotonic()
    assert run_bounded(main(), grace_s=0.2) == 0
    assert time.monotonic() - t0 < 1.5
    assert any("stubborn" in r.getMessage() for r in caplog.records)


def test_registration_errors() -> None:
    sup = Supervisor()
    sup.add_output("a", asyncio.sleep)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="twice"):
        sup.add_critical("a", asyncio.sleep)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="grace_s"):
        Supervisor(grace_s=0)


async def test_an_output_raising_cancelled_error_by_itself_is_restarted() -> None:
    sup = Supervisor(backoff_max_s=0.01)
    starts = 0
    again = asyncio.Event()

    async def confused() -> None:
        nonlocal starts
        starts += 1
        if starts >= 3:
            again.set()
        await asyncio.sleep(0)
        raise asyncio.CancelledError  # a library's doing: nobody cancelled this task

    sup.add_output("confused", confused)
    stop = asyncio.Event()
    runner = asyncio.create_task(sup.run(stop))
    await asyncio.wait_for(again.wait(), 5.0)
    assert {s.name: s for s in sup.status()}["confused"].restarts >= 2
    stop.set()
    await asyncio.wait_for(runner, 2.0)
