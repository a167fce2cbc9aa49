"""Limit settings (``[limits]``) and the tables they resolve to for one pack. Pure.

CCL and DCL derate by tables (fractions of the configured maximum over the highest/lowest cell
voltage, the cell temperature, the pack SoC and the cell spread); unset tables take chemistry
defaults (``LIMITS_DEFAULTS``; their derivation in ``docs/LIMITS.md``). The calculator that
reads them is :mod:`gateway.core.limits`.
"""

from __future__ import annotations

from pydantic import Field

from gateway.core.config import Section
from gateway.core.pack import PackConfig
from gateway.core.tables import Table

__all__ = ["LIMITS_DEFAULTS", "LimitTables", "LimitsConfig"]

_Pair = tuple[tuple[float, ...], tuple[float, ...]]

# Chemistry defaults. LFP: the tables users of the leading open-source Victron driver know.
# NMC: each LFP knot moved to the same SoC on the NMC OCV curve (derivation in docs/LIMITS.md).
LIMITS_DEFAULTS: dict[str, dict[str, _Pair | float]] = {
    "lfp": {
        "charge_cell": ((3.375, 3.400, 3.425, 3.450, 3.500), (1.0, 0.25, 0.05, 0.005, 0.0)),
        "discharge_cell": ((2.80, 2.90, 3.00, 3.10, 3.19), (0.0, 0.005, 0.05, 0.25, 1.0)),
        "charge_temp": (
            (0.0, 2.0, 5.0, 10.0, 40.0, 45.0, 50.0, 55.0),
            (0.0, 0.25, 0.5, 1.0, 1.0, 0.5, 0.25, 0.0),
        ),
        "discharge_temp": (
            (-10.0, -8.0, -5.0, 0.0, 40.0, 45.0, 50.0, 55.0),
            (0.0, 0.25, 0.5, 1.0, 1.0, 0.5, 0.25, 0.0),
        ),
        "imbalance_start_cell_v": 3.40,
        "cvl_cell_v": 3.45,
        "dvl_cell_v": 2.90,
    },
    "nmc": {
        "charge_cell": ((4.14, 4.16, 4.17, 4.18, 4.20), (1.0, 0.25, 0.05, 0.005, 0.0)),
        "discharge_cell": ((3.10, 3.14, 3.25, 3.35, 3.44), (0.0, 0.005, 0.05, 0.25, 1.0)),
        "charge_temp": (
            (0.0, 2.0, 5.0, 10.0, 35.0, 40.0, 45.0, 50.0),
            (0.0, 0.25, 0.5, 1.0, 1.0, 0.5, 0.25, 0.0),
        ),
        "discharge_temp": (
            (-20.0, -18.0, -15.0, -10.0, 40.0, 45.0, 50.0, 55.0),
            (0.0, 0.25, 0.5, 1.0, 1.0, 0.5, 0.25, 0.0),
        ),
        "imbalance_start_cell_v": 4.10,
        "cvl_cell_v": 4.18,
        "dvl_cell_v": 3.20,
    },
}
_COMMON: dict[str, _Pair] = {
    "charge_soc": ((95.0, 100.0), (1.0, 0.3)),
    "discharge_soc": ((0.0, 2.0, 5.0), (0.05, 0.25, 1.0)),
    "imbalance": ((0.02, 0.05, 0.10, 0.20), (1.0, 0.5, 0.2, 0.1)),
}


