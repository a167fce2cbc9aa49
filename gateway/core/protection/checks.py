"""The protection checks: what each alarm code measures, run once per control step.

``Protection.step`` evaluates every check of the catalogue (``alarms.ALARMS``) against one
``PackSnapshot`` and advances its warning and alarm ``Level`` (``levels``); the thresholds come
from ``ProtectionConfig.resolve`` (``config``). Pure and clock-injected: the time is an argument.
"""

from __future__ import annotations

from typing import cast

from gateway.core.cells import cell_sum_v, extremes
from gateway.core.freshness import TimeoutsConfig, stale_inputs
from gateway.core.kinds import StaleKind
from gateway.core.model import AlarmReport, CommandResult, Negotiation, PackSnapshot, SocReport
from gateway.core.pack import PackConfig, cell_temps
from gateway.core.protection.alarms import ALARMS
from gateway.core.protection.config import ProtectionConfig
from gateway.core.protection.levels import CLEAR, HOLD, Check, Level, Levels, above, below

__all__ = ["Protection"]

# The timeouts section's defaults, for callers that configure none (frozen, so sharing is safe).
_DEFAULT_TIMEOUTS = TimeoutsConfig()


def _debounce(code: str, config: ProtectionConfig) -> tuple[tuple[int, float], tuple[int, float]]:
    """(steps, seconds) a violation must persist before the warning and the alarm level of
    ``code`` activate."""
    n, t = config.debounce_count, config.debounce_s
    if code in ("voltage_imbalance", "temperature_imbalance"):
        return (n, config.imbalance_debounce_s), (n, config.imbalance_debounce_s)
    if code == "stale_data":
        # Staleness is already a duration: warn at once, alarm once it persists.
        return (1, 0.0), (1, config.stale_alarm_s)
    if code in ("communication_loss", "configuration", "measurement_fault"):
        return (1, 0.0), (1, 0.0)
    if code.startswith("inverter_"):
        return (1, config.disobedience_warning_s), (1, config.disobedience_alarm_s)
    return (n, t), (n, t)


def _levels(config: ProtectionConfig) -> Levels:
    """A warning and an alarm level for every code of the catalogue, none active."""
    latching = set(config.latching)
    clear = config.clear_debounce_s
    checks: dict[str, Check] = {}
    for code, spec in ALARMS.items():
        (warn_n, warn_t), (alarm_n, alarm_t) = _debounce(code, config)
        checks[code] = Check(
            spec,
            Level(warn_n, warn_t, clear, latch=False),
            Level(alarm_n, alarm_t, clear, latch=code in latching),
        )
    return Levels(checks)


def _freshest(ages: tuple[float | None, ...]) -> float | None:
    """The smallest known age (``min`` runs in C when every age is known)."""
    if None not in ages:
        return min(cast(tuple[float, ...], ages), default=None)
    known = [a for a in ages if a is not None]
    return min(known) if known else None


