"""The ``protection`` settings section and its resolved thresholds (chemistry defaults filled in).

``ProtectionConfig`` is what users write (``None`` = the chemistry default);
``ProtectionConfig.resolve`` gives ``ProtectionThresholds``, every threshold a number, checked
for order and bounds. Errors name the key (``protection.<key>``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from pydantic import Field

from gateway.core.config import Section
from gateway.core.pack import PackConfig
from gateway.core.protection.alarms import ALARMS, LATCHING_DEFAULT
from gateway.core.protection.defaults import C_RATE_KEYS, PROTECTION_DEFAULTS

__all__ = ["ProtectionConfig", "ProtectionThresholds"]


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
    latching: tuple[str, ...] = LATCHING_DEFAULT
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
            elif f.name in C_RATE_KEYS:
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
