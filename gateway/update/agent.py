"""The daemon's side of updates: publish health, honour the update hold, optionally check.

Runs as one supervised side task of the gateway (only when ``[update]`` is configured). About
twice a second it reads ``hold.json`` (written by ``bms-gateway update apply`` around a BMS
flash) and sets or lifts the controller's hold, and it writes ``health.json`` for the updater's
safe-to-update gate and post-restart health check. A periodic check (off by default) only logs
what is available; applying is always an explicit command.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from gateway import __version__
from gateway.core.model import ControlOutput, Severity
from gateway.errors import UpdateError
from gateway.update.config import UpdateConfig
from gateway.update.health import HealthRecord
from gateway.update.store import read_json, write_json_atomic

__all__ = ["HEALTH_FILE", "HOLD_FILE", "UpdateAgent", "health_record", "read_hold"]

log = logging.getLogger(__name__)

HEALTH_FILE = "health.json"
HOLD_FILE = "hold.json"
PERIOD_S = 0.5


def health_record(
    out: ControlOutput, links: dict[str, bool], boot_id: str, now_s: float, hold: str | None
) -> HealthRecord:
    """The health record of one control output at wall time ``now_s``."""
    return HealthRecord(
        boot_id=boot_id,
        written_s=now_s,
        seq=out.seq,
        complete=out.pack.complete,
        current_a=out.pack.current_a,
        alarms=tuple(a.code for a in out.alarms.active if a.severity >= Severity.ALARM),
        links=links,
        hold=hold,
        ccl_a=out.limits.ccl_a.value,
        dcl_a=out.limits.dcl_a.value,
        version=__version__,
    )


def read_hold(state_dir: Path) -> str | None:
    """The hold reason in ``hold.json`` (``"update"``), or ``None`` when there is none."""
    data = read_json(state_dir / HOLD_FILE)
    if isinstance(data, dict) and isinstance(data.get("reason"), str):
        return str(data["reason"])[:32]
    return None


class UpdateAgent:
    """Health writer and hold reader for one gateway process.

    Args:
        config: the ``[update]`` section.
        latest: the latest control output (``None`` before the first step).
        links: link states of an output (``Gateway.link_states``).
        set_hold: sets or lifts the controller's hold.
        check: the periodic check (returns a line to log); ``None``: no periodic check.
    """

    def __init__(
        self,
        config: UpdateConfig,
        *,
        latest: Callable[[], ControlOutput | None],
        links: Callable[[ControlOutput], dict[str, bool]],
        set_hold: Callable[[str | None], None],
        check: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        self.state_dir = Path(config.state_dir)
        self.boot_id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._latest = latest
        self._links = links
        self._set_hold = set_hold
        self._check = check
        self._hold: str | None = None
        self._write_failed = False

    def tick(self) -> None:
        """Apply the hold file and write the health record (both small, local files)."""
        hold = read_hold(self.state_dir)
        if hold != self._hold:
            log.warning("update hold %s", f"set: CCL = DCL = 0 A ({hold})" if hold else "lifted")
            self._hold = hold
            self._set_hold(hold)
        out = self._latest()
        if out is None:
            return
        rec = health_record(out, self._links(out), self.boot_id, time.time(), hold)
        try:
            write_json_atomic(self.state_dir / HEALTH_FILE, rec.to_json())
        except OSError as e:
            if not self._write_failed:
                log.warning("cannot write %s: %s", self.state_dir / HEALTH_FILE, e)
            self._write_failed = True
        else:
            if self._write_failed:
                log.info("health record written again")
            self._write_failed = False

    async def run(self) -> None:
        """Tick forever; run the periodic check when configured."""
        interval = self.config.check_interval_s
        # The first check a minute after start (or sooner with a shorter interval).
        first = min(60.0, interval) if interval and self._check else float("inf")
        next_check = time.monotonic() + first
        while True:
            self.tick()
            if time.monotonic() >= next_check and interval:
                next_check = time.monotonic() + interval
                await self._periodic_check()
            await asyncio.sleep(PERIOD_S)

    async def _periodic_check(self) -> None:
        check = self._check
        if check is None:
            return
        try:
            line = await asyncio.to_thread(check)
        except UpdateError as e:
            log.warning("update check: %s", e)
        else:
            log.info("update check: %s", line)
