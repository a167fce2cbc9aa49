"""A trusted top (``gateway.core.soc_top``): a tapered charge whose voltage pins the SoC on the
steep top of the OCV table, at any charge voltage, for any chemistry and user table."""

from __future__ import annotations

import math

import pytest

from gateway.core.chemistry import Chemistry, get_chemistry
from gateway.core.ocv_file import parse_ocv_csv
from gateway.core.pack import PackConfig
from gateway.core.soc import SocConfig, SocEstimator
from gateway.core.soc_cell import CellState, init_from_voltage
from gateway.core.soc_config import tuning_of
from tests.core.test_soc import EcmPack, snap

Q = 100.0
OFFSET_A = 0.5  # the current sensor reads this much more than flows (an offset to learn)


def estimator(chem: Chemistry) -> SocEstimator:
    pack = PackConfig(cells=1, chemistry=chem.name, capacity_ah=Q)
    return SocEstimator(SocConfig(), pack, chem)


def charge_to(
    est: SocEstimator, pack: EcmPack, cvl_v: float, *, stop_a: float = 1.0, t0_s: float = 0.0
) -> float:
    """Charge at 0.3 C to ``cvl_v`` (V), then hold it (the current tapers by 3 % a second) down to
    ``stop_a``; the sensor reads ``OFFSET_A`` high. Returns the time (s)."""
    t, i = t0_s, 0.3 * Q
    for _ in range(6 * 3600):
        volts = pack.step(i, 1.0)
        t += 1.0
        est.step(snap(t, list(volts), i + OFFSET_A), t)
        if max(volts) >= cvl_v:
            i *= 0.97
        if i < stop_a:
            break
    return t


def hold(est: SocEstimator, pack: EcmPack, current_a: float, seconds: int, t0_s: float) -> float:
    t = t0_s
    for _ in range(seconds):
        volts = pack.step(current_a, 1.0)
        t += 1.0
        est.step(snap(t, list(volts), current_a + OFFSET_A), t)
    return t


def assert_trusted_top(est: SocEstimator, pack: EcmPack) -> CellState:
    cell = est.cells[0]
    assert cell.full_latched
    assert cell.off_var < (SocConfig().current_offset_sigma_c) ** 2  # learned at the top
    assert cell.bias.w > 0.0  # the load bias was tested
    assert cell.soc_pct == pytest.approx(pack.soc_pct[0], abs=0.5)
    assert math.isfinite(cell.anchor_soc)  # capacity anchor
    return cell


def test_a_tapered_lfp_top_at_the_daemons_cvl_is_a_trusted_point_at_the_tables_soc() -> None:
    # LFP's default CVL (3.45 V) is below the chemistry's 3.65 V: the top is still trusted.
    chem = get_chemistry("lfp")
    est = estimator(chem)
    pack = EcmPack(chem, [90.0], [Q])
    t = hold(est, pack, -10.0, 1800, 0.0)  # some load on the steep part
    charge_to(est, pack, 3.45, t0_s=t)
    cell = assert_trusted_top(est, pack)
    assert 98.5 < cell.soc_pct < 99.8  # the table's SoC of the tapered voltage, not 100
    assert cell.sigma_pct() < 1.0


def test_a_tapered_nmc_top_at_its_cvl_recalibrates_to_the_tables_soc() -> None:
    chem = get_chemistry("nmc")
    est = estimator(chem)
    pack = EcmPack(chem, [80.0], [Q])
    t = hold(est, pack, -10.0, 1800, 0.0)
    charge_to(est, pack, 4.18, t0_s=t)
    cell = assert_trusted_top(est, pack)
    assert cell.soc_pct < 99.7


