"""The one cancellation helper: raises only while the current task is being cancelled."""

from __future__ import annotations

import asyncio

import pytest

from gateway.cancel import raise_if_cancelling


async def test_outside_a_task_it_does_nothing() -> None:
    """A plain loop callback has no task: nothing to honour."""
    done = asyncio.Event()

    def callback() -> None:
        raise_if_cancelling()
        done.set()

    asyncio.get_running_loop().call_soon(callback)
    await asyncio.wait_for(done.wait(), 1.0)


async def test_a_task_nobody_cancels_runs_on() -> None:
    raise_if_cancelling()


async def test_a_swallowed_cancellation_is_raised_again() -> None:
    """A library that caught the CancelledError leaves ``cancelling()`` raised: we stop anyway."""
    reached: list[str] = []

    async def loop() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            reached.append("swallowed")  # what a lossy wait_for does
        raise_if_cancelling()
        reached.append("ran on")

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reached == ["swallowed"]


async def test_an_uncancelled_task_runs_on_after_a_caught_error() -> None:
    task = asyncio.current_task()
    assert task is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(0)
    task.uncancel()  # the cancellation was taken back: not a stop
    raise_if_cancelling()
