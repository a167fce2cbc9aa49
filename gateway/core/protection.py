"""Protection: warnings and alarms with hysteresis, debounce and latching. Pure, clock-injected.

Each check has a warning and an alarm level. A level becomes active once its condition has held
for ``debounce_count`` consecutive steps *and* ``debounce_s`` seconds (count, time, or both), and
clears once the value is back past the threshold by the hysteresis for ``clear_debounce_s``.
Alarm levels of the codes in ``ProtectionConfig.latching`` stay active after their cause is gone
until :meth:`Protection.reset` (MQTT ``cmd/reset_alarms``, SunSpec ``AlmRst``).

Thresholds left unset (``None``) take the chemistry default from ``PROTECTION_DEFAULTS``; current
thresholds default to a C-rate times the pack capacity. ``docs/LIMITS.md`` lists every alarm with
its SunSpec model 802 ``Evt1`` bits and its MQTT name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import cast

from pydantic import Field

from gateway.core.config import Section
from gateway.core.freshness import TimeoutsConfig, extremes, stale_inputs
from gateway.core.model import (
    Alarm,
    AlarmReport,
    CommandResult,
    Negotiation,
    PackSnapshot,
    Severity,
    SocReport,
)
from gateway.core.pack import PackConfig, cell_temps

__all__ = [
    "ALARMS",
    "EVT1_BITS",
    "PROTECTION_DEFAULTS",
    "AlarmSpec",
    "Protection",
    "ProtectionConfig",
    "ProtectionThresholds",
]

# SunSpec model 802 ``Evt1`` symbols and bit numbers. These are pysunspec2's definition
# (sunspec2/models/json/model_802.json); tests/core/test_protection.py checks every name and
# number against that file, so the core stays pure (no file read) and cannot drift from it.
EVT1_BITS: dict[str, int] = {
    "COMMUNICATION_ERROR": 0,
    "OVER_TEMP_ALARM": 1,
    "OVER_TEMP_WARNING": 2,
    "UNDER_TEMP_ALARM": 3,
    "UNDER_TEMP_WARNING": 4,
    "OVER_CHARGE_CURRENT_ALARM": 5,
    "OVER_CHARGE_CURRENT_WARNING": 6,
    "OVER_DISCHARGE_CURRENT_ALARM": 7,
    "OVER_DISCHARGE_CURRENT_WARNING": 8,
    "OVER_VOLT_ALARM": 9,
    "OVER_VOLT_WARNING": 10,
    "UNDER_VOLT_ALARM": 11,
    "UNDER_VOLT_WARNING": 12,
    "UNDER_SOC_MIN_ALARM": 13,
    "UNDER_SOC_MIN_WARNING": 14,
    "VOLTAGE_IMBALANCE_WARNING": 17,
    "TEMPERATURE_IMBALANCE_ALARM": 18,
    "TEMPERATURE_IMBALANCE_WARNING": 19,
    "OTHER_ALARM": 25,
    "OTHER_WARNING": 26,
    "CONFIGURATION_ALARM": 28,
    "CONFIGURATION_WARNING": 29,
}


@dataclass(frozen=True, slots=True)
class AlarmSpec:
    """One alarm code: what it means, its Evt1 bits, and which current limits its alarm cuts."""

    code: str
    description: str
    evt1_warning: str
    evt1_alarm: str
    cuts_charge: bool
    cuts_discharge: bool
    # The charge cut applies only while the highest cell is near the top of charge (at or above
    # ``limits.imbalance_start_cell_v``): a cut at the bottom would strand an empty pack, whose
    # low cells only charging can lift.
    charge_cut_near_top_only: bool = False

    @property
    def warning_mask(self) -> int:
        """Evt1 mask of the warning level."""
        return 1 << EVT1_BITS[self.evt1_warning]

    @property
    def alarm_mask(self) -> int:
        """Evt1 mask of the alarm level."""
        return 1 << EVT1_BITS[self.evt1_alarm]


def _spec(
    code: str,
    description: str,
    warning: str,
    alarm: str,
    charge: bool,
    discharge: bool,
    *,
    near_top: bool = False,
) -> AlarmSpec:
    return AlarmSpec(code, description, warning, alarm, charge, discharge, near_top)


# The alarm catalogue: the code is the stable MQTT name. ``cuts_*``: at ALARM severity the
# protection term of that limit is 0 A (warnings cut nothing; the tapers in limits do that).
ALARMS: dict[str, AlarmSpec] = {
    s.code: s
    for s in (
        _spec("cell_overvoltage", "highest cell above its maximum voltage",
              "OVER_VOLT_WARNING", "OVER_VOLT_ALARM", True, False),
        _spec("cell_undervoltage", "lowest cell below its minimum voltage",
              "UNDER_VOLT_WARNING", "UNDER_VOLT_ALARM", False, True),
        _spec("charge_overtemperature", "charging while a cell is above the charge window",
              "OVER_TEMP_WARNING", "OVER_TEMP_ALARM", True, False),
        _spec("charge_undertemperature", "charging while a cell is below the charge window",
              "UNDER_TEMP_WARNING", "UNDER_TEMP_ALARM", True, False),
        _spec("discharge_overtemperature", "a cell above the discharge (absolute) window",
              "OVER_TEMP_WARNING", "OVER_TEMP_ALARM", True, True),
        _spec("discharge_undertemperature", "a cell below the discharge (absolute) window",
              "UNDER_TEMP_WARNING", "UNDER_TEMP_ALARM", True, True),
        _spec("overcurrent_charge", "charge current above the cell rating",
              "OVER_CHARGE_CURRENT_WARNING", "OVER_CHARGE_CURRENT_ALARM", True, False),
        _spec("overcurrent_discharge", "discharge current above the cell rating",
              "OVER_DISCHARGE_CURRENT_WARNING", "OVER_DISCHARGE_CURRENT_ALARM", False, True),
        _spec("voltage_imbalance", "spread between highest and lowest cell voltage",
              "VOLTAGE_IMBALANCE_WARNING", "OTHER_ALARM", True, False, near_top=True),
        _spec("temperature_imbalance", "spread between hottest and coldest sensor",
              "TEMPERATURE_IMBALANCE_WARNING", "TEMPERATURE_IMBALANCE_ALARM", True, True),
        _spec("soc_low", "pack state of charge low",
              "UNDER_SOC_MIN_WARNING", "UNDER_SOC_MIN_ALARM", False, False),
        _spec("stale_data", "a required input is missing or older than its timeout",
              "OTHER_WARNING", "COMMUNICATION_ERROR", True, True),
        _spec("communication_loss", "no input at all from the BMS",
              "COMMUNICATION_ERROR", "COMMUNICATION_ERROR", True, True),
        _spec("measurement_fault", "a reading no healthy cell or sensor can show (clears itself)",
              "OTHER_WARNING", "OTHER_ALARM", True, True),
        _spec("configuration", "the data does not match the configured pack",
              "CONFIGURATION_WARNING", "CONFIGURATION_ALARM", True, True),
        _spec("inverter_overcharge", "inverter charges above the negotiated limit",
              "OVER_CHARGE_CURRENT_WARNING", "OVER_CHARGE_CURRENT_ALARM", True, False),
        _spec("inverter_overdischarge", "inverter discharges above the negotiated limit",
              "OVER_DISCHARGE_CURRENT_WARNING", "OVER_DISCHARGE_CURRENT_ALARM", False, True),
    )
}  # fmt: skip

_LATCHING_DEFAULT = (
    "cell_overvoltage",
    "cell_undervoltage",
    "charge_overtemperature",
    "charge_undertemperature",
    "discharge_overtemperature",
    "overcurrent_charge",
    "overcurrent_discharge",
    "inverter_overcharge",
    "inverter_overdischarge",
)

# Chemistry defaults for every threshold left unset. Currents are C-rates (times capacity_ah).
# LFP: cells rated 2.5..3.65 V, charge 0..55 degC, discharge -20..60 degC (typical prismatic
# datasheets). NMC: 3.0..4.2 V, charge 0..45 degC, discharge -20..60 degC.
PROTECTION_DEFAULTS: dict[str, dict[str, float]] = {
    "lfp": {
        "cell_overvoltage_warning_v": 3.55,
        "cell_overvoltage_alarm_v": 3.65,
        "cell_undervoltage_warning_v": 2.80,
        "cell_undervoltage_alarm_v": 2.50,
        "voltage_hysteresis_v": 0.05,
        "charge_temp_min_warning_c": 0.0,
        "charge_temp_min_alarm_c": -5.0,
        "charge_temp_max_warning_c": 50.0,
        "charge_temp_max_alarm_c": 55.0,
        "discharge_temp_min_warning_c": -10.0,
        "discharge_temp_min_alarm_c": -20.0,
        "discharge_temp_max_warning_c": 55.0,
        "discharge_temp_max_alarm_c": 60.0,
        "temp_hysteresis_c": 2.0,
        "overcurrent_charge_warning_a": 1.1,
        "overcurrent_charge_alarm_a": 1.3,
        "overcurrent_discharge_warning_a": 1.1,
        "overcurrent_discharge_alarm_a": 1.5,
        "current_hysteresis_a": 0.05,
        "voltage_imbalance_warning_v": 0.10,
        "voltage_imbalance_alarm_v": 0.30,
        "voltage_imbalance_hysteresis_v": 0.02,
        "temp_imbalance_warning_c": 8.0,
        "temp_imbalance_alarm_c": 15.0,
    },
    "nmc": {
        "cell_overvoltage_warning_v": 4.20,
        "cell_overvoltage_alarm_v": 4.25,
        "cell_undervoltage_warning_v": 3.10,
        "cell_undervoltage_alarm_v": 3.00,
        "voltage_hysteresis_v": 0.05,
        "charge_temp_min_warning_c": 0.0,
        "charge_temp_min_alarm_c": -5.0,
        "charge_temp_max_warning_c": 45.0,
        "charge_temp_max_alarm_c": 50.0,
        "discharge_temp_min_warning_c": -15.0,
        "discharge_temp_min_alarm_c": -20.0,
        "discharge_temp_max_warning_c": 55.0,
        "discharge_temp_max_alarm_c": 60.0,
        "temp_hysteresis_c": 2.0,
        "overcurrent_charge_warning_a": 0.8,
        "overcurrent_charge_alarm_a": 1.0,
        "overcurrent_discharge_warning_a": 2.0,
        "overcurrent_discharge_alarm_a": 2.5,
        "current_hysteresis_a": 0.05,
        "voltage_imbalance_warning_v": 0.10,
        "voltage_imbalance_alarm_v": 0.25,
        "voltage_imbalance_hysteresis_v": 0.02,
        "temp_imbalance_warning_c": 8.0,
        "temp_imbalance_alarm_c": 15.0,
    },
}

_C_RATE_KEYS = frozenset(
    (
        "overcurrent_charge_warning_a",
        "overcurrent_charge_alarm_a",
        "overcurrent_discharge_warning_a",
        "overcurrent_discharge_alarm_a",
        "current_hysteresis_a",
    )
)


# The timeouts section's defaults, for callers that configure none (frozen, so sharing is safe).
_DEFAULT_TIMEOUTS = TimeoutsConfig()


class ProtectionConfig(Section):
    """Protection thresholds. Unset (``None``) values take the chemistry default."""

    cell_overvoltage_warning_v: float | None = None
    """Highest cell at or above this: warning (LFP 3.55 V, NMC 4.20 V)."""
    cell_overvoltage_alarm_v: float | None = None
    """Highest cell at or above this: alarm, charge cut, latched (LFP 3.65 V, NMC 4.25 V)."""
    cell_undervoltage_warning_v: float | None = None
    """Lowest cell at or below this: warning (LFP 2.80 V, NMC 3.10 V)."""
    cell_undervoltage_alarm_v: float | None = None
    """Lowest cell at or below this: alarm, discharge cut, latched (LFP 2.50 V, NMC 3.00 V)."""
    voltage_hysteresis_v: float | None = None
    """How far back past a voltage threshold a cell must be to clear (0.05 V)."""
    charge_temp_min_warning_c: float | None = None
    """Charging below this cell temperature: warning (0 degC)."""
    charge_temp_min_alarm_c: float | None = None
    """Charging below this cell temperature: alarm (-5 degC)."""
    charge_temp_max_warning_c: float | None = None
    """Charging above this cell temperature: warning (LFP 50, NMC 45 degC)."""
    charge_temp_max_alarm_c: float | None = None
    """Charging above this cell temperature: alarm (LFP 55, NMC 50 degC)."""
    discharge_temp_min_warning_c: float | None = None
    """Any cell below this (absolute window): warning (LFP -10, NMC -15 degC)."""
    discharge_temp_min_alarm_c: float | None = None
    """Any cell below this (absolute window): alarm, both limits cut (-20 degC)."""
    discharge_temp_max_warning_c: float | None = None
    """Any cell above this (absolute window): warning (55 degC)."""
    discharge_temp_max_alarm_c: float | None = None
    """Any cell above this (absolute window): alarm, both limits cut, latched (60 degC)."""
    temp_hysteresis_c: float | None = None
    """How far back inside a temperature window a sensor must be to clear (2 degC)."""
    charging_threshold_a: float = Field(default=1.0, ge=0.0, le=10_000.0)
    """Above this pack current the pack counts as charging and the charge window applies."""
    overcurrent_charge_warning_a: float | None = None
    """Charge current warning (LFP 1.1 C, NMC 0.8 C times capacity)."""
    overcurrent_charge_alarm_a: float | None = None
    """Charge current alarm (LFP 1.3 C, NMC 1.0 C)."""
    overcurrent_discharge_warning_a: float | None = None
    """Discharge current warning (LFP 1.1 C, NMC 2.0 C)."""
    overcurrent_discharge_alarm_a: float | None = None
    """Discharge current alarm (LFP 1.5 C, NMC 2.5 C)."""
    current_hysteresis_a: float | None = None
    """Current hysteresis (0.05 C)."""
    voltage_imbalance_warning_v: float | None = None
    """Highest minus lowest cell voltage: warning (0.10 V)."""
    voltage_imbalance_alarm_v: float | None = None
    """Highest minus lowest cell voltage: alarm, charge cut (LFP 0.30 V, NMC 0.25 V)."""
    voltage_imbalance_hysteresis_v: float | None = None
    """Imbalance hysteresis (0.02 V)."""
    temp_imbalance_warning_c: float | None = None
    """Hottest minus coldest sensor: warning (8 degC)."""
    temp_imbalance_alarm_c: float | None = None
    """Hottest minus coldest sensor: alarm, both limits cut (15 degC)."""
    soc_low_warning_pct: float = Field(default=5.0, ge=0.0, le=100.0)
    """Pack SoC at or below this: warning (only when an SoC estimate exists; 0..100 %)."""
    soc_low_alarm_pct: float = Field(default=0.0, ge=0.0, le=100.0)
    """Pack SoC at or below this (one cell empty): alarm (cuts nothing; undervoltage does);
    below ``soc_low_warning_pct``."""
    stale_alarm_s: float = 10.0
    """Stale or missing input for this long (after start-up): ``stale_data`` alarm. Stale means
    older than its ``timeouts.*_timeout_s`` (the same ages that cut the limits to 0 A)."""
    comm_loss_timeout_s: float = 5.0
    """No input at all for this long: ``communication_loss`` alarm."""
    startup_grace_s: float = 10.0
    """Missing data right after start is not an alarm for this long (the limits are 0 anyway)."""
    pack_voltage_mismatch_warning_v: float | None = None
    """Measured pack voltage vs sum of cells: warning (default 0.05 V per cell)."""
    pack_voltage_mismatch_alarm_v: float | None = None
    """Measured pack voltage vs sum of cells: alarm (default 0.20 V per cell)."""
    disobedience_margin_a: float = 5.0
    """Measured current may exceed the negotiated limit by this much (or the fraction) ..."""
    disobedience_margin_fraction: float = 0.10
    """... or by this fraction of the limit, whichever is larger, before the timer starts."""
    disobedience_warning_s: float = 10.0
    """Exceeding the negotiated limit this long: ``inverter_over*`` warning."""
    disobedience_alarm_s: float = 60.0
    """Exceeding the negotiated limit this long: alarm, that limit cut, latched."""
    debounce_count: int = Field(default=2, ge=1, le=1000)
    """Consecutive violating steps before a level activates (with ``debounce_s``)."""
    debounce_s: float = 0.5
    """Seconds a violation must persist before a level activates (with ``debounce_count``)."""
    imbalance_debounce_s: float = 10.0
    """Debounce of the imbalance checks (spreads swing under load)."""
    clear_debounce_s: float = 2.0
    """Seconds a value must stay past the hysteresis before a level clears."""
    latching: tuple[str, ...] = _LATCHING_DEFAULT
    """Codes whose alarm level latches until reset."""

    def model_post_init(self, __context: object) -> None:
        """Check what needs more than a type."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, float):
                _check_bounds(name, value)
        unknown = sorted(set(self.latching) - set(ALARMS))
        if unknown:
            raise ValueError(f"latching (={unknown}) names unknown alarm codes")
        if "measurement_fault" in self.latching:
            # A glitch must never strand a healthy pack at 0 A until someone resets it.
            raise ValueError("latching: measurement_fault clears by itself and cannot latch")
        if not self.soc_low_alarm_pct < self.soc_low_warning_pct:
            raise ValueError(
                f"protection.soc_low_alarm_pct (={self.soc_low_alarm_pct}) must be below "
                f"protection.soc_low_warning_pct (={self.soc_low_warning_pct})"
            )
        if not self.disobedience_warning_s < self.disobedience_alarm_s:
            raise ValueError(
                f"protection.disobedience_warning_s (={self.disobedience_warning_s}) must be "
                f"below protection.disobedience_alarm_s (={self.disobedience_alarm_s})"
            )

    def resolve(self, pack: PackConfig) -> ProtectionThresholds:
        """Every threshold, with chemistry defaults filled in and their order checked.

        Raises:
            ValueError: naming the offending keys (``protection.<key>``).
        """
        defaults = PROTECTION_DEFAULTS[pack.chemistry]
        values: dict[str, float] = {}
        for f in fields(ProtectionThresholds):
            own = getattr(self, f.name, None)
            if own is not None:
                values[f.name] = float(own)
            elif f.name in _C_RATE_KEYS:
                values[f.name] = defaults[f.name] * pack.capacity_ah
            elif f.name == "pack_voltage_mismatch_warning_v":
                values[f.name] = 0.05 * pack.cells
            elif f.name == "pack_voltage_mismatch_alarm_v":
                values[f.name] = 0.20 * pack.cells
            else:
                values[f.name] = defaults[f.name]
        t = ProtectionThresholds(**values)
        t.check()
        return t


