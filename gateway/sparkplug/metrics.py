"""Sparkplug B metrics of the pack from one control step, and report by exception. Pure.

Metric names are paths (``Pack/SoC``, ``Limits/CCL``, ``Charge/Phase``, ``Cells/001/Voltage``);
Ignition and other hosts show them as folders. Floats are rounded to the resolution that matters
(mV, 10 mA, 0.1 % SoC), so noise below it does not count as a change: report by exception sends
only what changed at that resolution. A metric that cannot be known is sent as null
(``is_null``), never as a made-up number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from gateway.core.model import ControlOutput, Limit

__all__ = ["DeviceMetrics", "MetricType", "Value", "changed", "device_metrics", "node_metrics"]


class MetricType(Enum):
    """The Sparkplug B data types we use."""

    DOUBLE = "double"
    INT64 = "int64"
    UINT64 = "uint64"
    BOOLEAN = "boolean"
    STRING = "string"


Value = float | int | bool | str | None


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric's type and value (``None`` = null)."""

    type: MetricType
    value: Value


DeviceMetrics = dict[str, Metric]


def _d(x: float | None, nd: int) -> Metric:
    v = None if x is None or not math.isfinite(x) else round(x, nd)
    return Metric(MetricType.DOUBLE, v)


def _limit(prefix: str, lim: Limit, nd: int) -> DeviceMetrics:
    m = {prefix: _d(lim.value, nd), f"{prefix} Winner": Metric(MetricType.STRING, lim.winner)}
    for t in lim.terms:
        m[f"{prefix} Terms/{t.name}"] = _d(t.value, nd)
    return m


def device_metrics(out: ControlOutput, *, cells: bool = True) -> DeviceMetrics:
    """The pack device's metrics at step ``out``."""
    p = out.pack
    soc = out.soc
    c = out.charge
    lo, hi = p.min_cell_v, p.max_cell_v
    power = (
        p.pack_voltage_v * p.current_a
        if p.pack_voltage_v is not None and p.current_a is not None
        else None
    )
    m: DeviceMetrics = {
        "Mode": Metric(MetricType.STRING, out.mode),
        "Pack/SoC": _d(soc.soc_pct if soc else None, 1),
        "Pack/SoH": _d(soc.soh_pct if soc else None, 1),
        "Pack/Voltage": _d(p.pack_voltage_v, 2),
        "Pack/Current": _d(p.current_a, 2),
        "Pack/Power": _d(power, 0),
        "Pack/Min Cell Voltage": _d(lo, 3),
        "Pack/Max Cell Voltage": _d(hi, 3),
        "Pack/Cell Spread mV": _d(
            (hi - lo) * 1000 if lo is not None and hi is not None else None, 0
        ),
        "Energy/Charged kWh": _d(out.energy.charged_kwh if out.energy else None, 3),
        "Energy/Discharged kWh": _d(out.energy.discharged_kwh if out.energy else None, 3),
        "Alarms/Level": Metric(MetricType.STRING, out.alarms.worst.name.lower()),
        "Alarms/Active": Metric(
            MetricType.STRING, ",".join(sorted(a.code for a in out.alarms.active))
        ),
        "Balancing/Cells": Metric(MetricType.INT64, sum(out.balancing.bleed)),
        # Always present (null without the charge-phase machine): a metric that appeared later
        # would cost a rebirth. Both change only on a transition or a new request.
        "Charge/Phase": Metric(MetricType.STRING, c.phase.value if c else None),
        "Charge/Full Charge Requested": Metric(
            MetricType.BOOLEAN, c.full_charge_requested if c else None
        ),
    }
    m |= _limit("Limits/CCL", out.limits.ccl_a, 1)
    m |= _limit("Limits/DCL", out.limits.dcl_a, 1)
    m |= _limit("Limits/CVL", out.limits.cvl_v, 2)
    m |= _limit("Limits/DVL", out.limits.dvl_v, 2)
    if cells:
        est = soc.cells if soc is not None and len(soc.cells) == p.cell_count else None
        for i, v in enumerate(p.cell_voltage_v):
            n = f"Cells/{i + 1:03d}"
            m[f"{n}/Voltage"] = _d(v, 3)
            m[f"{n}/SoC"] = _d(est[i].soc_pct if est else None, 1)
            on = i < len(out.balancing.bleed) and out.balancing.bleed[i]
            m[f"{n}/Balancing"] = Metric(MetricType.BOOLEAN, on)
        for i, t in enumerate(p.cell_temp_c):
            m[f"Sensors/{i + 1:03d}/Temperature"] = _d(t, 1)
    return m


def node_metrics(bd_seq: int, version: str, gateway_id: str) -> DeviceMetrics:
    """The edge node's NBIRTH metrics: ``bdSeq``, ``Node Control/Rebirth`` and properties."""
    return {
        "bdSeq": Metric(MetricType.UINT64, bd_seq),
        "Node Control/Rebirth": Metric(MetricType.BOOLEAN, False),
        "Properties/Software": Metric(MetricType.STRING, "bms-gateway"),
        "Properties/Version": Metric(MetricType.STRING, version),
        "Properties/Gateway ID": Metric(MetricType.STRING, gateway_id),
    }


def changed(sent: Mapping[str, Metric], now: Mapping[str, Metric]) -> DeviceMetrics | None:
    """The metrics of ``now`` that differ from ``sent``; ``None`` when ``now`` has a metric
    ``sent`` lacks or lacks one it has (the set changed: a new DBIRTH is needed)."""
    if sent.keys() != now.keys():
        return None
    return {k: v for k, v in now.items() if sent[k] != v}
