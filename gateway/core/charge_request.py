"""When a full charge pays: the full-charge request's triggers and reasons. Pure.

The triggers (``gateway.core.phases`` describes them): energy in use (the pack SoC below
``full_charge_below_soc_pct``, and once a day after it for ``full_charge_below_soc_days``), no
full charge on record or the last one ``full_charge_max_interval_days`` ago, balancing left
unfinished at the last top (a day after it when it stalled off the top: ``bled_s``), and, not
before ``full_charge_min_interval_days``: the worst cell's SoC sigma (at or above its threshold
for a while: ``sigma_held``), or cells too uncertain against each other for balancing (and not
told apart for a day: ``told_apart_s``).

Unfinished balancing that has stalled off the top (no cell bled for ``STALL_S``: the planner
cannot tell the cells apart there, as on a shallow-cycling LFP pack floating on the plateau) asks
for the next top a day after the last (or ``full_charge_min_interval_days`` when shorter): a
measured imbalance is a need the next top serves, and the lagging cells, which never reach the
steep top of the curve while it lasts, keep their sigma unanchored. While cells still bleed off
the top (a deep-cycling pack whose cells are told apart near empty) it waits the whole interval.
``imbalance_left`` says whether an absorption cut short left enough imbalance for the next top to
be worth it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from gateway.core.balancing_band import band_excess_ah
from gateway.core.charge_config import ChargeConfig
from gateway.core.model import SocReport

__all__ = [
    "DAY_S",
    "REARM_S",
    "STALL_S",
    "Ask",
    "full_charge_request",
    "imbalance_left",
    "sigma_held",
]

DAY_S = 86400.0
REARM_S = 12 * 3600.0  # energy in use asks again this long after a full charge (once a day)
STALL_S = 3600.0  # balancing has stalled when no cell has bled for this long


class Ask(NamedTuple):
    """A full-charge request: its reason (``""``: none), whether it is due at once, and whether
    it was raised for the SoC uncertainty (it lapses when that is gone: ``sigma_held``)."""

    reason: str
    at_once: bool = False
    for_sigma: bool = False


def sigma_held(cfg: ChargeConfig, low_s: float | None, now_s: float) -> bool:
    """Whether the worst cell's SoC sigma has stayed at or above ``full_charge_sigma_pct`` for
    ``full_charge_sigma_hold_s`` (a day by default): it was last below it (``low_s``) that long
    ago or more, or never (``None``).

    The sigma has a daily part: the load's bias (``soc.load_bias_*``) takes it up under the
    day's charge on a flat OCV curve and it falls back at low current and at the knees. A sigma
    that crosses the threshold in the afternoon and is below it again by the next morning is
    that part, which a top removes for less than a day (the next charge takes it up again); a
    sigma above it for a whole day is what the estimate does not get back by itself. For the
    same reason a request raised for it lapses once the sigma is below the threshold again
    before the top: the lower knee at night or a lift that fell short of the top voltage
    anchored the estimate instead.
    """
    return low_s is None or now_s - low_s >= cfg.full_charge_sigma_hold_s


def full_charge_request(
    cfg: ChargeConfig,
    soc: SocReport | None,
    now_s: float,
    *,
    low: bool,
    last_full_s: float | None,
    low_s: float | None,
    balancing_unfinished: bool,
    balancing_start_pct: float,
    told_apart_s: float | None = None,
    sigma_low_s: float | None = None,
    bled_s: float | None = None,
) -> Ask:
    """The reason to request a full charge now (``""``: none), whether it is due at once and
    whether it is for the SoC uncertainty.

    Args:
        cfg: the ``charge`` section.
        soc: the estimate; ``None``: no SoC-based trigger.
        now_s: monotonic seconds (injected).
        low: the pack SoC is below ``full_charge_below_soc_pct`` now.
        last_full_s: when the last full charge ended (``None``: none on record).
        low_s: when the SoC was last below ``full_charge_below_soc_pct`` (``None``: never).
        balancing_unfinished: the last absorption ended before balancing did.
        balancing_start_pct: the balancing planner's start threshold (percent of capacity).
        told_apart_s: when the cells were last known against each other to the start threshold
            (worst relative sigma at most it; ``None``: never). Within a day of that, balancing
            does not need a top: the planner told the cells apart then (an NMC pack at rest at
            night) and the imbalance does not grow in a day by more than it can see; the
            relative sigma that rises under load the next afternoon is no reason for a top.
        sigma_low_s: when the worst cell's SoC sigma was last below ``full_charge_sigma_pct``
            (``None``: never); the sigma trigger asks only when that is
            ``full_charge_sigma_hold_s`` ago (``sigma_held``).
        bled_s: when a cell last bled (``None``: not since the start); see the module.
    """
    if low:
        assert soc is not None
        return Ask(
            f"energy in use: SoC {soc.soc_pct:.1f} % below {cfg.full_charge_below_soc_pct:g} %"
        )
    if last_full_s is None:
        return Ask("no full charge on record")
    days = (now_s - last_full_s) / DAY_S
    if (
        low_s is not None
        and now_s - low_s < cfg.full_charge_below_soc_days * DAY_S
        and now_s - last_full_s >= REARM_S
    ):
        return Ask(
            f"energy in use: SoC below {cfg.full_charge_below_soc_pct:g} %"
            f" {(now_s - low_s) / DAY_S:.1f} days ago"
        )
    if days >= cfg.full_charge_max_interval_days:
        return Ask(f"{days:.1f} days since the last full charge")
    if soc is None or not soc.cells:
        return Ask("")
    stalled = bled_s is None or now_s - bled_s >= STALL_S  # a day's wait then, at most
    waited = days >= min(1.0 if stalled else math.inf, cfg.full_charge_min_interval_days)
    if cfg.full_charge_for_balancing and balancing_unfinished and waited:
        return Ask("balancing unfinished: the last absorption ended before it did", True)
    if days < cfg.full_charge_min_interval_days:
        return Ask("")
    worst = max(c.soc_sigma_pct for c in soc.cells)
    if worst >= cfg.full_charge_sigma_pct and sigma_held(cfg, sigma_low_s, now_s):
        return Ask(
            f"SoC uncertainty {worst:.2f} % >= {cfg.full_charge_sigma_pct:g} %"
            f" ({days:.1f} days since the last full charge)",
            for_sigma=True,
        )
    if cfg.full_charge_for_balancing:
        rel = [c.soc_rel_sigma_pct for c in soc.cells if math.isfinite(c.soc_rel_sigma_pct)]
        recent = told_apart_s is not None and now_s - told_apart_s < DAY_S
        if rel and max(rel) > balancing_start_pct and not recent:
            return Ask(
                f"balancing needs a top: cells known to {max(rel):.2f} % against each"
                f" other, start threshold {balancing_start_pct:g} %"
            )
    return Ask("")


def imbalance_left(soc: SocReport | None, start_pct: float) -> bool:
    """Whether a cell is still above the balancing start threshold by the estimate.

    Each cell's excess over the passive band (``band_excess_ah``, Ah, from the estimated SoC
    and capacity of every cell; ``gateway.core.balancing``) against ``start_pct`` percent of
    its capacity. The planner starts a cell only above that threshold (and above its SoC
    uncertainty against the others), so a cell that was still bleeding below it when an
    absorption was cut short is not taken up again at the next top: a full charge for it would
    hold the pack at the top for nothing. ``True`` when it cannot be told (no estimate, or no
    finite SoC and capacity for every cell): then a cell that bled counts as unfinished.
    """
    if soc is None or not soc.cells:
        return True
    socs = [c.soc_pct for c in soc.cells]
    caps = [c.capacity_ah for c in soc.cells]
    if not all(math.isfinite(x) for x in socs) or not all(
        math.isfinite(c) and c > 0.0 for c in caps
    ):
        return True
    excess = band_excess_ah(socs, caps)
    return any(e > start_pct / 100.0 * c for e, c in zip(excess, caps, strict=True))