class LimitsConfig(Section):
    """Limit tables, maxima and ramps. Unset tables take chemistry defaults.

    The fail-safe's input timeouts are the ``timeouts`` section (:class:`TimeoutsConfig`).

    A table is two lists of equal length: knots (strictly increasing) and fractions of the
    configured maximum (0..1), linear in between and clamped outside.
    """

    max_charge_a: float = Field(default=100.0, ge=0, le=100_000)
    """Configured maximum charge current."""
    max_discharge_a: float = Field(default=100.0, ge=0, le=100_000)
    """Configured maximum discharge current."""
    charge_cell_v: tuple[float, ...] | None = None
    """Charge taper knots by highest cell voltage (LFP 3.375, 3.400, 3.425, 3.450, 3.500 V)."""
    charge_cell_fraction: tuple[float, ...] | None = None
    """Charge fraction at those knots (LFP 1, 0.25, 0.05, 0.005, 0)."""
    discharge_cell_v: tuple[float, ...] | None = None
    """Discharge taper knots by lowest cell voltage (LFP 2.80, 2.90, 3.00, 3.10, 3.19 V)."""
    discharge_cell_fraction: tuple[float, ...] | None = None
    """Discharge fraction at those knots (LFP 0, 0.005, 0.05, 0.25, 1)."""
    charge_temp_c: tuple[float, ...] | None = None
    """Charge derating knots by cell temperature (LFP 0, 2, 5, 10, 40, 45, 50, 55 degC)."""
    charge_temp_fraction: tuple[float, ...] | None = None
    """Charge fraction at those knots (0, 0.25, 0.5, 1, 1, 0.5, 0.25, 0)."""
    discharge_temp_c: tuple[float, ...] | None = None
    """Discharge derating knots (LFP -10, -8, -5, 0, 40, 45, 50, 55 degC)."""
    discharge_temp_fraction: tuple[float, ...] | None = None
    """Discharge fraction at those knots (0, 0.25, 0.5, 1, 1, 0.5, 0.25, 0)."""
    charge_soc_pct: tuple[float, ...] | None = None
    """Charge taper knots by pack SoC (95, 100 %)."""
    charge_soc_fraction: tuple[float, ...] | None = None
    """Charge fraction at those knots (1, 0.3)."""
    discharge_soc_pct: tuple[float, ...] | None = None
    """Discharge taper knots by pack SoC (0, 2, 5 %)."""
    discharge_soc_fraction: tuple[float, ...] | None = None
    """Discharge fraction at those knots (0.05, 0.25, 1)."""
    imbalance_start_cell_v: float | None = Field(default=None, ge=0, le=10)
    """The imbalance term applies once the highest cell reaches this (LFP 3.40 V, NMC 4.10 V)."""
    imbalance_spread_v: tuple[float, ...] | None = None
    """Imbalance knots: highest minus lowest cell (0.02, 0.05, 0.10, 0.20 V)."""
    imbalance_fraction: tuple[float, ...] | None = None
    """Charge fraction at those knots (1, 0.5, 0.2, 0.1)."""
    cvl_cell_v: float | None = Field(default=None, ge=0, le=10)
    """Charge voltage per cell: CVL = cells x this, and the dynamic CVL target for the highest
    cell (LFP 3.45 V, NMC 4.18 V)."""
    dvl_cell_v: float | None = Field(default=None, ge=0, le=10)
    """Discharge voltage per cell: DVL = cells x this, and the dynamic DVL target for the
    lowest cell (LFP 2.90 V, NMC 3.20 V)."""
    ramp_hold_s: float = Field(default=30.0, ge=0, le=3600)
    """After a cut, CCL/DCL stay down this long before they may increase."""
    ramp_a_per_s: float = Field(default=5.0, ge=0, le=1_000_000)
    """CCL/DCL increase at most this fast after the hold (at most 1e6 A/s: at once)."""
    ramp_deadband_pct: float = Field(default=5.0, ge=0, le=100)
    """A drop restarts the hold only when it exceeds this percentage of the configured maximum
    (or the limit has slid twice that since the hold last started); smaller drops still apply at
    once, but the limit may rise again without waiting. 0: every drop restarts the hold."""
    voltage_hold_s: float = Field(default=10.0, ge=0, le=3600)
    """After CVL is pulled down (or DVL lifted), wait this long before relaxing it."""
    voltage_ramp_v_per_cell_s: float = Field(default=0.01, ge=0, le=10)
    """CVL rises (DVL falls) at most this fast per series cell after the hold."""

    def model_post_init(self, __context: object) -> None:
        """Check what needs more than a type."""
        for knots, fractions in (
            ("charge_cell_v", "charge_cell_fraction"),
            ("discharge_cell_v", "discharge_cell_fraction"),
            ("charge_temp_c", "charge_temp_fraction"),
            ("discharge_temp_c", "discharge_temp_fraction"),
            ("charge_soc_pct", "charge_soc_fraction"),
            ("discharge_soc_pct", "discharge_soc_fraction"),
            ("imbalance_spread_v", "imbalance_fraction"),
        ):
            xs, ys = getattr(self, knots), getattr(self, fractions)
            if (xs is None) != (ys is None):
                raise ValueError(f"{knots} and {fractions} must be set together")
            if xs is None:
                continue
            if any(not 0.0 <= y <= 1.0 for y in ys):
                raise ValueError(f"{fractions} (={ys}) must be fractions within 0..1")
            try:
                Table.of(xs, ys)
            except ValueError as e:
                raise ValueError(f"{knots}/{fractions}: {e}") from None

    def tables(self, pack: PackConfig) -> LimitTables:
        """The tables in force for ``pack``: own values where set, else chemistry defaults."""
        chem = LIMITS_DEFAULTS[pack.chemistry]

        def table(key: str, xs: tuple[float, ...] | None, ys: tuple[float, ...] | None) -> Table:
            if xs is not None and ys is not None:
                return Table.of(xs, ys)
            pair = chem.get(key) or _COMMON[key]
            assert isinstance(pair, tuple)
            return Table.of(*pair)

        def number(key: str, own: float | None) -> float:
            if own is not None:
                return own
            value = chem[key]
            assert isinstance(value, float)
            return value

        return LimitTables(
            charge_cell=table("charge_cell", self.charge_cell_v, self.charge_cell_fraction),
            discharge_cell=table(
                "discharge_cell", self.discharge_cell_v, self.discharge_cell_fraction
            ),
            charge_temp=table("charge_temp", self.charge_temp_c, self.charge_temp_fraction),
            discharge_temp=table(
                "discharge_temp", self.discharge_temp_c, self.discharge_temp_fraction
            ),
            charge_soc=table("charge_soc", self.charge_soc_pct, self.charge_soc_fraction),
            discharge_soc=table(
                "discharge_soc", self.discharge_soc_pct, self.discharge_soc_fraction
            ),
            imbalance=table("imbalance", self.imbalance_spread_v, self.imbalance_fraction),
            imbalance_start_cell_v=number("imbalance_start_cell_v", self.imbalance_start_cell_v),
            cvl_cell_v=number("cvl_cell_v", self.cvl_cell_v),
            dvl_cell_v=number("dvl_cell_v", self.dvl_cell_v),
        )


