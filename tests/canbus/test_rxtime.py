"""Receive times: interface timestamps mapped onto the monotonic clock, clamped to now."""

from __future__ import annotations

import asyncio
import math
import time

import can
import pytest

from gateway.canbus.config import CanConfig
from gateway.canbus.decode import DecodeCounters, Decoder, load_decoder
from gateway.canbus.link import CanLink
from gateway.canbus.rxtime import RxClock
from tests.canbus.test_link import Sink, pack_frame, running, unique_channel


def test_mapping_follows_the_interface_and_never_runs_ahead_of_now() -> None:
    t0 = 1_700_000_000.0
    rx = RxClock(max_lag_s=1.0)
    assert rx.stamp(t0, 50.0) == 50.0  # the first frame anchors the mapping
    # A frame stamped 0.2 s after the first, dequeued 0.5 s after: it keeps its own time.
    assert rx.stamp(t0 + 0.2, 50.5) == pytest.approx(50.2)
    # One wild stamp far in the future: clamped to now, the mapping kept for the others.
    assert rx.stamp(t0 + 900.0, 50.6) == 50.6
    assert rx.stamp(t0 + 0.3, 50.7) == pytest.approx(50.3)
    # A little in the future (this frame waited less than any before): clamped, re-learned.
    assert rx.stamp(t0 + 1.5, 51.0) == 51.0
    assert rx.stamp(t0 + 1.8, 51.4) == pytest.approx(51.3)
    # A frame that waited 2.1 s in a backlog keeps its time (its values are that old).
    assert rx.stamp(t0 + 1.9, 53.5) == pytest.approx(51.4)
    assert rx.stamp(t0 + 3.9, 53.6) == pytest.approx(53.4)  # the backlog drained
    assert rx.jumps == 0
    # The wall clock stepped back an hour (NTP): the frames look old (stale: 0 A) until the
    # lag has lasted max_lag_s, then the mapping is learned again.
    assert rx.stamp(t0 + 4.0 - 3600, 54.0) < 0.0
    assert rx.stamp(t0 + 4.5 - 3600, 54.5) < 0.0
    assert rx.stamp(t0 + 5.0 - 3600, 55.0) == 55.0
    assert rx.jumps == 1
    assert rx.stamp(t0 + 5.1 - 3600, 55.2) == pytest.approx(55.1)
    # An interface that does not stamp.
    assert rx.stamp(0.0, 56.0) == 56.0


@pytest.mark.parametrize("ts", [math.nan, math.inf, -math.inf, -5.0, 1e17])
def test_impossible_timestamps_make_the_frame_unreadable(ts: float) -> None:
    rx = RxClock()
    rx.stamp(1_700_000_000.0, 10.0)
    assert rx.stamp(ts, 11.0) is None
    assert rx.bad == 1


def test_max_lag_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_lag_s"):
        RxClock(max_lag_s=0.0)


@pytest.fixture(scope="module")
def compiled() -> Decoder:
    return load_decoder(CanConfig())


async def test_link_stamps_with_the_interface_time_and_counts_impossible_ones(
    compiled: Decoder,
) -> None:
    compiled.counters = DecodeCounters()
    channel = unique_channel()
    sink = Sink()
    link = CanLink(CanConfig(channel=channel), sink, decoder=compiled)  # real monotonic clock
    sender = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    try:
        async with running(link):
            wall = time.time()
            first = pack_frame(compiled, 1000)
            first.timestamp = wall
            sender.send(first)
            await sink.wait_for(1)
            await asyncio.sleep(0.3)
            # Stamped 0.05 s after the first by the interface, dequeued 0.3 s or more later.
            stamps = [wall + 0.05, math.nan, 1e17, wall + 3600.0, -1.0]
            for ts in stamps:
                msg = pack_frame(compiled, 1000)
                msg.timestamp = ts
                sender.send(msg)
            await sink.wait_for(1 + len(stamps))
            before = time.monotonic()
    finally:
        sender.shutdown()
    calls = sink.calls
    assert [r is None for r, _ in calls] == [False, False, True, True, False, True]
    assert compiled.counters.errors["time"] == 3
    t = [t_s for _, t_s in calls]
    assert t[1] - t[0] == pytest.approx(0.05, abs=0.02)  # the interface's time, not dequeue
    assert t[4] > t[1] + 0.25  # stamped in the future: clamped to its dequeue time
    assert all(x <= before for x in t)  # never in the future, whatever the stamp said
    await asyncio.sleep(0)
