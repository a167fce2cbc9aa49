"""systemd notify protocol (READY=1, WATCHDOG=1, STOPPING=1) without a systemd dependency.

When ``NOTIFY_SOCKET`` is unset every call is a no-op, so the daemon runs the same anywhere.
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends state lines to the socket systemd names in ``NOTIFY_SOCKET``."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self._addr: str | None = None
        if addr:
            # A leading '@' names a socket in the abstract namespace.
            self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
        self._sock: socket.socket | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_s: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6
        self._failed = False

    @property
    def enabled(self) -> bool:
        """Whether a notify socket was given."""
        return self._addr is not None

    def notify(self, state: str) -> None:
        """Send one state line (e.g. ``READY=1``); failures are logged once, never raised."""
        if self._addr is None:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(state.encode(), self._addr)
        except OSError as e:
            if not self._failed:
                log.warning("systemd notify to %s failed: %s", self._addr, e)
                self._failed = True

    def ready(self) -> None:
        """Tell systemd start-up is done."""
        self.notify("READY=1")

    def watchdog(self) -> None:
        """Tell systemd the control loop is alive."""
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        """Tell systemd we are shutting down."""
        self.notify("STOPPING=1")

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
