"""The alarm catalogue: every protection alarm code, what it means and which limits it cuts.

The code is the stable name the outputs publish (MQTT ``alarms``, the replay record). How an
output encodes a code on its own wire is the output's business: the SunSpec model 802 ``Evt1``
bits live in ``gateway.sunspec.evt1``, the battery-CAN alarm flags in ``gateway.inverter_can``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALARMS", "LATCHING_DEFAULT", "AlarmSpec"]


@dataclass(frozen=True, slots=True)
class AlarmSpec:
    """One alarm code: what it means and which current limits its alarm level cuts."""

    code: str
    description: str
    cuts_charge: bool
    cuts_discharge: bool
    # The charge cut applies only while the highest cell is near the top of charge (at or above
    # ``limits.imbalance_start_cell_v``): a cut at the bottom would strand an empty pack, whose
    # low cells only charging can lift.
    charge_cut_near_top_only: bool = False


def _spec(
    code: str, description: str, charge: bool, discharge: bool, *, near_top: bool = False
) -> AlarmSpec:
    return AlarmSpec(code, description, charge, discharge, near_top)


# ``cuts_*``: at ALARM severity the protection term of that limit is 0 A (warnings cut nothing;
# the tapers in limits do that).
ALARMS: dict[str, AlarmSpec] = {
    s.code: s
    for s in (
        _spec("cell_overvoltage", "highest cell above its maximum voltage", True, False),
        _spec("cell_undervoltage", "lowest cell below its minimum voltage", False, True),
        _spec("charge_overtemperature", "charging while a cell is above the charge window",
              True, False),
        _spec("charge_undertemperature", "charging while a cell is below the charge window",
              True, False),
        _spec("discharge_overtemperature", "a cell above the discharge (absolute) window",
              True, True),
        _spec("discharge_undertemperature", "a cell below the discharge (absolute) window",
              True, True),
        _spec("overcurrent_charge", "charge current above the cell rating", True, False),
        _spec("overcurrent_discharge", "discharge current above the cell rating", False, True),
        _spec("voltage_imbalance", "spread between highest and lowest cell voltage",
              True, False, near_top=True),
        _spec("temperature_imbalance", "spread between hottest and coldest sensor", True, True),
        _spec("soc_low", "pack state of charge low", False, False),
        _spec("stale_data", "a required input is missing or older than its timeout",
              True, True),
        _spec("communication_loss", "no input at all from the BMS", True, True),
        _spec("measurement_fault", "a reading no healthy cell or sensor can show (clears itself)",
              True, True),
        _spec("configuration", "the data does not match the configured pack", True, True),
        _spec("inverter_overcharge", "inverter charges above the negotiated limit", True, False),
        _spec("inverter_overdischarge", "inverter discharges above the negotiated limit",
              False, True),
    )
}  # fmt: skip
"""The alarm catalogue, by code, in the order the report lists active alarms."""

LATCHING_DEFAULT: tuple[str, ...] = (
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
"""Codes whose alarm level latches until reset, unless ``protection.latching`` says otherwise."""
