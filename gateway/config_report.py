"""What ``check-config`` says back besides the settings: the chemistry defaults in force.

A key left unset (``null`` in the printed settings) whose value the pack's chemistry decides
(protection thresholds, the plausibility window of a cell voltage, CVL and DVL per cell, the
balancing voltages, the float SoC and float voltage of the charge phases) is listed here with the
value the daemon will use, so an installer sees ``protection.cell_overvoltage_alarm_v = 3.65``
rather than ``null``; so is the raised float behind ``charge.float_raise_days`` (its SoC and
voltage come from the OCV table: ``gateway.core.charge_float``), the float the pack holds for
that long after a deep night. The values come from the same resolvers the control core uses
(``ProtectionConfig.resolve``, ``PlausibilityConfig.windows``, ``LimitsConfig.tables``,
``BALANCING_DEFAULTS``, ``ChargeConfig.for_chemistry`` and ``float_in_force``), never from a
copy of the tables.
"""

from __future__ import annotations

from dataclasses import fields

from gateway.core.balancing_config import BALANCING_DEFAULTS
from gateway.core.charge_float import float_in_force
from gateway.settings import Settings
from gateway.settings_checks import uv_levels
from gateway.state_store import resolve_chemistry

__all__ = ["chemistry_defaults"]


def chemistry_defaults(settings: Settings) -> list[str]:
    """``section.key = value`` for every unset key whose value comes from the chemistry.

    Args:
        settings: loaded settings (already checked: ``Settings`` resolves the same values).

    Returns:
        One line per key, in the order protection, plausibility, limits, balancing, charge.

    Raises:
        ConfigError: the user's OCV table cannot be read (``soc.ocv_table``).
    """
    pack = settings.pack
    lines: list[str] = []

    def add(section: str, key: str, own: object, value: float) -> None:
        if own is None:
            lines.append(f"{section}.{key} = {value:g}")

    prot = settings.protection
    resolved = prot.resolve(pack)
    for f in fields(resolved):
        add("protection", f.name, getattr(prot, f.name, None), getattr(resolved, f.name))
    plaus = settings.plausibility
    v_lo, v_hi = plaus.windows(pack.chemistry, pack.cells, pack.capacity_ah).cell_v
    add("plausibility", "cell_voltage_min_v", plaus.cell_voltage_min_v, v_lo)
    add("plausibility", "cell_voltage_max_v", plaus.cell_voltage_max_v, v_hi)
    lim = settings.limits
    tables = lim.tables(pack)
    for key in ("cvl_cell_v", "dvl_cell_v", "imbalance_start_cell_v"):
        add("limits", key, getattr(lim, key), getattr(tables, key))
    bal = settings.balancing
    for key, value in BALANCING_DEFAULTS[pack.chemistry].items():
        add("balancing", key, getattr(bal, key), value)
    charge = settings.charge.for_chemistry(pack.chemistry)
    chemistry = resolve_chemistry(pack, settings.soc)
    fl = float_in_force(
        charge, chemistry, tables.cvl_cell_v, tables.dvl_cell_v, uv_levels(settings)
    )
    if fl.clamped:  # said also when float_soc_pct is set: the SoC in force is not the one set
        lines.append(f"charge.float_soc_pct = {fl.config.float_soc:.4g} ({fl.clamped})")
    else:
        add("charge", "float_soc_pct", settings.charge.float_soc_pct, charge.float_soc)
    add("charge", "float_cell_v", settings.charge.float_cell_v, fl.cell_v)
    if fl.raised is not None:
        lines.append(
            f"charge.float_raise_days = {charge.float_raise_days:g}: float_soc_pct"
            f" {fl.raised[0]:.4g}, float_cell_v {fl.raised[1]:g} for that long after the SoC"
            f" fell below {100.0 - fl.config.float_soc:g} %"
        )
    return lines
