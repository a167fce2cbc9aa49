"""The replay record: one JSON object per second of log time. Schema in docs/REPLAY.md.

One schema for replay, tests and benches; later work adds keys, never renames them.
"""

from __future__ import annotations

import math
from typing import Any

from gateway.core.model import ChargeState, ControlOutput, Limit, Limits, Negotiation
from gateway.sunspec.evt1 import evt1_of

__all__ = ["SCHEMA_VERSION", "record"]

SCHEMA_VERSION = 2


def _r(x: float | None, nd: int) -> float | None:
    return None if x is None else round(x, nd)


def _finite(x: float, nd: int) -> float | None:
    """Rounded, or ``None`` for NaN/inf (unknown): the records are strict JSON."""
    return round(x, nd) if math.isfinite(x) else None


def _limit(limit: Limit, nd: int) -> dict[str, Any]:
    return {
        "value": round(limit.value, nd),
        "winner": limit.winner,
        "terms": {t.name: round(t.value, nd) for t in limit.terms},
    }


def _limits(limits: Limits) -> dict[str, Any]:
    return {
        "ccl_a": _limit(limits.ccl_a, 2),
        "dcl_a": _limit(limits.dcl_a, 2),
        "cvl_v": _limit(limits.cvl_v, 3),
        "dvl_v": _limit(limits.dvl_v, 3),
    }


def _negotiation(neg: Negotiation | None) -> dict[str, Any] | None:
    if neg is None:
        return None
    return {
        "link": neg.link,
        "connected": neg.connected,
        "requested_ccl_a": round(neg.requested_ccl_a, 2),
        "requested_dcl_a": round(neg.requested_dcl_a, 2),
        "accepted_ccl_a": _r(neg.accepted_ccl_a, 2),
        "accepted_dcl_a": _r(neg.accepted_dcl_a, 2),
        "effective_ccl_a": round(neg.effective_ccl_a, 2),
        "effective_dcl_a": round(neg.effective_dcl_a, 2),
    }


def _charge(charge: ChargeState | None) -> dict[str, Any] | None:
    if charge is None:
        return None
    return {
        "phase": charge.phase.value,
        "reason": charge.reason,
        "cvl_v": _r(charge.cvl_v, 3),
        "full_charge_requested": charge.full_charge_requested,
        "full_charge_reason": charge.full_charge_reason,
        "grid_charge_requested": charge.grid_charge_requested,
        "full_charge_due_in_s": _r(charge.full_charge_due_in_s, 0),
    }


def record(out: ControlOutput, t0_s: float = 0.0) -> dict[str, Any]:
    """The replay record of one control step; ``t`` is seconds since ``t0_s`` (log start)."""
    p = out.pack
    soc = out.soc
    temps = p.cell_temp_c
    n, m = len(p.cell_voltage_v), len(temps)
    cells: list[dict[str, Any]] = []
    for i, v in enumerate(p.cell_voltage_v):
        # With fewer sensors than cells, a cell reports the sensor that covers it.
        cell: dict[str, Any] = {"v": _r(v, 4), "t_c": _r(temps[i * m // n], 2) if m else None}
        est = soc.cells[i] if soc is not None and i < len(soc.cells) else None
        cell["soc"] = round(est.soc_pct, 2) if est else None
        cell["capacity_ah"] = round(est.capacity_ah, 3) if est else None
        cell["resistance_mohm"] = round(est.resistance_mohm, 3) if est else None
        cell["r1_mohm"] = _finite(est.r1_mohm, 3) if est else None
        cell["tau1_s"] = _finite(est.tau1_s, 1) if est else None
        cell["soc_sigma"] = _finite(est.soc_sigma_pct, 2) if est else None
        cell["soc_rel_sigma"] = _finite(est.soc_rel_sigma_pct, 2) if est else None
        cell["bal"] = p.balancing_active[i]
        cells.append(cell)
    return {
        "t": round(out.t_s - t0_s, 3),
        "cells": cells,
        "temps_c": [_r(t, 2) for t in temps],
        "current_a": _r(p.current_a, 3),
        "voltage_v": _r(p.pack_voltage_v, 3),
        "complete": p.complete,
        "faults": [{"input": f.name, "why": f.why} for f in p.faults],
        "frames": p.frames,
        "errors": p.errors,
        "mode": out.mode,
        "soc": round(soc.soc_pct, 2) if soc else None,
        "soc_mean": round(soc.soc_mean_pct, 2) if soc else None,
        "soh": round(soc.soh_pct, 2) if soc else None,
        "limits": _limits(out.limits),
        "energy_charged_kwh": _r(out.energy.charged_kwh, 6) if out.energy else None,
        "energy_discharged_kwh": _r(out.energy.discharged_kwh, 6) if out.energy else None,
        "alarms": [
            {
                "code": a.code,
                "severity": a.severity.name.lower(),
                "message": a.message,
                "latched": a.latched,
            }
            for a in out.alarms.active
        ],
        "evt1": evt1_of(out.alarms),
        "balancing": {
            "mode": out.balancing.mode.value,
            "cells": [i for i, on in enumerate(out.balancing.bleed) if on],
            "actions": [
                {
                    "cell": a.cell,
                    "action": a.action,
                    "reason": a.reason,
                    "current_a": round(a.current_a, 4),
                    "charge_ah": round(a.charge_ah, 6),
                }
                for a in out.balancing.actions
            ],
            "idle_reason": out.balancing.idle_reason,
        },
        "negotiation": _negotiation(out.negotiation),
        "charge": _charge(out.charge),
    }
