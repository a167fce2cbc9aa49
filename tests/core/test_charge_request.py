"""The full-charge triggers' timing and the float SoC per chemistry (issue 18, session 6)."""

from __future__ import annotations

import pytest

from gateway.control import Controller
from gateway.core.charge_config import FLOAT_SOC_DEFAULTS, ChargeConfig
from gateway.core.charge_request import full_charge_request
from gateway.core.chemistry import get_chemistry
from gateway.core.model import CellEstimate, SocReport
from gateway.core.pack import PackConfig
from gateway.settings import Settings

DAY_S = 86400.0
CELLS = 4


def _soc(sigma_pct: float) -> SocReport:
    cell = CellEstimate(60.0, sigma_pct, 100.0, 0.5, soc_rel_sigma_pct=0.1)
    cells = (cell,) * CELLS
    return SocReport(60.0, 60.0, 100.0, cells)


def _ask(
    cfg: ChargeConfig, days: float, *, unfinished: bool, sigma_pct: float = 0.5
) -> tuple[str, bool]:
    return full_charge_request(
        cfg,
        _soc(sigma_pct),
        days * DAY_S,
        low=False,
        last_full_s=0.0,
        low_s=None,
        balancing_unfinished=unfinished,
        balancing_start_pct=0.5,
    )


def test_an_imbalance_left_at_the_top_asks_again_after_a_day_not_the_interval() -> None:
    cfg = ChargeConfig()  # minimum interval 2 days
    assert cfg.full_charge_min_interval_days == 2.0
    assert _ask(cfg, 0.9, unfinished=True) == ("", False)
    reason, at_once = _ask(cfg, 1.1, unfinished=True)
    assert reason.startswith("balancing unfinished")
    assert at_once
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
    # Not resolved for a chemistry: the lowest default (the re-bulk check uses it too).
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