# Bounds per unit suffix: a threshold beyond them cannot describe a cell, a sensor or a pack
# (times up to an hour; cell voltages up to 10 V; currents and pack voltages up to 100 kA/kV).
_BOUNDS: tuple[tuple[str, float, float], ...] = (
    ("_s", 0.0, 3600.0),
    ("_pct", 0.0, 100.0),
    ("_c", -60.0, 150.0),
    ("_a", 0.0, 100_000.0),
    ("mismatch_warning_v", 0.0, 100_000.0),
    ("mismatch_alarm_v", 0.0, 100_000.0),
    ("_v", 0.0, 10.0),
    ("_fraction", 0.0, 1.0),
)


def _check_bounds(name: str, value: float) -> None:
    """Raise ``ValueError`` naming ``protection.<name>`` when ``value`` is not finite or out of
    the bounds of its unit."""
    if not math.isfinite(value):
        raise ValueError(f"protection.{name} (={value}) must be finite")
    for suffix, lo, hi in _BOUNDS:
        if name.endswith(suffix):
            if not lo <= value <= hi:
                raise ValueError(f"protection.{name} (={value}) must be within {lo:g}..{hi:g}")
            return


@dataclass(frozen=True, slots=True)
class ProtectionThresholds:
    """Resolved thresholds (no ``None``); see ``ProtectionConfig`` for each meaning."""

    cell_overvoltage_warning_v: float
    cell_overvoltage_alarm_v: float
    cell_undervoltage_warning_v: float
    cell_undervoltage_alarm_v: float
    voltage_hysteresis_v: float
    charge_temp_min_warning_c: float
    charge_temp_min_alarm_c: float
    charge_temp_max_warning_c: float
    charge_temp_max_alarm_c: float
    discharge_temp_min_warning_c: float
    discharge_temp_min_alarm_c: float
    discharge_temp_max_warning_c: float
    discharge_temp_max_alarm_c: float
    temp_hysteresis_c: float
    overcurrent_charge_warning_a: float
    overcurrent_charge_alarm_a: float
    overcurrent_discharge_warning_a: float
    overcurrent_discharge_alarm_a: float
    current_hysteresis_a: float
    voltage_imbalance_warning_v: float
    voltage_imbalance_alarm_v: float
    voltage_imbalance_hysteresis_v: float
    temp_imbalance_warning_c: float
    temp_imbalance_alarm_c: float
    pack_voltage_mismatch_warning_v: float
    pack_voltage_mismatch_alarm_v: float

    def check(self) -> None:
        """Raise ``ValueError`` naming the keys when warning and alarm levels are out of order."""
        order = (
            # (lower, upper): lower must be strictly below upper.
            ("cell_overvoltage_warning_v", "cell_overvoltage_alarm_v"),
            ("cell_undervoltage_alarm_v", "cell_undervoltage_warning_v"),
            ("cell_undervoltage_warning_v", "cell_overvoltage_warning_v"),
            ("charge_temp_min_alarm_c", "charge_temp_min_warning_c"),
            ("charge_temp_min_warning_c", "charge_temp_max_warning_c"),
            ("charge_temp_max_warning_c", "charge_temp_max_alarm_c"),
            ("discharge_temp_min_alarm_c", "discharge_temp_min_warning_c"),
            ("discharge_temp_min_warning_c", "discharge_temp_max_warning_c"),
            ("discharge_temp_max_warning_c", "discharge_temp_max_alarm_c"),
            ("overcurrent_charge_warning_a", "overcurrent_charge_alarm_a"),
            ("overcurrent_discharge_warning_a", "overcurrent_discharge_alarm_a"),
            ("voltage_imbalance_warning_v", "voltage_imbalance_alarm_v"),
            ("temp_imbalance_warning_c", "temp_imbalance_alarm_c"),
            ("pack_voltage_mismatch_warning_v", "pack_voltage_mismatch_alarm_v"),
        )
        for lo, hi in order:
            a, b = getattr(self, lo), getattr(self, hi)
            if not a < b:
                raise ValueError(f"protection.{lo} (={a}) must be below protection.{hi} (={b})")
        for f in fields(self):
            _check_bounds(f.name, getattr(self, f.name))


