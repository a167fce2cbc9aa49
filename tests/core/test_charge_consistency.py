"""Charge settings that contradict each other or the limits, and a float voltage that cannot hold
its SoC (session 11; each test failed before: the settings were accepted, DVL followed a low
float CVL down, the float SoC stayed where its clamped voltage could not hold the pack)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.control import Controller
from gateway.core.charge_float import float_in_force
from gateway.core.chemistry import get_chemistry
from gateway.core.limits import LimitsCalculator, LimitsConfig
from gateway.core.model import AlarmReport, ChargePhase, LimitTerm, TermKind
from gateway.core.pack import PackConfig
from gateway.core.phases import ChargeConfig, ChargePhases
from gateway.errors import ConfigError
from gateway.settings import Settings, load_settings
from gateway.state_store import resolve_chemistry
from tests.core.packdata import snapshot
from tests.core.test_phases import ABS_V, CELLS, _soc, _step

# The break-it table: 93 % at 3.44 V, 10 mV below the absorption voltage.
HIGH_OCV = "soc_pct,ocv_v\n0,2.5\n10,3.2\n80,3.35\n90,3.43\n93,3.44\n100,3.6\n"


def _load(tmp_path: Path, text: str) -> Settings:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    return load_settings(cfg)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[charge]\nfloat_cell_v = 2.0\nabsorption_max_s = 300\n", "limits.dvl_cell_v (=2.9"),
        ("[charge]\nfloat_cell_v = 2.6\n", "limits.dvl_cell_v (=2.9"),
        ("[charge]\nfloat_cell_v = 2.9\n", "limits.dvl_cell_v (=2.9"),
        (
            "[charge]\nfloat_cell_v = 2.0\n[limits]\ndvl_cell_v = 2.9\n",
            "limits.dvl_cell_v (=2.9)",
        ),
        (
            "[charge]\nfloat_cell_v = 2.7\n[limits]\ndvl_cell_v = 2.6\n",
            "protection.cell_undervoltage_warning_v (=2.8",
        ),
    ],
)
def test_a_float_voltage_at_or_below_the_discharge_limit_is_refused(
    tmp_path: Path, text: str, key: str
) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, text)
    said = str(e.value)
    assert said.startswith(str(tmp_path / "c.toml"))
    assert "charge.float_cell_v (=" in said
    assert key in said


def test_a_float_voltage_above_the_discharge_limit_is_accepted(tmp_path: Path) -> None:
    assert _load(tmp_path, "[charge]\nfloat_cell_v = 3.3\n").charge.float_cell_v == 3.3


def test_dvl_never_follows_a_cvl_below_it_down() -> None:
    # A phase CVL below DVL (a float of 2.0 V per cell, which the settings now refuse): DVL
    # keeps its setting (4 x 2.9 V) and a term says the window is inverted.
    calc = LimitsCalculator(LimitsConfig(), PackConfig(cells=4, temp_sensors=1))
    low = LimitTerm("float", 4 * 2.0, TermKind.PHASE)
    for t in (0.0, 1.0):
        lim = calc.step(snapshot((3.3,) * 4, t_s=t), None, AlarmReport(), t, cvl_phase=low)
    assert lim.cvl_v.value == pytest.approx(8.0)
    assert lim.dvl_v.value == pytest.approx(4 * 2.9)
    assert lim.dvl_v.winner == "min"
    assert lim.dvl_v.term("cvl_below_dvl") == pytest.approx(8.0)


def test_a_dvl_lifted_above_a_pulled_down_cvl_is_trimmed_no_lower_than_its_setting() -> None:
    # One cell high, one low: the dynamic CVL (cell_high) and DVL (cell_low) cross; DVL is
    # trimmed to CVL, which the dynamic CVL never takes below DVL's setting.
    calc = LimitsCalculator(LimitsConfig(), PackConfig(cells=4, temp_sensors=1))
    cells = (3.60, 2.70, 3.30, 3.30)
    lim = calc.step(snapshot(cells), None, AlarmReport(), 0.0)
    assert lim.cvl_v.winner == "cell_high"
    assert lim.dvl_v.value == pytest.approx(lim.cvl_v.value)
    assert lim.dvl_v.value >= 4 * 2.9
    assert lim.dvl_v.term("cvl_below_dvl") is None


def _high_table(tmp_path: Path) -> Settings:
    table = tmp_path / "high.csv"
    table.write_text(HIGH_OCV)
    return Settings(soc={"ocv_table": str(table)}, charge={"absorption_max_s": 300.0})


def test_a_clamped_float_voltage_brings_the_float_soc_down_to_what_it_holds(
    tmp_path: Path,
) -> None:
    settings = _high_table(tmp_path)
    chemistry = resolve_chemistry(settings.pack, settings.soc)
    fl = float_in_force(settings.charge.for_chemistry("lfp"), chemistry, 3.45)
    # 3.44 V at 93 % is clamped to 3.40 V, which holds 86.25 % (80 % + 50/80 of 10 points).
    assert fl.cell_v == pytest.approx(3.40)
    assert fl.config.float_soc == pytest.approx(86.25)
    assert "clamped from 93 %" in fl.clamped
    assert fl.raised is None  # the raised float's voltage clamps to the same 3.40 V
    phases = Controller(settings).charge
    assert phases.float_level.level(0.0) == pytest.approx((86.25, 3.40))
    # Built-in tables: no clamp, nothing changes.
    lfp = float_in_force(ChargeConfig().for_chemistry("lfp"), get_chemistry("lfp"), 3.45)
    assert lfp.clamped == ""
    assert lfp.config.float_soc == 93.0
    assert lfp.raised is not None


def test_check_config_says_the_float_soc_was_clamped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "high.csv"
    table.write_text(HIGH_OCV)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[soc]\nocv_table = "{table}"\n[charge]\nabsorption_max_s = 300\n')
    assert main(["check-config", "--defaults", "--config", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert "charge.float_soc_pct = 86.25 (clamped from 93 %" in err
    assert "charge.float_cell_v = 3.4" in err
    assert "charge.float_raise_days" not in err  # no raised float at the same voltage


def test_a_clamped_float_soc_is_checked_against_the_rebulk_threshold(tmp_path: Path) -> None:
    table = tmp_path / "high.csv"
    table.write_text(HIGH_OCV)
    settings = Settings(soc={"ocv_table": str(table)}, charge={"rebulk_soc_pct": 88.0})
    with pytest.raises(ConfigError, match=r"rebulk_soc_pct \(=88\) .*clamped from 93 %"):
        Controller(settings)


def test_a_float_begun_below_its_soc_does_not_return_to_bulk_at_once() -> None:
    # The top is reached with the estimate below the float SoC (a float voltage that holds
    # less than it, an estimate behind): float begins at 86 %, 7 points below 93. The recharge
    # rule waits for the SoC to fall float_recharge_pct within the float.
    m = ChargePhases(
        ChargeConfig(float_soc_pct=93.0, full_charge_lead_s=0.0, full_charge_max_interval_days=30),
        cells=CELLS,
        capacity_ah=100.0,
        absorption_cell_v=ABS_V,
        float_cell_v=3.40,
        balancing_start_pct=0.5,
    )
    t = 10.0
    assert not m.restore({"last_full_age_s": 0.0}, t)  # a full charge a moment ago: none due
    s = _step(m, t, 3.45, 1.0, _soc(86.0))
    assert s.phase is ChargePhase.FLOAT, s.reason
    assert s.reason.startswith("top reached")
    for _ in range(60):  # an hour floating at 86 %: no flapping
        t += 60.0
        s = _step(m, t, 3.40, -0.5, _soc(86.0))
        assert s.phase is ChargePhase.FLOAT, s.reason
    s = _step(m, t + 60.0, 3.38, -5.0, _soc(85.0))  # a load took a point out: recharge
    assert s.phase is ChargePhase.BULK
    assert "recharge" in s.reason


@pytest.mark.parametrize(
    ("charge", "keys"),
    [
        (
            {"full_charge_min_interval_days": 30},
            ("charge.full_charge_min_interval_days (=30)", "full_charge_max_interval_days (=14)"),
        ),
        (
            {"full_charge_below_soc_pct": 93},
            ("charge.full_charge_below_soc_pct (=93)", "charge.float_soc_pct (=93"),
        ),
        (
            {"full_charge_below_soc_pct": 90, "float_soc_pct": 90},
            ("charge.full_charge_below_soc_pct (=90)", "charge.float_soc_pct (=90)"),
        ),
        (
            {"float_recharge_pct": 9},
            ("charge.float_recharge_pct (=9)", "charge.rebulk_soc_pct (=85)"),
        ),
        ({"absorption_max_s": 60}, ("charge.absorption_max_s (=60)", "charge.tail_hold_s (=120)")),
        (
            {"float_raise_days": 7, "float_cell_v": 3.35},
            ("charge.float_raise_days (=7)", "charge.float_cell_v (=3.35)"),
        ),
    ],
)
def test_settings_without_effect_load_and_are_said_not_refused(
    tmp_path: Path, charge: dict[str, float], keys: tuple[str, ...]
) -> None:
    # Refused, they would stop a daemon that ran with them before the upgrade: said instead.
    text = "[charge]\n" + "".join(f"{k} = {v}\n" for k, v in charge.items())
    settings = _load(tmp_path, text)
    (said,) = settings.notices
    assert said.startswith(str(tmp_path / "c.toml"))
    for key in keys:
        assert key in said
    assert Controller(settings).charge is not None


def test_a_config_that_loaded_before_still_loads_with_a_low_cvl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # LFP with limits.cvl_cell_v = 3.36: the float (50 mV below) holds about 80 %, not 93 %;
    # the float SoC in force follows, and the default re-bulk threshold keeps its 8-point gap.
    settings = _load(tmp_path, "[limits]\ncvl_cell_v = 3.36\n")
    fl = float_in_force(
        settings.charge.for_chemistry("lfp"),
        get_chemistry("lfp"),
        3.36,
        settings.limits.tables(settings.pack).dvl_cell_v,
    )
    held = get_chemistry("lfp").ocv_soc(3.31)
    assert fl.config.float_soc == pytest.approx(held)
    assert fl.config.rebulk_soc_pct == pytest.approx(held - 8.0)
    assert "limits.cvl_cell_v 3.36 V" in fl.clamped
    assert Controller(settings).charge is not None
    # An explicit re-bulk threshold above what the float holds is refused, saying what to change.
    cfg = tmp_path / "c.toml"
    cfg.write_text("[limits]\ncvl_cell_v = 3.36\n[charge]\nrebulk_soc_pct = 85\n")
    assert main(["check-config", "--defaults", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "charge.rebulk_soc_pct (=85) must be below charge.float_soc_pct" in err
    assert "or a higher limits.cvl_cell_v" in err


def test_a_set_float_voltage_sets_the_float_soc_it_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # float_cell_v = 3.31 V on LFP holds about 80 %, not the 93 % float SoC: every rule uses that.
    lfp = get_chemistry("lfp")
    fl = float_in_force(ChargeConfig(float_cell_v=3.31).for_chemistry("lfp"), lfp, 3.45)
    assert fl.cell_v == 3.31
    assert fl.config.float_soc == pytest.approx(lfp.ocv_soc(3.31))
    assert "charge.float_cell_v 3.31 V holds" in fl.clamped
    # check-config --defaults says so (it said the 93 % set).
    cfg = tmp_path / "c.toml"
    cfg.write_text("[charge]\nfloat_cell_v = 3.31\n")
    assert main(["check-config", "--defaults", "--config", str(cfg)]) == 0
    assert "charge.float_soc_pct = 79.79 (clamped from 93 %: charge.float_cell_v 3.31 V" in (
        capsys.readouterr().err
    )
    # A set float voltage above the OCV at the float SoC leaves it as set.
    high = float_in_force(ChargeConfig(float_cell_v=3.40).for_chemistry("lfp"), lfp, 3.45)
    assert high.config.float_soc == 93.0
    assert high.clamped == ""


def test_consistent_neighbours_of_the_refused_settings_are_accepted(tmp_path: Path) -> None:
    text = (
        "[charge]\nfull_charge_min_interval_days = 14\nfull_charge_below_soc_pct = 92\n"
        "float_recharge_pct = 8\nabsorption_max_s = 120\nfloat_raise_days = 0\n"
        "float_cell_v = 3.35\n"
    )
    assert _load(tmp_path, text).charge.full_charge_below_soc_pct == 92


@pytest.mark.parametrize(
    ("table", "limits", "said"),
    [
        # OCV at the float SoC (93 %) 2.85 V, below DVL's 2.90 V.
        (
            "0,2.5\n95,2.86\n100,3.6\n",
            {},
            r"float_soc_pct 93 %.*soc\.ocv_table.*dvl_cell_v \(=2\.9\)",
        ),
        # 2.75 V with DVL lowered to 2.6 V: above DVL, below the 2.8 V under-voltage warning
        # (a set float voltage there was refused already).
        (
            "0,2.0\n50,2.6\n93,2.75\n99,3.3\n100,3.4\n",
            {"dvl_cell_v": 2.6},
            r"unset: 2\.75 V.*protection\.cell_undervoltage_warning_v \(=2\.8\)",
        ),
    ],
)
def test_a_derived_float_voltage_at_or_below_dvl_or_an_under_voltage_level_is_refused(
    tmp_path: Path, table: str, limits: dict[str, float], said: str
) -> None:
    path = tmp_path / "low.csv"
    path.write_text("soc_pct,ocv_v\n" + table)
    settings = Settings(soc={"ocv_table": str(path)}, limits=limits)
    with pytest.raises(ConfigError, match=said):
        Controller(settings)


def test_a_charge_voltage_limit_at_the_over_voltage_alarm_is_said_not_refused(
    tmp_path: Path,
) -> None:
    settings = _load(tmp_path, "[limits]\ncvl_cell_v = 3.65\n")  # LFP's alarm: 3.65 V
    (said,) = settings.notices
    assert said.startswith(str(tmp_path / "c.toml"))
    assert "limits.cvl_cell_v (=3.65) is not below protection.cell_overvoltage_alarm_v" in said
    assert _load(tmp_path, "[limits]\ncvl_cell_v = 3.6\n").notices == ()
