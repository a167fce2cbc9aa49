"""Which required inputs are missing or older than their timeout. Pure and cheap.

Shared by the fail-safe in :mod:`gateway.core.limits` (which cuts CCL and DCL to 0 A in the same
step) and the ``stale_data`` alarm in :mod:`gateway.core.protection` (which debounces). The scan
is on the control hot path (512 cells at up to 100 Hz), so the common case, everything fresh,
costs one ``None in`` and one ``max`` per input group, both in C.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from gateway.core.model import PackSnapshot

__all__ = ["InputTimeouts", "StaleInput", "extremes", "stale_inputs"]


@dataclass(frozen=True, slots=True)
class InputTimeouts:
    """How old each required input may be, in seconds. ``pack_voltage_s=None``: not required."""

    cell_voltage_s: float
    temperature_s: float
    current_s: float
    pack_voltage_s: float | None = None


@dataclass(frozen=True, slots=True)
class StaleInput:
    """One input group with missing or stale values.

    ``kind`` is ``missing`` (never seen or last seen invalid) or ``stale`` (older than its
    timeout); ``index`` is the first offending index (``None`` for single values such as the
    pack current); ``count`` how many values of the group offend; ``age_s`` the oldest age.
    """

    kind: str
    input: str
    index: int | None
    count: int
    age_s: float | None

    @property
    def name(self) -> str:
        """A stable reason name: ``stale:cell_voltage[5]``, ``missing:current``."""
        where = "" if self.index is None else f"[{self.index}]"
        return f"{self.kind}:{self.input}{where}"

    @property
    def message(self) -> str:
        """A sentence for users."""
        what = self.input if self.index is None else f"{self.input}[{self.index}]"
        more = f" and {self.count - 1} more" if self.count > 1 else ""
        if self.kind == "missing":
            return f"{what}{more} missing (never received or flagged invalid)"
        age = f" ({self.age_s:.1f} s old)" if self.age_s is not None else ""
        return f"{what}{more} stale{age}"


def _scan_group(
    name: str,
    values: tuple[float | None, ...],
    ages: tuple[float | None, ...],
    timeout_s: float,
    out: list[StaleInput],
) -> None:
    if not values:
        return
    has_missing = None in values
    if not has_missing:
        # Every value known implies every age known.
        oldest = max(ages)  # type: ignore[type-var]
        if oldest is None or oldest <= timeout_s:
            return
    missing = [i for i, v in enumerate(values) if v is None]
    if missing:
        out.append(StaleInput("missing", name, missing[0], len(missing), None))
    stale = [
        i
        for i, (v, a) in enumerate(zip(values, ages, strict=True))
        if v is not None and a is not None and a > timeout_s
    ]
    if stale:
        oldest_age = max(ages[i] or 0.0 for i in stale)
        out.append(StaleInput("stale", name, stale[0], len(stale), oldest_age))


def _scan_one(
    name: str,
    value: float | None,
    age_s: float | None,
    timeout_s: float,
    out: list[StaleInput],
) -> None:
    if value is None:
        out.append(StaleInput("missing", name, None, 1, None))
    elif age_s is not None and age_s > timeout_s:
        out.append(StaleInput("stale", name, None, 1, age_s))


def stale_inputs(snapshot: PackSnapshot, timeouts: InputTimeouts) -> tuple[StaleInput, ...]:
    """Every required input group that is missing or older than its timeout (empty: all fresh).

    A measured pack voltage is only required when ``timeouts.pack_voltage_s`` is set.
    """
    out: list[StaleInput] = []
    _scan_group(
        "cell_voltage",
        snapshot.cell_voltage_v,
        snapshot.cell_voltage_age_s,
        timeouts.cell_voltage_s,
        out,
    )
    _scan_group(
        "temperature", snapshot.cell_temp_c, snapshot.cell_temp_age_s, timeouts.temperature_s, out
    )
    _scan_one("current", snapshot.current_a, snapshot.current_age_s, timeouts.current_s, out)
    if timeouts.pack_voltage_s is not None:
        _scan_one(
            "pack_voltage",
            snapshot.pack_voltage_v,
            snapshot.pack_voltage_age_s,
            timeouts.pack_voltage_s,
            out,
        )
    return tuple(out)


def extremes(values: tuple[float | None, ...]) -> tuple[float, int, float, int] | None:
    """``(lowest, its index, highest, its index)`` of the known values; ``None`` if none known.

    Runs ``min``/``max`` in C over the tuple itself when nothing is missing (the usual case).
    """
    if None in values:
        known = [v for v in values if v is not None]
        if not known:
            return None
    else:
        known = cast(list[float], values)
    lo, hi = min(known), max(known)
    return lo, values.index(lo), hi, values.index(hi)
