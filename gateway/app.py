"""The daemon: the CAN link, the control loop and the outputs under one supervisor.

Data flows one way: the CAN link pushes readings into the Controller; the control loop steps on
new data (at most every ``control.min_step_s``) and on a tick and hands each step to every
output (``gateway.outputs``: SunSpec server or client, inverter CAN, MQTT, web, Sparkplug, each
behind the ``Output`` protocol) and to the CAN balancing commands. A slow broker or inverter never
slows the CAN path or the control step.

Every task runs under one ``Supervisor`` (``gateway.supervisor``): the CAN input and the control
loop are critical (a failure ends the run, ``run`` returns non-zero and systemd restarts the
service with its safety state restored); every output (the ones above, the state writer
``gateway.state_writer``, the update agent, the health history, and whatever registers with
``Gateway.add_output``) is restarted inside the process with a capped, jittered backoff and never
stops the control loop. SIGTERM/SIGINT stop within 5 s and write the state; a second signal
forces the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.alarmlog import AlarmLog
from gateway.canbus.link import CanLink, heartbeat_signals
from gateway.control import Controller
from gateway.core.health import HealthReport
from gateway.core.model import Command, CommandResult, ControlOutput, Reading, RequestHealthReport
from gateway.errors import ConfigError, FrameError, GatewayError
from gateway.history import HistoryRecorder, history_path
from gateway.links import LinkMonitor
from gateway.outputs import build_outputs
from gateway.phase_events import PhaseEvents
from gateway.profile_check import check_decoder
from gateway.sdnotify import Notifier
from gateway.settings import Settings
from gateway.state_writer import StateWriter
from gateway.supervisor import Supervisor, TaskFactory, run_bounded
from gateway.update.agent import UpdateAgent

if TYPE_CHECKING:
    from gateway.web.metrics import Observed

__all__ = ["SHUTDOWN_GRACE_S", "Gateway", "run", "run_bounded"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]

SHUTDOWN_GRACE_S = 3.0
"""After a stop, how long tasks may take to finish (MQTT says goodbye within 1 s)."""


class Gateway:
    """Wires adapters around one Controller and runs them under one TaskGroup."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = time.monotonic,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.notifier = notifier or Notifier()
        self.ctrl = Controller(settings)
        self.latest: ControlOutput | None = None
        self.can = CanLink(settings.can, on_frame=self._on_frame, clock=clock)
        # A profile that cannot fill the configured pack would hold 0 A forever: refuse at start.
        check_decoder(settings, self.can.decoder)
        self.outputs = build_outputs(settings, on_command=self.command, observe=self.observed)
        self.sunspec_server = self.outputs.sunspec_server
        self.sunspec_client = self.outputs.sunspec_client
        self.inverter_can = self.outputs.inverter_can
        self.mqtt = self.outputs.mqtt
        self.sparkplug = self.outputs.sparkplug
        self.web = self.outputs.web
        # Health history: written from here (the supervisor), never from the core.
        self.history = self._history(settings)
        self._health_codes: set[tuple[str, int]] = set()
        self._new_data = asyncio.Event()
        self._state = StateWriter(
            self.ctrl, Path(settings.state.path), settings.state.interval_s, clock
        )
        self._last_bleed: tuple[bool, ...] | None = None
        self._last_bleed_sent_s = -1e9
        self._heartbeat = 0
        self._links = LinkMonitor(settings, self.can, self.outputs, self.event)
        self._phases = PhaseEvents(self.event)  # every transition, with its reason
        self._alarm_log = AlarmLog(log)
        self.update_agent = self._update_agent(settings)
        self.supervisor = Supervisor(grace_s=SHUTDOWN_GRACE_S, event=self.event)
        self.supervisor.add_critical("gateway.can", self.can.run)
        self.supervisor.add_critical("gateway.control", self._control_loop)
        self.supervisor.add(self._state)
        # The outputs retry their own links; the supervisor restarts them after a bug.
        for output in self.outputs.all:
            self.supervisor.add(output)
        if self.update_agent is not None:
            self.supervisor.add_output("gateway.update", self.update_agent.run)
        if self.history is not None:
            self.supervisor.add_output("gateway.health", self.history.run)

    def add_output(self, name: str, factory: TaskFactory) -> None:
        """Register another contained task before ``run`` (the outputs built from the settings
        are registered already, see ``gateway.outputs``).

        It reads ``latest`` (or is handed each step by its owner) and is restarted with backoff
        when it fails; it never stops the control loop.
        """
        self.supervisor.add_output(name, factory)

    def _history(self, settings: Settings) -> HistoryRecorder | None:
        """The health history recorder (when ``health.enabled``)."""
        if not settings.health.enabled:
            return None
        return HistoryRecorder(
            settings.health,
            history_path(settings.health, settings.state.path),
            cells=settings.pack.cells,
            temp_sensors=settings.pack.temp_sensors,
            capacity_ah=settings.pack.capacity_ah,
            on_report=self._on_health,
            cell_sensors=settings.pack.cell_sensors(),
        )

    def _update_agent(self, settings: Settings) -> UpdateAgent | None:
        """Health record and update hold for ``bms-gateway update`` (when updates are set)."""
        if not settings.update.enabled:
            return None

        def check() -> str:
            from gateway.update.manager import check_lines_for

            return "; ".join(check_lines_for(settings))

        return UpdateAgent(
            settings.update,
            latest=lambda: self.latest,
            links=self.link_states,
            set_hold=self.ctrl.set_hold,
            check=check,
        )

    # --- inputs -----------------------------------------------------------------------------

    def _on_frame(self, readings: list[Reading] | None, t_s: float) -> None:
        """Called by the CAN link for every received frame (None: it did not decode)."""
        if readings is None:
            self.ctrl.count_frame(False)
            return
        self.ctrl.count_frame(True)
        if readings:
            self.ctrl.ingest(readings)
            self._new_data.set()

    def command(self, cmd: Command) -> CommandResult:
        """Apply a command from MQTT or Modbus at the current time."""
        if isinstance(cmd, RequestHealthReport):
            if self.history is None:
                return CommandResult(False, "health history is off (health.enabled = false)")
            self.history.request_report()
            return CommandResult(True, "health report requested")
        result = self.ctrl.command(cmd, self.clock())
        log.info("command %s from %s: %s", type(cmd).__name__, cmd.source or "?", result.message)
        self._new_data.set()
        return result

    # --- the control loop -------------------------------------------------------------------

    def step(self) -> ControlOutput:
        """Run one control step now and hand the result to every output."""
        negotiation = self.outputs.negotiation()
        if negotiation is not None:
            self.ctrl.set_negotiation(negotiation)
        t0 = time.perf_counter()
        out = self.ctrl.step(self.clock())
        step_s = time.perf_counter() - t0
        self.latest = out
        # The inverter links first: a cut reaches the inverter within this step.
        self.outputs.publish(out, step_s)
        self._send_can_outputs(out)
        self._alarm_log.update(out.alarms)
        self._state.after_step()
        if self.history is not None and self.history.due(out.t_s):
            bal = self.ctrl.balancing
            self.history.on_step(out, bal.dissipated_ah, bal.moved_ah)
        self._links.after_step(out)
        self._phases.after_step(out)
        return out

    def _on_health(self, report: HealthReport) -> None:
        """A new health report: trend warnings into the alarm output, the report to MQTT and web."""
        self.ctrl.set_health_warnings(report.warnings, self.clock())
        now = {(w.code.value, w.cell) for w in report.warnings}
        for w in report.warnings:
            if (w.code.value, w.cell) not in self._health_codes:
                log.warning("health: %s %s", w.code.value, w.message)
        self._health_codes = now
        self.outputs.publish_health(report)
        self._new_data.set()

    def event(self, name: str, **data: Any) -> None:
        """Log an event once and publish it on MQTT (start, stop, links, charge phases).

        A loss (``..._lost``) is logged at WARNING, everything else at INFO.
        """
        level = logging.WARNING if name.endswith("_lost") else logging.INFO
        log.log(level, "event %s %s", name, data or "")
        self.outputs.event(name, data)

    def link_states(self, out: ControlOutput) -> dict[str, bool]:
        """Whether each link is up at ``out``: BMS data on CAN, the inverter, the controller."""
        return self._links.states(out)

    def output_links(self) -> dict[str, bool]:
        """``link_states`` of the latest step plus the outputs' own links (MQTT)."""
        out = self.latest
        states = self.link_states(out) if out is not None else {}
        return states | self.outputs.links()

    def observed(self) -> Observed:
        """What the dashboard and ``/metrics`` read: the latest step, links and counters."""
        from gateway.web.metrics import Observed

        counters = self.can.decoder.counters
        dropped = dict(counters.errors)
        dropped["overflow"] = self.can.stats.overflow
        return Observed(
            out=self.latest,
            links=self.output_links(),
            frames_decoded=counters.decoded,
            frames_ignored=counters.ignored,
            frames_dropped=dropped,
            outputs=self.outputs.counters(),
            info={
                "gateway_id": self.settings.control.gateway_id,
                "version": __version__,
                "chemistry": self.settings.pack.chemistry,
            },
        )

    def _send_can_outputs(self, out: ControlOutput) -> None:
        bleed = out.balancing.bleed
        # Resend at least every second: the BMS stops bleeding after 5 s without a command.
        if bleed != self._last_bleed or out.t_s - self._last_bleed_sent_s >= 1.0:
            try:
                self._send_commands(out, bleed)
            except FrameError as e:
                # A value the DBC cannot carry is a bug to report, not a reason to stop.
                log.error("CAN output not sent: %s", e)
            self._last_bleed = bleed
            self._last_bleed_sent_s = out.t_s

    def _send_commands(self, out: ControlOutput, bleed: tuple[bool, ...]) -> None:
        self.can.send_balancing(bleed)
        self._heartbeat = (self._heartbeat + 1) % 256
        self.can.send("GW_Heartbeat", heartbeat_signals(out, self._heartbeat))

    async def _control_loop(self) -> None:
        cfg = self.settings.control
        last_watchdog = -1e9
        wd_interval = (self.notifier.watchdog_s or 0) / 2
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races with the event being set, and the loop would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(cfg.tick_s):
                    await self._new_data.wait()
            self._new_data.clear()
            self.step()
            now = time.monotonic()
            # The watchdog is pinged from here, so a hung control loop gets restarted.
            if wd_interval and now - last_watchdog >= wd_interval:
                self.notifier.watchdog()
                last_watchdog = now
            if cfg.min_step_s:
                await asyncio.sleep(cfg.min_step_s)

    # --- supervision ------------------------------------------------------------------------

    async def run(
        self,
        stop: asyncio.Event,
        extra: list[Callable[[], Coroutine[Any, Any, None]]] | None = None,
    ) -> None:
        """Run until ``stop`` is set; raises if the CAN input or the control loop fails.

        ``extra`` tasks (the demo's simulator, view and timer) are critical: a failure ends the
        run, a return just ends that task. The state is written on the way out, whatever ended
        the run, on this thread (one fsync), so a second signal cannot cut it short.
        """
        restored = self._state.restore()
        if restored:
            self.event("safety_state_restored", restored=restored)
        for i, factory in enumerate(extra or []):
            self.supervisor.add_critical(f"gateway.extra{i}", factory)
        self.notifier.ready()
        self.event(
            "start",
            version=__version__,
            cells=self.settings.pack.cells,
            chemistry=self.settings.pack.chemistry,
            sunspec=self.settings.sunspec.mode,
            inverter_can=self.settings.inverter_can.protocol.value,
        )
        self.event("config_loaded", gateway_id=self.settings.control.gateway_id)

        def announce_stop() -> None:
            # Queued before the outputs are cancelled; the MQTT publisher's goodbye flushes it.
            self.event("stop")

        try:
            await self.supervisor.run(stop, on_stop=announce_stop)
        finally:
            self.notifier.stopping()
            self._state.save_now()
            log.info("gateway stopped")


