"""check-config says back the value behind each unset key the chemistry decides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config_report import chemistry_defaults
from gateway.core.charge_config import FLOAT_SOC_DEFAULTS
from gateway.core.chemistry import get_chemistry
from gateway.settings import load_settings


def _check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    f = tmp_path / "c.toml"
    f.write_text(text)
    assert main(["check-config", "--config", str(f), "--defaults"]) == 0
    out = capsys.readouterr()
    json.loads(out.out)  # stdout stays the settings as JSON
    said = [line.strip().partition(" = ") for line in out.err.splitlines() if " = " in line]
    return {key: value for key, _, value in said}


def test_unset_keys_are_said_back_with_the_chemistry_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    said = _check(tmp_path, '[pack]\ncells = 4\nchemistry = "lfp"\n', capsys)
    settings = load_settings(None)
    tables = settings.limits.tables(settings.pack)
    assert float(said["charge.float_soc_pct"]) == FLOAT_SOC_DEFAULTS["lfp"]
    assert float(said["limits.cvl_cell_v"]) == tables.cvl_cell_v
    th = settings.protection.resolve(settings.pack)
    assert float(said["protection.cell_overvoltage_alarm_v"]) == th.cell_overvoltage_alarm_v
    ocv_v = get_chemistry("lfp").ocv_voltage(FLOAT_SOC_DEFAULTS["lfp"])
    assert float(said["charge.float_cell_v"]) == pytest.approx(ocv_v, abs=1e-5)


def test_keys_the_user_set_are_not_listed_and_others_follow_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        '[pack]\ncells = 14\nchemistry = "nmc"\n[charge]\nfloat_soc_pct = 90\n'
        "[protection]\ncell_overvoltage_alarm_v = 4.22\n"
    )
    said = _check(tmp_path, text, capsys)
    assert "charge.float_soc_pct" not in said
    assert "protection.cell_overvoltage_alarm_v" not in said
    assert "protection.cell_overvoltage_warning_v" in said
    # The float voltage in force follows the user's float SoC (NMC table at 90 %).
    assert float(said["charge.float_cell_v"]) == pytest.approx(
        get_chemistry("nmc").ocv_voltage(90.0), abs=1e-5
    )


def test_without_the_flag_nothing_is_added(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[pack]\ncells = 4\n")
    assert main(["check-config", "--config", str(f)]) == 0
    assert "defaults in force" not in capsys.readouterr().err  # scripts read stdout, logs stderr


def test_everything_set_lists_nothing(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[charge]\nfloat_cell_v = 3.35\nfloat_soc_pct = 92\n")
    lines = chemistry_defaults(load_settings(f))
    assert not [x for x in lines if x.startswith("charge.")]
    assert any(x.startswith("limits.cvl_cell_v") for x in lines)


def test_the_raised_float_is_listed_where_it_applies(tmp_path: Path) -> None:
    # The pack floats at 94.2 % for float_raise_days after a deep night; --defaults said only 93.
    f = tmp_path / "c.toml"
    f.write_text('[pack]\nchemistry = "lfp"\n')
    (line,) = [x for x in chemistry_defaults(load_settings(f)) if "float_raise_days" in x]
    assert line.startswith("charge.float_raise_days = 14: float_soc_pct 94.18, float_cell_v 3.31")
    assert line.endswith("for that long after the SoC fell below 7 %")
    f.write_text('[pack]\nchemistry = "nmc"\n')  # NMC's default float is above its raised SoC
    assert not [x for x in chemistry_defaults(load_settings(f)) if "float_raise_days" in x]
    f.write_text('[pack]\nchemistry = "lfp"\n[charge]\nfloat_raise_days = 0\n')
    assert not [x for x in chemistry_defaults(load_settings(f)) if "float_raise_days" in x]
