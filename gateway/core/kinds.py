"""The kinds, modes and states of the core model, as enums: nothing parses a string prefix.

Every ``StrEnum`` value is the string the payloads carry (MQTT, the replay record, the web page,
Sparkplug, the terminal view), so a member prints, compares and serialises as that string.
The value types that hold them are in :mod:`gateway.core.model`, which re-exports them.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = [
    "BalancingMode",
    "CellAction",
    "ChargePhase",
    "GatewayMode",
    "InverterLink",
    "Role",
    "Severity",
    "StaleKind",
    "TermKind",
]


class Role(StrEnum):
    """What a decoded CAN value means to the gateway."""

    CELL_VOLTAGE = "cell_voltage"  # volts, index = cell (0-based)
    CELL_TEMPERATURE = "cell_temperature"  # degrees C, index = sensor (0-based)
    PACK_CURRENT = "pack_current"  # amperes, positive = charging, index 0
    PACK_VOLTAGE = "pack_voltage"  # volts, index 0
    BALANCING_STATUS = "balancing_status"  # 1.0 = cell's bleed switch on, index = cell


class StaleKind(StrEnum):
    """Why a required input does not count (``gateway.core.freshness.StaleInput.kind``); the
    values are the prefixes of the fail-safe's limit terms (``stale:cell_voltage[6]``)."""

    MISSING = "missing"
    """Never seen, or last seen flagged invalid."""
    STALE = "stale"
    """Older than its timeout, stamped in the future, or of a non-finite age."""
    IMPLAUSIBLE = "implausible"
    """Last reading was a measurement fault (``gateway.core.plausibility``)."""


class Severity(IntEnum):
    """Alarm level; ordered so ``max()`` gives the worst."""

    OK = 0
    WARNING = 1
    ALARM = 2


class TermKind(StrEnum):
    """What a limit term stands for (``LimitTerm.kind``), so no one parses its name.

    The first group are the fault terms that hold a current at 0 A (and restart the ramp's
    hold); the gateway's mode is ``stale`` while a ``missing``, ``stale`` or ``incomplete`` term
    wins CCL or DCL (``gateway.control``). The values name the kinds in docs and tests; the
    payloads carry the term's ``name``, not its kind.
    """

    MISSING = "missing"
    """A required input never seen or flagged invalid (``missing:current``)."""
    STALE = "stale"
    """A required input older than its timeout (``stale:cell_voltage[6]``)."""
    IMPLAUSIBLE = "implausible"
    """A required input whose last reading was a measurement fault."""
    INCOMPLETE = "incomplete"
    """The data set does not cover every configured cell and sensor yet."""
    PROTECTION = "protection"
    """An alarm that cuts the limit (``protection:cell_overvoltage``)."""
    LINK = "link"
    """The inverter link publishes 0 A (``link:controller_heartbeat_lost``)."""
    HOLD = "hold"
    """An external hold, such as a BMS firmware update (``update``)."""
    CONFIGURED = "configured"
    """A configured bound (``max``; DVL's ``min``)."""
    DERATING = "derating"
    """A table or taper over a measurement or estimate (``cell_voltage``, ``temperature``,
    ``soc``, ``imbalance``; CVL's ``cell_high``, DVL's ``cell_low``)."""
    PHASE = "phase"
    """The charge phase's CVL (``bulk``, ``absorption``, ``float``)."""
    INVERTER = "inverter"
    """What the inverter says it can take or give."""
    USER_CAP = "user_cap"
    """A user's cap (MQTT or Modbus command)."""
    RAMP = "ramp"
    """The ramp: an increase not yet allowed in full."""


class BalancingMode(StrEnum):
    """How the pack balances."""

    OFF = "off"
    PASSIVE = "passive"
    ACTIVE = "active"


class CellAction(StrEnum):
    """What balancing does to one cell (``BalancingAction.action``); the values are the
    strings of the payloads (MQTT ``balancing``, the replay record)."""

    BLEED = "bleed"
    """Passive: the cell's bleed resistor is on."""
    DONATE = "donate"
    """Active: the converter draws charge from the cell."""
    RECEIVE = "receive"
    """Active: the converter delivers charge to the cell."""
    BLOCKED = "blocked"
    """The cell should balance but a guard holds it (see the action's reason)."""


class ChargePhase(StrEnum):
    """Where the pack is in its charge cycle (``gateway.core.phases``)."""

    BULK = "bulk"  # charging, current-limited; CVL at the target (absorption or float)
    ABSORPTION = "absorption"  # a full charge holds CVL at the top while the cells settle
    FLOAT = "float"  # CVL lowered to the float voltage, below the top


class InverterLink(StrEnum):
    """Which link negotiated with the inverter (``Negotiation.link``); the values are the
    strings of the payloads (MQTT ``state.negotiation.link``, the replay record)."""

    SERVER = "server"
    """SunSpec server: the inverter reads model 802 from the gateway."""
    CLIENT = "client"
    """SunSpec client: the gateway writes the inverter's model 124/702."""
    CAN_PYLON = "can:pylon"
    """Battery CAN, Pylontech LV (``inverter_can.protocol = "pylon"``)."""
    CAN_SMA = "can:sma"
    """Battery CAN, SMA Sunny Island."""
    CAN_VICTRON = "can:victron"
    """Battery CAN, Victron GX."""
    CAN_PYLON_HV = "can:pylon-hv"
    """Battery CAN, Pylontech HV (29-bit, polled)."""


class GatewayMode(StrEnum):
    """The gateway's mode after a step (``ControlOutput.mode``); the values are the documented
    strings of the payloads (MQTT ``state.mode``, the replay record, Sparkplug ``Mode``)."""

    STARTING = "starting"
    """No complete data set seen yet since the start."""
    NORMAL = "normal"
    """Complete, fresh data and no alarm."""
    FAULT = "fault"
    """An alarm (severity ``ALARM`` or worse) is active."""
    STALE = "stale"
    """The data set is incomplete, or a limit was cut by a stale, missing or incomplete input."""