class LimitTables:
    """The resolved tables and per-cell voltages of one pack (read-only after construction)."""

    __slots__ = (
        "charge_cell",
        "charge_soc",
        "charge_temp",
        "cvl_cell_v",
        "discharge_cell",
        "discharge_soc",
        "discharge_temp",
        "dvl_cell_v",
        "imbalance",
        "imbalance_start_cell_v",
    )

    def __init__(
        self,
        *,
        charge_cell: Table,
        discharge_cell: Table,
        charge_temp: Table,
        discharge_temp: Table,
        charge_soc: Table,
        discharge_soc: Table,
        imbalance: Table,
        imbalance_start_cell_v: float,
        cvl_cell_v: float,
        dvl_cell_v: float,
    ) -> None:
        if not dvl_cell_v < cvl_cell_v:
            raise ValueError(
                f"limits.dvl_cell_v (={dvl_cell_v}) must be below limits.cvl_cell_v (={cvl_cell_v})"
            )
        self.charge_cell = charge_cell
        self.discharge_cell = discharge_cell
        self.charge_temp = charge_temp
        self.discharge_temp = discharge_temp
        self.charge_soc = charge_soc
        self.discharge_soc = discharge_soc
        self.imbalance = imbalance
        self.imbalance_start_cell_v = imbalance_start_cell_v
        self.cvl_cell_v = cvl_cell_v
        self.dvl_cell_v = dvl_cell_v
