"""The state estimator's settings (``[soc]``) and their form in the per-cell functions' units."""

from __future__ import annotations

from pydantic import Field

from gateway.core.chemistry import Chemistry
from gateway.core.config import Section
from gateway.core.soc_cell import Tuning

__all__ = ["SocConfig", "tuning_of"]


class SocConfig(Section):
    """State estimator settings."""

    ocv_table: str | None = Field(
        default=None,
        examples=["/etc/bms-gateway/ocv.csv"],
        json_schema_extra={"example_needs": "a table of the pack's cells at that path"},
    )
    """Path of a user OCV table (CSV: SoC in % or fraction, OCV in V or mV, with or without a
    header; ``check-config`` says how it was read); default: the chemistry's built-in table. A
    relative path is taken from the working directory (``/`` under systemd: give an absolute
    one). At most 1 MiB and 10000 rows; its OCV must rise at least 5 mV over it and fit the
    pack's voltages (its highest OCV not above ``protection.cell_overvoltage_alarm_v``; at
    100 % not more than 0.5 V below ``limits.cvl_cell_v``). Must not be empty."""
    voltage_sigma_mv: float = Field(default=12.0, gt=0, le=500)
    """Voltage error under load: sensor noise plus what the circuit model misses (1 sigma)."""
    model_error_fraction: float = Field(default=1.0, ge=0, le=10)
    """Circuit-model error under load as a fraction of the modelled polarisation (R0+R1)*I."""
    rc_sigma_fraction: float = Field(default=0.0, ge=0, le=10)
    """The RC voltage's own uncertainty under load, as a fraction of R1*I (a state noise that
    lasts about tau1): polarisation the circuit does not hold (diffusion over long loads) is
    taken up by the RC voltage instead of the SoC. Off by default: it helped the tuning cells
    and cells derived from them, and made three of four held-out cells worse (see
    docs/PERFORMANCE.md, "State of charge: cross-validation")."""
    load_bias_mv: float = Field(default=5.0, ge=0, le=500)
    """Part of the voltage error under load that does not average out over samples (model
    error that lasts as long as the current): it bounds how far repeated corrections under load
    can be trusted, and is added to the reported sigma until a rest or full removes it ..."""
    load_bias_fraction: float = Field(default=0.5, ge=0, le=10)
    """... plus this fraction of the modelled polarisation (R0 + R1) * I ..."""
    load_bias_pct_per_c: float = Field(default=10.0, ge=0, le=100)
    """... or, if larger, this many % of SoC per C of current: diffusion the 1-RC circuit does
    not model shifts the loaded voltage like a surface SoC off the bulk SoC (PyBaMM's LFP near
    empty: 1.4 % at 0.09 C, about 47 mV on the steep end)."""
    load_bias_prior_weight: float = Field(default=3.0, gt=0, le=1000)
    """The load bias above is a claim the cells' trusted points (full charges, rested voltages
    on a steep part) test: a cell's error there against the largest bias it carried since the
    previous point says how much of the claim held
    (``gateway.core.soc_offset.learn_load_bias``; one point says at most 3 times the claim).
    The bias comes from the model all cells share, so the pack's cells pool their tests
    (``gateway.core.soc_bias``). The claim counts as this many fully informative trusted
    points; every cell's reported sigma carries the learned share of the bias. Saved with the
    state (an older state begins from the claim)."""
    load_bias_memory_days: float = Field(default=15.0, gt=0, le=3650)
    """How long that evidence lasts (days, exponential): it fades back towards the claim (the
    model's error moves with temperature and age)."""
    rest_voltage_sigma_mv: float = Field(default=4.0, gt=0, le=500)
    """One relaxed sample's voltage error after a rest of ``rest_s`` (noise, relaxation left, the
    OCV table's error; the relaxed voltage is almost the OCV). From a rest's second ``rest_s`` on,
    the mean of that block's samples is used instead: the part of this its scatter does not
    explain stays, the noise is divided by the square root of the samples, and the drift from
    the previous block stands for the relaxation left."""
    rest_current_c: float = Field(default=0.01, gt=0, le=1)
    """Current (as a C-rate) below which the pack counts as resting."""
    rest_s: float = Field(default=900.0, gt=0, le=86_400)
    """Rest needed before the voltage is taken as OCV for a recalibration (repeated each rest_s)."""
    min_ocv_slope_mv_per_pct: float = Field(default=1.5, ge=0, le=100)
    """Below this OCV slope (at the estimate and on average over the estimate +- k sigma) a
    voltage under load is not used by the Kalman update: the count is trusted (flat LFP
    middle)."""
    count_drift_pct_per_sqrt_h: float = Field(default=0.5, ge=0, le=100)
    """How fast the count's uncertainty grows with time (random drift), % per sqrt(h)."""
    current_offset_sigma_c: float = Field(default=0.002, ge=0, le=1)
    """Current-sensor offset (1 sigma, C-rate): a systematic error, so the count's uncertainty
    grows linearly with time until the voltage corrects it (0.002 C: 0.2 % per hour). The prior
    of the offset each cell's count learns between trusted points (``gateway.core.soc_offset``):
    the learned offset is subtracted from the count and its smaller sigma grows the count's."""
    current_offset_drift_c_per_sqrt_day: float = Field(default=0.0005, ge=0, le=1)
    """How fast a learned current offset may move (1 sigma, C-rate per sqrt(day): temperature,
    age): the offset is learned from the count between trusted points (full charges, rested
    voltages on a steep part of the curve), and its uncertainty grows back towards
    ``current_offset_sigma_c`` at this rate (0.0005 C: the prior's variance back in 16 days)."""
    current_gain_sigma_pct: float = Field(default=1.0, ge=0, le=100)
    """Current-sensor gain uncertainty: the count's error per charge moved, % (systematic: it
    adds up linearly over the charge moved)."""
    current_hold_s: float = Field(default=60.0, gt=0, le=3600)
    """A current known at both ends of a step is held across it up to this long (the estimator
    may be stepped less often than the current times out); the change between the two samples
    counts as uncertainty. Longer steps, or a current unknown at either end, count as a gap."""
    extra_current_sigma_pct: float = Field(default=10.0, ge=0, le=100)
    """Uncertainty of the per-cell balancing currents passed to ``step`` (bleed resistor and
    voltage tolerance), % of the charge they move (systematic, per cell)."""
    gap_current_c: float = Field(default=0.2, ge=0, le=10)
    """Current (C-rate, 1 sigma) assumed while the current is unknown (stale, missing, a gap)."""
    stale_s: float | None = Field(default=None, gt=0, le=60)
    """Deprecated: set ``timeouts.cell_voltage_timeout_s`` and ``timeouts.current_timeout_s``
    (a current is counted for the longer of the two). Until then, one age for both, in force
    while neither of those keys is set."""
    full_current_c: float = Field(default=0.05, gt=0, le=1)
    """A charge current at or below this C-rate is tapered: a cell charging at it whose voltage
    (less the IR drop) the OCV table maps onto a SoC within 1 % (1 sigma; the steep top of the
    curve, at any charge voltage) is at a trusted top, recalibrated to the table's SoC there
    (``gateway.core.soc_top``), once per top (a discharge re-arms it)."""
    full_voltage_margin_v: float = Field(default=0.015, ge=0, le=1)
    """No longer used (accepted so existing files load): the top was a cell within this margin
    of the chemistry's upper voltage, taken as 100 %; it is now judged by the OCV table (see
    ``full_current_c``), which an LFP pack charged to its default CVL (3.45 V) also reaches."""
    confident_sigma_pct: float = Field(default=2.0, gt=0, le=100)
    """A SoC known to within this (1 sigma) at a rest anchors a capacity measurement (a trusted
    top always does)."""
    capacity_min_delta_pct: float = Field(default=30.0, gt=0, le=100)
    """Smallest SoC difference between two anchors that yields a capacity sample."""
    rls_memory_s: float = Field(default=7200.0, gt=0, le=604_800)
    """Memory of the online resistance identification (R0, R1 by recursive least squares): the
    forgetting factor per step is ``exp(-dt / rls_memory_s)``."""
    rls_min_current_c: float = Field(default=0.03, gt=0, le=1000)
    """Identification uses samples where the current differs from its RC-filtered value by at
    least this (C-rate): a transient. In a steady current there is no resistance to learn.
    At most 1000 C; above twice ``plausibility.current_max_c`` no plausible transient reaches
    it, which switches the identification off (the chemistry's resistances stay)."""
    resistance_factor_min: float = Field(default=0.05, gt=0, le=1000)
    """Identified R0 and R1 stay at or above this times the chemistry's values (scaled per Ah) ...
    A sanity limit, not a prior: a user's cell may differ from its chemistry's defaults by far
    more than 2x (the identification's own covariance weighs the data). At 0.4..2.5 a cell at
    0.2x its defaults kept R0 at 2x its own, and the wrong IR drop was taken as SoC
    (docs/PERFORMANCE.md, follow-up s4-i12r)."""
    resistance_factor_max: float = Field(default=20.0, gt=0, le=1000)
    """... and at or below this times them (a restored state's resistances are clamped to the
    same range)."""
    ocv_hysteresis_mv: float | None = Field(default=None, ge=0, le=200)
    """Half the OCV hysteresis (charge vs discharge branch), mV: a rested voltage is the OCV only
    to within it. ``None``: the chemistry's (LFP 10 mV, NMC 3 mV)."""
    plateau_k_sigma: float = Field(default=3.0, gt=0, le=10)
    """A voltage is judged over the estimate +- this many sigma: it is used when it is informative
    over that interval, and it overrides the estimate when it lies beyond it."""
    innovation_window_s: float = Field(default=600.0, gt=0, le=86_400)
    """Time over which the innovations (voltage less the model's prediction) are averaged for the
    adaptive measurement noise and the consistency test."""
    count_consistency_z: float = Field(default=2.0, gt=0, le=100)
    """Corrections under load may move the estimate from the count by at most this many of the
    count's own sigmas, unless the innovations show a SoC error (``consistency_bias``)."""
    consistency_bias: float = Field(default=0.2, gt=0, le=10)
    """Mean normalised innovation (while charging and while discharging, same sign) beyond which
    the count counts as contradicted."""
    min_interval_s: float = Field(default=0.05, ge=0, le=10)
    """Steps closer together than this return the last report (the control loop may step on every
    frame; the count loses nothing, the filter sees the latest value of each cell)."""
    restore_sigma_pct: float = Field(default=5.0, ge=0, le=100)
    """Uncertainty added to a restored SoC (the pack may have moved while we were down)."""
    cells_per_step: int = Field(default=32, ge=1, le=100_000)
    """Most cells whose voltage is weighed in one step. A larger pack is weighed in groups of
    this many, one group per step, round-robin (a 512-cell pack: each cell every 16th step); the
    steps between are counted exactly for every cell (``gateway.core.soc_window``) when its turn
    comes, so a cell's reported SoC is as of its group's last turn (at most a few tenths of a
    second old at 10 Hz). Bounds the step's cost; a pack of at most this many cells is weighed
    whole every step. Weighing each cell every 16th step cost no accuracy measured
    (``bench/soc_slicing.py --cells 128 --slices 16``, docs/PERFORMANCE.md)."""

    def model_post_init(self, __context: object) -> None:
        """Check what needs more than a type."""
        if self.ocv_table is not None and not self.ocv_table.strip():
            raise ValueError(
                f"soc.ocv_table (={self.ocv_table!r}) must not be empty: leave it unset for the "
                "chemistry's built-in table"
            )
        if self.resistance_factor_min >= self.resistance_factor_max:
            raise ValueError(
                f"resistance_factor_min (={self.resistance_factor_min}) must be below"
                f" resistance_factor_max (={self.resistance_factor_max})"
            )


