"""The estimator's saved state: what ``SocEstimator.export_state`` writes and ``restore`` reads.

Plain JSON values (lists of floats per cell), versioned; ``read_state`` checks a state read back
from disk field by field (type, length, range) before anything of it is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.core.soc_bias import LoadBiasEvidence
from gateway.core.soc_cell import CellState
from gateway.core.soc_knee import KneeEvidence, check_sums
from gateway.core.soc_offset import BIAS_Q_MAX
from gateway.core.soc_slow import INFO_MAX, XY_MAX, SlowEvidence

__all__ = ["STATE_VERSION", "SavedState", "export_cells", "read_state"]

STATE_VERSION = 1
"""Version of the dict written by ``SocEstimator.export_state``."""

_NAN = math.nan


@dataclass(frozen=True, slots=True)
class SavedState:
    """A checked saved state: one entry per cell in each list (units as the field names say)."""

    initialised: list[bool]
    soc_pct: list[float]  # NaN for a cell that never started
    soc_var: list[float]
    soc_var_common: list[float]
    v1_var: list[float]
    capacity_ah: list[float]
    capacity_var: list[float]
    r0_ohm_25c: list[float]
    r1_ohm_25c: list[float]
    r2_ohm_25c: list[float]
    cycles: float
    # The learned current offset (C) and its variance (C^2; NaN: nothing learned); states
    # written before it was learned: None.
    current_offset_c: list[float] | None = None
    current_offset_var: list[float] | None = None
    # The pack's evidence on the load bias (``gateway.core.soc_bias``: weight, weighted sum of
    # the normalised squares); states written before it was saved: None.
    load_bias_w: float | None = None
    load_bias_wq: float | None = None
    # The pack's evidence on the slow polarisation (``gateway.core.soc_slow``: sum x^2 / var,
    # sum x y / var); states written before it was learned: None.
    slow_info: float | None = None
    slow_xy: float | None = None
    # The pack's evidence of R0's rise at the low knee (``gateway.core.soc_knee``:
    # ``KneeEvidence.sums``); states written before it was saved: None.
    knee: tuple[float, float, float, float] | None = None


def export_cells(
    cells: Sequence[CellState],
    chemistry: str,
    nominal_capacity_ah: float,
    cycles: float,
    bias: LoadBiasEvidence | None = None,
    knee: KneeEvidence | None = None,
    slow: SlowEvidence | None = None,
) -> dict[str, Any]:
    """Everything needed to resume after a restart, as JSON-friendly plain values; ``bias``: the
    pack's evidence on the load bias, ``knee`` on R0's rise at the low knee, ``slow`` on the
    slow polarisation (``None``: not saved)."""
    var = [c.total_var() for c in cells]
    out: dict[str, Any] = {
        "version": STATE_VERSION,
        "chemistry": chemistry,
        "cells": len(cells),
        "nominal_capacity_ah": nominal_capacity_ah,
        "initialised": [c.initialised for c in cells],
        "soc_pct": [_json_float(c.soc_pct) for c in cells],
        # The reported variance (``CellState.total_var``), and at most that of it common.
        "soc_var": var,
        "soc_var_common": [
            min(v, min(c.p00, c.rc + c.sc * c.sc + c.sg * c.sg) + c.bias_var())
            for v, c in zip(var, cells, strict=True)
        ],
        "v1_v": [c.v1_v for c in cells],
        "cov_soc_v1": [c.p01 for c in cells],
        "v1_var": [c.p11 for c in cells],
        "capacity_ah": [c.capacity_ah for c in cells],
        "capacity_var": [c.capacity_var for c in cells],
        "r0_ohm_25c": [c.r0_ohm_25c for c in cells],
        "r1_ohm_25c": [c.r1_ohm_25c for c in cells],
        "r2_ohm_25c": [c.r2_ohm_25c for c in cells],
        "current_offset_c": [c.off_c for c in cells],
        "current_offset_var": [_json_float(c.off_var) for c in cells],
        "cycles": cycles,
    }
    if bias is not None:
        out["load_bias_weight"] = bias.w
        out["load_bias_weighted_sq"] = bias.wq
    if slow is not None:
        out["slow_info"] = slow.info
        out["slow_xy"] = slow.xy
    if knee is not None:
        out.update(zip(_KNEE_KEYS, knee.sums(), strict=True))
    return out


def read_state(
    state: object,
    *,
    chemistry: str,
    cells: int,
    nominal_capacity_ah: float,
    r1_default_ohm: float,
    r2_default_ohm: float,
) -> SavedState:
    """Check a saved state against the pack it is to resume; return its values.

    States written before R1 or R2 was identified start those from the defaults given.

    Raises:
        ValueError: the state is of another version, cell count or chemistry, or malformed
            (naming the field and the cell).
    """
    if not isinstance(state, dict):
        raise ValueError("state must be a mapping")
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"state version (={state.get('version')!r}) is not {STATE_VERSION}")
    if state.get("chemistry") != chemistry:
        raise ValueError(f"state chemistry (={state.get('chemistry')!r}) is not {chemistry!r}")
    n = cells
    if state.get("cells") != n:
        raise ValueError(f"state cell count (={state.get('cells')!r}) is not {n}")
    q_nom = nominal_capacity_ah
    q_state = state.get("nominal_capacity_ah")
    if not isinstance(q_state, int | float) or not math.isclose(q_state, q_nom, rel_tol=1e-9):
        # Other cells (or a corrected rating): their learned capacities are not these.
        raise ValueError(f"state nominal_capacity_ah (={q_state!r}) is not {q_nom}")
    init_raw = state.get("initialised")
    if not isinstance(init_raw, list) or len(init_raw) != n:
        raise ValueError(f"state initialised must be a list of {n} booleans")
    if not all(isinstance(b, bool) for b in init_raw):
        raise ValueError("state initialised must hold booleans")
    soc = _vec(state, "soc_pct", n, 0.0, 100.0, allow_nan=True)
    soc_var = _vec(state, "soc_var", n, 0.0, 1e6)
    # Older states have no split: all individual (the cautious reading for differences).
    if "soc_var_common" in state:
        soc_var_common = _vec(state, "soc_var_common", n, 0.0, 1e6)
    else:
        soc_var_common = [0.0] * n
    _vec(state, "v1_v", n, -5.0, 5.0)
    _vec(state, "cov_soc_v1", n, -1e6, 1e6)
    p11 = _vec(state, "v1_var", n, 0.0, 1e3)
    cap = _vec(state, "capacity_ah", n, 0.2 * q_nom, 2.0 * q_nom)
    cap_var = _vec(state, "capacity_var", n, 0.0, (10.0 * q_nom) ** 2)
    r0 = _vec(state, "r0_ohm_25c", n, 0.0, 10.0)
    r1 = _vec(state, "r1_ohm_25c", n, 0.0, 10.0) if "r1_ohm_25c" in state else [r1_default_ohm] * n
    r2 = _vec(state, "r2_ohm_25c", n, 0.0, 10.0) if "r2_ohm_25c" in state else [r2_default_ohm] * n
    off_c, off_var = _offset(state, n)
    bias_w, bias_wq = _load_bias(state)
    slow_info, slow_xy = _slow(state)
    cycles = _number(state.get("cycles"), "cycles")
    if not cycles >= 0:
        raise ValueError(f"state cycles (={cycles!r}) must be a number >= 0")
    for j in range(n):
        if init_raw[j] and not math.isfinite(soc[j]):
            raise ValueError(f"state soc_pct[{j}] is missing for an initialised cell")
    return SavedState(
        initialised=[bool(b) for b in init_raw],
        soc_pct=soc,
        soc_var=soc_var,
        soc_var_common=soc_var_common,
        v1_var=p11,
        capacity_ah=cap,
        capacity_var=cap_var,
        r0_ohm_25c=r0,
        r1_ohm_25c=r1,
        r2_ohm_25c=r2,
        cycles=cycles,
        current_offset_c=off_c,
        current_offset_var=off_var,
        load_bias_w=bias_w,
        load_bias_wq=bias_wq,
        slow_info=slow_info,
        slow_xy=slow_xy,
        knee=_knee(state),
    )


def _load_bias(state: dict[str, Any]) -> tuple[float, float] | tuple[None, None]:
    """The pack's load-bias evidence ``(w, wq)`` from ``state``: both numbers, ``w`` within
    ``0..1e6`` and ``wq`` within ``0..BIAS_Q_MAX * w`` (what the tests can sum to); a state
    written before it was saved has neither: ``(None, None)``."""
    if "load_bias_weight" not in state and "load_bias_weighted_sq" not in state:
        return None, None
    out: list[float] = []
    for key in ("load_bias_weight", "load_bias_weighted_sq"):
        out.append(_number(state.get(key), key))
    w, wq = out
    if not 0.0 <= w <= 1e6:
        raise ValueError(f"state load_bias_weight (={w}) is outside 0..1e6")
    if not 0.0 <= wq <= BIAS_Q_MAX * w * (1.0 + 1e-9):  # the sums' rounding allowed
        raise ValueError(
            f"state load_bias_weighted_sq (={wq}) is outside 0..{BIAS_Q_MAX} x load_bias_weight"
        )
    return w, wq


def _offset(state: dict[str, Any], n: int) -> tuple[list[float], list[float]] | tuple[None, None]:
    """The cells' learned current offset (C) and its variance (C^2; NaN: nothing learned) from
    ``state``; a state written before it was learned has neither: ``(None, None)``."""
    if "current_offset_c" not in state:
        return None, None
    off_c = _vec(state, "current_offset_c", n, -1.0, 1.0)
    return off_c, _vec(state, "current_offset_var", n, 0.0, 1.0, allow_nan=True)


def _slow(state: dict[str, Any]) -> tuple[float, float] | tuple[None, None]:
    """The pack's slow-polarisation evidence ``(info, xy)`` from ``state``: both numbers within
    their ranges (``gateway.core.soc_slow``; the 1e-9: the sums' rounding); a state written
    before it was saved has neither: ``(None, None)``."""
    if "slow_info" not in state and "slow_xy" not in state:
        return None, None
    out: list[float] = []
    for key, lo, hi in (("slow_info", 0.0, INFO_MAX), ("slow_xy", -XY_MAX, XY_MAX)):
        x = _number(state.get(key), key)
        if not lo * (1.0 + 1e-9) <= x <= hi * (1.0 + 1e-9):
            raise ValueError(f"state {key} (={x}) is outside {lo}..{hi}")
        out.append(x)
    return out[0], out[1]


_KNEE_KEYS = ("knee_mid_w", "knee_mid_wy", "knee_lo_wxx", "knee_lo_wxy")


def _knee(state: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """The pack's knee evidence (``KneeEvidence.sums``) from ``state``: four numbers that
    ``check_sums`` accepts; a state written before it was saved has none of them: ``None``."""
    if not any(key in state for key in _KNEE_KEYS):
        return None
    out: list[float] = []
    for key in _KNEE_KEYS:
        out.append(_number(state.get(key), key))
    mid_w, mid_wy, lo_wxx, lo_wxy = out
    why = check_sums(mid_w, mid_wy, lo_wxx, lo_wxy)
    if why is not None:
        raise ValueError(f"state {why}")
    return mid_w, mid_wy, lo_wxx, lo_wxy


def _vec(
    state: dict[str, Any], key: str, n: int, lo: float, hi: float, allow_nan: bool = False
) -> list[float]:
    """A list of ``n`` numbers within ``lo..hi`` from ``state[key]`` (``None`` = NaN if allowed)."""
    raw = state.get(key)
    if not isinstance(raw, list) or len(raw) != n:
        raise ValueError(f"state {key} must be a list of {n} numbers")
    out: list[float] = []
    for j, x in enumerate(raw):
        if x is None and allow_nan:
            out.append(_NAN)
            continue
        xf = _number(x, f"{key}[{j}]")
        if not (lo <= xf <= hi):
            raise ValueError(f"state {key}[{j}] (={xf}) is outside {lo}..{hi}")
        out.append(xf)
    return out


def _number(x: object, key: str) -> float:
    """``x``, the state's ``key``, as a float; a bool, a string, a missing value or an integer
    beyond a float (``OverflowError``) is a ``ValueError``, as every malformed state is."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise ValueError(f"state {key} (={x!r}) is not a number")
    try:
        return float(x)
    except OverflowError:
        raise ValueError(f"state {key} (an integer) is beyond a float") from None


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None