async def _main(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main_task = asyncio.current_task()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.info("%s received: stopping", signal.Signals(signum).name)
            stop.set()
        elif main_task is not None:
            log.warning("second signal: forcing exit")
            main_task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    from gateway.summary import link_summary

    for line in link_summary(settings):
        # A virtual CAN bus in a daemon is a config left at its default: warn, not inform.
        log.log(logging.WARNING if "(in-process" in line else logging.INFO, "start: %s", line)
    gw = Gateway(settings)
    failed = False
    config_failed = False
    try:
        await gw.run(stop)
    except* ConfigError as config_eg:
        # A configuration error (an unknown CAN interface found at open) exits 2, which the
        # unit's RestartPreventExitStatus=2 keeps systemd from restarting in a loop.
        config_failed = True
        for ce in config_eg.exceptions:
            log.error("configuration error: %s", ce)
    except* GatewayError as eg:
        failed = True
        for e in eg.exceptions:
            log.error("gateway failed: %s", e)
    except* Exception as other:
        failed = True
        for err in other.exceptions:
            log.error("gateway task failed unexpectedly", exc_info=err)
    if config_failed:
        return 2
    return 1 if failed else 0


def run(settings: Settings) -> int:
    """Run the daemon until SIGTERM/SIGINT; the exit status for the shell."""
    return run_bounded(_main(settings))
