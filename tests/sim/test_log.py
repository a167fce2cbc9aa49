"""``sim-log``: a candump log of the simulator that python-can reads back and cantools decodes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import can
import cantools
import pytest
from cantools.database import Database

from gateway.cli import main
from gateway.errors import ConfigError
from gateway.sim.log import simulate_to_log, write_sim_log
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sim.profiles import ConstantProfile, guard_current, guarded
from tests.conftest import BMS_DBC


def test_log_reads_back_and_decodes(tmp_path: Path) -> None:
    out = tmp_path / "sim.log"
    assert write_sim_log(out, cells=16, hours=0.02, seed=3, chemistry="lfp") == 0  # 72 s
    first = out.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("(0.000000) can0 100#")
    db = cantools.database.load_file(BMS_DBC, strict=True)
    assert isinstance(db, Database)
    messages = list(can.LogReader(out))
    counts = Counter(m.arbitration_id for m in messages)
    # 0..72 s: 3601 pack frames, 721 bursts of 4 voltage frames, 73 s of one temperature
    # frame (4 sensors) and one status frame.
    assert counts == {0x120: 3601, 0x100: 4 * 721, 0x110: 73, 0x130: 73}
    stamps = [m.timestamp for m in messages]
    assert stamps == sorted(stamps)
    assert stamps[-1] == pytest.approx(72.0)
    # Every pack frame is written at its own 20 ms slot (none bunched to a step's end).
    pack_stamps = [m.timestamp for m in messages if m.arbitration_id == 0x120]
    assert pack_stamps == pytest.approx([k * 0.02 for k in range(3601)], abs=1e-6)
    for m in messages:
        decoded = db.decode_message(m.arbitration_id, bytes(m.data))
        assert isinstance(decoded, dict)
        for name, value in decoded.items():
            if name.startswith("CellVoltage_") and not name.endswith("Flag"):
                assert isinstance(value, int)
                assert 2500 <= value <= 3650  # LFP cell window in mV
            if name.endswith("_invalidFlag"):
                assert value == 0


def test_same_seed_same_log(tmp_path: Path) -> None:
    logs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        out = tmp_path / f"{name}.log"
        write_sim_log(out, cells=4, hours=0.005, seed=seed, chemistry="nmc")
        logs.append(out.read_bytes())
    assert logs[0] == logs[1]
    assert logs[0] != logs[2]


def test_rate_and_current_source(tmp_path: Path) -> None:
    out = tmp_path / "slow.log"
    summary = simulate_to_log(
        out,
        config=PackSimConfig(cells=4, initial_soc_spread_pct=0.0, self_discharge_pct_per_day=0),
        hours=0.1,
        seed=1,
        rate=0.1,
        current_source=ConstantProfile(-20.0),
    )
    counts = Counter(m.arbitration_id for m in can.LogReader(out))
    assert counts[0x120] == 1801  # every 200 ms for 360 s
    assert summary.frames == sum(counts.values())
    # 20 A for 0.1 h out of ~100 Ah cells: about 2 % each.
    assert all(48.0 - 0.2 < s < 48.0 + 0.2 for s in summary.final_soc_pct)


def test_guard_tapers_near_the_limits() -> None:
    sim = PackSim(PackSimConfig(cells=2, initial_soc_pct=100.0, initial_soc_spread_pct=0), seed=1)
    assert guard_current(sim, 50.0) == 0.0
    assert guard_current(sim, -50.0) == -50.0
    sim.set_soc_pct([0.0, 40.0])
    assert guard_current(sim, -50.0) == 0.0
    assert guard_current(sim, 50.0) == 50.0
    assert guarded(sim, ConstantProfile(-7.0))(0.0) == 0.0


def test_bad_arguments_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cells \(=0\)"):
        write_sim_log(tmp_path / "x.log", cells=0, hours=1.0, seed=1, chemistry="lfp")
    with pytest.raises(ConfigError, match=r"hours \(=-1"):
        write_sim_log(tmp_path / "x.log", cells=4, hours=-1.0, seed=1, chemistry="lfp")
    with pytest.raises(ConfigError, match="rate"):
        write_sim_log(tmp_path / "x.log", cells=4, hours=1.0, seed=1, chemistry="lfp", rate=0)


def test_cli_sim_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.log"
    assert main(["sim-log", "--cells", "8", "--hours", "0.002", "--out", str(out)]) == 0
    assert sum(1 for _ in can.LogReader(out)) > 0
    with pytest.raises(SystemExit) as e:  # a usage error naming the option
        main(["sim-log", "--cells", "600", "--hours", "0.002", "--out", str(out)])
    assert e.value.code == 2
    assert "argument --cells: 600 must be within 1..512" in capsys.readouterr().err
    missing_dir = tmp_path / "no" / "such" / "dir.log"
    assert main(["sim-log", "--cells", "8", "--hours", "0.002", "--out", str(missing_dir)]) == 1
    assert "cannot write log" in capsys.readouterr().err


def test_cli_sim_log_simulates_the_configs_pack(tmp_path: Path) -> None:
    # sim-log --config takes the pack from the config, so replay with the same config reads the
    # log back as a complete, plausible data set (it used to simulate 16 LFP cells regardless).
    import json

    cfg = tmp_path / "site.toml"
    cfg.write_text('[pack]\ncells = 4\ntemp_sensors = 2\nchemistry = "nmc"\n')
    log_path, rec_path = tmp_path / "c4.log", tmp_path / "c4.jsonl"
    assert main(["sim-log", "--config", str(cfg), "--hours", "0.005", "--out", str(log_path)]) == 0
    assert main(["replay", str(log_path), "--config", str(cfg), "--out", str(rec_path)]) == 0
    last = json.loads(rec_path.read_text().splitlines()[-1])
    assert len(last["cells"]) == 4
    assert len(last["temps_c"]) == 2
    assert None not in last["temps_c"]
    assert last["complete"] is True
    assert last["faults"] == []
    assert last["alarms"] == []
