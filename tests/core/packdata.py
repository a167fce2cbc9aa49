"""Build real ``PackSnapshot``s for the firmware tests through ``PackState`` (no mocks)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.core.model import CellEstimate, PackSnapshot, Reading, Role, SocReport
from gateway.core.pack import PackConfig, PackState

__all__ = ["feed", "snapshot", "soc_report"]


def feed(
    state: PackState,
    t_s: float,
    cells_v: Sequence[float | None] | None = None,
    temps_c: Sequence[float | None] | None = None,
    current_a: float | None = None,
    pack_v: float | None = None,
) -> None:
    """Apply readings received at ``t_s``; ``None`` entries are not sent (they go stale)."""
    for i, v in enumerate(cells_v or ()):
        if v is not None:
            state.apply(Reading(Role.CELL_VOLTAGE, i, v, t_s))
    for i, v in enumerate(temps_c or ()):
        if v is not None:
            state.apply(Reading(Role.CELL_TEMPERATURE, i, v, t_s))
    if current_a is not None:
        state.apply(Reading(Role.PACK_CURRENT, 0, current_a, t_s))
    if pack_v is not None:
        state.apply(Reading(Role.PACK_VOLTAGE, 0, pack_v, t_s))


def snapshot(
    cells_v: Sequence[float],
    temps_c: Sequence[float] = (25.0,),
    current_a: float = 0.0,
    t_s: float = 0.0,
    *,
    chemistry: str = "lfp",
    pack_v: float | None = None,
) -> PackSnapshot:
    """A complete, fresh snapshot of a pack with these cells and sensors at ``t_s``."""
    cfg = PackConfig(cells=len(cells_v), temp_sensors=len(temps_c), chemistry=chemistry)
    state = PackState(cfg)
    feed(state, t_s, cells_v, temps_c, current_a, pack_v)
    return state.snapshot(t_s)


def soc_report(
    socs_pct: Sequence[float], caps_ah: Sequence[float], sigma_pct: float = 0.2
) -> SocReport:
    """An SoC report with the given per-cell SoC and capacity."""
    cells = tuple(
        CellEstimate(s, sigma_pct, c, 0.5) for s, c in zip(socs_pct, caps_ah, strict=True)
    )
    lo, hi = min(socs_pct), max(socs_pct)
    mean = sum(socs_pct) / len(socs_pct)
    return SocReport(soc_pct=(lo + hi) / 2, soc_mean_pct=mean, soh_pct=100.0, cells=cells)
