"""SunSpec client mode: the inverter's storage control, model 124 and model 702, both ways.

Model 124 (basic storage controls) holds the limits as ``InWRte``/``OutWRte`` in % of
``WChaMax``; model 702 (DER capacity) as ``WChaRteMax``/``WDisChaRteMax`` in W. ``setpoints_*``
turn our CCL/DCL into raw register values (rounded down: never more than asked for);
``limits_from_*`` read back what the inverter holds, as amperes. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math

from gateway.sunspec.layout import RAW_RANGE, RawValue, from_raw

__all__ = ["limits_from_124", "limits_from_702", "setpoints_124", "setpoints_702"]


def _pct(watts: float, max_w: float) -> float:
    return max(0.0, min(100.0, 100.0 * watts / max_w)) if max_w > 0 else 0.0


def setpoints_124(
    ccl_a: float, dcl_a: float, voltage_v: float | None, wcha_max_w: float, inout_sf: int
) -> tuple[int, int]:
    """Raw ``InWRte`` and ``OutWRte`` (% of ``WChaMax``) for our limits at ``voltage_v``.

    An unknown voltage or an inverter without a maximum gives 0 % both ways (fail safe).
    Rounded down, so the inverter never gets more than we asked for.
    """
    if voltage_v is None or not voltage_v > 0 or not wcha_max_w > 0:
        return 0, 0
    step = 10.0**inout_sf
    in_pct = _pct(max(0.0, ccl_a) * voltage_v, wcha_max_w)
    out_pct = _pct(max(0.0, dcl_a) * voltage_v, wcha_max_w)
    return math.floor(in_pct / step + 1e-9), math.floor(out_pct / step + 1e-9)


def limits_from_124(
    in_raw: RawValue, out_raw: RawValue, inout_sf: int | None, wcha_max_w: float, voltage_v: float
) -> tuple[float | None, float | None]:
    """What the inverter holds in ``InWRte``/``OutWRte``, as charge/discharge amperes."""
    res: list[float | None] = []
    for raw in (in_raw, out_raw):
        pct = from_raw(raw, inout_sf)
        res.append(None if pct is None else max(0.0, pct) / 100.0 * wcha_max_w / voltage_v)
    return res[0], res[1]


def setpoints_702(
    ccl_a: float, dcl_a: float, voltage_v: float | None, w_sf: int
) -> tuple[int, int]:
    """Raw ``WChaRteMax``/``WDisChaRteMax`` (W) for our limits; 0 when the voltage is unknown."""
    if voltage_v is None or not voltage_v > 0:
        return 0, 0
    step = 10.0**w_sf
    hi = RAW_RANGE["uint16"][1]
    cha = min(hi, math.floor(max(0.0, ccl_a) * voltage_v / step + 1e-9))
    dis = min(hi, math.floor(max(0.0, dcl_a) * voltage_v / step + 1e-9))
    return cha, dis


def limits_from_702(
    cha_raw: RawValue, dis_raw: RawValue, w_sf: int | None, voltage_v: float
) -> tuple[float | None, float | None]:
    """What the inverter holds in ``WChaRteMax``/``WDisChaRteMax``, as amperes."""
    cha, dis = from_raw(cha_raw, w_sf), from_raw(dis_raw, w_sf)
    return (
        None if cha is None else cha / voltage_v,
        None if dis is None else dis / voltage_v,
    )
