"""The settings' checks that need two sections (``Settings``' model validator); each error
names both keys. It reads nothing but the settings and, for ``soc.ocv_table``, that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gateway.errors import ConfigError
from gateway.state_store import check_ocv_table_fits

if TYPE_CHECKING:
    from gateway.settings import Settings

__all__ = ["check_across_sections", "notices", "uv_levels"]


def check_across_sections(s: Settings) -> None:
    """Checks that need two sections; each error names both keys.

    Thresholds with chemistry defaults are resolved here (so an order problem names the
    file), and no alarm threshold may lie beyond the plausibility window: a value past it
    is a measurement fault, so such an alarm could never trigger.

    Raises:
        ValueError: a check failed (pydantic turns it into the settings' error).
    """
    only_here = sorted(set(s.balancing.board_sensors) - set(s.pack.board_sensors))
    if only_here:
        # One map of sensor roles: a board sensor known to balancing alone would count as a
        # cell's temperature in protection, limits and SoC.
        raise ValueError(
            f"balancing.board_sensors (={only_here}) must also be in pack.board_sensors "
            f"(={list(s.pack.board_sensors)}): set the sensor roles there"
        )
    if s.charge.float_soc_pct is None:  # the float SoC depends on the chemistry
        s.charge.for_chemistry(s.pack.chemistry).check_float_soc(s.pack.chemistry)
    th = s.protection.resolve(s.pack)
    tables = s.limits.tables(s.pack)
    dvl_cell_v, cvl_cell_v = tables.dvl_cell_v, tables.cvl_cell_v
    prot = s.protection
    s.charge.check_float_above(  # the levels ``float_in_force`` holds a derived float above
        s.pack.chemistry,
        ("limits.dvl_cell_v", dvl_cell_v, s.limits.dvl_cell_v is None),
        *((k, v, getattr(prot, k.partition(".")[2]) is None) for k, v in uv_levels(s)),
    )
    if s.soc.ocv_table is not None:
        try:  # a table of the wrong chemistry would pass its own checks
            check_ocv_table_fits(
                Path(s.soc.ocv_table), s.pack.chemistry, th.cell_overvoltage_alarm_v,
                cvl_cell_v)  # fmt: skip
        except ConfigError as e:
            raise ValueError(str(e)) from None
    w = s.plausibility.windows(s.pack.chemistry, s.pack.cells, s.pack.capacity_ah)
    v_lo, v_hi = w.cell_v
    t_lo, t_hi = w.temp_c
    checks = (
        ("cell_overvoltage_alarm_v", "cell_voltage_max_v", v_hi, True),
        ("cell_undervoltage_alarm_v", "cell_voltage_min_v", v_lo, False),
        ("charge_temp_max_alarm_c", "cell_temp_max_c", t_hi, True),
        ("discharge_temp_max_alarm_c", "cell_temp_max_c", t_hi, True),
        ("charge_temp_min_alarm_c", "cell_temp_min_c", t_lo, False),
        ("discharge_temp_min_alarm_c", "cell_temp_min_c", t_lo, False),
    )
    for key, window_key, bound, high in checks:
        value = getattr(th, key)
        if (value >= bound) if high else (value <= bound):
            where = "below" if high else "above"
            raise ValueError(
                f"protection.{key} (={value:g}) must be {where} plausibility.{window_key} "
                f"(={bound:g}): a reading past it is a measurement fault, so the alarm "
                "could never trigger"
            )


def uv_levels(s: Settings) -> tuple[tuple[str, float], ...]:
    """The cell under-voltage levels in force, ``(key, V per cell)``: a float voltage (set or
    derived from the OCV table) must lie above them (``charge_float.float_in_force``)."""
    th = s.protection.resolve(s.pack)
    keys = ("cell_undervoltage_warning_v", "cell_undervoltage_alarm_v")
    return tuple((f"protection.{k}", float(getattr(th, k))) for k in keys)


def notices(s: Settings) -> tuple[str, ...]:
    """Settings that load but have no effect or an unusual one, each naming its keys: the
    charge section's (``ChargeConfig.notices``) and a charge voltage limit at or above the
    cell over-voltage alarm (the inverter is told to charge into the alarm; protection cuts the
    charge there). Said, not refused: a daemon that ran with them keeps running."""
    out = list(s.charge.for_chemistry(s.pack.chemistry).notices())
    cvl_v = s.limits.tables(s.pack).cvl_cell_v
    alarm_v = s.protection.resolve(s.pack).cell_overvoltage_alarm_v
    if cvl_v >= alarm_v:
        out.append(
            f"limits.cvl_cell_v (={cvl_v:g}) is not below protection.cell_overvoltage_alarm_v"
            f" (={alarm_v:g}): the inverter is told to charge into the alarm"
        )
    return tuple(out)
