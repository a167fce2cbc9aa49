"""The float in force: raised towards the 95 % line after a night that came within the float's
gap of empty, for ``float_raise_days``; never for NMC's default float or a float voltage set by
the user (each test failed before ``gateway.core.charge_float``: the float never moved)."""

from __future__ import annotations

import pytest

from gateway.control import Controller
from gateway.core.charge_float import (
    FLOAT_GUARD_V,
    HIGH_SOC_PCT,
    raised_float,
    raised_float_soc_pct,
)
from gateway.core.chemistry import get_chemistry
from gateway.core.model import ChargePhase
from gateway.core.pack import PackConfig
from gateway.core.phases import ChargeConfig, ChargePhases
from gateway.settings import Settings
from tests.core.test_phases import ABS_V, CELLS, DAY_S, FLOAT_V, HOUR_S, _soc, _step, _to_float

RAISED = (94.2, 3.3156)  # about LFP's (SoC %, V per cell)


def _machine(**cfg: object) -> ChargePhases:
    cfg.setdefault("float_soc_pct", 93.0)
    cfg.setdefault("full_charge_lead_s", 0.0)
    return ChargePhases(
        ChargeConfig(**cfg),
        cells=CELLS,
        capacity_ah=100.0,
        absorption_cell_v=ABS_V,
        float_cell_v=FLOAT_V,
        balancing_start_pct=0.5,
        raised_float=RAISED,
    )


def _bulk_to_float(m: ChargePhases, t: float) -> tuple[float, str]:
    """Charge from 90 % in 0.1-point steps until the phase is float: the SoC and the reason."""
    soc = 90.0
    while True:
        s = _step(m, t, 3.31, 20.0, _soc(soc))
        if s.phase is ChargePhase.FLOAT:
            return soc, s.reason
        assert s.cvl_v == pytest.approx(CELLS * ABS_V)
        soc, t = round(soc + 0.1, 1), t + 60.0
        assert soc < 99.0


def _deep_night(m: ChargePhases, soc_pct: float) -> float:
    """Take ``m`` to float, then an hour later a night down to ``soc_pct``; returns when it
    floated (s)."""
    t0 = _to_float(m)
    _step(m, t0 + HOUR_S, 3.2, -10.0, _soc(soc_pct))
    return t0


def test_the_raised_float_sits_a_millivolt_below_the_ocv_at_95_pct() -> None:
    lfp = get_chemistry("lfp")
    soc = raised_float_soc_pct(lfp)
    assert 94.0 < soc < HIGH_SOC_PCT
    gap_v = lfp.ocv_voltage(HIGH_SOC_PCT) - lfp.ocv_voltage(soc)
    assert gap_v == pytest.approx(FLOAT_GUARD_V, abs=1e-5)
    raised = raised_float(ChargeConfig().for_chemistry("lfp"), lfp, 3.45)
    assert raised is not None
    assert raised == pytest.approx((soc, lfp.ocv_voltage(soc)))
    # NMC's default float (95 %) is above its raised SoC (steep curve): never raised; a lower
    # float set by the user is.
    nmc = get_chemistry("nmc")
    assert 94.5 < raised_float_soc_pct(nmc) < HIGH_SOC_PCT
    assert raised_float(ChargeConfig().for_chemistry("nmc"), nmc, 4.2) is None
    assert raised_float(ChargeConfig(float_soc_pct=90.0), nmc, 4.2) is not None
    # A float voltage set by the user, or float_raise_days 0: never raised.
    assert raised_float(ChargeConfig(float_cell_v=3.31).for_chemistry("lfp"), lfp, 3.45) is None
    assert raised_float(ChargeConfig(float_raise_days=0.0).for_chemistry("lfp"), lfp, 3.45) is None


