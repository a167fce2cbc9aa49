"""Settings: TOML file and environment, unknown keys named, check-config exit status."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.errors import ConfigError
from gateway.settings import load_settings


def test_defaults_load() -> None:
    s = load_settings(None)
    assert s.pack.cells == 16


def test_file_and_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[pack]\ncells = 8\ncapacity_ah = 50\n")
    assert load_settings(f).pack.cells == 8
    monkeypatch.setenv("BMSGW_PACK__CELLS", "12")
    s = load_settings(f)
    assert s.pack.cells == 12
    assert s.pack.capacity_ah == 50


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[pack]\ncelss = 8\n")
    with pytest.raises(ConfigError, match=r"pack\.celss: unknown setting"):
        load_settings(f)


def test_unknown_env_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BMSGW_PACK__CELSS", "8")
    with pytest.raises(ConfigError, match="BMSGW_PACK__CELSS"):
        load_settings(None)


def test_a_list_from_the_environment_that_is_not_json_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pydantic-settings parses lists as JSON; a comma list was a traceback, not a config error.
    monkeypatch.setenv("BMSGW_BALANCING__PASSIVE_STATES", "rest,top")
    with pytest.raises(ConfigError, match="BMSGW_BALANCING__PASSIVE_STATES: cannot be parsed"):
        load_settings(None)
    monkeypatch.setenv("BMSGW_BALANCING__PASSIVE_STATES", '["rest", "top"]')
    assert load_settings(None).balancing.passive_states == ("rest", "top")


def test_bad_value_names_key(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[control]\ntick_s = -1\n")
    with pytest.raises(ConfigError, match=r"control\.tick_s \(=-1\)"):
        load_settings(f)


@pytest.mark.parametrize(
    "text",
    [
        "[charge]\nfloat_raise_days = true\n",
        "[pack]\ncells = true\n",
        "[charge]\nfloat_soc_pct = false\n",
    ],
)
def test_a_boolean_for_a_number_is_refused_and_named(tmp_path: Path, text: str) -> None:
    # pydantic read TOML ``true`` as 1: ``float_raise_days = true`` (meant: raise the float)
    # was one day, ``cells = true`` one cell, ``float_soc_pct = false`` an unset float SoC.
    f = tmp_path / "c.toml"
    f.write_text(text)
    key = text.split("\n")[1].split(" =", maxsplit=1)[0]
    with pytest.raises(ConfigError, match=rf"c\.toml: \w+\.{key} \(=\w+\): .*not a boolean"):
        load_settings(f)
    f.write_text("[charge]\nfull_charge_from_grid = true\n")  # a boolean key takes one
    assert load_settings(f).charge.full_charge_from_grid is True


def test_a_boolean_in_a_table_of_numbers_is_refused_and_named(tmp_path: Path) -> None:
    # A table's breakpoints took ``true`` as 1.0 as well: a CCL table point at 1 degree.
    f = tmp_path / "c.toml"
    f.write_text(
        "[limits]\ncharge_temp_c = [0.0, true, 45.0]\ncharge_temp_fraction = [0.0, 1.0, 0.0]\n"
    )
    with pytest.raises(ConfigError, match=r"c\.toml: limits\.charge_temp_c .*not of booleans"):
        load_settings(f)
    f.write_text(
        "[limits]\ncharge_temp_c = [0.0, 10.0, 45.0]\ncharge_temp_fraction = [0.0, 1.0, 0.0]\n"
    )
    assert load_settings(f).limits.charge_temp_c == (0.0, 10.0, 45.0)


def test_bad_toml_names_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[pack\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(f)


def test_check_config_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[pack]\ncells = 4\n")
    assert main(["check-config", "--config", str(good)]) == 0
    assert '"cells": 4' in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nnope = 1\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "mqtt.nope" in err[0]


def test_check_config_loads_the_files_it_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A profile file that does not exist, and an OCV table with a bad row: named, exit 2.
    missing = tmp_path / "nope.toml"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[can]\nprofile = "{missing}"\n')
    assert main(["check-config", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert str(missing) in err[0]
    table = tmp_path / "ocv.csv"
    table.write_text("soc_pct,ocv_v\n0,2.5\n50,abc\n100,3.5\n")
    cfg.write_text(f'[soc]\nocv_table = "{table}"\n')
    assert main(["check-config", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{table}:3" in err[0]


def test_check_config_says_how_it_read_the_ocv_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A table as a user exports it: OCV first, in mV, SoC as a fraction, full to empty.
    table = tmp_path / "cell.csv"
    table.write_text("OCV (mV),SoC (0-1)\n3650,1.0\n3300,0.5\n2500,0.0\n")
    cfg = tmp_path / "c.toml"
    # Its OCV at the float SoC (93 %: 3.601 V) is clamped to 3.40 V, which holds 64.3 %: the
    # re-bulk threshold must lie below that (charge_float.float_in_force).
    cfg.write_text(
        f'[pack]\nchemistry = "lfp"\n[soc]\nocv_table = "{table}"\n[charge]\nrebulk_soc_pct = 60\n'
    )
    assert main(["check-config", "--config", str(cfg)]) == 0
    out = capsys.readouterr()
    assert '"ocv_table"' in out.out
    said = out.err.strip()
    assert said.startswith(f"soc.ocv_table: {table}: header")
    assert "SoC as a fraction (from the header)" in said
    assert "OCV in mV (from the header)" in said
    assert "rows from full to empty (reversed)" in said
    assert "0..100 % -> 2.500..3.650 V" in said


def test_deprecated_staleness_keys_work_and_warn_with_the_new_keys(tmp_path: Path) -> None:
    f = tmp_path / "old.toml"
    f.write_text("[soc]\nstale_s = 15\n[balancing]\nmax_data_age_s = 8\n")
    s = load_settings(f)
    # In force as before: one age for both inputs of each consumer.
    assert s.timeouts.soc_ages_s(s.soc.stale_s) == (15.0, 15.0)
    assert s.timeouts.balancing_ages_s(s.balancing.max_data_age_s) == (8.0, 8.0)
    soc, bal = s.deprecations
    assert soc.startswith(f"{f}: soc.stale_s is deprecated")
    assert "timeouts.cell_voltage_timeout_s and timeouts.current_timeout_s" in soc
    assert "cell voltages up to 15 s old and a current up to 15 s old" in soc
    assert bal.startswith(f"{f}: balancing.max_data_age_s is deprecated")
    assert "timeouts.cell_voltage_timeout_s and timeouts.temperature_timeout_s" in bal
    assert load_settings(None).deprecations == ()


def test_a_deprecated_key_from_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "old.toml"
    f.write_text("[soc]\nstale_s = 15\n")
    monkeypatch.setenv("BMSGW_SOC__STALE_S", "9")
    (text,) = load_settings(f).deprecations
    assert text.startswith("environment BMSGW_SOC__STALE_S: soc.stale_s is deprecated")
    assert "up to 9 s old" in text


def test_the_new_keys_win_over_a_deprecated_key(tmp_path: Path) -> None:
    f = tmp_path / "both.toml"
    f.write_text(
        "[soc]\nstale_s = 15\n[balancing]\nmax_data_age_s = 8\n"
        "[timeouts]\ncurrent_timeout_s = 3\ntemperature_timeout_s = 4\n"
    )
    s = load_settings(f)
    assert s.timeouts.soc_ages_s(s.soc.stale_s) == (5.0, 5.0)
    assert s.timeouts.balancing_ages_s(s.balancing.max_data_age_s) == (5.0, 4.0)
    soc, bal = s.deprecations
    assert soc.startswith(f"{f}: soc.stale_s (=15) is deprecated and ignored")
    assert "timeouts.current_timeout_s is set" in soc
    assert soc.endswith("remove soc.stale_s")
    assert "a temperature older than 4 s" in bal


def test_a_key_no_longer_used_still_loads_and_warns_where_it_was_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "old.toml"
    f.write_text("[soc]\nfull_voltage_margin_v = 0.02\n")
    (text,) = load_settings(f).deprecations
    assert text.startswith(f"{f}: soc.full_voltage_margin_v is no longer used")
    assert text.endswith("remove it")
    monkeypatch.setenv("BMSGW_SOC__FULL_VOLTAGE_MARGIN_V", "0.03")
    (text,) = load_settings(None).deprecations
    assert text.startswith("environment BMSGW_SOC__FULL_VOLTAGE_MARGIN_V: ")


def test_check_config_logs_the_deprecations(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "old.toml"
    f.write_text("[soc]\nstale_s = 15\n")
    with caplog.at_level("WARNING", logger="gateway"):
        assert main(["check-config", "--config", str(f)]) == 0
    assert '"stale_s": 15.0' in capsys.readouterr().out
    said = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(said) == 1
    assert "soc.stale_s" in said[0]
    assert "timeouts.current_timeout_s" in said[0]


_NMC = "soc_pct,ocv_v\n0,3.0\n50,3.7\n100,4.2\n"
_LFP = "soc_pct,ocv_v\n0,2.5\n50,3.3\n100,3.6\n"


@pytest.mark.parametrize(
    ("chemistry", "text", "said"),
    [
        # NMC on the default LFP pack: a rested cell at 4.2 V where the BMS trips at 3.65 V.
        ("lfp", _NMC, "highest OCV (=4.200 V) is above protection.cell_overvoltage_alarm_v"),
        # LFP on an NMC pack: charging to 4.18 V would pass its full (3.6 V) by far.
        ("nmc", _LFP, "OCV at 100 % (=3.600 V) lies more than 0.5 V below limits.cvl_cell_v"),
    ],
)
def test_an_ocv_table_of_another_chemistry_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], chemistry: str, text: str, said: str
) -> None:
    table = tmp_path / "cell.csv"
    table.write_text(text)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[pack]\nchemistry = "{chemistry}"\n[soc]\nocv_table = "{table}"\n')
    assert main(["check-config", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{cfg}: soc.ocv_table: {table}: its " in err[0]
    assert said in err[0]
    assert f"pack.chemistry (={chemistry!r})" in err[0]


def test_the_tables_of_the_right_chemistry_pass_the_cross_check(tmp_path: Path) -> None:
    # The held-out cells' tables (bench/soc_matrix.py writes them, chemistry nmc) and an LFP
    # table reaching the alarm level (3.65 V) exactly.
    fixtures = Path(__file__).parent / "fixtures" / "soc"
    tables = sorted(fixtures.glob("heldout_*_ocv.csv"))
    assert len(tables) == 4
    cfg = tmp_path / "c.toml"
    for table in tables:
        cfg.write_text(f'[pack]\nchemistry = "nmc"\n[soc]\nocv_table = "{table}"\n')
        assert load_settings(cfg).soc.ocv_table == str(table)
    lfp = tmp_path / "lfp.csv"
    lfp.write_text("soc_pct,ocv_v\n0,2.5\n50,3.3\n100,3.65\n")
    cfg.write_text(f'[soc]\nocv_table = "{lfp}"\n')
    assert load_settings(cfg).soc.ocv_table == str(lfp)


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_ocv_table_is_an_error_not_the_built_in_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[soc]\nocv_table = "{value}"\n')
    assert main(["check-config", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"soc.ocv_table (={value!r}) must not be empty: leave it unset" in err
