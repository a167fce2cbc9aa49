"""The two things every part asks of a string of cell values: its extremes and its sum. Pure.

One definition of each, for the core (limits, protection, energy, charge phases, the pack
snapshot) and the adapters (payloads, the terminal view, battery CAN): a change to how an
extreme or the cell sum is taken happens here, once. Both run on the control hot path (512 cells
at up to 100 Hz), so the common case, every value known, does its work in C.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

__all__ = ["cell_sum_v", "extremes"]


def extremes(values: Sequence[float | None]) -> tuple[float, int, float, int] | None:
    """``(lowest, its index, highest, its index)`` of the known values; ``None`` if none known.

    ``None`` entries (unknown values) are skipped; on a tie the first index wins; an empty
    sequence has no extremes. Indices are
    0-based positions in ``values``. Runs ``min``/``max`` in C over ``values`` itself when
    nothing is missing (the usual case).
    """
    if None in values:
        known = [v for v in values if v is not None]
        if not known:
            return None
    elif not values:
        return None
    else:
        known = cast(list[float], values)
    lo, hi = min(known), max(known)
    return lo, values.index(lo), hi, values.index(hi)


def cell_sum_v(cell_voltage_v: Sequence[float | None]) -> float | None:
    """The pack voltage as the sum of the cells (V), when every cell is known; else ``None``.

    ``math.fsum`` (exactly rounded), so the sum does not depend on the order of the cells. An
    empty string of cells has no sum (``None``).
    """
    if not cell_voltage_v or None in cell_voltage_v:
        return None
    return math.fsum(cast(Sequence[float], cell_voltage_v))
