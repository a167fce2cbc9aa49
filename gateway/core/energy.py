"""Energy charged into and discharged from the pack: two counters that only ever grow. Pure.

The counters integrate the pack power ``P = V * I`` (``I`` positive = charging) over the control
steps with the trapezoidal rule. Between two steps whose powers have opposite signs, the line
through both samples is split at its zero crossing, so each counter gets exactly its own part
of the interval. An interval longer than ``max_gap_s``, or one ending or starting on an unknown
power (stale or missing current or voltage), is not integrated: what happened while the gateway
could not see the pack is not made up.

These are what Home Assistant's Energy dashboard needs (``device_class: energy``,
``state_class: total_increasing``): they persist with the estimator state and resume from it,
so a restart never sends them backwards.
"""

from __future__ import annotations

import math
from typing import Any

from gateway.core.cells import cell_sum_v
from gateway.core.model import EnergyReport, PackSnapshot

__all__ = ["EnergyCounter", "pack_power_w"]

_WH_PER_J = 1.0 / 3600.0
STATE_VERSION = 1


def pack_power_w(
    snap: PackSnapshot, current_timeout_s: float, voltage_timeout_s: float
) -> float | None:
    """Pack power in W (positive = charging) from fresh current and voltage, else ``None``.

    The voltage is the measured pack voltage; when that is missing or stale, the sum of the cell
    voltages (when every cell is known and fresh).
    """
    i = snap.current_a
    if i is None or snap.current_age_s is None or snap.current_age_s > current_timeout_s:
        return None
    v = snap.pack_voltage_v
    if v is None or snap.pack_voltage_age_s is None or snap.pack_voltage_age_s > voltage_timeout_s:
        v = cell_sum_v(snap.cell_voltage_v)
        if v is None:
            return None
        if any(a is None or a > voltage_timeout_s for a in snap.cell_voltage_age_s):
            return None
    p = v * i
    return p if math.isfinite(p) else None


def _split(p0_w: float, p1_w: float, dt_s: float) -> tuple[float, float]:
    """Charged and discharged energy (J) of a power going linearly from ``p0_w`` to ``p1_w``."""
    if p0_w >= 0 and p1_w >= 0:
        return 0.5 * (p0_w + p1_w) * dt_s, 0.0
    if p0_w <= 0 and p1_w <= 0:
        return 0.0, -0.5 * (p0_w + p1_w) * dt_s
    # Opposite signs: the triangle on each side of the zero crossing.
    pos, neg = (p0_w, -p1_w) if p0_w > 0 else (p1_w, -p0_w)
    span = pos + neg
    return 0.5 * pos * pos / span * dt_s, 0.5 * neg * neg / span * dt_s


class EnergyCounter:
    """Integrates pack power into ``charged_kwh`` and ``discharged_kwh`` (monotonic).

    Args:
        max_gap_s: longest interval between two steps that is integrated (s, > 0).

    Raises:
        ValueError: ``max_gap_s`` is not positive.
    """

    def __init__(self, max_gap_s: float) -> None:
        if not max_gap_s > 0:
            raise ValueError(f"max_gap_s (={max_gap_s}) must be positive")
        self._max_gap_s = max_gap_s
        self._charged_wh = 0.0
        self._discharged_wh = 0.0
        self._last: tuple[float, float] | None = None  # (t_s, power_w) of the last known sample
        self._report = EnergyReport(0.0, 0.0)

    def step(self, power_w: float | None, now_s: float) -> EnergyReport:
        """Add the energy since the previous step; ``power_w`` ``None`` means unknown now."""
        last = self._last
        if power_w is None:
            self._last = None
            return self._report
        self._last = (now_s, power_w)
        if last is None:
            return self._report
        t0, p0 = last
        dt = now_s - t0
        if not 0 < dt <= self._max_gap_s:
            return self._report
        charged_j, discharged_j = _split(p0, power_w, dt)
        if charged_j:
            self._charged_wh += charged_j * _WH_PER_J
        if discharged_j:
            self._discharged_wh += discharged_j * _WH_PER_J
        self._report = EnergyReport(self._charged_wh / 1000.0, self._discharged_wh / 1000.0)
        return self._report

    @property
    def report(self) -> EnergyReport:
        """The counters as of the last step."""
        return self._report

    def export_state(self) -> dict[str, Any]:
        """The counters as JSON-friendly values (Wh)."""
        return {
            "version": STATE_VERSION,
            "charged_wh": self._charged_wh,
            "discharged_wh": self._discharged_wh,
        }

    def restore(self, state: Any) -> None:
        """Resume from ``export_state`` output; the counters never go below what they hold.

        Raises:
            ValueError: the state is of another version or malformed; nothing changes then.
        """
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(f"energy state must be a version {STATE_VERSION} mapping")
        values = []
        for key in ("charged_wh", "discharged_wh"):
            x = state.get(key)
            if isinstance(x, bool) or not isinstance(x, int | float):
                raise ValueError(f"energy state {key} (={x!r}) must be a number")
            if not (math.isfinite(x) and x >= 0):
                raise ValueError(f"energy state {key} (={x!r}) must be finite and >= 0")
            values.append(float(x))
        self._charged_wh = max(self._charged_wh, values[0])
        self._discharged_wh = max(self._discharged_wh, values[1])
        self._last = None
        self._report = EnergyReport(self._charged_wh / 1000.0, self._discharged_wh / 1000.0)
