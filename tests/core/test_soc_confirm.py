"""One voltage sample far off moves the SoC no further than its weight (``soc_confirm``)."""

from __future__ import annotations

import math
import random

import pytest

from gateway.core.chemistry import get_chemistry
from gateway.core.pack import PackConfig
from gateway.core.soc import SocConfig, SocEstimator
from tests.core.test_soc import snap

Q = 100.0


def _run(
    profile: list[float],
    glitch: tuple[int, float] | None,
    *,
    soc_pct: float = 60.0,
    restored_pct: float | None = None,
) -> list[float]:
    """An NMC cell (100 Ah, 2 mV noise, the estimator's own circuit) from ``soc_pct`` through
    ``profile`` (A, one a second); ``glitch``: (step, mV) added to that one voltage sample;
    ``restored_pct``: the estimate restored there after the first step. Returns the estimate's
    error each step (%)."""
    chem = get_chemistry("nmc")
    est = SocEstimator(SocConfig(), PackConfig(cells=1, chemistry="nmc", capacity_ah=Q), chem)
    rng = random.Random(3)
    r0, r1 = chem.r0_ohm(Q), chem.r1_ohm(Q)
    a1 = math.exp(-1.0 / chem.tau1_s)
    soc, v1 = soc_pct, 0.0
    errors = []
    for n, i in enumerate(profile, start=1):
        soc += 100.0 * i / 3600.0 / Q
        v1 = a1 * v1 + r1 * (1.0 - a1) * i
        v = chem.ocv.voltage(soc) + v1 + r0 * i + rng.gauss(0.0, 0.002)
        if glitch is not None and n == glitch[0]:
            v += glitch[1] / 1000.0
        rep = est.step(snap(float(n), [v], i), float(n))
        assert rep is not None
        if n == 1 and restored_pct is not None:
            state = est.export_state()
            state["soc_pct"] = [restored_pct]
            est.restore(state)
        errors.append(rep.cells[0].soc_pct - soc)
    return errors


# 30 min at 0.2 C from 60 %, an hour's rest (steps 1802..5401, recalibrated at 900, 1800, 2700
# and 3600 s: steps 2701, 3601...), 30 min at 0.1 C.
_DAY = [0.0] + [-20.0] * 1800 + [0.0] * 3600 + [-10.0] * 1800


@pytest.mark.parametrize(
    ("step", "mv"),
    [
        (2701, -50.0),  # the sample of the rest's first recalibration
        (2801, -50.0),  # a rest sample 1000 s into the rest
        (2801, 50.0),
        (5403, -100.0),  # under load, just after the rest
        (5403, 100.0),
    ],
)
def test_one_voltage_sample_far_off_does_not_move_the_soc(step: int, mv: float) -> None:
    # Main 778973e: 50 mV low 1000 s into a rest replaced the estimate (a contradiction: the
    # sample's SoC interval beyond 3 sigmas of a rested estimate) and gave a 5.2-point error on
    # a cell with no diffusion; at the rest's first recalibration (the sample weighed
    # alone at the rest sigma) 5.1; 100 mV under load 11. Now each step waits for a sample
    # that agrees with the one before it: within one sample's noise of the run without a
    # glitch (2 mV, 0.3 points here: the first recalibration then weighs a later sample).
    clean = _run(_DAY, None)
    errors = _run(_DAY, (step, mv))
    assert max(map(abs, clean)) < 0.2
    assert max(map(abs, errors)) < 0.5


def test_a_lasting_contradiction_is_still_acted_on_at_the_next_sample() -> None:
    # A restored SoC 20 points off, contradicted by a rested voltage: replaced at the second
    # sample after the restore (the first contradicts, the next confirms; main at the first).
    errors = _run([0.0] * 10, None, restored_pct=80.0)
    assert max(map(abs, errors[2:])) < 0.5


def _charge(glitch: tuple[int, float] | None) -> tuple[list[float], int]:
    """An NMC cell (100 Ah) from 90 %: 5 min of rest, then 0.3 C to 20 mV below the upper
    voltage and held there (the current tapering); ``glitch``: (step, mV) added to one sample.
    Returns the estimate's error each step (%) and the step of the trusted top (0: none)."""
    chem = get_chemistry("nmc")
    est = SocEstimator(SocConfig(), PackConfig(cells=1, chemistry="nmc", capacity_ah=Q), chem)
    rng = random.Random(2)
    r0, r1 = chem.r0_ohm(Q), chem.r1_ohm(Q)
    a1 = math.exp(-1.0 / chem.tau1_s)
    soc, v1, v_cv = 90.0, 0.0, chem.max_v - 0.02
    errors, top, held = [], 0, False
    for n in range(1, 3001):
        i = 0.0 if n <= 300 else 30.0
        if held:  # the current that holds the voltage at v_cv
            i = max(0.0, (v_cv - chem.ocv.voltage(soc) - a1 * v1) / (r0 + r1 * (1.0 - a1)))
        soc += 100.0 * i / 3600.0 / Q
        v1 = a1 * v1 + r1 * (1.0 - a1) * i
        v = chem.ocv.voltage(soc) + v1 + r0 * i + rng.gauss(0.0, 0.002)
        held = held or v >= v_cv
        if glitch is not None and n == glitch[0]:
            v += glitch[1] / 1000.0
        rep = est.step(snap(float(n), [v], i), float(n))
        assert rep is not None
        errors.append(rep.cells[0].soc_pct - soc)
        if not top and est.cells[0].full_latched:
            top = n
    return errors, top


def test_one_voltage_sample_far_off_at_the_top_does_not_pin_the_soc() -> None:
    # The first sample of a trusted top 50 mV high: main 778973e pinned the SoC on it, 1.1
    # points above the truth to the end of the charge (0.16 at its end); now the top waits for
    # a sample whose interval agrees with the one before it: 0.05.
    clean, top = _charge(None)
    assert top > 0
    assert max(map(abs, clean[top - 1 :])) < 0.2
    errors, _ = _charge((top, 50.0))
    assert max(map(abs, errors[top - 1 :])) < 0.2
