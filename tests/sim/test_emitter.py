"""Frames of the simulated pack decode (cantools, dbc/bms.dbc) to the simulated values;
balancing commands set the bleed mask and time out."""

from __future__ import annotations

from collections import Counter
from typing import Any

import can
import cantools
import pytest
from cantools.database import Database

from gateway.errors import ConfigError
from gateway.sim.emitter import FrameRates, PackFrameEmitter, load_bms_dbc
from gateway.sim.pack import PackSim, PackSimConfig
from tests.conftest import BMS_DBC


@pytest.fixture(scope="module")
def db() -> Database:
    loaded = cantools.database.load_file(BMS_DBC, strict=True)
    assert isinstance(loaded, Database)
    return loaded


def _decode(db: Database, msg: can.Message) -> dict[str, Any]:
    decoded = db.decode_message(msg.arbitration_id, bytes(msg.data), decode_choices=False)
    assert isinstance(decoded, dict)
    return decoded


def _command(db: Database, mux: int, cells: set[int]) -> can.Message:
    """A GW_BalancingCommand frame as the gateway would encode it."""
    msg_def = db.get_message_by_name("GW_BalancingCommand")
    data = {"BalancingCommand_Mux": mux}
    for k in range(mux * 56, min(mux * 56 + 56, 512)):
        data[f"BalancingCommand_{k:03d}"] = int(k in cells)
    return can.Message(
        arbitration_id=msg_def.frame_id, data=msg_def.encode(data), is_extended_id=False
    )


def test_frames_decode_to_the_simulated_values(db: Database) -> None:
    sim = PackSim(PackSimConfig(cells=18, chemistry="nmc", initial_soc_spread_pct=10), seed=3)
    sim.set_bleed([k in (2, 17) for k in range(18)])
    sim.run(120.0, 1.0, -37.5)
    frames = PackFrameEmitter(sim, channel="can0").all_frames(sim.t_s)
    volts: dict[int, float] = {}
    flags: dict[int, int] = {}
    temps: dict[int, float] = {}
    status: dict[int, int] = {}
    pack: dict[str, Any] = {}
    for msg in frames:
        assert msg.timestamp == sim.t_s
        assert msg.channel == "can0"
        d = _decode(db, msg)
        for name, value in d.items():
            if name.startswith("CellVoltage_") and name.endswith("_invalidFlag"):
                flags[int(name[12:15])] = value
            elif name.startswith("CellVoltage_"):
                volts[int(name[12:15])] = value
            elif name.startswith("CellTemperature_") and not name.endswith("Flag"):
                temps[int(name[16:19])] = value
            elif name.startswith("BalancingStatus_") and name != "BalancingStatus_Mux":
                status[int(name[16:19])] = value
            elif name.startswith("Pack"):
                pack[name] = value
    true_v = sim.cell_voltages_v()
    assert sorted(volts) == list(range(20))  # 5 frames of 4; 18 and 19 do not exist
    for k in range(18):
        assert abs(volts[k] - true_v[k] * 1000.0) <= 0.5  # 1 mV resolution, rounded
        assert flags[k] == 0
    assert flags[18] == flags[19] == 1
    assert pack["PackCurrent"] == -37500
    assert pack["PackVoltage"] == pytest.approx(sim.pack_voltage_v(), abs=0.005)
    assert pack["PackCurrent_invalidFlag"] == pack["PackVoltage_invalidFlag"] == 0
    sensed_t = sim.sensed_temperatures_c()
    for k, t in enumerate(sensed_t):
        assert temps[k] == pytest.approx(t, abs=0.05 + 1e-9)
    assert [k for k, v in status.items() if v] == [2, 17]


def test_values_the_signal_cannot_carry_are_sent_invalid(db: Database) -> None:
    # A monitor offset of +-10 V sigma puts some readings outside 0..8191 mV.
    sim = PackSim(PackSimConfig(cells=16, voltage_offset_spread_mv=10_000.0), seed=1)
    sensed_mv = [round(v * 1000) for v in sim.sensed_cell_voltages_v()]
    out_of_range = {k for k, mv in enumerate(sensed_mv) if not 0 <= mv <= 8191}
    assert out_of_range  # the seed gives some
    emitter = PackFrameEmitter(sim)
    flagged = set()
    for _msg_def, data in emitter.cell_voltage_signals():
        for name, value in data.items():
            if name.endswith("_invalidFlag") and value:
                flagged.add(int(name[12:15]))
    assert flagged == out_of_range


def test_frames_come_at_the_configured_rates() -> None:
    sim = PackSim(PackSimConfig(cells=16), seed=1)
    emitter = PackFrameEmitter(sim)
    counts: Counter[int] = Counter()
    stamps: dict[int, list[float]] = {}
    for _ in range(100):  # 2 s in 20 ms steps
        sim.step(0.02, 10.0)
        for msg in emitter.frames_due(sim.t_s):
            counts[msg.arbitration_id] += 1
            stamps.setdefault(msg.arbitration_id, []).append(msg.timestamp)
    # In 0..2 s inclusive: pack values every 20 ms (101), 4 voltage frames every 100 ms (21
    # bursts), one temperature frame (4 sensors) and one status frame every second.
    assert counts == {0x120: 101, 0x100: 84, 0x110: 3, 0x130: 3}
    assert stamps[0x110] == pytest.approx([0.0, 1.0, 2.0])
    assert emitter.stats.frames_emitted == 191

    slow = PackFrameEmitter(PackSim(PackSimConfig(cells=4), seed=1), rates=FrameRates().scaled(0.1))
    # A tenth of the rates: in 0..1.999 s pack values at 0, 0.2, ... 1.8 s, voltages at 0 and
    # 1 s, temperatures and status once.
    assert Counter(m.arbitration_id for m in slow.frames_due(1.999)) == {
        0x120: 10,
        0x100: 2,
        0x110: 1,
        0x130: 1,
    }
    disabled = PackFrameEmitter(
        PackSim(PackSimConfig(cells=4), seed=1), rates=FrameRates(pack_values_s=None)
    )
    assert 0x120 not in {m.arbitration_id for m in disabled.frames_due(5.0)}
    with pytest.raises(ValueError, match=r"balancing_status_s \(=0"):
        FrameRates(balancing_status_s=0.0)
    with pytest.raises(ValueError, match="rate"):
        FrameRates().scaled(-1.0)


