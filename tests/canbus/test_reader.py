"""Frames onto the event loop (``gateway.canbus.reader``) over python-can's virtual bus."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections.abc import Callable

import can
import pytest

from gateway.canbus.reader import MAX_DRAIN, start_reader

_channels = itertools.count()


def _channel() -> str:
    return f"gw-reader-{os.getpid()}-{next(_channels)}"


class _Collector:
    """What the reader hands over, checked to arrive on the loop's thread."""

    def __init__(self) -> None:
        self.batches: list[list[can.Message]] = []
        self.failures: list[BaseException] = []
        self.off_loop = 0
        self.event = asyncio.Event()
        self._loop_thread = threading.get_ident()

    def deliver(self, batch: list[can.Message]) -> None:
        self.off_loop += threading.get_ident() != self._loop_thread
        self.batches.append(batch)
        self.event.set()

    def fail(self, exc: BaseException) -> None:
        self.off_loop += threading.get_ident() != self._loop_thread
        self.failures.append(exc)
        self.event.set()

    @property
    def frames(self) -> int:
        return sum(len(b) for b in self.batches)

    async def until(self, done: Callable[[], object], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not done():
                self.event.clear()
                await self.event.wait()


async def test_a_bus_without_a_file_descriptor_is_read_by_one_thread_in_bounded_batches() -> None:
    channel = _channel()
    rx = can.Bus(interface="virtual", channel=channel)
    tx = can.Bus(interface="virtual", channel=channel)
    got = _Collector()
    n = MAX_DRAIN + 100
    try:
        for k in range(n):
            tx.send(can.Message(arbitration_id=0x100 + k % 8, data=bytes([k % 256])))
        stop = start_reader(rx, asyncio.get_running_loop(), got.deliver, got.fail, "test")
        await got.until(lambda: got.frames >= n)
        stop()
        assert got.frames == n
        assert max(len(b) for b in got.batches) <= MAX_DRAIN
        assert [m.data[0] for b in got.batches for m in b] == [k % 256 for k in range(n)]
        assert got.off_loop == 0
        assert not got.failures
        threads = [t.name for t in threading.enumerate()]
        assert "gateway.can.rx test" not in threads  # stopped and joined
    finally:
        rx.shutdown()
        tx.shutdown()


async def test_an_interface_failure_is_passed_on_once_on_the_loop() -> None:
    rx = can.Bus(interface="virtual", channel=_channel())
    got = _Collector()
    stop = start_reader(rx, asyncio.get_running_loop(), got.deliver, got.fail, "failing")
    rx.shutdown()  # a closed virtual bus raises on recv
    try:
        await got.until(lambda: got.failures)
        assert len(got.failures) == 1
        assert isinstance(got.failures[0], (can.CanError, OSError, ValueError))
        assert got.off_loop == 0
    finally:
        stop()


@pytest.mark.skipif(not hasattr(os, "pipe"), reason="needs a file descriptor")
async def test_a_bus_with_a_file_descriptor_is_watched_on_the_loop() -> None:
    channel = _channel()

    class FdBus(can.BusABC):  # a virtual bus that offers a file descriptor, as SocketCAN does
        def __init__(self) -> None:
            super().__init__(channel=channel)
            self._inner = can.Bus(interface="virtual", channel=channel)
            self._r, self._w = os.pipe()
            os.write(self._w, b"x")  # always readable: the reader drains what is there

        def fileno(self) -> int:
            return self._r

        def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
            return self._inner.recv(timeout), False

        def send(self, msg: can.Message, timeout: float | None = None) -> None:
            self._inner.send(msg, timeout)

        def shutdown(self) -> None:
            super().shutdown()
            self._inner.shutdown()
            os.close(self._r)
            os.close(self._w)

    rx = FdBus()
    tx = can.Bus(interface="virtual", channel=channel)
    got = _Collector()
    try:
        stop = start_reader(rx, asyncio.get_running_loop(), got.deliver, got.fail, "fd")
        for k in range(10):
            tx.send(can.Message(arbitration_id=0x200, data=bytes([k])))
        await got.until(lambda: got.frames >= 10)
        stop()
        assert [m.data[0] for b in got.batches for m in b] == list(range(10))
        assert "gateway.can.rx fd" not in [t.name for t in threading.enumerate()]
        assert got.off_loop == 0
    finally:
        rx.shutdown()
        tx.shutdown()
