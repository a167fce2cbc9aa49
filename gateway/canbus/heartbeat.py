"""The gateway's ``GW_Heartbeat`` frame (``dbc/bms.dbc``): its signal values for one step. Pure.

The daemon sends it on the BMS bus (``gateway.app``) and ``replay --tx-out`` writes it
(``gateway.txlog``); both encode these values with the DBC.
"""

from __future__ import annotations

from gateway.core.model import ControlOutput, GatewayMode

__all__ = ["heartbeat_signals"]

# ``Mode`` in bms.dbc; an unknown mode is sent as fault.
_MODE_CODE = {
    GatewayMode.STARTING: 0,
    GatewayMode.NORMAL: 1,
    GatewayMode.FAULT: 2,
    GatewayMode.STALE: 3,
}


def heartbeat_signals(out: ControlOutput, counter: int) -> dict[str, float]:
    """The ``GW_Heartbeat`` signals (bms.dbc) for the step ``out``; ``counter`` is 0..255."""
    return {
        "Counter": counter,
        "Mode": _MODE_CODE.get(out.mode, 2),
        "WorstSeverity": int(out.alarms.worst),
        "ChargeLimit": min(out.limits.ccl_a.value, 6553.5),
        "DischargeLimit": min(out.limits.dcl_a.value, 6553.5),
        "BalancingCells": sum(out.balancing.bleed),
    }