def test_after_a_night_within_the_gap_of_empty_bulk_goes_on_to_the_raised_float() -> None:
    m = _machine(float_raise_days=3.0)  # (a full charge is asked for 14 days after the last)
    t0 = _to_float(m)
    # Nights that stay above the float's gap (7 % of 100 - 93): the float stays at 93 %.
    assert _step(m, t0 + 0.5 * DAY_S, 3.25, -10.0, _soc(8.0)).phase is ChargePhase.BULK
    soc, reason = _bulk_to_float(m, t0 + DAY_S)
    assert soc == pytest.approx(93.0)
    assert reason == "float SoC reached (93.0 % >= 93 %)"
    assert _step(m, t0 + DAY_S + 7200.0, 3.31, 0.0, _soc(93.0)).cvl_v == pytest.approx(
        CELLS * FLOAT_V
    )
    # A night down to 6 %: the charge above the float would have been delivered.
    t1 = t0 + 1.5 * DAY_S
    assert _step(m, t1, 3.2, -10.0, _soc(6.0)).phase is ChargePhase.BULK
    soc, reason = _bulk_to_float(m, t1 + 0.5 * DAY_S)
    assert soc == pytest.approx(94.2)
    assert (
        reason
        == "float SoC reached (94.2 % >= 94.2 %, raised from 93 %: SoC below 7 % 0.5 days ago)"
    )
    s = _step(m, t1 + 0.6 * DAY_S, 3.31, 0.0, _soc(94.2))
    assert s.phase is ChargePhase.FLOAT
    assert s.cvl_v == pytest.approx(CELLS * RAISED[1])
    # float_raise_days later without another such night: back to the configured float.
    assert _step(m, t1 + 3.0 * DAY_S, 3.31, 0.0, _soc(94.2)).cvl_v == pytest.approx(CELLS * FLOAT_V)
    _step(m, t1 + 3.2 * DAY_S, 3.25, -10.0, _soc(50.0))  # re-bulk
    soc, _ = _bulk_to_float(m, t1 + 3.5 * DAY_S)
    assert soc == pytest.approx(93.0)


def test_zero_raise_days_keeps_the_configured_float() -> None:
    m = _machine(float_raise_days=0.0)
    t0 = _deep_night(m, 3.0)
    soc, _ = _bulk_to_float(m, t0 + 0.5 * DAY_S)
    assert soc == pytest.approx(93.0)


def test_the_raise_survives_a_restart_and_a_bad_age_is_refused() -> None:
    m = _machine()
    t0 = _deep_night(m, 5.0)
    saved = m.export_state(t0 + 2 * HOUR_S)
    assert saved["float_raise_age_s"] == pytest.approx(HOUR_S)
    again = _machine()
    assert again.restore(saved, 100.0, off_s=DAY_S) == []
    assert again.float_level.raised(100.0)
    assert again.float_level.deep_s == pytest.approx(100.0 - HOUR_S - DAY_S)
    assert not again.float_level.raised(100.0 + 13.0 * DAY_S)
    bad = _machine()
    notes = bad.restore({"float_raise_age_s": -5.0}, 100.0)
    assert notes == ["charge_phase.float_raise_age_s=-5.0 is no age: ignored"]
    assert not bad.float_level.raised(100.0)


@pytest.mark.parametrize("chemistry", ["lfp", "nmc"])
def test_the_controller_raises_an_lfp_float_and_not_an_nmc_one(chemistry: str) -> None:
    settings = Settings(pack=PackConfig(cells=CELLS, capacity_ah=100.0, chemistry=chemistry))
    phases = Controller(settings).charge
    level = phases.float_level
    level.deep_s = 0.0  # a night within the float's gap of empty
    soc, cell_v = level.level(HOUR_S)
    chem = get_chemistry(chemistry)
    if chemistry == "lfp":
        assert soc == pytest.approx(raised_float_soc_pct(chem))
        assert cell_v == pytest.approx(chem.ocv_voltage(soc))
        assert soc > phases.config.float_soc
    else:
        assert (soc, cell_v) == (phases.config.float_soc, phases.float_cell_v)


def test_the_reasons_say_the_float_was_raised_and_when_it_falls_back() -> None:
    # A user reads 94.2 % where 93 is configured, and then a CVL that falls while floating:
    # both say why (on main the raise went unnamed and the fall kept the old reason).
    m = _machine(float_raise_days=2.0)
    t0 = _deep_night(m, 5.0)
    soc, reason = _bulk_to_float(m, t0 + 0.5 * DAY_S)
    assert soc == pytest.approx(94.2)
    assert "raised from 93 %: SoC below 7 %" in reason
    s = _step(m, t0 + HOUR_S + 2.0 * DAY_S, 3.31, 0.0, _soc(94.0))
    assert s.phase is ChargePhase.FLOAT
    assert s.cvl_v == pytest.approx(CELLS * FLOAT_V)
    assert s.reason == "float back to 93 % (no SoC below 7 % for 2 days)"


