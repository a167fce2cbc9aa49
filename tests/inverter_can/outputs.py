"""ControlOutputs for the inverter-CAN tests (the MQTT tests' builder, with a few knobs)."""

from __future__ import annotations

import dataclasses

from gateway.core.model import AlarmReport, BatteryRequests, CellEstimate, ControlOutput, Limits
from tests.mqtt.outputs import limit, make_output

__all__ = ["output", "requests"]


def output(
    *,
    t_s: float = 100.0,
    ccl_a: float = 80.0,
    dcl_a: float = 100.0,
    alarms: AlarmReport | None = None,
    soc_pct: float | None = 55.0,
    cell_socs: tuple[float, ...] | None = None,
    base_v: float = 3.3,
    bleed: tuple[int, ...] = (),
) -> ControlOutput:
    """A 16-cell LFP step with the given limits, alarms, SoC and lowest cell voltage."""
    out = make_output(t_s=t_s, base_v=base_v, bleed=bleed)
    lim = out.limits
    out = dataclasses.replace(
        out,
        limits=Limits(
            ccl_a=limit(ccl_a, "test", test=ccl_a),
            dcl_a=limit(dcl_a, "test", test=dcl_a),
            cvl_v=lim.cvl_v,
            dvl_v=lim.dvl_v,
        ),
        alarms=alarms if alarms is not None else AlarmReport(),
    )
    if soc_pct is None:
        return dataclasses.replace(out, soc=None)
    assert out.soc is not None
    cells = out.soc.cells
    if cell_socs is not None:
        cells = tuple(CellEstimate(s, 1.0, 100.0, 0.8) for s in cell_socs)
    return dataclasses.replace(out, soc=dataclasses.replace(out.soc, soc_pct=soc_pct, cells=cells))


def requests(**kw: bool) -> BatteryRequests:
    """Requests with charge and discharge enabled unless overridden."""
    base = {
        "charge_enable": True,
        "discharge_enable": True,
        "force_charge": False,
        "full_charge": False,
    }
    base.update(kw)
    return BatteryRequests(**base)
