"""The replay record: one JSON object per second of log time. Schema in docs/REPLAY.md.

One schema for replay, tests and benches; later work adds keys, never renames them.
"""

from __future__ import annotations

from typing import Any

from gateway.core.model import ControlOutput

__all__ = ["SCHEMA_VERSION", "record"]

SCHEMA_VERSION = 1


def _r(x: float | None, nd: int) -> float | None:
    return None if x is None else round(x, nd)


def record(out: ControlOutput, t0_s: float = 0.0) -> dict[str, Any]:
    """The replay record of one control step; ``t`` is seconds since ``t0_s`` (log start)."""
    p = out.pack
    temps = p.cell_temp_c
    n, m = len(p.cell_voltage_v), len(temps)
    cells: list[dict[str, Any]] = []
    for i, v in enumerate(p.cell_voltage_v):
        # With fewer sensors than cells, a cell reports the sensor that covers it.
        cell: dict[str, Any] = {"v": _r(v, 4), "t_c": _r(temps[i * m // n], 2) if m else None}
        cells.append(cell)
    return {
        "t": round(out.t_s - t0_s, 3),
        "cells": cells,
        "temps_c": [_r(t, 2) for t in temps],
        "current_a": _r(p.current_a, 3),
        "voltage_v": _r(p.pack_voltage_v, 3),
        "complete": p.complete,
        "frames": p.frames,
        "errors": p.errors,
        "mode": out.mode,
    }
