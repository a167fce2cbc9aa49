"""The compiled CAN profile checked against the settings, before anything runs.

The daemon (``gateway.app``), ``bms-gateway check-config`` and ``bms-gateway replay`` call
``check_decoder`` once at start; ``gateway.control`` re-exports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.core.model import Role
from gateway.errors import ConfigError
from gateway.settings import Settings

if TYPE_CHECKING:  # checked, never built here
    from gateway.canbus.decode import Decoder

__all__ = ["check_decoder"]


def check_decoder(settings: Settings, decoder: Decoder) -> None:
    """Check the compiled profile against the settings before anything runs.

    The profile must deliver every configured cell and sensor (``Decoder.check_pack``), and the
    DBC must be able to carry every alarm threshold of the protection (an over-voltage alarm
    above the highest value the cell-voltage signal can express would never trigger).

    Raises:
        ConfigError: naming the setting and the DBC.
    """
    decoder.check_pack(settings.pack.cells, settings.pack.temp_sensors)
    try:
        th = settings.protection.resolve(settings.pack)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    v, t, a = Role.CELL_VOLTAGE, Role.CELL_TEMPERATURE, Role.PACK_CURRENT
    decoder.check_carries(
        [
            ("protection.cell_overvoltage_alarm_v", v, th.cell_overvoltage_alarm_v),
            ("protection.cell_overvoltage_warning_v", v, th.cell_overvoltage_warning_v),
            ("protection.cell_undervoltage_alarm_v", v, th.cell_undervoltage_alarm_v),
            ("protection.cell_undervoltage_warning_v", v, th.cell_undervoltage_warning_v),
            ("protection.charge_temp_max_alarm_c", t, th.charge_temp_max_alarm_c),
            ("protection.discharge_temp_max_alarm_c", t, th.discharge_temp_max_alarm_c),
            ("protection.charge_temp_min_alarm_c", t, th.charge_temp_min_alarm_c),
            ("protection.discharge_temp_min_alarm_c", t, th.discharge_temp_min_alarm_c),
            ("protection.overcurrent_charge_alarm_a", a, th.overcurrent_charge_alarm_a),
            ("protection.overcurrent_discharge_alarm_a", a, -th.overcurrent_discharge_alarm_a),
        ]
    )
