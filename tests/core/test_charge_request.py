"""The full-charge triggers' timing and the float SoC per chemistry (issue 18, session 6)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.control import Controller
from gateway.core.charge_config import FLOAT_SOC_DEFAULTS, ChargeConfig
from gateway.core.charge_request import STALL_S, full_charge_request
from gateway.core.chemistry import get_chemistry
from gateway.core.model import (
    BalancingMode,
    BalancingPlan,
    CellEstimate,
    ChargePhase,
    ChargeState,
    SocReport,
)
from gateway.core.pack import PackConfig
from gateway.core.phases import ChargePhases
from gateway.settings import Settings
from tests.core.packdata import snapshot

DAY_S = 86400.0
CELLS = 4


def _soc(sigma_pct: float, soc_pct: float = 60.0) -> SocReport:
    cell = CellEstimate(soc_pct, sigma_pct, 100.0, 0.5, soc_rel_sigma_pct=0.1)
    cells = (cell,) * CELLS
    return SocReport(soc_pct, soc_pct, 100.0, cells)


def _ask(
    cfg: ChargeConfig,
    days: float,
    *,
    unfinished: bool,
    sigma_pct: float = 0.5,
    bled_days: float | None = None,
) -> tuple[str, bool]:
    ask = full_charge_request(
        cfg,
        _soc(sigma_pct),
        days * DAY_S,
        low=False,
        last_full_s=0.0,
        low_s=None,
        balancing_unfinished=unfinished,
        balancing_start_pct=0.5,
        bled_s=None if bled_days is None else bled_days * DAY_S,
    )
    return ask.reason, ask.at_once


def test_an_imbalance_left_at_the_top_asks_again_after_a_day_once_balancing_stalled() -> None:
    cfg = ChargeConfig()  # minimum interval 2 days
    assert cfg.full_charge_min_interval_days == 2.0
    assert _ask(cfg, 0.9, unfinished=True) == ("", False)
    # No cell has bled for longer than STALL_S (here: since 0.5 days): the next top is asked for.
    reason, at_once = _ask(cfg, 1.1, unfinished=True, bled_days=0.5)
    assert reason.startswith("balancing unfinished")
    assert at_once
    assert _ask(cfg, 1.1, unfinished=True)[0].startswith("balancing unfinished")  # none bled
    # A cell bled within STALL_S (balancing goes on off the top): it waits the interval.
    recent = 1.1 - 0.5 * STALL_S / DAY_S
    assert _ask(cfg, 1.1, unfinished=True, bled_days=recent) == ("", False)
    assert _ask(cfg, 2.1, unfinished=True, bled_days=2.1)[0].startswith("balancing unfinished")
    # The estimate's uncertainty still waits the whole interval.
    assert _ask(cfg, 1.1, unfinished=False, sigma_pct=3.0) == ("", False)
    assert _ask(cfg, 2.1, unfinished=False, sigma_pct=3.0)[0].startswith("SoC uncertainty")
    # A shorter interval than a day is kept for both.
    short = ChargeConfig(full_charge_min_interval_days=0.5)
    assert _ask(short, 0.4, unfinished=True) == ("", False)
    assert _ask(short, 0.6, unfinished=True)[0].startswith("balancing unfinished")
    # Not asked for balancing at all when that trigger is off.
    off = ChargeConfig(full_charge_for_balancing=False)
    assert _ask(off, 1.1, unfinished=True) == ("", False)


def test_the_float_soc_defaults_per_chemistry_and_a_set_value_wins() -> None:
    assert ChargeConfig().float_soc_pct is None
    assert ChargeConfig().for_chemistry("nmc").float_soc == FLOAT_SOC_DEFAULTS["nmc"]
    assert ChargeConfig().for_chemistry("lfp").float_soc == FLOAT_SOC_DEFAULTS["lfp"]
    assert FLOAT_SOC_DEFAULTS["nmc"] > FLOAT_SOC_DEFAULTS["lfp"]
    assert ChargeConfig(float_soc_pct=90.0).for_chemistry("nmc").float_soc == 90.0
    # Not resolved for a chemistry: the lowest default.
    assert ChargeConfig().float_soc == min(FLOAT_SOC_DEFAULTS.values())


@pytest.mark.parametrize("chemistry", ["lfp", "nmc"])
def test_the_controller_floats_at_its_chemistry_s_soc(chemistry: str) -> None:
    settings = Settings(pack=PackConfig(cells=CELLS, capacity_ah=100.0, chemistry=chemistry))
    phases = Controller(settings).charge
    ocv = get_chemistry(chemistry).ocv_voltage(FLOAT_SOC_DEFAULTS[chemistry])
    assert phases.float_cell_v == pytest.approx(min(ocv, phases.absorption_cell_v - 0.05))
    assert phases.config.float_soc == FLOAT_SOC_DEFAULTS[chemistry]
    chosen = Settings(
        pack=PackConfig(cells=CELLS, capacity_ah=100.0, chemistry=chemistry),
        charge=ChargeConfig(float_soc_pct=90.0),
    )
    phases = Controller(chosen).charge
    assert phases.float_cell_v == pytest.approx(get_chemistry(chemistry).ocv_voltage(90.0))


def _phases() -> ChargePhases:
    return ChargePhases(
        ChargeConfig(absorption_max_s=600.0, full_charge_lead_s=0.0),
        cells=CELLS,
        capacity_ah=100.0,
        absorption_cell_v=3.45,
        float_cell_v=3.314,
        balancing_start_pct=0.5,
    )


def _run(
    m: ChargePhases, t_s: float, cell_v: float, current_a: float, soc: SocReport, bleed: bool
) -> ChargeState:
    plan = BalancingPlan(BalancingMode.PASSIVE, (bleed,) + (False,) * (CELLS - 1))
    return m.step(snapshot([cell_v] * CELLS, current_a=current_a, t_s=t_s), soc, plan, t_s)


@pytest.mark.parametrize("bleeding_after", [False, True])
def test_the_machine_asks_again_after_a_day_only_when_no_cell_bleeds(bleeding_after: bool) -> None:
    m = _phases()
    top = _soc(0.5, 98.0)
    high = replace(top.cells[0], soc_pct=100.0)  # 2 points above the others
    spread = replace(top, cells=(high, *top.cells[1:]))
    _run(m, 0.0, 3.40, 30.0, _soc(0.5, 90.0), False)
    assert _run(m, 10.0, 3.445, 30.0, top, False).phase is ChargePhase.ABSORPTION
    t = 20.0
    while (s := _run(m, t, 3.45, 0.5, spread, True)).phase is ChargePhase.ABSORPTION:
        t += 60.0
    assert s.reason.startswith("absorption time limit")
    # The day after: the cells floating, one of them bleeding (balancing goes on) or none.
    while t < 1.1 * DAY_S:
        t += 600.0
        s = _run(m, t, 3.314, 0.0, _soc(0.5, 92.0), bleeding_after)
    assert s.full_charge_requested is not bleeding_after
    if not bleeding_after:
        assert s.full_charge_reason.startswith("balancing unfinished")
    while t < 2.1 * DAY_S:
        t += 600.0
        s = _run(m, t, 3.314, 0.0, _soc(0.5, 92.0), bleeding_after)
    assert s.full_charge_reason.startswith("balancing unfinished")


def test_the_rebulk_threshold_is_checked_against_the_chemistrys_float_soc() -> None:
    from pydantic import ValidationError

    # NMC floats at 95 %: a re-bulk threshold of 94 % fits it (refused against LFP's 93 before).
    nmc = Settings(pack={"chemistry": "nmc"}, charge={"rebulk_soc_pct": 94.0})
    assert nmc.charge.for_chemistry("nmc").float_soc > nmc.charge.rebulk_soc_pct
    with pytest.raises(ValidationError, match=r"rebulk_soc_pct .*float_soc_pct .*lfp"):
        Settings(pack={"chemistry": "lfp"}, charge={"rebulk_soc_pct": 94.0})
    with pytest.raises(ValidationError, match=r"rebulk_soc_pct .*float_soc_pct \(=95\)"):
        Settings(pack={"chemistry": "nmc"}, charge={"rebulk_soc_pct": 96.0, "float_soc_pct": 95})


def test_a_restart_is_no_stall_of_balancing_that_goes_on_off_the_top() -> None:
    # Restarted 1.5 days after a top that left balancing unfinished: the controller's first
    # step has no plan yet; that is no hour without a bleeding cell.
    m = _phases()
    state = {"last_full_age_s": 1.5 * DAY_S, "balancing_unfinished": True}
    assert not m.restore(state, 1000.0)
    first = m.step(snapshot([3.30] * CELLS, current_a=-5.0, t_s=1000.0), _soc(0.5), None, 1000.0)
    assert not first.full_charge_requested, first.full_charge_reason
    t = 1000.0
    while t < 1000.0 + 2 * STALL_S:  # cells go on bleeding off the top: the interval holds
        assert not _run(m, t, 3.30, -5.0, _soc(0.5), True).full_charge_requested
        t += 60.0
    # Once none has bled for STALL_S it has stalled: asked for.
    while not (s := _run(m, t, 3.30, -5.0, _soc(0.5), False)).full_charge_requested:
        t += 60.0
        assert t < 1000.0 + 4 * STALL_S
    assert s.full_charge_reason.startswith("balancing unfinished")
