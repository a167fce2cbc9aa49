"""Configuration that cannot switch the fail-safe off: every such file is refused, with exit 2.

Each bad setting is refused with one line naming the file and the key (both keys for an order
problem), by ``check-config`` and by every command that loads the settings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.cli import main
from tests.conftest import REPO

BAD = [
    ("[sunspec]\nctrl_hb_timeout_s = inf\n", r"sunspec\.ctrl_hb_timeout_s \(=inf\)"),
    ("[timeouts]\ncell_voltage_timeout_s = 1e9\n", r"timeouts\.cell_voltage_timeout_s"),
    ("[timeouts]\ncurrent_timeout_s = nan\n", r"timeouts\.current_timeout_s"),
    (
        "[protection]\nsoc_low_alarm_pct = 10.0\n",
        r"protection\.soc_low_alarm_pct \(=10\.0\) must be below protection\.soc_low_warning_pct",
    ),
    ("[protection]\nsoc_low_warning_pct = 150.0\n", r"protection\.soc_low_warning_pct"),
    ("[protection]\ncharging_threshold_a = -1.0\n", r"protection\.charging_threshold_a"),
    (
        "[protection]\ncell_overvoltage_warning_v = 3.7\n",
        r"protection\.cell_overvoltage_warning_v \(=3\.7\) must be below "
        r"protection\.cell_overvoltage_alarm_v \(=3\.65\)",
    ),
    (
        "[protection]\ncell_overvoltage_alarm_v = 4.7\ncell_overvoltage_warning_v = 4.6\n",
        r"protection\.cell_overvoltage_alarm_v \(=4\.7\) must be below "
        r"plausibility\.cell_voltage_max_v",
    ),
    ("[protection]\nstale_alarm_s = 1e6\n", r"protection\.stale_alarm_s"),
    ("[protection]\nlatching = ['measurement_fault']\n", r"measurement_fault"),
    ("[pack]\ntemp_sensors = 0\n", r"pack\.temp_sensors \(=0\)"),
    ("[limits]\nramp_hold_s = 1e7\n", r"ramp_hold_s"),
    ("[plausibility]\ncell_voltage_min_v = 3.0\ncell_voltage_max_v = 2.0\n", r"cell_voltage_min_v"),
]


@pytest.mark.parametrize(("body", "match"), BAD)
@pytest.mark.parametrize("cmd", ["check-config", "run", "replay"])
def test_a_config_that_defeats_a_safety_function_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, match: str, cmd: str
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    extra = [str(tmp_path / "absent.log")] if cmd == "replay" else []
    assert main([cmd, "--config", str(cfg), *extra]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err
    assert re.search(match, err), err


DBC = """VERSION ""
NS_ :
BS_:
BU_: BMS
BO_ 768 Pack: 8 BMS
 SG_ Cell_000 : 0|16@1+ (0.001,0) [0|6.5] "V" Vector__XXX
 SG_ Temp_000 : 16|8@1- (1,0) [-40|100] "degC" Vector__XXX
 SG_ Current : 24|16@1- (10,0) [-327680|327670] "mA" Vector__XXX
"""


def _profile(tmp_path: Path, current_scale: str) -> Path:
    (tmp_path / "p.dbc").write_text(DBC)
    (tmp_path / "p.toml").write_text(
        f"""name = "p"
dbc = ["p.dbc"]
[[signals]]
role = "cell_voltage"
message = "Pack"
signal = "Cell_{{index:03d}}"
[[signals]]
role = "cell_temperature"
message = "Pack"
signal = "Temp_{{index:03d}}"
[[signals]]
role = "pack_current"
message = "Pack"
signal = "Current"
{current_scale}
"""
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[pack]\ncells = 1\ntemp_sensors = 1\n[can]\nprofile = "{tmp_path / "p.toml"}"\n'
    )
    return cfg


def test_a_unit_the_profile_forgets_to_scale_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _profile(tmp_path, "")  # the current is in mA, the profile forgot scale = 0.001
    assert main(["check-config", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "'Current'" in err
    assert "'mA'" in err
    assert "scale = 0.001" in err
    cfg = _profile(tmp_path, "scale = 0.001")
    assert main(["check-config", "--config", str(cfg)]) == 0


def test_a_threshold_the_dbc_cannot_carry_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _profile(tmp_path, "scale = 0.001")
    # The sensor signal stops at 100 degC: an alarm at 110 degC could never trigger.
    cfg.write_text(
        cfg.read_text() + "[protection]\ndischarge_temp_max_alarm_c = 110.0\n"
        "discharge_temp_max_warning_c = 105.0\n"
    )
    assert main(["check-config", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "protection.discharge_temp_max_alarm_c (=110)" in err
    assert "-40..100" in err


def test_check_config_knows_python_can_interfaces(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BMSGW_CAN__INTERFACE", "sockettcan")
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert "can.interface (='sockettcan')" in err
    assert "socketcan" in err
    monkeypatch.setenv("BMSGW_CAN__INTERFACE", "socketcan")
    assert main(["check-config"]) == 0


def test_run_with_an_unknown_interface_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BMSGW_CAN__INTERFACE", "sockettcan")
    monkeypatch.setenv("BMSGW_STATE__PATH", str(tmp_path / "state.json"))
    assert main(["run"]) == 2


def test_the_unit_does_not_restart_on_a_config_error() -> None:
    unit = (REPO / "systemd" / "bms-gateway.service").read_text()
    assert "RestartPreventExitStatus=2" in unit
    assert "Restart=on-failure" in unit