def test_balancing_command_sets_the_mask_and_times_out(db: Database) -> None:
    sim = PackSim(PackSimConfig(cells=60), seed=1)
    emitter = PackFrameEmitter(sim)
    assert emitter.handle_frame(_command(db, 0, {1, 4}), now_s=100.0)
    assert emitter.handle_frame(_command(db, 1, {57}), now_s=101.0)
    assert [k for k, on in enumerate(sim.bleed_mask) if on] == [1, 4, 57]
    emitter.expire(104.9)
    assert sum(sim.bleed_mask) == 3
    assert emitter.handle_frame(_command(db, 0, {1}), now_s=104.0)  # refresh, cell 4 off
    emitter.expire(105.5)  # group 0 was refreshed at 104, group 1 is 4.5 s old
    assert [k for k, on in enumerate(sim.bleed_mask) if on] == [1, 57]
    emitter.expire(106.5)  # group 1: 5.5 s without a command
    assert [k for k, on in enumerate(sim.bleed_mask) if on] == [1]
    emitter.expire(109.5)
    assert not any(sim.bleed_mask)
    stats = emitter.stats
    assert stats.commands_applied == 3
    assert stats.command_timeouts == 2
    assert stats.command_errors == 0
    # The status frame reports what the simulator now does.
    sim.set_bleed([k == 59 for k in range(60)])
    decoded = [_decode(db, m) for m in emitter.all_frames(0.0) if m.arbitration_id == 0x130]
    on = [n for d in decoded for n, v in d.items() if v and not n.endswith("_Mux")]
    assert on == ["BalancingStatus_059"]


def test_bad_command_frames_are_counted_not_raised(db: Database) -> None:
    sim = PackSim(PackSimConfig(cells=16), seed=1)
    emitter = PackFrameEmitter(sim)
    good = _command(db, 0, {3})
    truncated = can.Message(arbitration_id=0x140, data=bytes(good.data)[:5], is_extended_id=False)
    unknown_mux = can.Message(
        arbitration_id=0x140, data=bytes([77] + [0] * 7), is_extended_id=False
    )
    beyond = _command(db, 2, {120})  # cell 120 of a 16-cell pack
    other = can.Message(arbitration_id=0x150, data=bytes(8), is_extended_id=False)
    assert not emitter.handle_frame(truncated, 0.0)
    assert not emitter.handle_frame(unknown_mux, 0.0)
    assert not emitter.handle_frame(beyond, 0.0)
    assert not emitter.handle_frame(other, 0.0)  # not a command: ignored, not an error
    stats = emitter.stats
    assert stats.command_errors == 3
    assert stats.last_command_error is not None
    assert "beyond 16 cells" in stats.last_command_error
    assert not any(sim.bleed_mask)
    assert emitter.handle_frame(good, 0.0)
    assert sim.bleed_mask[3]


def test_dbc_errors_name_the_file(tmp_path: Any) -> None:
    bad = tmp_path / "bad.dbc"
    bad.write_text("garbage\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.dbc: not a valid DBC"):
        load_bms_dbc(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_bms_dbc(tmp_path / "missing.dbc")
    empty = tmp_path / "empty.dbc"
    empty.write_text('VERSION ""\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="BMS_CellVoltages"):
        PackFrameEmitter(PackSim(seed=1), db=load_bms_dbc(empty))


def test_readings_match_what_the_frames_carry(db: Database) -> None:
    sim = PackSim(PackSimConfig(cells=9, voltage_noise_mv=0.0), seed=2)
    sim.set_bleed([k == 4 for k in range(9)])
    sim.run(30.0, 1.0, 21.234)
    via_can: dict[tuple[str, int], float] = {}
    for msg in PackFrameEmitter(sim).all_frames(sim.t_s):
        for name, value in _decode(db, msg).items():
            if name.endswith(("_Mux", "_invalidFlag")):
                continue
            if name.startswith("CellVoltage_"):
                via_can["cell_voltage", int(name[12:])] = value / 1000.0
            elif name.startswith("CellTemperature_"):
                via_can["cell_temperature", int(name[16:])] = value
            elif name.startswith("BalancingStatus_"):
                via_can["balancing_status", int(name[16:])] = value
            elif name == "PackCurrent":
                via_can["pack_current", 0] = value / 1000.0
            elif name == "PackVoltage":
                via_can["pack_voltage", 0] = value
    readings = sim.readings()
    assert len(readings) == 9 + 3 + 2 + 9
    for r in readings:
        assert r.t_s == sim.t_s
        assert r.value == pytest.approx(via_can[r.role.value, r.index], abs=1e-9)