class _Level:
    """Debounce, hysteresis and latch state of one level (warning or alarm) of one check."""

    __slots__ = (
        "active",
        "cause_gone",
        "clear_debounce_s",
        "clear_n",
        "clear_t",
        "debounce_n",
        "debounce_s",
        "latch",
        "message",
        "pend_n",
        "pend_t",
        "since_s",
    )

    def __init__(self, debounce_n: int, debounce_s: float, clear_s: float, latch: bool) -> None:
        self.debounce_n = debounce_n
        self.debounce_s = debounce_s
        self.clear_debounce_s = clear_s
        self.latch = latch
        self.active = False
        self.cause_gone = False
        self.since_s = 0.0
        self.pend_n = 0
        self.pend_t = 0.0
        self.clear_n = 0
        self.clear_t = 0.0
        self.message = ""

    def update(self, violated: bool, cleared: bool, now_s: float) -> None:
        """Advance by one step. Neither ``violated`` nor ``cleared``: in the band, hold."""
        if not self.active:
            if not violated:
                self.pend_n = 0
                return
            if self.pend_n == 0:
                self.pend_t = now_s
            self.pend_n += 1
            if self.pend_n >= self.debounce_n and now_s - self.pend_t >= self.debounce_s:
                self.active = True
                self.cause_gone = False
                self.since_s = now_s
                self.pend_n = 0
                self.clear_n = 0
            return
        if not cleared:
            self.clear_n = 0
            if violated:
                self.cause_gone = False
            return
        if self.clear_n == 0:
            self.clear_t = now_s
        self.clear_n += 1
        if now_s - self.clear_t >= self.clear_debounce_s:
            if self.latch:
                self.cause_gone = True
            else:
                self._deactivate()

    def _deactivate(self) -> None:
        self.active = False
        self.cause_gone = False
        self.pend_n = 0
        self.clear_n = 0

    def reset(self) -> bool:
        """Clear a latched level whose cause is gone; return whether it was cleared."""
        if self.active and self.latch and self.cause_gone:
            self._deactivate()
            return True
        return False


