"""The control step: readings -> pack state -> SoC -> protection -> limits -> balancing.

``Controller`` is synchronous and clock-injected, so the daemon, replay, the simulator-driven demo
and the tests all run the very same step. The daemon calls ``step`` on a tick and on new data.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

from gateway.core.balancing import BalancingPlanner
from gateway.core.charge_float import float_in_force
from gateway.core.energy import EnergyCounter, pack_power_w
from gateway.core.health import HealthWarning, warnings_as_alarms
from gateway.core.limits import LimitsCalculator
from gateway.core.model import (
    Alarm,
    AlarmReport,
    BalancingMode,
    BalancingPlan,
    Command,
    CommandResult,
    ControlOutput,
    GatewayMode,
    Limits,
    LimitTerm,
    Negotiation,
    Reading,
    ResetAlarms,
    SetBalancingMode,
    SetUserCurrentCap,
    Severity,
    SocReport,
    TermKind,
)
from gateway.core.pack import PackState
from gateway.core.phases import ChargePhases
from gateway.core.protection import Protection
from gateway.core.requests import RequestPlanner
from gateway.core.soc import SocEstimator
from gateway.errors import ConfigError
from gateway.profile_check import check_decoder
from gateway.settings import Settings
from gateway.settings_checks import uv_levels
from gateway.state_store import resolve_chemistry

__all__ = ["SAFETY_VERSION", "Controller", "check_decoder"]

SAFETY_VERSION = 1
"""Version of the safety state layout (``Controller.export_safety``)."""

# Terms whose win on CCL or DCL makes the mode ``stale``: a required input missing or older
# than its timeout, or no complete data set. (An implausible input leaves the data set
# incomplete, which makes the mode ``stale`` on its own.)
_STALE_TERMS = frozenset({TermKind.STALE, TermKind.MISSING, TermKind.INCOMPLETE})

log = logging.getLogger(__name__)


class Controller:
    """Owns the pure core's state for one pack and runs one step at a time.

    Raises:
        ConfigError: at construction, when a section is inconsistent (thresholds out of order,
            an unreadable user OCV table); the message names the key.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        try:
            self.pack = PackState(
                settings.pack,
                settings.plausibility,
                settings.timeouts.input_timeouts(settings.pack),
            )
            chemistry = resolve_chemistry(settings.pack, settings.soc)
            self.soc = SocEstimator(settings.soc, settings.pack, chemistry, settings.timeouts)
            self.protection = Protection(settings.protection, settings.pack, settings.timeouts)
            self.limits = LimitsCalculator(settings.limits, settings.pack, settings.timeouts)
            self.balancing = BalancingPlanner(settings.balancing, settings.pack, settings.timeouts)
            charge = settings.charge.for_chemistry(settings.pack.chemistry)
            tables = self.limits.tables
            fl = float_in_force(
                charge, chemistry, tables.cvl_cell_v, tables.dvl_cell_v, uv_levels(settings)
            )
            bal = settings.balancing
            self.charge = ChargePhases(
                fl.config,
                cells=settings.pack.cells,
                capacity_ah=settings.pack.capacity_ah,
                absorption_cell_v=self.limits.tables.cvl_cell_v,
                float_cell_v=fl.cell_v,
                balancing_start_pct=bal.active_start_pct
                if bal.mode is BalancingMode.ACTIVE
                else bal.start_pct,
                balancing_off_top=bal.runs_off_top(),
                raised_float=fl.raised,
            )
            self.requests = RequestPlanner(settings.inverter_can.thresholds())
        except ValueError as e:
            raise ConfigError(str(e)) from None
        # A step gap longer than the current timeout is not integrated (the pack was unseen).
        self.energy = EnergyCounter(max_gap_s=settings.timeouts.current_timeout_s)
        self._seq = 0
        self._negotiation: Negotiation | None = None
        self._soc: SocReport | None = None
        self._user_cap_charge_a: float | None = None
        self._user_cap_discharge_a: float | None = None
        self._complete_once = False
        self._plan: BalancingPlan | None = None
        self._t_s = 0.0
        self._restored_charge: dict[str, Any] | None = None
        self._restored_off_s = 0.0  # how long the daemon was off before that state
        self._mode_by_command: BalancingMode | None = None
        self._hold: str | None = None
        self.frames = 0
        self.errors = 0
        self._health_alarms: tuple[Alarm, ...] = ()
        self._merged: tuple[AlarmReport, AlarmReport] | None = None

    # --- inputs -----------------------------------------------------------------------------

    def ingest(self, readings: Iterable[Reading]) -> None:
        """Store decoded readings (one frame's worth or more)."""
        apply = self.pack.apply
        for r in readings:
            apply(r)

    def count_frame(self, ok: bool) -> None:
        """Count one received frame as decoded (``ok``) or dropped."""
        if ok:
            self.frames += 1
        else:
            self.errors += 1

    def set_negotiation(self, negotiation: Negotiation | None) -> None:
        """What the inverter link negotiated last (used by the next step)."""
        self._negotiation = negotiation

    def set_health_warnings(self, warnings: tuple[HealthWarning, ...], now_s: float) -> None:
        """Trend warnings from the health analytics, published with the alarms from the next
        step on. They are added *after* the limits are computed: they never cut a limit.

        A warning already active (same code and cell) keeps its ``since_s``.
        """
        before = {(a.code, a.message.split(":", 1)[0]): a.since_s for a in self._health_alarms}
        alarms = warnings_as_alarms(warnings, now_s)
        self._health_alarms = tuple(
            Alarm(
                a.code,
                a.severity,
                a.message,
                before.get((a.code, a.message.split(":", 1)[0]), a.since_s),
            )
            for a in alarms
        )
        self._merged = None

    def _with_health(self, alarms: AlarmReport) -> AlarmReport:
        """The protection report plus the trend warnings (the same object while unchanged)."""
        if not self._health_alarms:
            return alarms
        merged = self._merged
        if merged is None or merged[0] is not alarms:
            merged = (
                alarms,
                AlarmReport(active=alarms.active + self._health_alarms),
            )
            self._merged = merged
        return merged[1]

    def set_hold(self, reason: str | None) -> None:
        """Hold CCL and DCL at 0 A with ``reason`` as the winning term (``"update"`` while BMS
        firmware is flashed); ``None`` lifts it (the limits then come back through the ramp)."""
        self._hold = reason

    @property
    def hold(self) -> str | None:
        """The hold in force, if any."""
        return self._hold

    def command(self, cmd: Command, now_s: float) -> CommandResult:
        """Apply a command from MQTT or Modbus; the answer says what happened."""
        if isinstance(cmd, ResetAlarms):
            return self.protection.reset(now_s)
        if isinstance(cmd, SetBalancingMode):
            self.balancing.set_mode(cmd.mode)
            self._mode_by_command = cmd.mode
            return CommandResult(True, f"balancing mode {cmd.mode.value}")
        if isinstance(cmd, SetUserCurrentCap):
            for name, value in (("charge_a", cmd.charge_a), ("discharge_a", cmd.discharge_a)):
                if value is not None and not (math.isfinite(value) and value >= 0):
                    return CommandResult(False, f"{name} (={value}) must be >= 0 A or unset")
            self._user_cap_charge_a = cmd.charge_a
            self._user_cap_discharge_a = cmd.discharge_a
            return CommandResult(
                True,
                "user cap charge "
                + ("none" if cmd.charge_a is None else f"{cmd.charge_a:g} A")
                + ", discharge "
                + ("none" if cmd.discharge_a is None else f"{cmd.discharge_a:g} A")
                + " (it only lowers the computed limits)",
            )
        return CommandResult(False, f"unknown command {type(cmd).__name__}")

    # --- the step ---------------------------------------------------------------------------

    def step(self, now_s: float) -> ControlOutput:
        """Run one control step at ``now_s`` and return everything it decided."""
        self._seq += 1
        self._t_s = now_s
        snap = self.pack.snapshot(now_s, frames=self.frames, errors=self.errors)
        # The estimator bounds its own rate (soc.min_interval_s) and loses no charge between.
        # It counts the balancing currents of the plan that ran over the interval.
        soc = self._soc = self.soc.step(
            snap, now_s, cell_extra_current_a=self.balancing.cell_currents_a()
        )
        neg = self._negotiation
        alarms = self.protection.step(snap, soc, now_s, neg)
        if self._restored_charge is not None:
            for note in self.charge.restore(self._restored_charge, now_s, self._restored_off_s):
                log.warning("restored state: %s", note)
            self._restored_charge = None
        charge = self.charge.step(snap, soc, self._plan, now_s)
        limits = self.limits.step(
            snap,
            soc,
            alarms,
            now_s,
            inverter_max_charge_a=neg.inverter_max_charge_a if neg else None,
            inverter_max_discharge_a=neg.inverter_max_discharge_a if neg else None,
            user_cap_charge_a=self._user_cap_charge_a,
            user_cap_discharge_a=self._user_cap_discharge_a,
            cvl_phase=LimitTerm(charge.phase.value, charge.cvl_v, TermKind.PHASE),
            link_hold=neg.link_hold if neg else None,
            hold=self._hold,
        )
        balancing = self._plan = self.balancing.step(snap, soc, now_s)
        timeouts = self.settings.timeouts
        power_w = pack_power_w(snap, timeouts.current_timeout_s, timeouts.pack_voltage_timeout_s)
        energy = self.energy.step(power_w, now_s)
        alarms = self._with_health(alarms)
        self._complete_once = self._complete_once or snap.complete
        return ControlOutput(
            seq=self._seq,
            t_s=now_s,
            pack=snap,
            soc=soc,
            alarms=alarms,
            limits=limits,
            balancing=balancing,
            negotiation=neg,
            charge=charge,
            mode=self._mode(snap.complete, alarms.worst, limits),
            energy=energy,
            # What the battery asks of the inverter follows from the limits, SoC and plan.
            requests=self.requests.plan(limits, snap, soc, balancing, charge),
        )

    def _mode(self, complete: bool, worst: Severity, limits: Limits) -> GatewayMode:
        if not self._complete_once:
            return GatewayMode.STARTING
        if worst >= Severity.ALARM:
            return GatewayMode.FAULT
        if (
            not complete
            or limits.ccl_a.winner_kind in _STALE_TERMS
            or limits.dcl_a.winner_kind in _STALE_TERMS
        ):
            return GatewayMode.STALE
        return GatewayMode.NORMAL

    # --- persistence ------------------------------------------------------------------------

    def export_state(self) -> dict[str, Any] | None:
        """The estimator state (and energy counters) to persist; ``None`` before the start."""
        if self._soc is None:
            return None
        state = dict(self.soc.export_state())
        state["energy"] = self.energy.export_state()
        # The charge phase's memory (age of the last full charge, a pending request) rides along:
        # monotonic time restarts with the process, so it is saved as an age.
        state["charge_phase"] = self.charge.export_state(self._t_s)
        return state

    def restore_state(self, state: dict[str, Any], off_s: float = 0.0) -> list[str]:
        """Load a persisted estimator state; a line for each value it had to limit.

        The energy counters are restored first, on their own: a state of another pack still
        keeps Home Assistant's energy totals from going backwards. ``off_s``: how long the
        daemon was off since the state was written (s, >= 0; ``gateway.state_writer.time_off_s``):
        the charge phases' ages grow by it (``ChargePhases.restore``).

        Raises:
            ValueError: it does not fit this pack (other cell count, chemistry or version).
        """
        if "energy" in state:
            self.energy.restore(state["energy"])
        state = dict(state)
        charge = state.pop("charge_phase", None)
        notes = self.soc.restore(state)
        if isinstance(charge, dict):
            # Applied at the next step, which knows the time.
            self._restored_charge = charge
            self._restored_off_s = max(0.0, off_s)
        return notes

    def safety_key(self) -> tuple[object, ...]:
        """Changes whenever the safety state to persist changes (cheap; compare each step)."""
        latched = tuple(a.code for a in self.protection.last.active if a.latched)
        return (
            latched,
            self._user_cap_charge_a,
            self._user_cap_discharge_a,
            self._mode_by_command,
            self.balancing.pauses_started,
        )

    def export_safety(self, now_s: float) -> dict[str, Any]:
        """Latched alarms, user caps, the commanded balancing mode and balancing pauses.

        Plain JSON values; pauses as seconds left (monotonic times do not survive a restart).
        """
        return {
            "version": SAFETY_VERSION,
            "latched_alarms": self.protection.export_latched(),
            "user_cap_charge_a": self._user_cap_charge_a,
            "user_cap_discharge_a": self._user_cap_discharge_a,
            "balancing_mode": (
                self._mode_by_command.value if self._mode_by_command is not None else None
            ),
            "balancing_pauses_s": {
                str(k): round(v, 3) for k, v in self.balancing.export_pauses(now_s).items()
            },
        }

    def restore_safety(self, state: dict[str, Any], now_s: float) -> list[str]:
        """Resume the safety state saved by ``export_safety``; one line per thing restored.

        Raises:
            ValueError: the state is of another version or malformed; nothing is changed then.
        """
        if state.get("version") != SAFETY_VERSION:
            raise ValueError(f"safety state version {state.get('version')!r} unsupported")
        latched = state.get("latched_alarms") or {}
        pauses = state.get("balancing_pauses_s") or {}
        if not isinstance(latched, dict) or not isinstance(pauses, dict):
            raise ValueError("latched_alarms and balancing_pauses_s must be objects")
        caps = [state.get("user_cap_charge_a"), state.get("user_cap_discharge_a")]
        for cap in caps:
            ok = cap is None or (isinstance(cap, int | float) and math.isfinite(cap) and cap >= 0)
            if not ok or isinstance(cap, bool):
                raise ValueError(f"user cap (={cap!r}) must be a finite number >= 0 or null")
        mode_raw = state.get("balancing_mode")
        try:
            mode = BalancingMode(mode_raw) if mode_raw is not None else None
            pause_s = {int(k): float(v) for k, v in pauses.items()}
        except (TypeError, ValueError) as e:
            raise ValueError(f"malformed balancing state ({e})") from None
        lines: list[str] = []
        codes = self.protection.restore_latched({str(k): str(v) for k, v in latched.items()}, now_s)
        if codes:
            lines.append(
                f"latched alarms {', '.join(codes)} (held until reset: MQTT cmd/reset_alarms"
                " or SunSpec AlmRst, once the cause is gone)"
            )
        self._user_cap_charge_a, self._user_cap_discharge_a = caps
        if caps != [None, None]:
            lines.append(f"user caps charge {caps[0]} A, discharge {caps[1]} A")
        if mode is not None:
            self.balancing.set_mode(mode)
            self._mode_by_command = mode
            lines.append(f"balancing mode {mode.value} (set by command)")
        if pause_s:
            self.balancing.restore_pauses(pause_s, now_s)
            lines.append(f"balancing pauses of cells {sorted(pause_s)}")
        return lines

    @property
    def balancing_mode(self) -> BalancingMode:
        """The balancing mode in force."""
        return self.balancing.mode