def test_a_float_soc_set_to_a_hundredth_is_said_as_set() -> None:
    # 93.25 % configured was said "93.2" (three significant digits) since the raised float.
    m = _machine(float_soc_pct=93.25, float_raise_days=0.0)
    t0 = _to_float(m)
    _step(m, t0 + HOUR_S, 3.25, -10.0, _soc(50.0))  # re-bulk
    _, reason = _bulk_to_float(m, t0 + 0.5 * DAY_S)
    assert reason == "float SoC reached (93.3 % >= 93.25 %)"


def test_a_load_that_takes_the_floating_pack_below_its_float_sends_it_back_to_bulk() -> None:
    # On main the pack stayed in float after a load pulse, and the float voltage gave the
    # charge back at a trickle on the LFP plateau (0.3 A in bench/charge_phases.py).
    m = _machine(float_raise_days=0.0)  # float 93 %, float_recharge_pct 1 by default
    t0 = _to_float(m)
    _step(m, t0 + HOUR_S, 3.25, -10.0, _soc(50.0))  # re-bulk
    _bulk_to_float(m, t0 + 0.5 * DAY_S)
    t = t0 + 0.6 * DAY_S
    s = _step(m, t, 3.30, -30.0, _soc(92.1))  # a pulse: 0.9 points, within the band
    assert s.phase is ChargePhase.FLOAT
    assert s.cvl_v == pytest.approx(CELLS * FLOAT_V)
    s = _step(m, t + 60.0, 3.30, -30.0, _soc(91.9))
    assert s.phase is ChargePhase.BULK
    assert s.reason == "SoC 91.9 % at least 1 % below the float 93.0 %: recharge"
    assert s.cvl_v == pytest.approx(CELLS * ABS_V)  # PV charges it back at the full rate
    s = _step(m, t + 120.0, 3.32, 20.0, _soc(92.5))
    assert s.phase is ChargePhase.BULK
    s = _step(m, t + 180.0, 3.32, 20.0, _soc(93.0))
    assert s.phase is ChargePhase.FLOAT
    assert s.reason == "float SoC reached (93.0 % >= 93 %)"


def test_the_recharge_band_follows_the_raised_float_and_zero_keeps_the_float() -> None:
    m = _machine(float_raise_days=3.0)
    t0 = _deep_night(m, 5.0)
    soc, _ = _bulk_to_float(m, t0 + 0.5 * DAY_S)
    assert soc == pytest.approx(94.2)
    t = t0 + 0.6 * DAY_S
    assert _step(m, t, 3.30, -30.0, _soc(93.3)).phase is ChargePhase.FLOAT  # 94.2 - 1 = 93.2
    s = _step(m, t + 60.0, 3.30, -30.0, _soc(93.2))
    assert s.phase is ChargePhase.BULK
    assert s.reason == "SoC 93.2 % at least 1 % below the float 94.2 %: recharge"
    # 0: only the re-bulk threshold sends a floating pack back (as before session 10).
    off = _machine(float_raise_days=0.0, float_recharge_pct=0.0)
    t0 = _to_float(off)
    assert _step(off, t0 + HOUR_S, 3.30, -30.0, _soc(86.0)).phase is ChargePhase.FLOAT
    # Without an estimate nothing is decided from the SoC.
    assert _step(off, t0 + 2 * HOUR_S, 3.30, -30.0, None).phase is ChargePhase.FLOAT
    assert off.float_level.recharge(None, t0) == ""
    assert m.float_level.recharge(float("nan"), t) == ""


@pytest.mark.parametrize("value", [-1.0, 51.0, float("nan")])
def test_a_recharge_band_out_of_range_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match="float_recharge_pct"):
        ChargeConfig(float_recharge_pct=value)
