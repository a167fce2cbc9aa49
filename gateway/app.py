"""The supervisor: one TaskGroup running the CAN link, the control loop and the outputs.

Data flows one way: the CAN link pushes readings into the Controller; the control loop steps on
new data (at most every ``control.min_step_s``) and on a tick; outputs (Modbus, MQTT, CAN commands)
read the latest step. A slow broker or inverter never slows the CAN path or the control step.

Every task runs under one ``Supervisor`` (``gateway.supervisor``): the CAN input and the control
loop are critical (a failure ends the run, ``run`` returns non-zero and systemd restarts the
service with its safety state restored); every output (MQTT, the SunSpec server or client, the
state writer, and whatever other outputs register with ``Gateway.add_output``) is restarted inside
the process with a capped, jittered backoff and never stops the control loop. SIGTERM/SIGINT stop
within 5 s and write the state; a second signal forces the exit.
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
from gateway.control import Controller, check_decoder
from gateway.core.chemistry import get_chemistry
from gateway.core.health import HealthReport
from gateway.core.model import Command, CommandResult, ControlOutput, Reading, RequestHealthReport
from gateway.errors import ConfigError, FrameError, GatewayError
from gateway.history import HistoryRecorder, history_path
from gateway.inverter_can.config import InverterProtocol
from gateway.inverter_can.frames import BatteryIdentity
from gateway.inverter_can.link import InverterCanLink
from gateway.mqtt.publisher import MqttPublisher
from gateway.sdnotify import Notifier
from gateway.settings import Settings
from gateway.state_store import load_document, remove_orphans, save_state
from gateway.sunspec.client import SunSpecClient
from gateway.sunspec.maps import BatteryInfo
from gateway.sunspec.server import SunSpecServer
from gateway.supervisor import Supervisor, TaskFactory
from gateway.update.agent import UpdateAgent

if TYPE_CHECKING:
    from gateway.sparkplug.edge import SparkplugEdge
    from gateway.web.metrics import Observed
    from gateway.web.server import WebServer

__all__ = ["SHUTDOWN_GRACE_S", "Gateway", "run"]

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
        self.sunspec_server: SunSpecServer | None = None
        self.sunspec_client: SunSpecClient | None = None
        if settings.sunspec.mode == "server":
            chem = get_chemistry(settings.pack.chemistry)
            info = BatteryInfo.from_config(
                settings.sunspec,
                cells=settings.pack.cells,
                capacity_ah=settings.pack.capacity_ah,
                nominal_cell_v=chem.nominal_v,
                max_charge_a=settings.limits.max_charge_a,
                max_discharge_a=settings.limits.max_discharge_a,
                version=__version__,
            )
            # The SunSpec links keep real time even when the demo accelerates the pack: Hb counts
            # wall seconds and a storage controller's CtrlHb timeout is a wall-clock promise.
            self.sunspec_server = SunSpecServer(
                settings.sunspec, info=info, on_command=self.command
            )
        elif settings.sunspec.mode == "client":
            self.sunspec_client = SunSpecClient(settings.sunspec)
        self.inverter_can: InverterCanLink | None = None
        if settings.inverter_can.protocol is not InverterProtocol.OFF:
            # Wall clock: the inverter's keep-alive timeout is a real-time promise.
            self.inverter_can = InverterCanLink(
                settings.inverter_can,
                BatteryIdentity.from_config(
                    settings.inverter_can,
                    capacity_ah=settings.pack.capacity_ah,
                    version=__version__,
                    cells=settings.pack.cells,
                    nominal_cell_v=get_chemistry(settings.pack.chemistry).nominal_v,
                ),
            )
        self.mqtt: MqttPublisher | None = None
        if settings.mqtt.enabled:
            self.mqtt = MqttPublisher(
                settings.mqtt,
                settings.control.gateway_id,
                on_command=self.command,
                health=settings.health.enabled,
            )
        self.sparkplug: SparkplugEdge | None = None
        if settings.sparkplug.enabled:
            try:  # pysparkplug only when it is on
                from gateway.sparkplug.edge import SparkplugEdge
            except ImportError as e:
                raise ConfigError(
                    f"sparkplug.enabled needs pysparkplug ({e}); install it with "
                    "`pip install --no-deps 'pysparkplug>=0.6.1,<0.7'` (make install does)"
                ) from None

            self.sparkplug = SparkplugEdge(
                settings.sparkplug, settings.control.gateway_id, __version__
            )
        self.web: WebServer | None = None
        if settings.web.enabled:
            from gateway.web.server import WebServer  # aiohttp only when the dashboard is on

            chem = get_chemistry(settings.pack.chemistry)
            self.web = WebServer(
                settings.web,
                settings.control.gateway_id,
                observe=self.observed,
                on_command=self.command,
                v_window=(chem.min_v, chem.max_v),
            )
        # Health history: written from here (the supervisor), never from the core.
        self.history: HistoryRecorder | None = None
        if settings.health.enabled:
            self.history = HistoryRecorder(
                settings.health,
                history_path(settings.health, settings.state.path),
                cells=settings.pack.cells,
                temp_sensors=settings.pack.temp_sensors,
                capacity_ah=settings.pack.capacity_ah,
                on_report=self._on_health,
                cell_sensors=settings.pack.cell_sensors(),
            )
        self._health_codes: set[tuple[str, int]] = set()
        self._new_data = asyncio.Event()
        self._safety_changed = asyncio.Event()
        self._safety_key: tuple[object, ...] | None = None
        self._state_path = Path(settings.state.path)
        self._last_bleed: tuple[bool, ...] | None = None
        self._last_bleed_sent_s = -1e9
        self._heartbeat = 0
        self._links: dict[str, bool] = {}
        self._links_checked_s = -1e9
        self._alarm_log = AlarmLog(log)
        self.update_agent = self._update_agent(settings)
        self.supervisor = Supervisor(grace_s=SHUTDOWN_GRACE_S, event=self.event)
        self.supervisor.add_critical("gateway.can", self.can.run)
        self.supervisor.add_critical("gateway.control", self._control_loop)
        self.supervisor.add_output("gateway.state", self._persist_loop)
        if self.sunspec_server is not None:
            self.supervisor.add_output("gateway.sunspec.server", self.sunspec_server.run)
        if self.sunspec_client is not None:
            self.supervisor.add_output("gateway.sunspec.client", self.sunspec_client.run)
        if self.mqtt is not None:
            self.supervisor.add_output("gateway.mqtt", self.mqtt.run)
        if self.inverter_can is not None:
            self.supervisor.add_output("gateway.inverter_can", self.inverter_can.run)
        if self.update_agent is not None:
            self.supervisor.add_output("gateway.update", self.update_agent.run)
        if self.history is not None:
            self.supervisor.add_output("gateway.health", self.history.run)
        # Side outputs: they retry their own links; the supervisor restarts them after a bug.
        if self.web is not None:
            self.supervisor.add_output("gateway.web", self.web.run)
        if self.sparkplug is not None:
            self.supervisor.add_output("gateway.sparkplug", self.sparkplug.run)

    def add_output(self, name: str, factory: TaskFactory) -> None:
        """Register another output (inverter CAN, web, ...) before ``run``.

        It reads ``latest`` (or is handed each step by its owner) and is restarted with backoff
        when it fails; it never stops the control loop.
        """
        self.supervisor.add_output(name, factory)

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
        if self.sunspec_server is not None:
            self.ctrl.set_negotiation(self.sunspec_server.negotiation())
        elif self.sunspec_client is not None:
            self.ctrl.set_negotiation(self.sunspec_client.negotiation())
        elif self.inverter_can is not None:
            self.ctrl.set_negotiation(self.inverter_can.negotiation())
        t0 = time.perf_counter()
        out = self.ctrl.step(self.clock())
        step_s = time.perf_counter() - t0
        self.latest = out
        if self.sunspec_server is not None:
            self.sunspec_server.update(out)
        if self.sunspec_client is not None:
            self.sunspec_client.update(out)
        if self.inverter_can is not None:
            # First among the CAN outputs: a cut reaches the inverter within this step.
            self.inverter_can.update(out)
        if self.mqtt is not None:
            self.mqtt.publish_output(out)
        if self.web is not None:
            self.web.publish_output(out, step_s)
        if self.sparkplug is not None:
            self.sparkplug.publish_output(out)
        self._send_can_outputs(out)
        self._alarm_log.update(out.alarms)
        key = self.ctrl.safety_key()
        if key != self._safety_key:
            # A latch, a cap, a commanded mode or a pause changed: write it now, not in a minute.
            if self._safety_key is not None:
                self._safety_changed.set()
            self._safety_key = key
        if self.history is not None and self.history.due(out.t_s):
            bal = self.ctrl.balancing
            self.history.on_step(out, bal.dissipated_ah, bal.moved_ah)
        if out.t_s - self._links_checked_s >= 1.0:
            self._links_checked_s = out.t_s
            self._watch_links(out)
        return out

    def _on_health(self, report: HealthReport) -> None:
        """A new health report: trend warnings into the alarm output, the report to MQTT and web."""
        self.ctrl.set_health_warnings(report.warnings, self.clock())
        now = {(w.code.value, w.cell) for w in report.warnings}
        for w in report.warnings:
            if (w.code.value, w.cell) not in self._health_codes:
                log.warning("health: %s %s", w.code.value, w.message)
        self._health_codes = now
        if self.mqtt is not None:
            self.mqtt.publish_health(report)
        if self.web is not None:
            self.web.publish_health(report)  # a latest-value holder: never blocks
        self._new_data.set()

    def event(self, name: str, **data: Any) -> None:
        """Log an event once and publish it on MQTT (start, stop, link lost and recovered).

        A loss (``..._lost``) is logged at WARNING, everything else at INFO.
        """
        level = logging.WARNING if name.endswith("_lost") else logging.INFO
        log.log(level, "event %s %s", name, data or "")
        if self.mqtt is not None:
            self.mqtt.event(name, **data)
        if self.web is not None:
            self.web.event(name, data)

    def link_states(self, out: ControlOutput) -> dict[str, bool]:
        """Whether each link is up at ``out``: BMS data on CAN, the inverter, the controller."""
        age = out.pack.current_age_s
        fresh = age is not None and age <= self.settings.timeouts.current_timeout_s
        states = {"can": self.can.connected and fresh}
        if self.sunspec_client is not None:
            states["inverter"] = self.sunspec_client.connected
        if self.inverter_can is not None:
            alive = self.inverter_can.keepalive_alive()
            if alive is not None:
                states["inverter_can" if "inverter" in states else "inverter"] = alive
        if self.sunspec_server is not None:
            hb = self.sunspec_server.controller_heartbeat()
            if hb.seen:
                states["storage_controller"] = not hb.lost
        return states

    def output_links(self) -> dict[str, bool]:
        """``link_states`` of the latest step plus the outputs' own links (MQTT)."""
        out = self.latest
        states = self.link_states(out) if out is not None else {}
        if self.mqtt is not None:
            states["mqtt"] = self.mqtt.status.connected
        if self.sparkplug is not None:
            states["sparkplug"] = self.sparkplug.status.connected
        return states

    def observed(self) -> Observed:
        """What the dashboard and ``/metrics`` read: the latest step, links and counters."""
        from gateway.web.metrics import Observed

        counters = self.can.decoder.counters
        dropped = dict(counters.errors)
        dropped["overflow"] = self.can.stats.overflow
        outputs: dict[str, int] = {}
        if self.mqtt is not None:
            st = self.mqtt.status
            outputs |= {
                "mqtt_sent": st.messages_sent,
                "mqtt_dropped": st.events_dropped,
                "mqtt_reconnects": st.reconnects,
            }
        if self.sparkplug is not None:
            sp = self.sparkplug.status
            outputs |= {"sparkplug_births": sp.births, "sparkplug_data": sp.data_messages}
        return Observed(
            out=self.latest,
            links=self.output_links(),
            frames_decoded=counters.decoded,
            frames_ignored=counters.ignored,
            frames_dropped=dropped,
            outputs=outputs,
            info={
                "gateway_id": self.settings.control.gateway_id,
                "version": __version__,
                "chemistry": self.settings.pack.chemistry,
            },
        )

    def _link_detail(self, name: str, out: ControlOutput) -> dict[str, Any]:
        """What a link's state rests on: the value and its threshold."""
        if name == "can":
            age = out.pack.current_age_s
            return {
                "pack_current_age_s": None if age is None else round(age, 3),
                "timeout_s": self.settings.timeouts.current_timeout_s,
                "interface_up": self.can.connected,
            }
        if name == "storage_controller" and self.sunspec_server is not None:
            hb = self.sunspec_server.controller_heartbeat()
            return {
                "ctrl_hb_age_s": None if hb.age_s is None else round(hb.age_s, 3),
                "timeout_s": hb.timeout_s,
            }
        if name == "inverter" and self.sunspec_client is not None:
            return {"error": self.sunspec_client.last_error or ""}
        return {}

    def _watch_links(self, out: ControlOutput) -> None:
        for name, up in self.link_states(out).items():
            before = self._links.get(name)
            if before is None and not up:
                continue  # never up yet: nothing was lost
            if before != up:
                detail = self._link_detail(name, out)
                if up:
                    verb = "recovered" if before is False else "up"
                    self.event(f"{name}_link_{verb}", **detail)
                else:
                    self.event(f"{name}_link_lost", **detail)
                self._links[name] = up

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

    async def _persist_loop(self) -> None:
        """Write the state every ``state.interval_s`` and at once when the safety state changes."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.state.interval_s):
                    await self._safety_changed.wait()
            self._safety_changed.clear()
            await self._save_state()

    async def _save_state(self) -> None:
        """Write the state from a worker thread (the control loop keeps stepping meanwhile)."""
        state = self.ctrl.export_state()
        safety = self.ctrl.export_safety(self.clock())
        try:
            await asyncio.to_thread(save_state, self._state_path, state, safety)
        except (OSError, ValueError) as e:
            # Retried at the next change or interval; the control loop keeps running.
            log.warning("could not write state file %s: %s", self._state_path, e)

    def _save_state_now(self) -> None:
        """The final write at stop, on this thread: nothing (not a second signal) cuts it short.

        Every task has stopped by then, so blocking the loop for one fsync costs nothing.
        """
        try:
            save_state(
                self._state_path, self.ctrl.export_state(), self.ctrl.export_safety(self.clock())
            )
        except (OSError, ValueError) as e:
            log.error("state file %s not written at stop: %s", self._state_path, e)

    def _restore_state(self) -> None:
        remove_orphans(self._state_path)
        doc = load_document(self._state_path)
        if doc.estimator is not None:
            try:
                self.ctrl.restore_state(doc.estimator)
            except ValueError as e:
                log.warning("state file %s not used (%s); starting from OCV", self._state_path, e)
            else:
                log.info("estimator state restored from %s", self._state_path)
        if doc.safety is not None:
            try:
                restored = self.ctrl.restore_safety(doc.safety, self.clock())
            except ValueError as e:
                log.error(
                    "safety state in %s not used (%s): latched alarms, user caps and balancing "
                    "pauses of the last run are lost",
                    self._state_path,
                    e,
                )
            else:
                if restored:
                    log.warning(
                        "restored safety state from %s: %s", self._state_path, "; ".join(restored)
                    )
                    self.event("safety_state_restored", restored=restored)
        self._safety_key = self.ctrl.safety_key()

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
        self._restore_state()
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
            self._save_state_now()
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


def run_bounded(main: Coroutine[Any, Any, int], grace_s: float = 1.0) -> int:
    """``asyncio.run(main)``, except that tasks left running afterwards cannot hang the exit.

    ``asyncio.run`` cancels the remaining tasks and waits for them without a bound; a library
    task that swallows its cancellation would keep the process alive for ever. Here they get
    ``grace_s``, then the loop is closed regardless (and they are named in the log).
    """
    loop = asyncio.new_event_loop()
    try:
        try:
            return loop.run_until_complete(main)
        except asyncio.CancelledError:
            return 1
    finally:
        try:
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in left:
                t.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=grace_s))
                stuck = sorted(t.get_name() for t in left if not t.done())
                if stuck:
                    log.error("exit: abandoning tasks that ignore cancellation: %s", stuck)
            loop.run_until_complete(
                asyncio.wait([loop.create_task(loop.shutdown_asyncgens())], timeout=grace_s)
            )
        finally:
            loop.close()