class _Check:
    """Warning and alarm level of one alarm code."""

    __slots__ = ("alarm", "spec", "warning")

    def __init__(self, spec: AlarmSpec, warning: _Level, alarm: _Level) -> None:
        self.spec = spec
        self.warning = warning
        self.alarm = alarm


def _above(x: float, threshold: float, hysteresis: float) -> tuple[bool, bool]:
    return x >= threshold, x < threshold - hysteresis


def _below(x: float, threshold: float, hysteresis: float) -> tuple[bool, bool]:
    return x <= threshold, x > threshold + hysteresis


def _freshest(ages: tuple[float | None, ...]) -> float | None:
    """The smallest known age (``min`` runs in C when every age is known)."""
    if None not in ages:
        return min(cast(tuple[float, ...], ages), default=None)
    known = [a for a in ages if a is not None]
    return min(known) if known else None


_HOLD = (False, False)
_CLEAR = (False, True)


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
        latching = set(config.latching)
        n, t, clear = config.debounce_count, config.debounce_s, config.clear_debounce_s
        self._checks: dict[str, _Check] = {}
        for code, spec in ALARMS.items():
            warn_t = alarm_t = t
            warn_n = alarm_n = n
            if code in ("voltage_imbalance", "temperature_imbalance"):
                warn_t = alarm_t = config.imbalance_debounce_s
            elif code == "stale_data":
                # Staleness is already a duration: warn at once, alarm once it persists.
                warn_t, warn_n = 0.0, 1
                alarm_t, alarm_n = config.stale_alarm_s, 1
            elif code in ("communication_loss", "configuration", "measurement_fault"):
                warn_t = alarm_t = 0.0
                warn_n = alarm_n = 1
            elif code.startswith("inverter_"):
                warn_t, warn_n = config.disobedience_warning_s, 1
                alarm_t, alarm_n = config.disobedience_alarm_s, 1
            self._checks[code] = _Check(
                spec,
                _Level(warn_n, warn_t, clear, latch=False),
                _Level(alarm_n, alarm_t, clear, latch=code in latching),
            )
        self._start_s: float | None = None
        self._last: AlarmReport = AlarmReport()
        self._cell_sensors = pack.cell_sensors() if pack.board_sensors else None

    @property
    def last(self) -> AlarmReport:
        """The report of the last step."""
        return self._last

    def _run(
        self,
        code: str,
        now_s: float,
        warning: tuple[bool, bool],
        alarm: tuple[bool, bool],
        message: str,
    ) -> None:
        c = self._checks[code]
        c.warning.update(warning[0], warning[1], now_s)
        c.alarm.update(alarm[0], alarm[1], now_s)
        if warning[0] or alarm[0]:
            c.warning.message = message
            c.alarm.message = message

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
            self._run(code, now_s, _HOLD, _HOLD, "")
            return
        if not enabled:
            self._run(code, now_s, _CLEAR, _CLEAR, "")
            return
        test = _above if high else _below
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
        th = self.thresholds
        cfg = self.config
        if self._start_s is None:
            self._start_s = now_s
        after_grace = now_s - self._start_s >= cfg.startup_grace_s
        run = self._threshold_check

        # --- cell voltages: one pass for extremes and their cells.
        ext = extremes(snapshot.cell_voltage_v)
        vmax = vmin = None
        imax = imin = -1
        if ext is not None:
            vmin, imin, vmax, imax = ext
            imin, imax = imin + 1, imax + 1  # messages number cells from 1, as installers do
        hv = th.voltage_hysteresis_v
        run(
            "cell_overvoltage",
            now_s,
            vmax,
            th.cell_overvoltage_warning_v,
            th.cell_overvoltage_alarm_v,
            hv,
            True,
            f"cell {imax} at",
            "V",
        )
        run(
            "cell_undervoltage",
            now_s,
            vmin,
            th.cell_undervoltage_warning_v,
            th.cell_undervoltage_alarm_v,
            hv,
            False,
            f"cell {imin} at",
            "V",
        )
        spread_v = None if vmax is None or vmin is None else vmax - vmin
        run("voltage_imbalance", now_s, spread_v, th.voltage_imbalance_warning_v,
            th.voltage_imbalance_alarm_v, th.voltage_imbalance_hysteresis_v, True,
            f"cells {imax}-{imin} spread", "V")  # fmt: skip

        # --- temperatures: the charge window only while charging.
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
        charging = current is not None and current > cfg.charging_threshold_a
        ht = th.temp_hysteresis_c
        run(
            "charge_overtemperature",
            now_s,
            tmax,
            th.charge_temp_max_warning_c,
            th.charge_temp_max_alarm_c,
            ht,
            True,
            f"charging, sensor {jmax} at",
            "degC",
            enabled=charging,
        )
        run(
            "charge_undertemperature",
            now_s,
            tmin,
            th.charge_temp_min_warning_c,
            th.charge_temp_min_alarm_c,
            ht,
            False,
            f"charging, sensor {jmin} at",
            "degC",
            enabled=charging,
        )
        run(
            "discharge_overtemperature",
            now_s,
            tmax,
            th.discharge_temp_max_warning_c,
            th.discharge_temp_max_alarm_c,
            ht,
            True,
            f"sensor {jmax} at",
            "degC",
        )
        run(
            "discharge_undertemperature",
            now_s,
            tmin,
            th.discharge_temp_min_warning_c,
            th.discharge_temp_min_alarm_c,
            ht,
            False,
            f"sensor {jmin} at",
            "degC",
        )
        spread_t = None if tmax is None or tmin is None else tmax - tmin
        run(
            "temperature_imbalance",
            now_s,
            spread_t,
            th.temp_imbalance_warning_c,
            th.temp_imbalance_alarm_c,
            ht,
            True,
            f"sensors {jmax}-{jmin} spread",
            "degC",
        )

        # --- current.
        hi = th.current_hysteresis_a
        run(
            "overcurrent_charge",
            now_s,
            current,
            th.overcurrent_charge_warning_a,
            th.overcurrent_charge_alarm_a,
            hi,
            True,
            "charge current",
            "A",
        )
        run("overcurrent_discharge", now_s, None if current is None else -current,
            th.overcurrent_discharge_warning_a, th.overcurrent_discharge_alarm_a, hi, True,
            "discharge current", "A")  # fmt: skip

        # --- SoC.
        soc_pct = None if soc is None else soc.soc_pct
        run("soc_low", now_s, soc_pct, cfg.soc_low_warning_pct, cfg.soc_low_alarm_pct,
            1.0, False, "pack SoC", "%")  # fmt: skip

        self._check_data(snapshot, now_s, after_grace)
        self._check_faults(snapshot, now_s)
        self._check_configuration(snapshot, now_s)
        self._check_disobedience(current, negotiation, now_s)
        self._last = self._report()
        return self._last

    def _check_faults(self, snapshot: PackSnapshot, now_s: float) -> None:
        """``measurement_fault``: active (both levels, at once) while any reading is implausible;
        it clears after ``clear_debounce_s`` of plausible data and never latches."""
        faults = snapshot.faults
        if not faults:
            self._run("measurement_fault", now_s, _CLEAR, _CLEAR, "")
            return
        shown = "; ".join(f"{f.name}: {f.why}" for f in faults[:3])
        more = f" (and {len(faults) - 3} more)" if len(faults) > 3 else ""
        message = f"measurement fault, value not used: {shown}{more}"
        self._run("measurement_fault", now_s, (True, False), (True, False), message)

    def _check_data(self, snapshot: PackSnapshot, now_s: float, after_grace: bool) -> None:
        cfg = self.config
        # An implausible input has its own alarm (measurement_fault), not a stale one.
        stale = [s for s in stale_inputs(snapshot, self._timeouts) if s.kind != "implausible"]
        if stale and after_grace:
            message = "; ".join(s.message for s in stale)
            self._run("stale_data", now_s, (True, False), (True, False), message)
        elif stale:
            self._run("stale_data", now_s, _HOLD, _HOLD, "")
        else:
            self._run("stale_data", now_s, _CLEAR, _CLEAR, "")
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
        th = self.thresholds
        pack = self.pack
        if snapshot.cell_count != pack.cells or len(snapshot.cell_temp_c) != pack.temp_sensors:
            message = (
                f"data has {snapshot.cell_count} cells and {len(snapshot.cell_temp_c)} sensors,"
                f" config says {pack.cells} and {pack.temp_sensors}"
            )
            self._run("configuration", now_s, (True, False), (True, False), message)
            return
        pack_v = snapshot.pack_voltage_v
        if pack_v is None or None in snapshot.cell_voltage_v:
            self._run("configuration", now_s, _HOLD, _HOLD, "")
            return
        total = math.fsum(cast(tuple[float, ...], snapshot.cell_voltage_v))
        diff = abs(pack_v - total)
        hyst = 0.01 * pack.cells
        w = _above(diff, th.pack_voltage_mismatch_warning_v, hyst)
        a = _above(diff, th.pack_voltage_mismatch_alarm_v, hyst)
        message = (
            f"pack voltage {pack_v:.2f} V differs from the sum of {pack.cells} cells"
            f" {total:.2f} V by {diff:.2f} V (cell count or wiring?)"
        )
        self._run("configuration", now_s, w, a, message)

    def _check_disobedience(
        self, current: float | None, negotiation: Negotiation | None, now_s: float
    ) -> None:
        cfg = self.config
        if current is None:
            self._run("inverter_overcharge", now_s, _HOLD, _HOLD, "")
            self._run("inverter_overdischarge", now_s, _HOLD, _HOLD, "")
            return
        if negotiation is None or not negotiation.connected:
            self._run("inverter_overcharge", now_s, _CLEAR, _CLEAR, "")
            self._run("inverter_overdischarge", now_s, _CLEAR, _CLEAR, "")
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

    def _report(self) -> AlarmReport:
        active: list[Alarm] = []
        evt1 = 0
        for code, c in self._checks.items():
            w, a = c.warning, c.alarm
            if not (w.active or a.active):
                continue
            if a.active:
                severity = Severity.ALARM
                # Both bits when both levels hold: a client reading only warnings still sees it.
                evt1 |= c.spec.alarm_mask | (c.spec.warning_mask if w.active else 0)
                message = a.message
                since = min(a.since_s, w.since_s) if w.active else a.since_s
                if a.cause_gone:
                    message = f"{message} [latched: cause gone, reset to clear]"
                elif a.latch:
                    message = f"{message} [latched]"
            else:
                severity = Severity.WARNING
                evt1 |= c.spec.warning_mask
                message = w.message
                since = w.since_s
            active.append(Alarm(code, severity, message, since, latched=a.active and a.latch))
        if not active:
            return AlarmReport()
        return AlarmReport(active=tuple(active), evt1=evt1)

    def reset(self, now_s: float) -> CommandResult:
        """Clear latched alarms whose cause has gone; say which were cleared and which remain.

        ``accepted`` is False when a latched alarm stays because its cause persists.
        """
        cleared: list[str] = []
        kept: list[str] = []
        for code, c in self._checks.items():
            if c.alarm.active and c.alarm.latch:
                if c.alarm.reset():
                    cleared.append(code)
                else:
                    kept.append(code)
        self._last = self._report()
        if not cleared and not kept:
            return CommandResult(True, "no latched alarms")
        parts = []
        if cleared:
            parts.append(f"cleared {', '.join(cleared)}")
        if kept:
            parts.append(f"kept {', '.join(kept)} (cause persists)")
        return CommandResult(not kept, f"at {now_s:.1f} s: " + "; ".join(parts))

    # --- persistence (kept apart so that the checks above stay untouched) ----------------------

    def export_latched(self) -> dict[str, str]:
        """Active latched alarm levels as ``{code: message}``, to persist across restarts."""
        return {
            code: c.alarm.message
            for code, c in self._checks.items()
            if c.alarm.active and c.alarm.latch
        }

    def restore_latched(self, latched: dict[str, str], now_s: float) -> list[str]:
        """Re-activate alarms that were latched before a restart; the codes restored.

        A restored alarm is active from ``now_s`` with its cause not known to be gone, so the
        data must first show it gone (``clear_debounce_s``) before a reset clears it. Codes this
        version does not know are skipped.
        """
        restored: list[str] = []
        for code, message in latched.items():
            c = self._checks.get(code)
            if c is None:
                continue
            level = c.alarm
            level.active = True
            level.cause_gone = False
            level.since_s = now_s
            level.pend_n = level.clear_n = 0
            level.message = f"{message} (restored after a restart)"
            restored.append(code)
        self._last = self._report()
        return restored
