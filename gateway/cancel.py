"""The one cancellation helper for retry loops around libraries that can lose a cancellation.

On Python 3.11 ``asyncio.wait_for`` (which pymodbus and aiomqtt use to await answers and
acknowledgements) can return a result and drop a cancellation that arrived at the same moment;
the task's ``cancelling()`` count still shows it (https://github.com/python/cpython/issues/86296,
fixed in 3.12). Loops that retry on link errors call ``raise_if_cancelling`` at every turn, so a
shutdown never waits on them for ever.
"""

from __future__ import annotations

import asyncio

__all__ = ["raise_if_cancelling"]


def raise_if_cancelling() -> None:
    """Raise ``asyncio.CancelledError`` when the current task is being cancelled.

    Call it with an event loop running. A no-op in a loop callback outside any task and in a
    task nobody is cancelling.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
