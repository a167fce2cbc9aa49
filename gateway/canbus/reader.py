"""How received frames reach the event loop: a file-descriptor watch, else one reader thread.

An interface with a file descriptor (SocketCAN) is watched with ``loop.add_reader`` and read
without blocking; others (``virtual``, USB adapters) are read by one helper thread that hands
batches to the loop with ``call_soon_threadsafe``. Either way at most ``MAX_DRAIN`` frames are
read per wake-up, so a flood cannot starve the loop, and the first interface error is passed on
once, as the event ``CanLink`` reconnects on.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

import can

__all__ = ["MAX_DRAIN", "start_reader"]

MAX_DRAIN = 512  # frames read per wake-up, so a flood cannot starve the loop


def start_reader(
    bus: can.BusABC,
    loop: asyncio.AbstractEventLoop,
    deliver: Callable[[list[can.Message]], None],
    fail: Callable[[BaseException], None],
    name: str,
) -> Callable[[], None]:
    """Feed ``deliver`` (batches of frames) and ``fail`` on ``loop``; returns the stop function.

    Both callbacks run on the loop. ``name`` names the reader thread (``gateway.can.rx NAME``).
    """
    fd = -1
    with contextlib.suppress(NotImplementedError):
        fd = bus.fileno()
    if fd >= 0:
        return _watch_fd(bus, fd, loop, deliver, fail)
    return _pump_thread(bus, loop, deliver, fail, name)


def _watch_fd(
    bus: can.BusABC,
    fd: int,
    loop: asyncio.AbstractEventLoop,
    deliver: Callable[[list[can.Message]], None],
    fail: Callable[[BaseException], None],
) -> Callable[[], None]:
    def readable() -> None:
        batch: list[can.Message] = []
        try:
            while len(batch) < MAX_DRAIN and (msg := bus.recv(0.0)) is not None:
                batch.append(msg)
        except (can.CanError, OSError) as e:
            loop.remove_reader(fd)
            fail(e)
        deliver(batch)

    loop.add_reader(fd, readable)

    def stop_fd() -> None:
        loop.remove_reader(fd)

    return stop_fd


def _pump_thread(
    bus: can.BusABC,
    loop: asyncio.AbstractEventLoop,
    deliver: Callable[[list[can.Message]], None],
    fail: Callable[[BaseException], None],
    name: str,
) -> Callable[[], None]:
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            try:
                msg = bus.recv(0.05)
                if msg is None:
                    continue
                batch = [msg]
                while len(batch) < MAX_DRAIN and (more := bus.recv(0.0)) is not None:
                    batch.append(more)
            except (can.CanError, OSError, ValueError) as e:
                if not stop.is_set():
                    loop.call_soon_threadsafe(fail, e)
                return
            loop.call_soon_threadsafe(deliver, batch)

    thread = threading.Thread(target=pump, name=f"gateway.can.rx {name}", daemon=True)
    thread.start()

    def stop_thread() -> None:
        stop.set()
        thread.join(1.0)

    return stop_thread
