"""Which required inputs are missing or older than their timeout. Pure and cheap.

Shared by the fail-safe in :mod:`gateway.core.limits` (which cuts CCL and DCL to 0 A in the same
step) and the ``stale_data`` alarm in :mod:`gateway.core.protection` (which debounces). Both take
their timeouts from the one ``timeouts`` section (:class:`TimeoutsConfig`), so the alarm and the
fail-safe cannot disagree about which input is stale; the SoC estimator and balancing read the
same section. The scan is on the control hot path (512
cells at up to 100 Hz), so the common case, everything fresh, costs one ``None in`` and one
``max`` per input group, both in C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

from pydantic import Field

from gateway.core.cells import extremes
from gateway.core.config import Section
from gateway.core.model import PackSnapshot, StaleKind
from gateway.core.pack import InputTimeouts, PackConfig

# ``extremes`` lives in gateway.core.cells; it is importable from here as before.
__all__ = [
    "BALANCING_KEYS",
    "SOC_KEYS",
    "InputTimeouts",
    "StaleInput",
    "TimeoutsConfig",
    "extremes",
    "stale_inputs",
]


class TimeoutsConfig(Section):
    """Input timeouts: how old each required input may be before it counts as stale.

    One setting per input for every consumer: past it, CCL and DCL are 0 A in the same step (the
    limits' fail-safe), ``stale_data`` warns at once (alarm after ``protection.stale_alarm_s``),
    the SoC estimator stops using the value and balancing stops. Two consumers combine two
    inputs (:meth:`soc_ages_s`, :meth:`balancing_ages_s`); the rules keep the values they used
    before this section replaced ``soc.stale_s`` and ``balancing.max_data_age_s``.
    """

    cell_voltage_timeout_s: float = Field(default=5.0, gt=0, le=60, allow_inf_nan=False)
    """A cell voltage older than this is stale (at most 60 s): the fail-safe, the alarm, the SoC
    estimator (its voltage correction) and balancing all stop using it."""
    temperature_timeout_s: float = Field(default=10.0, gt=0, le=300, allow_inf_nan=False)
    """A temperature older than this is stale (at most 300 s). Balancing stops earlier, at the
    shorter of this and ``cell_voltage_timeout_s`` (5 s by default, as before)."""
    current_timeout_s: float = Field(default=2.0, gt=0, le=60, allow_inf_nan=False)
    """The pack current older than this is stale (at most 60 s): the fail-safe, the alarm and
    the energy counters. The SoC estimator counts a current for the longer of this and
    ``cell_voltage_timeout_s`` (5 s by default, as before); time beyond it counts as a gap."""
    pack_voltage_timeout_s: float = Field(default=5.0, gt=0, le=60, allow_inf_nan=False)
    """The measured pack voltage older than this is stale; only checked when
    ``pack.require_pack_voltage`` (else the cell sum stands in for it)."""

    def input_timeouts(self, pack: PackConfig) -> InputTimeouts:
        """The timeouts in force for ``pack`` (the pack voltage only when it is required)."""
        return InputTimeouts(
            cell_voltage_s=self.cell_voltage_timeout_s,
            temperature_s=self.temperature_timeout_s,
            current_s=self.current_timeout_s,
            pack_voltage_s=self.pack_voltage_timeout_s if pack.require_pack_voltage else None,
            pack_voltage_age_s=self.pack_voltage_timeout_s,
        )

    def any_set(self, keys: tuple[str, ...]) -> bool:
        """Whether any of ``keys`` was set (file, environment or constructor), not defaulted.

        A deprecated key is in force only while none of the keys replacing it is set: as soon
        as one is, the new keys win.
        """
        return not self.model_fields_set.isdisjoint(keys)

    def soc_ages_s(self, deprecated_stale_s: float | None = None) -> tuple[float, float]:
        """``(cell voltage, current)``: the oldest value, in s, the SoC estimator uses.

        A voltage: ``cell_voltage_timeout_s``. A current: the longer of ``current_timeout_s``
        and ``cell_voltage_timeout_s`` (the count spans the voltage's window, 5 s by default as
        under ``soc.stale_s``, though the fail-safe cuts the limits after 2 s). The deprecated
        ``soc.stale_s`` (``deprecated_stale_s``) sets both while none of the two keys is set.
        """
        if deprecated_stale_s is not None and not self.any_set(SOC_KEYS):
            return deprecated_stale_s, deprecated_stale_s
        v_s = self.cell_voltage_timeout_s
        return v_s, max(self.current_timeout_s, v_s)

    def balancing_ages_s(self, deprecated_max_age_s: float | None = None) -> tuple[float, float]:
        """``(cell voltage, temperature)``: balancing stops while any value is older, in s.

        A voltage: ``cell_voltage_timeout_s``. A temperature: the shorter of
        ``temperature_timeout_s`` and ``cell_voltage_timeout_s`` (5 s by default, as under
        ``balancing.max_data_age_s``; a plan weighs voltages and temperatures together). The
        deprecated ``balancing.max_data_age_s`` (``deprecated_max_age_s``) sets both while none
        of the two keys is set.
        """
        if deprecated_max_age_s is not None and not self.any_set(BALANCING_KEYS):
            return deprecated_max_age_s, deprecated_max_age_s
        v_s = self.cell_voltage_timeout_s
        return v_s, min(self.temperature_timeout_s, v_s)


SOC_KEYS = ("cell_voltage_timeout_s", "current_timeout_s")
"""The ``timeouts`` keys the SoC estimator reads (they replace ``soc.stale_s``)."""
BALANCING_KEYS = ("cell_voltage_timeout_s", "temperature_timeout_s")
"""The ``timeouts`` keys balancing reads (they replace ``balancing.max_data_age_s``)."""


@dataclass(frozen=True, slots=True)
class StaleInput:
    """One input group with missing or stale values.

    ``kind`` (:class:`StaleKind`) is ``missing`` (never seen or last seen invalid), ``stale``
    (older than its timeout, stamped in the future, or of a non-finite age) or ``implausible``
    (a measurement fault, see ``gateway.core.plausibility``); ``index`` is the first offending index
    (``None`` for single values such as the pack current); ``count`` how many values of the
    group offend; ``age_s`` the oldest age.
    """

    kind: StaleKind
    input: str
    index: int | None
    count: int
    age_s: float | None

    @property
    def name(self) -> str:
        """A stable reason name: ``stale:cell_voltage[6]``, ``missing:current``.

        The number in brackets counts from 1 (cell 6 is index 5 of the JSON arrays), as every
        cell and sensor number a person reads does.
        """
        where = "" if self.index is None else f"[{self.index + 1}]"
        return f"{self.kind}:{self.input}{where}"

    @property
    def message(self) -> str:
        """A sentence for users (numbers from 1, as ``name``)."""
        what = self.input if self.index is None else f"{self.input}[{self.index + 1}]"
        more = f" and {self.count - 1} more" if self.count > 1 else ""
        if self.kind is StaleKind.MISSING:
            return f"{what}{more} missing (never received or flagged invalid)"
        if self.kind is StaleKind.IMPLAUSIBLE:
            return f"{what}{more} implausible (a measurement fault)"
        age = f" ({self.age_s:.1f} s old)" if self.age_s is not None else ""
        return f"{what}{more} stale{age}"


def _too_old(age_s: float | None, timeout_s: float) -> bool:
    """Older than the timeout, stamped in the future, or not a finite age: not to be trusted."""
    return age_s is not None and not 0.0 <= age_s <= timeout_s


def _scan_group(
    name: str,
    values: tuple[float | None, ...],
    ages: tuple[float | None, ...],
    timeout_s: float,
    out: list[StaleInput],
    faulty: frozenset[int] = frozenset(),
) -> None:
    if not values:
        return
    has_missing = None in values
    if not has_missing:
        # Every value known implies every age known. ``max`` and ``min`` are NaN-blind, so the
        # sum (NaN or inf when any age is) guards them; all three run in C.
        known = cast(tuple[float, ...], ages)
        if (
            None not in ages
            and math.isfinite(sum(known))
            and max(known) <= timeout_s
            and min(known) >= 0.0
        ):
            return
    bad = [i for i, v in enumerate(values) if v is None and i in faulty]
    if bad:
        out.append(StaleInput(StaleKind.IMPLAUSIBLE, name, bad[0], len(bad), None))
    stale = [
        i
        for i, a in enumerate(ages)
        if i not in faulty and a is not None and _too_old(a, timeout_s)
    ]
    stale_set = set(stale)
    missing = [
        i for i, v in enumerate(values) if v is None and i not in faulty and i not in stale_set
    ]
    if missing:
        out.append(StaleInput(StaleKind.MISSING, name, missing[0], len(missing), None))
    if stale:
        finite = [a for i in stale if (a := ages[i]) is not None and math.isfinite(a)]
        oldest_age = max(finite) if finite else math.inf
        out.append(StaleInput(StaleKind.STALE, name, stale[0], len(stale), oldest_age))


def _scan_one(
    name: str,
    value: float | None,
    age_s: float | None,
    timeout_s: float,
    out: list[StaleInput],
    faulty: bool = False,
) -> None:
    if faulty and value is None:
        out.append(StaleInput(StaleKind.IMPLAUSIBLE, name, None, 1, None))
    elif _too_old(age_s, timeout_s):
        out.append(StaleInput(StaleKind.STALE, name, None, 1, age_s))
    elif value is None:
        out.append(StaleInput(StaleKind.MISSING, name, None, 1, None))


def stale_inputs(snapshot: PackSnapshot, timeouts: InputTimeouts) -> tuple[StaleInput, ...]:
    """Every required input group that is missing or older than its timeout (empty: all fresh).

    A measured pack voltage is only required when ``timeouts.pack_voltage_s`` is set. An input
    the snapshot lists in ``faults`` is reported as ``implausible``, not as missing.
    """
    out: list[StaleInput] = []
    faults = snapshot.faults
    bad_cells: frozenset[int] = frozenset()
    bad_temps: frozenset[int] = frozenset()
    bad_single: frozenset[str] = frozenset()
    if faults:
        bad_cells = frozenset(
            f.index for f in faults if f.input == "cell_voltage" and f.index is not None
        )
        bad_temps = frozenset(
            f.index for f in faults if f.input == "temperature" and f.index is not None
        )
        bad_single = frozenset(f.input for f in faults if f.index is None)
    _scan_group(
        "cell_voltage",
        snapshot.cell_voltage_v,
        snapshot.cell_voltage_age_s,
        timeouts.cell_voltage_s,
        out,
        bad_cells,
    )
    _scan_group(
        "temperature",
        snapshot.cell_temp_c,
        snapshot.cell_temp_age_s,
        timeouts.temperature_s,
        out,
        bad_temps,
    )
    _scan_one(
        "current",
        snapshot.current_a,
        snapshot.current_age_s,
        timeouts.current_s,
        out,
        "current" in bad_single,
    )
    if timeouts.pack_voltage_s is not None:
        _scan_one(
            "pack_voltage",
            snapshot.pack_voltage_v,
            snapshot.pack_voltage_age_s,
            timeouts.pack_voltage_s,
            out,
            "pack_voltage" in bad_single,
        )
    return tuple(out)
