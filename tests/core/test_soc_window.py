"""Sliced estimation (``soc.cells_per_step``): the step windows and what slicing keeps exact."""

from __future__ import annotations

import math
import random

import pytest

from gateway.core.soc_cell import StepInputs
from gateway.core.soc_window import StepWindow
from tests.core.test_soc import EcmPack, make, snap

TAU = 125.0


def one_step(dt: float, cur: float, *, known: float | None = None, hold: float = 0.0) -> StepInputs:
    known_dt = dt if known is None else known
    gap = dt - known_dt
    return StepInputs(
        dt_s=dt,
        known_dt_s=known_dt,
        gap_dt_s=gap,
        current_a=cur,
        current_known=known_dt > 0.0,
        d_ah=cur * known_dt / 3600.0,
        extra_dt_s=dt,
        hold_var=hold,
        resting=False,
        rest_id=-1,
        q_nom_ah=100.0,
        accumulated_ah=0.0,
        rc_current_a=cur,
        gap_sq_s2=gap * gap,
    )


def test_a_window_of_one_step_is_that_step() -> None:
    w = StepWindow()
    s = one_step(0.1, 12.0)
    w.add(s, math.exp(-0.1 / TAU))
    assert w.take() is s
    with pytest.raises(ValueError, match="empty"):
        w.take()


def test_a_window_sums_charge_time_and_gaps_and_drives_the_rc_branch_as_its_steps_did() -> None:
    rng = random.Random(4)
    steps = [one_step(0.1, rng.uniform(-50, 50), hold=1e-6) for _ in range(30)]
    steps.append(one_step(2.0, 0.0, known=0.5))  # a gap of 1.5 s
    steps.append(one_step(3.0, 0.0, known=0.0))  # and one of 3 s
    w = StepWindow()
    r1, v1 = 0.01, 0.02
    for s in steps:
        a = math.exp(-s.known_dt_s / TAU) if s.known_dt_s > 0 else 1.0
        w.add(s, a)
        v1 = a * v1 + r1 * (1.0 - a) * s.current_a  # the branch step by step
    out = w.take()
    assert out.dt_s == pytest.approx(sum(s.dt_s for s in steps))
    assert out.d_ah == pytest.approx(sum(s.d_ah for s in steps))
    assert out.gap_dt_s == pytest.approx(4.5)
    assert out.gap_sq_s2 == pytest.approx(1.5**2 + 3.0**2)  # each gap its own guess
    assert out.hold_var == pytest.approx(30e-6)
    assert out.current_a == steps[-1].current_a  # the end of the window is the last step's
    a_all = math.exp(-out.known_dt_s / TAU)
    assert a_all * 0.02 + r1 * (1.0 - a_all) * out.rc_current_a == pytest.approx(v1, rel=1e-9)
    assert w.steps == 0
    assert w.last is None


def _run(per_step: int, *, fresh: bool, extra: bool) -> list[tuple[float, float]]:
    """A 24-cell NMC pack, 10 Hz for 20 minutes; (SoC, sigma) per cell at the end."""
    n = 24
    est, chem = make("nmc", cells=n, cells_per_step=per_step, min_interval_s=0.0)
    # Noise only with fresh voltages (where it averages out): a start from one noisy sample
    # would differ between the two by the draw each group started from.
    noise = 0.002 if fresh else 0.0
    pack = EcmPack(chem, [40.0 + k for k in range(n)], [100.0 + k for k in range(n)], noise_v=noise)
    bleed = [(-0.1 if k % 3 == 0 else 0.0) for k in range(n)] if extra else None
    t = 0.0
    rep = None
    for j in range(12_000):
        # A second at rest first: every group has its turn and starts from its voltage.
        cur = 30.0 * math.sin(j / 400.0) + 10.0 if j >= 10 else 0.0
        volts = pack.step(cur, 0.1)
        t += 0.1
        # Without fresh voltages the cells are only counted (their readings are too old).
        rep = est.step(
            snap(t, list(volts), cur, v_age_s=0.0 if fresh or j < 10 else 60.0),
            t,
            cell_extra_current_a=bleed,
        )
    assert rep is not None
    return [(c.soc_pct, c.soc_sigma_pct) for c in rep.cells]


@pytest.mark.parametrize("extra", [False, True])
def test_slicing_counts_every_cell_exactly(extra: bool) -> None:
    whole = _run(24, fresh=False, extra=extra)
    sliced = _run(5, fresh=False, extra=extra)  # 5 groups, the last of 4 cells
    for (s_w, sig_w), (s_s, sig_s) in zip(whole, sliced, strict=True):
        # The count is exact; the report of a cell is as of its last turn (at most 4 steps).
        assert s_s == pytest.approx(s_w, abs=0.01)
        assert sig_s == pytest.approx(sig_w, rel=0.01)


def test_slicing_keeps_the_corrections_close_to_weighing_every_cell() -> None:
    whole = _run(24, fresh=True, extra=True)
    sliced = _run(6, fresh=True, extra=True)
    diffs = [abs(a[0] - b[0]) for a, b in zip(whole, sliced, strict=True)]
    assert max(diffs) < 0.5, diffs


def test_a_step_weighs_one_group_round_robin() -> None:
    n = 10
    est, chem = make("nmc", cells=n, cells_per_step=4, min_interval_s=0.0)
    volts = [chem.ocv.voltage(50.0)] * n
    # Three groups (4, 4, 2 cells): the first three steps start one group each.
    for j, started in enumerate((4, 8, 10)):
        rep = est.step(snap(float(j), list(volts), 0.0), float(j))
        assert (rep is None) == (started < n)  # a report once every cell has started
        assert sum(c.initialised for c in est.cells) == started
    weighed_at = [c.last_v_t for c in est.cells]
    est.step(snap(3.0, list(volts), 0.0), 3.0)  # the first group again
    moved = [k for k, c in enumerate(est.cells) if c.last_v_t != weighed_at[k]]
    assert moved == [0, 1, 2, 3]


def test_restore_forgets_the_pending_steps() -> None:
    n = 8
    est, chem = make("nmc", cells=n, cells_per_step=2, min_interval_s=0.0)
    volts = [chem.ocv.voltage(50.0)] * n
    for j in range(4):
        est.step(snap(float(j), list(volts), 0.0), float(j))
    state = est.export_state()
    for j in range(4, 7):  # 30 A for three steps: pending for the groups not weighed yet
        est.step(snap(float(j), list(volts), 30.0, v_age_s=60.0), float(j))
    est.restore(state)
    assert all(w.steps == 0 for w in est._windows)
    before = [c.soc_pct for c in est.cells]
    for j in range(7, 11):  # one turn each at rest, readings too old: nothing moves
        est.step(snap(float(j), list(volts), 0.0, v_age_s=60.0), float(j))
    assert [c.soc_pct for c in est.cells] == pytest.approx(before, abs=1e-9)
