"""SunSpec register maps built from pysunspec2's model definitions (one import for all three).

The maps live in three modules; this one re-exports their public names so ``gateway.sunspec.maps``
keeps working:

* ``gateway.sunspec.layout``: ``ModelLayout``, one model's points with their offsets, raw
  encode/decode and scaling (``to_raw``, ``from_raw``, ``fit_sf``).
* ``gateway.sunspec.model802``: ``BatteryMap``, the gateway's own device in server mode, ``SunS``
  + model 1 + model 802 + end model, and ``battery_points`` turning a ``ControlOutput`` into
  model 802 raw values.
* ``gateway.sunspec.storage_control``: the client mode's storage-control helpers, the inverter's
  model 124 (``InWRte``/``OutWRte`` as % of ``WChaMax``) and model 702
  (``WChaRteMax``/``WDisChaRteMax`` in W), both ways.
"""

from __future__ import annotations

from gateway.sunspec.layout import (
    BASE_ADDRESSES,
    END_MODEL_ID,
    SUNS_MARKER,
    ModelLayout,
    PointDef,
    RawValue,
    encode_point,
    fit_sf,
    from_raw,
    to_raw,
)
from gateway.sunspec.model802 import (
    ENVELOPE_A,
    ENVELOPE_V,
    WRITABLE_802,
    BatteryInfo,
    BatteryMap,
    LinkState,
    ScaleFactors,
    battery_points,
    pack_voltage_v,
)
from gateway.sunspec.storage_control import (
    limits_from_124,
    limits_from_702,
    setpoints_124,
    setpoints_702,
)

__all__ = [
    "BASE_ADDRESSES",
    "END_MODEL_ID",
    "ENVELOPE_A",
    "ENVELOPE_V",
    "SUNS_MARKER",
    "WRITABLE_802",
    "BatteryInfo",
    "BatteryMap",
    "LinkState",
    "ModelLayout",
    "PointDef",
    "RawValue",
    "ScaleFactors",
    "battery_points",
    "encode_point",
    "fit_sf",
    "from_raw",
    "limits_from_124",
    "limits_from_702",
    "pack_voltage_v",
    "setpoints_124",
    "setpoints_702",
    "to_raw",
]