def tuning_of(cfg: SocConfig, chem: Chemistry) -> Tuning:
    """The settings in the units the per-cell functions use."""
    hyst_mv = cfg.ocv_hysteresis_mv
    if hyst_mv is None:
        hyst_mv = chem.hysteresis_mv
    return Tuning(
        r_load_v2=(cfg.voltage_sigma_mv / 1000.0) ** 2,
        model_error_fraction=cfg.model_error_fraction,
        r_rest_v2=(cfg.rest_voltage_sigma_mv / 1000.0) ** 2,
        hysteresis_v=hyst_mv / 1000.0,
        min_slope_v_per_pct=cfg.min_ocv_slope_mv_per_pct / 1000.0,
        k_sigma=cfg.plateau_k_sigma,
        drift_var_per_s=cfg.count_drift_pct_per_sqrt_h**2 / 3600.0,
        gain_frac=cfg.current_gain_sigma_pct / 100.0,
        extra_frac=cfg.extra_current_sigma_pct / 100.0,
        gap_current_c=cfg.gap_current_c,
        bias_floor_v=cfg.load_bias_mv / 1000.0,
        bias_fraction=cfg.load_bias_fraction,
        bias_pct_per_c=cfg.load_bias_pct_per_c,
        confident_var=cfg.confident_sigma_pct**2,
        capacity_min_delta_pct=cfg.capacity_min_delta_pct,
        innovation_window_s=cfg.innovation_window_s,
        count_z=cfg.count_consistency_z,
        consistency_bias=cfg.consistency_bias,
        rls_memory_s=cfg.rls_memory_s,
        rls_min_current_c=cfg.rls_min_current_c,
        r_factor_lo=cfg.resistance_factor_min,
        r_factor_hi=cfg.resistance_factor_max,
        rc_sigma_fraction=cfg.rc_sigma_fraction,
        offset_var_c2=cfg.current_offset_sigma_c**2,
        offset_drift_var_c2_per_s=cfg.current_offset_drift_c_per_sqrt_day**2 / 86400.0,
        bias_prior_weight=cfg.load_bias_prior_weight,
        bias_memory_s=cfg.load_bias_memory_days * 86400.0,
    )
