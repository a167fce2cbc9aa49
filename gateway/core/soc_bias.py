"""The pack's evidence on the load bias, pooled over its cells. Pure.

The load bias ``sb`` (``CellState.sb``) bounds the error the corrections under load take in from
the model they use: the chemistry's OCV curve under load (the shape of LFP's step near 70 % SoC
seen through a loaded, diffusing cell) and the circuit the estimator assumes. Every cell of a
pack runs the same model against the same current, so how much of that bound holds is a
property of the model on this pack, not of one cell: each cell's trusted-point test
(``gateway.core.soc_offset.learn_load_bias``) adds to one accumulator for the pack and every
cell reports the share it learned (``m``). One cell alone gathers a few weak tests (one per
top of charge, every 2 to 3 days on a lightly used pack); the pack gathers one per cell and top.

Each cell's test counts in full, as if independent. They are not wholly: the errors common to
the string (the current sensor's offset and gain in every cell's count, the same model error)
move the residuals of one top alike, so the pool holds more weight than the evidence strictly
carries, and ``m`` falls faster than a fully-correlated reading (a top counted once, each test
weighed ``1 / cells``) would let it. That reading was measured and learned no faster than one
cell does (docs/PERFORMANCE.md, branch s7-pool under "Charge phases"); each test's weight
still discounts its whole error variance, common parts included, and one test's ``q`` is capped
(``BIAS_Q_MAX``), so a top that finds the bias held raises ``m`` for every cell at once.
Whether the reported sigma stays honest is measured there (cell-steps beyond 2 and 3 sigma).

Rule: ``m = (n0 + sum wq) / (n0 + sum w)``, the weighted mean of the tests' normalised squares
``q`` with the claim (``q = 1``) counted as ``n0`` fully informative tests
(``Tuning.bias_prior_weight``); ``w`` and ``wq`` fade linearly with time over
``Tuning.bias_memory_s`` (the model's error moves with temperature and age), once per
estimator step, whatever the number of cells. A lone ``CellState`` (tests, single-cell
benches) has an accumulator of its own: for one cell the rule is the per-cell one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LoadBiasEvidence"]


@dataclass(slots=True)
class LoadBiasEvidence:
    """The trusted points' evidence on the load bias (mutable; shared by a pack's cells).

    Attributes:
        w: the tests' summed weight (informative tests, >= 0).
        wq: the summed weight times each test's normalised square ``q`` (``0..BIAS_Q_MAX`` of
            ``gateway.core.soc_offset``), so ``0 <= wq <= BIAS_Q_MAX * w``.
        m: the learned share of ``sb**2`` the reported variance carries (1: the claim).
    """

    w: float = 0.0
    wq: float = 0.0
    m: float = 1.0

    def add(self, w: float, wq: float, n0: float) -> None:
        """Add one test of weight ``w`` and weighted square ``wq``; ``n0``: the claim's weight
        (tests, > 0)."""
        self.w += w
        self.wq += wq
        self.m = (n0 + self.wq) / (n0 + self.w)

    def fade(self, dt_s: float, memory_s: float, n0: float) -> None:
        """Fade the evidence by ``dt_s`` (s) of a memory of ``memory_s`` (s, > 0) towards the
        claim (weight ``n0``)."""
        if self.w <= 0.0 or dt_s <= 0.0:
            return
        f = 1.0 - dt_s / memory_s if dt_s < memory_s else 0.0
        self.w *= f
        self.wq *= f
        self.m = (n0 + self.wq) / (n0 + self.w)
