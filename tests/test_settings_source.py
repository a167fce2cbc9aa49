"""Config errors name where the bad value was set: the file, the variable, or both; for a
field's own check, a cross-check, and an error found after loading (control core, OCV table)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.errors import ConfigError
from gateway.settings import load_settings


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in [k for k in os.environ if k.upper().startswith("BMSGW_")]:
        monkeypatch.delenv(key)
    f = tmp_path / "e.toml"
    f.write_text("[pack]\ncells = 16\n")
    return f


def _check_config(config: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["check-config", "--config", str(config)]) == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_a_cross_check_found_after_loading_names_the_variable(
    empty: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BMSGW_CHARGE__FLOAT_CELL_V", "3.5")
    assert _check_config(empty, capsys).startswith(
        "config error: environment BMSGW_CHARGE__FLOAT_CELL_V: charge.float_cell_v (=3.5 V"
    )


def test_a_cross_check_of_a_file_key_and_a_variable_names_both(
    empty: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty.write_text("[limits]\ncvl_cell_v = 3.4\n")
    monkeypatch.setenv("BMSGW_CHARGE__FLOAT_CELL_V", "3.42")
    assert _check_config(empty, capsys).startswith(
        f"config error: {empty} + environment BMSGW_CHARGE__FLOAT_CELL_V: charge.float_cell_v"
    )


def test_a_cross_check_of_file_keys_names_the_file(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty.write_text("[charge]\nfloat_cell_v = 3.5\n")
    assert _check_config(empty, capsys).startswith(f"config error: {empty}: charge.float_cell_v")


def test_a_bad_ocv_table_named_by_a_variable_names_the_variable(
    empty: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    table = empty.parent / "t_nan.csv"
    table.write_text("0,nan\n100,3.6\n")
    monkeypatch.setenv("BMSGW_SOC__OCV_TABLE", str(table))
    assert _check_config(empty, capsys).startswith(
        "config error: environment BMSGW_SOC__OCV_TABLE: soc.ocv_table: "
    )


def test_a_section_check_names_the_variable(empty: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A model validator of one section words its keys without the section.
    monkeypatch.setenv("BMSGW_SOC__RESISTANCE_FACTOR_MIN", "30")
    with pytest.raises(ConfigError) as e:
        load_settings(empty)
    assert str(e.value).startswith(
        "environment BMSGW_SOC__RESISTANCE_FACTOR_MIN: soc: resistance_factor_min (=30.0)"
    )


def test_a_field_error_names_the_variable_or_the_file(
    empty: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty.write_text("[soc]\nrest_s = -1\n")
    with pytest.raises(ConfigError, match=rf"^{empty}: soc\.rest_s \(=-1\)"):
        load_settings(empty)
    empty.write_text("[pack]\ncells = 16\n")
    monkeypatch.setenv("BMSGW_SOC__REST_S", "abc")
    with pytest.raises(
        ConfigError, match=r"^environment BMSGW_SOC__REST_S: soc\.rest_s \(='abc'\)"
    ):
        load_settings(empty)


def test_an_unknown_key_in_the_file_names_the_file(
    empty: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty.write_text("[pack]\ncels = 16\n")
    monkeypatch.setenv("BMSGW_PACK__CELLS", "8")
    with pytest.raises(ConfigError, match=rf"^{empty}: pack\.cels: unknown setting"):
        load_settings(empty)