class Protection:
    """Runs every protection check once per step and reports the active warnings and alarms."""

    def __init__(
        self,
        config: ProtectionConfig,
        pack: PackConfig,
        timeouts: TimeoutsConfig = _DEFAULT_TIMEOUTS,
    ) -> None:
        """Resolve chemistry defaults.

        Args:
            config: the thresholds (``protection`` section).
            pack: the pack they apply to.
            timeouts: input ages past which ``stale_data`` is raised (``timeouts`` section; the
                limits' fail-safe must get the same one).

        Raises:
            ValueError: a threshold is out of order (the message names the keys).
        """
        self.config = config
        self.pack = pack
        self.thresholds = config.resolve(pack)
        self.timeouts = timeouts
        self._timeouts = self.timeouts.input_timeouts(pack)
        self._levels = _levels(config)
        self._run = self._levels.run
        self._start_s: float | None = None
        self._last: AlarmReport = AlarmReport()
        self._cell_sensors = pack.cell_sensors() if pack.board_sensors else None

    @property
    def last(self) -> AlarmReport:
        """The report of the last step."""
        return self._last

    def _threshold_check(
        self,
        code: str,
        now_s: float,
        x: float | None,
        warn_at: float,
        alarm_at: float,
        hysteresis: float,
        high: bool,
        describe: str,
        unit: str,
        enabled: bool = True,
    ) -> None:
        if x is None:
            self._run(code, now_s, HOLD, HOLD, "")
            return
        if not enabled:
            self._run(code, now_s, CLEAR, CLEAR, "")
            return
        test = above if high else below
        w = test(x, warn_at, hysteresis)
        a = test(x, alarm_at, hysteresis)
        if w[0] or a[0]:
            sign = ">=" if high else "<="
            level, at = ("alarm", alarm_at) if a[0] else ("warning", warn_at)
            message = f"{describe} {x:.3f} {unit} ({level} {sign} {at:g} {unit})"
        else:
            message = ""
        self._run(code, now_s, w, a, message)

    def step(
        self,
        snapshot: PackSnapshot,
        soc: SocReport | None,
        now_s: float,
        negotiation: Negotiation | None = None,
    ) -> AlarmReport:
        """Evaluate every check against ``snapshot`` and return the active warnings and alarms.

        Args:
            snapshot: the pack as of ``now_s``.
            soc: the SoC estimate, or ``None`` before the estimator runs (``soc_low`` holds).
            now_s: monotonic seconds (injected).
            negotiation: the inverter link's latest negotiation for the disobedience checks;
                ``None`` or not connected: those checks clear.
        """
        if self._start_s is None:
            self._start_s = now_s
        after_grace = now_s - self._start_s >= self.config.startup_grace_s
        self._check_cell_voltages(snapshot, now_s)
        self._check_temperatures(snapshot, now_s)
        self._check_current(snapshot.current_a, now_s)
        self._check_soc(soc, now_s)
        self._check_data(snapshot, now_s, after_grace)
        self._check_faults(snapshot, now_s)
        self._check_configuration(snapshot, now_s)
        self._check_disobedience(snapshot.current_a, negotiation, now_s)
        self._last = self._levels.report()
        return self._last

    def _check_cell_voltages(self, snapshot: PackSnapshot, now_s: float) -> None:
        """``cell_overvoltage``, ``cell_undervoltage`` and ``voltage_imbalance``."""
        th = self.thresholds
        run = self._threshold_check
        # One pass for the extremes and their cells.
        ext = extremes(snapshot.cell_voltage_v)
        vmax = vmin = None
        imax = imin = -1
        if ext is not None:
            vmin, imin, vmax, imax = ext
            imin, imax = imin + 1, imax + 1  # messages number cells from 1, as installers do
        hv = th.voltage_hysteresis_v
        run("cell_overvoltage", now_s, vmax, th.cell_overvoltage_warning_v,
            th.cell_overvoltage_alarm_v, hv, True, f"cell {imax} at", "V")  # fmt: skip
        run("cell_undervoltage", now_s, vmin, th.cell_undervoltage_warning_v,
            th.cell_undervoltage_alarm_v, hv, False, f"cell {imin} at", "V")  # fmt: skip
        spread_v = None if vmax is None or vmin is None else vmax - vmin
        run("voltage_imbalance", now_s, spread_v, th.voltage_imbalance_warning_v,
            th.voltage_imbalance_alarm_v, th.voltage_imbalance_hysteresis_v, True,
            f"cells {imax}-{imin} spread", "V")  # fmt: skip

    def _check_temperatures(self, snapshot: PackSnapshot, now_s: float) -> None:
        """The charge window (only while charging), the absolute window and the spread."""
        th = self.thresholds
        run = self._threshold_check
        current = snapshot.current_a
        # Cell sensors only: a balancing board's sensor is not a cell's (pack.board_sensors).
        ext = extremes(cell_temps(snapshot.cell_temp_c, self._cell_sensors))
        tmax = tmin = None
        jmax = jmin = -1
        if ext is not None:
            tmin, jmin, tmax, jmax = ext
            if self._cell_sensors is not None:
                jmin, jmax = self._cell_sensors[jmin], self._cell_sensors[jmax]
            jmin, jmax = jmin + 1, jmax + 1  # sensors too are numbered from 1 in messages
        charging = current is not None and current > self.config.charging_threshold_a
        ht = th.temp_hysteresis_c
        run("charge_overtemperature", now_s, tmax, th.charge_temp_max_warning_c,
            th.charge_temp_max_alarm_c, ht, True, f"charging, sensor {jmax} at", "degC",
            enabled=charging)  # fmt: skip
        run("charge_undertemperature", now_s, tmin, th.charge_temp_min_warning_c,
            th.charge_temp_min_alarm_c, ht, False, f"charging, sensor {jmin} at", "degC",
            enabled=charging)  # fmt: skip
        run("discharge_overtemperature", now_s, tmax, th.discharge_temp_max_warning_c,
            th.discharge_temp_max_alarm_c, ht, True, f"sensor {jmax} at", "degC")  # fmt: skip
        run("discharge_undertemperature", now_s, tmin, th.discharge_temp_min_warning_c,
            th.discharge_temp_min_alarm_c, ht, False, f"sensor {jmin} at", "degC")  # fmt: skip
        spread_t = None if tmax is None or tmin is None else tmax - tmin
        run("temperature_imbalance", now_s, spread_t, th.temp_imbalance_warning_c,
            th.temp_imbalance_alarm_c, ht, True, f"sensors {jmax}-{jmin} spread",
            "degC")  # fmt: skip

    def _check_current(self, current: float | None, now_s: float) -> None:
        """``overcurrent_charge`` and ``overcurrent_discharge`` (positive = charging)."""
        th = self.thresholds
        run = self._threshold_check
        hi = th.current_hysteresis_a
        run("overcurrent_charge", now_s, current, th.overcurrent_charge_warning_a,
            th.overcurrent_charge_alarm_a, hi, True, "charge current", "A")  # fmt: skip
        run("overcurrent_discharge", now_s, None if current is None else -current,
            th.overcurrent_discharge_warning_a, th.overcurrent_discharge_alarm_a, hi, True,
            "discharge current", "A")  # fmt: skip

    def _check_soc(self, soc: SocReport | None, now_s: float) -> None:
        """``soc_low``: holds while there is no SoC estimate."""
        cfg = self.config
        soc_pct = None if soc is None else soc.soc_pct
        self._threshold_check("soc_low", now_s, soc_pct, cfg.soc_low_warning_pct,
                              cfg.soc_low_alarm_pct, 1.0, False, "pack SoC", "%")  # fmt: skip

    def _check_faults(self, snapshot: PackSnapshot, now_s: float) -> None:
        """``measurement_fault``: active (both levels, at once) while any reading is implausible;
        it clears after ``clear_debounce_s`` of plausible data and never latches."""
        faults = snapshot.faults
        if not faults:
            self._run("measurement_fault", now_s, CLEAR, CLEAR, "")
            return
        shown = "; ".join(f"{f.name}: {f.why}" for f in faults[:3])
        more = f" (and {len(faults) - 3} more)" if len(faults) > 3 else ""
        message = f"measurement fault, value not used: {shown}{more}"
        self._run("measurement_fault", now_s, (True, False), (True, False), message)

    def _check_data(self, snapshot: PackSnapshot, now_s: float, after_grace: bool) -> None:
        """``stale_data`` (an input older than its timeout) and ``communication_loss``."""
        cfg = self.config
        # An implausible input has its own alarm (measurement_fault), not a stale one.
        stale = [
            s for s in stale_inputs(snapshot, self._timeouts) if s.kind != StaleKind.IMPLAUSIBLE
        ]
        if stale and after_grace:
            message = "; ".join(s.message for s in stale)
            self._run("stale_data", now_s, (True, False), (True, False), message)
        elif stale:
            self._run("stale_data", now_s, HOLD, HOLD, "")
        else:
            self._run("stale_data", now_s, CLEAR, CLEAR, "")
        # Communication loss: the freshest input of all is too old (or nothing ever came).
        newest = _freshest(snapshot.cell_voltage_age_s)
        for a in (_freshest(snapshot.cell_temp_age_s), snapshot.current_age_s):
            if a is not None and (newest is None or a < newest):
                newest = a
        lost = after_grace if newest is None else newest > cfg.comm_loss_timeout_s
        message = ""
        if lost:
            since = "since start" if newest is None else f"for {newest:.1f} s"
            message = f"nothing received from the BMS {since}"
        self._run("communication_loss", now_s, (lost, not lost), (lost, not lost), message)

    def _check_configuration(self, snapshot: PackSnapshot, now_s: float) -> None:
        """``configuration``: the BMS sends cells beyond the configured count, the counts differ
        from the pack, or the pack voltage differs from the sum of the cells."""
        th = self.thresholds
        pack = self.pack
        if snapshot.extra_cell_number:
            # More cells than configured: the pack voltage, the cell sum and every limit derived
            # from the cell count are wrong. (Extra temperature sensors are not: a site may
            # monitor some of the BMS's sensors only; they are counted as dropped readings.)
            message = (
                f"the BMS sends cell {snapshot.extra_cell_number} (pack.cells = {pack.cells}):"
                " the pack has more cells than configured"
            )
            self._run("configuration", now_s, (True, False), (True, False), message)
            return
        if snapshot.cell_count != pack.cells or len(snapshot.cell_temp_c) != pack.temp_sensors:
            message = (
                f"data has {snapshot.cell_count} cells and {len(snapshot.cell_temp_c)} sensors,"
                f" config says {pack.cells} and {pack.temp_sensors}"
            )
            self._run("configuration", now_s, (True, False), (True, False), message)
            return
        pack_v = snapshot.pack_voltage_v
        total = cell_sum_v(snapshot.cell_voltage_v)
        if pack_v is None or total is None:
            self._run("configuration", now_s, HOLD, HOLD, "")
            return
        diff = abs(pack_v - total)
        hyst = 0.01 * pack.cells
        w = above(diff, th.pack_voltage_mismatch_warning_v, hyst)
        a = above(diff, th.pack_voltage_mismatch_alarm_v, hyst)
        message = (
            f"pack voltage {pack_v:.2f} V differs from the sum of {pack.cells} cells"
            f" {total:.2f} V by {diff:.2f} V (cell count or wiring?)"
        )
        self._run("configuration", now_s, w, a, message)

    def _check_disobedience(
        self, current: float | None, negotiation: Negotiation | None, now_s: float
    ) -> None:
        """``inverter_overcharge``/``inverter_overdischarge``: the measured current beyond the
        negotiated limit plus its margin."""
        cfg = self.config
        if current is None:
            self._run("inverter_overcharge", now_s, HOLD, HOLD, "")
            self._run("inverter_overdischarge", now_s, HOLD, HOLD, "")
            return
        if negotiation is None or not negotiation.connected:
            self._run("inverter_overcharge", now_s, CLEAR, CLEAR, "")
            self._run("inverter_overdischarge", now_s, CLEAR, CLEAR, "")
            return
        for code, measured, limit in (
            ("inverter_overcharge", current, negotiation.effective_ccl_a),
            ("inverter_overdischarge", -current, negotiation.effective_dcl_a),
        ):
            margin = max(cfg.disobedience_margin_a, cfg.disobedience_margin_fraction * limit)
            over = measured > limit + margin
            message = (
                f"measured {measured:.1f} A against a negotiated {limit:.1f} A"
                f" (margin {margin:.1f} A) via {negotiation.link}"
            )
            self._run(code, now_s, (over, not over), (over, not over), message)

    # --- reset and persistence ---------------------------------------------------------------

    def reset(self, now_s: float) -> CommandResult:
        """Clear latched alarms whose cause has gone; say which were cleared and which remain.

        ``accepted`` is False when a latched alarm stays because its cause persists.
        """
        result = self._levels.reset(now_s)
        self._last = self._levels.report()
        return result

    def export_latched(self) -> dict[str, str]:
        """Active latched alarm levels as ``{code: message}``, to persist across restarts."""
        return self._levels.export_latched()

    def restore_latched(self, latched: dict[str, str], now_s: float) -> list[str]:
        """Re-activate alarms that were latched before a restart; the codes restored.

        A restored alarm is active from ``now_s`` with its cause not known to be gone, so the
        data must first show it gone (``clear_debounce_s``) before a reset clears it. Codes this
        version does not know are skipped.
        """
        restored = self._levels.restore_latched(latched, now_s)
        self._last = self._levels.report()
        return restored
