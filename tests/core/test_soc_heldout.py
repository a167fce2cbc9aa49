"""SoC on cells the estimator was never tuned on (held-out PyBaMM sets), without PyBaMM.

``tests/fixtures/soc/heldout_<set>_day.csv`` and ``heldout_<set>_ocv.csv`` are written by
``bench/soc_matrix.py --fixture``: the set's SPMe + lumped thermal day every 60 s, and the set's
OCV table in the format a user might have it (``SOC (%),OCV (mV)``, fraction/V without a header,
OCV first from full to empty, ...). The estimator runs as a new user would run it: chemistry
``nmc`` (circuit defaults from Chen2020), the user table, the set's nominal capacity, the bench's
sensor errors, a cold start. Looser bounds than the bench (60 s steps, see docs/PERFORMANCE.md).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gateway.core.chemistry import get_chemistry
from gateway.core.freshness import TimeoutsConfig
from gateway.core.ocv_file import parse_ocv_table
from gateway.core.pack import PackConfig
from gateway.core.soc import SocConfig, SocEstimator
from tests.core.test_soc import snap
from tests.core.test_soc_fixture import _rmse, charge_mismatch_pct

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "soc"
HELD_OUT = ("Marquis2019", "Mohtat2020", "NCA_Kim2011", "OKane2022")


def _available() -> list[str]:
    return [s for s in HELD_OUT if (FIXTURES / f"heldout_{s}_day.csv").is_file()]


def _run(key: str) -> tuple[list[float], list[float], list[float], list[float]]:
    """Times, estimator errors and sigmas, counting (true start) errors, % SoC."""
    lines = (FIXTURES / f"heldout_{key}_day.csv").read_text().splitlines()
    cap_true = float(lines[0].split("capacity_ah=")[1].split(",")[0])
    rows = [[float(x) for x in r.split(",")] for r in lines[2:]]
    q_nom = float((FIXTURES / f"heldout_{key}_nominal_ah.txt").read_text())
    path = FIXTURES / f"heldout_{key}_ocv.csv"
    table, _ = parse_ocv_table(path.read_text(), str(path))
    chem = get_chemistry("nmc").with_ocv(table)
    pack = PackConfig(cells=1, temp_sensors=1, chemistry="nmc", capacity_ah=q_nom)
    # Samples every 60 s: a value is used for that long (the most a timeout may be).
    ages = TimeoutsConfig(cell_voltage_timeout_s=60.0, current_timeout_s=60.0)
    est = SocEstimator(SocConfig(), pack, chem, ages)
    rng = random.Random(5)
    offset_a = 0.002 * 2.0 * cap_true

    def bms(row: list[float]) -> tuple[float, float, float]:
        v = round((row[2] + rng.gauss(0.0, 0.002)) / 0.001) * 0.001
        return v, row[1] * 1.005 + offset_a, round(row[3] * 2) / 2

    t_s, err, sig, count = [], [], [], []
    cc = rows[0][4]
    last = rows[0][0]
    for row in rows:
        t = row[0]
        v, i, tc = bms(row)
        rep = est.step(snap(t, [v], i, temp_c=tc), t)
        assert rep is not None
        cc = min(100.0, max(0.0, cc + 100.0 * i * (t - last) / 3600.0 / q_nom))
        last = t
        t_s.append(t)
        err.append(rep.cells[0].soc_pct - row[4])
        sig.append(rep.cells[0].soc_sigma_pct)
        count.append(cc - row[4])
    return t_s, err, sig, count


def test_every_held_out_set_has_a_fixture() -> None:
    assert _available() == list(HELD_OUT)


@pytest.mark.parametrize("key", HELD_OUT)
def test_held_out_day_holds_the_charge_of_its_own_current(key: str) -> None:
    # The days written before bench/soc_matrix.py gave the solver the current's jumps missed
    # up to 32.9 points (NCA_Kim2011): the solver had stepped over the day's short pulses.
    lines = (FIXTURES / f"heldout_{key}_day.csv").read_text().splitlines()
    cap = float(lines[0].split("capacity_ah=")[1].split(",")[0])
    rows = [[float(x) for x in r.split(",")] for r in lines[2:]]
    assert charge_mismatch_pct(cap, rows) <= 0.05


@pytest.mark.parametrize("key", HELD_OUT)
def test_held_out_cell_is_not_worse_than_counting(key: str) -> None:
    if key not in _available():
        pytest.fail(f"fixture for {key} missing: run bench/soc_matrix.py --fixture")
    t_s, err, sig, count = _run(key)
    # Looser than the bench's targets (RMSE <= 1 %, max <= 2 %, no metric worse than the best
    # baseline): no worse than counting from the true start on RMSE (measured at 60 s on the
    # days simulated with the current's breakpoints: Marquis2019 1.87, Mohtat2020 0.52,
    # NCA_Kim2011 0.45, OKane2022 0.35 against counting's 4.31) ...
    assert _rmse(err) <= _rmse(count)
    # ... the final error within 3 points of counting's (measured 0.22..0.50 against 6.94) ...
    assert abs(err[-1]) <= abs(count[-1]) + 3.0
    # ... and a sigma that covers the error (3 sigma) at most samples after 5 minutes
    # (measured: 100 % for all four).
    pairs = [(abs(e), s) for t, e, s in zip(t_s, err, sig, strict=True) if t >= 300.0]
    covered = sum(1 for e, s in pairs if e <= 3.0 * s) / len(pairs)
    assert covered >= 0.8


@pytest.mark.parametrize("key", HELD_OUT)
def test_held_out_cell_max_error_is_not_worse_than_counting(key: str) -> None:
    # Max |error| after 30 min no worse than counting from the true start (measured at 60 s:
    # Marquis2019 6.09, Mohtat2020 1.57, NCA_Kim2011 1.09, OKane2022 1.04 against 6.94..6.95;
    # Marquis2019 was 8.04 while the identified resistances were held within 0.4..2.5x the
    # chemistry's, docs/PERFORMANCE.md, follow-up s4-i12r).
    t_s, err, _sig, count = _run(key)
    late = [abs(e) for t, e in zip(t_s, err, strict=True) if t >= 1800.0]
    late_cc = [abs(e) for t, e in zip(t_s, count, strict=True) if t >= 1800.0]
    assert max(late) <= max(late_cc)
