"""The ``cells`` topic: per-cell values as parallel arrays."""

from __future__ import annotations

from gateway.core.model import ControlOutput
from gateway.mqtt.payloads.common import Payload, rounded

__all__ = ["CellsPayload", "cells_payload"]


class CellsPayload(Payload):
    """Topic ``cells``: per-cell values as parallel arrays (index i = cell i, 0-based).

    ``temp_c`` is per cell only when there is one sensor per cell; otherwise it is ``null`` and
    ``sensor_temp_c`` holds the sensors (their placement is the pack builder's, not ours to guess).
    """

    seq: int
    t_s: float
    time: float | None
    count: int
    voltage_v: list[float | None]
    voltage_age_s: list[float | None]
    temp_c: list[float | None] | None
    soc_pct: list[float | None] | None
    soc_sigma_pct: list[float | None] | None
    soc_rel_sigma_pct: list[float | None] | None
    capacity_ah: list[float | None] | None
    capacity_sigma_ah: list[float | None] | None
    resistance_mohm: list[float | None] | None
    r1_mohm: list[float | None] | None
    tau1_s: list[float | None] | None
    balancing: list[bool]
    sensor_temp_c: list[float | None]
    sensor_age_s: list[float | None]


def cells_payload(out: ControlOutput, gateway_id: str, time_s: float | None) -> CellsPayload:
    """The ``cells`` payload of one control step."""
    pack = out.pack
    n = pack.cell_count
    est = out.soc.cells if out.soc is not None and len(out.soc.cells) == n else None
    sensors = [rounded(t, 2) for t in pack.cell_temp_c]
    # The plan's bleed flags are what the gateway commands; the pack's flags are what the cell
    # monitors report. A cell counts as balancing when either says so.
    bleed = out.balancing.bleed
    reported = pack.balancing_active
    balancing = [
        (i < len(bleed) and bleed[i]) or (i < len(reported) and reported[i]) for i in range(n)
    ]
    return CellsPayload(
        gateway_id=gateway_id,
        seq=out.seq,
        t_s=round(out.t_s, 3),
        time=rounded(time_s, 3),
        count=n,
        voltage_v=[rounded(v, 4) for v in pack.cell_voltage_v],
        voltage_age_s=[rounded(a, 3) for a in pack.cell_voltage_age_s],
        temp_c=sensors if len(sensors) == n else None,
        soc_pct=[rounded(c.soc_pct, 2) for c in est] if est else None,
        soc_sigma_pct=[rounded(c.soc_sigma_pct, 2) for c in est] if est else None,
        soc_rel_sigma_pct=[rounded(c.soc_rel_sigma_pct, 2) for c in est] if est else None,
        capacity_ah=[rounded(c.capacity_ah, 3) for c in est] if est else None,
        capacity_sigma_ah=[rounded(c.capacity_sigma_ah, 3) for c in est] if est else None,
        resistance_mohm=[rounded(c.resistance_mohm, 3) for c in est] if est else None,
        r1_mohm=[rounded(c.r1_mohm, 3) for c in est] if est else None,
        tau1_s=[rounded(c.tau1_s, 1) for c in est] if est else None,
        balancing=balancing,
        sensor_temp_c=sensors,
        sensor_age_s=[rounded(a, 3) for a in pack.cell_temp_age_s],
    )
