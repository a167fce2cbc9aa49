"""Reading the charge phases' saved state back: each value checked, an implausible one refused
or limited with a note for the log (``ChargePhases.restore``). Pure functions."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from gateway.core.charge_config import ChargeConfig
from gateway.core.charge_lift import MAX_LIFT_S

__all__ = [
    "age_s",
    "finite_number",
    "restored_age_s",
    "restored_lift_slope",
    "restored_sigma_low_s",
    "restored_since",
    "slope_range",
]


def age_s(since_s: float | None, now_s: float) -> float | None:
    """Seconds since ``since_s`` (at least 0; ``None`` when it never happened), to be saved."""
    return None if since_s is None else max(0.0, now_s - since_s)


def finite_number(v: object) -> float | None:
    """``v`` as a float if it is a finite JSON number (not a boolean), else ``None``. (The state
    file's reader turns an integer too long for a float into one: ``gateway.state_store``.)"""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    x = float(v)
    return x if math.isfinite(x) else None


def restored_age_s(
    state: Mapping[str, object], key: str, notes: list[str], off_s: float = 0.0
) -> float | None:
    """The age (s, >= 0) saved under ``key`` plus the time off since, ``off_s`` (s; a negative
    one counts 0); ``None`` when absent, or refused with a note."""
    v = state.get(key)
    if v is None:
        return None
    x = finite_number(v)
    if x is not None and x >= 0.0:
        return x + max(0.0, off_s)
    notes.append(f"charge_phase.{key}={v!r} is no age: ignored")
    return None


def restored_since(
    state: Mapping[str, object], notes: list[str], now_s: float, off_s: float = 0.0
) -> Callable[[str, float | None], float | None]:
    """A reader of the moments saved as ages: ``(key, kept)`` -> ``now_s`` minus the age
    restored by ``restored_age_s`` (monotonic s), or ``kept`` when absent or refused."""

    def since(key: str, kept: float | None) -> float | None:
        age = restored_age_s(state, key, notes, off_s)
        return kept if age is None else now_s - age

    return since


def restored_sigma_low_s(
    state: Mapping[str, object], now_s: float, notes: list[str]
) -> float | None:
    """When the worst sigma was last below the full-charge threshold (monotonic s; ``None``:
    never, or refused with a note). A state of an earlier version has no such key: the hold
    starts at the restart (else the first restart after an upgrade could ask for a top at once
    for a sigma that was never measured held). Not aged by the time off: a restart is no
    reason for a top."""
    if "sigma_low_age_s" not in state:
        return now_s
    age = restored_age_s(state, "sigma_low_age_s", notes)
    return None if age is None else now_s - age


def slope_range(config: ChargeConfig, capacity_ah: float) -> tuple[float, float]:
    """The lift slopes (A per hour before the day's end) a pack of ``capacity_ah`` (Ah) can
    show: from the one that times the largest lift (float SoC to the top) ``MAX_LIFT_S`` before
    the end, ``2 x lift / (MAX_LIFT_S^2 - margin^2)``, to 1 C an hour before it."""
    need_ah = max(0.0, 100.0 - config.float_soc) / 100.0 * capacity_ah
    t_h = MAX_LIFT_S / 3600.0
    m_h = min(config.full_charge_end_margin_s / 3600.0, 0.5 * t_h)
    lo = 2.0 * need_ah / (t_h * t_h - m_h * m_h)
    return lo, max(lo, capacity_ah)


def restored_lift_slope(
    state: Mapping[str, object], config: ChargeConfig, capacity_ah: float, notes: list[str]
) -> float | None:
    """The saved lift slope (A/h), limited to ``slope_range``; ``None`` when absent or refused.

    Below the range every full charge would be due at once, never wait, never be measured and
    so never relearn it; above it the lift would be timed to begin at the margin. The lift rate
    earlier versions saved (``lift_rate_a``, A) has no time in it: dropped, with a note.
    """
    slope = state.get("lift_slope_a_per_h")
    if slope is None:
        if "lift_rate_a" in state:
            notes.append(
                "charge_phase.lift_rate_a (an older version's lift rate, A) is not a lift slope:"
                " dropped; the next full charge is timed by charge.full_charge_lead_s"
            )
        return None
    x = finite_number(slope)
    if x is None or x <= 0.0:
        notes.append(f"charge_phase.lift_slope_a_per_h={slope!r} is no slope: ignored")
        return None
    lo, hi = slope_range(config, capacity_ah)
    k = min(hi, max(lo, x))
    if k != x:
        notes.append(
            f"charge_phase.lift_slope_a_per_h={slope!r} outside {lo:.3g}..{hi:.3g}"
            f" A/h for this pack: limited to {k:.3g}"
        )
    return k