def test_a_user_table_topping_at_4_1_v_gets_a_top() -> None:
    # A cell whose table tops out at 4.1 V (Marquis2019's) never reaches the NMC chemistry's
    # 4.2 V less the margin: the table, not the chemistry's upper voltage, says it is full.
    nmc = get_chemistry("nmc")
    rows = [f"{s},{nmc.ocv.voltage(s) - 0.1 * s / 100.0:.5f}" for s in range(101)]
    chem = nmc.with_ocv(parse_ocv_csv("soc_pct,ocv_v\n" + "\n".join(rows), "user.csv"))
    est = estimator(chem)
    pack = EcmPack(chem, [80.0], [Q])
    t = hold(est, pack, -10.0, 1800, 0.0)
    charge_to(est, pack, 4.095, t0_s=t)
    assert_trusted_top(est, pack)


def test_no_top_while_the_current_is_not_tapered_or_is_a_discharge() -> None:
    chem = get_chemistry("lfp")
    est = estimator(chem)
    pack = EcmPack(chem, [95.0], [Q])
    # Charged at 0.3 C up to the CVL and stopped there: never tapered.
    charge_to(est, pack, 3.45, stop_a=0.3 * Q)
    assert not est.cells[0].full_latched
    # A top, then a small discharge at the top voltage: the latch is re-armed, no new top.
    est2 = estimator(chem)
    pack2 = EcmPack(chem, [95.0], [Q])
    t = charge_to(est2, pack2, 3.45)
    assert est2.cells[0].full_latched
    hold(est2, pack2, -2.0 - OFFSET_A, 60, t)
    assert not est2.cells[0].full_latched


@pytest.mark.parametrize("soc", [60.0, 93.0])
def test_a_plateau_voltage_at_a_tapered_current_is_not_a_trusted_point(soc: float) -> None:
    # LFP's middle and its float (93 %, 3.315 V): a low charge current there says little.
    chem = get_chemistry("lfp")
    est = estimator(chem)
    pack = EcmPack(chem, [soc], [Q])
    hold(est, pack, 2.0, 1800, 0.0)
    cell = est.cells[0]
    assert not cell.full_latched
    assert cell.off_c == 0.0  # nothing learned
    assert cell.bias.w == 0.0


def test_a_small_charge_at_the_steep_bottom_or_at_rest_is_not_a_top() -> None:
    # The bottom is steep too, but a charge there follows a discharge still relaxing; a current
    # within the rest current is the rest recalibration's.
    chem = get_chemistry("lfp")
    est = estimator(chem)
    pack = EcmPack(chem, [8.0], [Q])
    t = hold(est, pack, -20.0, 600, 0.0)
    hold(est, pack, 2.0, 1800, t)
    assert not est.cells[0].full_latched
    est2 = estimator(chem)
    pack2 = EcmPack(chem, [99.4], [Q])
    hold(est2, pack2, 0.5, 1800, 0.0)  # 0.005 C + 0.005 C offset: resting
    assert not est2.cells[0].full_latched


@pytest.mark.parametrize(
    ("name", "soc", "trusted"),
    [("lfp", 99.3, True), ("lfp", 60.0, False), ("lfp", 3.0, False), ("nmc", 99.0, True)],
)
def test_a_top_pins_the_soc_only_where_the_table_is_steep(
    name: str, soc: float, trusted: bool
) -> None:
    from gateway.core.soc_top import TOP_SIGMA_PCT, is_top, top_interval

    chem = get_chemistry(name)
    tune = tuning_of(SocConfig(), chem)
    cell = CellState()
    init_from_voltage(cell, chem, tune, chem.ocv.voltage(soc), 0.0, 25.0, True, Q)
    cell.r0_ohm_25c = chem.r0_ohm(Q)
    cur = 0.02 * Q
    v = chem.ocv.voltage(soc) + cell.r0_ohm_25c * cur
    z, sz = top_interval(cell, chem, tune, v, cur, 25.0, 1.0)
    assert is_top(z, sz) is trusted
    if trusted:
        assert z == pytest.approx(soc, abs=0.05)
        assert sz <= TOP_SIGMA_PCT
