"""When frames go out: the period, an immediate send on a cut, HV polls; and ``--tx-out``."""

from __future__ import annotations

from pathlib import Path

import can
import pytest

from gateway.canbus.decode import OutFrame
from gateway.cli import main
from gateway.inverter_can.config import InverterCanConfig, InverterProtocol
from gateway.inverter_can.frames import PROFILES, BatteryIdentity, InverterOutput
from gateway.sim.can_inverter import decode_frame
from gateway.sim.log import write_sim_log
from tests.inverter_can.outputs import output

IDENT = BatteryIdentity(capacity_ah=100.0)


def _ids(frames: list[OutFrame]) -> list[int]:
    return [f.arbitration_id for f in frames]


def _limits(frames: list[OutFrame], hv: bool = False) -> dict[str, float]:
    fid = 0x4220 if hv else 0x351
    return decode_frame(hv, fid, next(f.data for f in frames if f.arbitration_id == fid))


def test_profile_every_period_and_cut_at_once() -> None:
    io = InverterOutput(InverterCanConfig(protocol=InverterProtocol.PYLON, period_s=1.0), IDENT)
    first = io.step(output(t_s=0.0, ccl_a=80.0))
    assert len(first) == len(PROFILES[InverterProtocol.PYLON])
    assert io.step(output(t_s=0.1, ccl_a=80.0)) == []  # nothing changed, not due
    assert io.step(output(t_s=0.2, ccl_a=90.0)) == []  # a rise waits for the period
    cut = io.step(output(t_s=0.3, ccl_a=10.0))
    assert _ids(cut) == [0x351, 0x35C]
    assert _limits(cut)["ccl_a"] == pytest.approx(10.0)
    assert io.step(output(t_s=0.4, ccl_a=50.0)) == []
    assert io.step(output(t_s=0.5, ccl_a=20.0)) == []  # above what the inverter heard (10 A)
    assert io.step(output(t_s=0.6, ccl_a=10.0, dcl_a=0.0)) != []  # DCL cut
    due = io.step(output(t_s=1.0, ccl_a=50.0))
    assert len(due) == len(PROFILES[InverterProtocol.PYLON])
    assert _limits(due)["ccl_a"] == pytest.approx(50.0)
    assert io.cuts == 2


def test_enable_flag_drop_is_sent_at_once() -> None:
    io = InverterOutput(InverterCanConfig(protocol=InverterProtocol.SMA), IDENT)
    io.step(output(t_s=0.0))
    frames = io.step(output(t_s=0.1, ccl_a=0.0, dcl_a=0.0))
    req = decode_frame(False, 0x35C, next(f.data for f in frames if f.arbitration_id == 0x35C))
    assert (req["charge_enable"], req["discharge_enable"]) == (0, 0)


def test_hv_answers_polls_and_broadcasts_only_without_them() -> None:
    cfg = InverterCanConfig(protocol=InverterProtocol.PYLON_HV, period_s=1.0)
    io = InverterOutput(cfg, IDENT)
    assert io.answer() == []  # nothing to say before the first step
    assert len(io.step(output(t_s=0.0))) == len(PROFILES[InverterProtocol.PYLON_HV])
    answer = io.answer()
    assert _ids(answer) == list(range(0x4210, 0x42A0, 0x10))
    assert all(f.extended for f in answer)
    assert io.step(output(t_s=1.0)) == []  # polled recently: no broadcast
    cut = io.step(output(t_s=1.1, ccl_a=0.0))
    assert _ids(cut) == [0x4220, 0x4280]
    assert _limits(cut, hv=True)["ccl_a"] == 0.0
    assert len(io.step(output(t_s=3.0))) == len(PROFILES[InverterProtocol.PYLON_HV])  # no polls


def test_replay_tx_out_writes_inverter_and_balancing_frames(tmp_path: Path) -> None:
    log = tmp_path / "pack.log"
    write_sim_log(log, cells=16, hours=0.02, seed=1, chemistry="lfp", rate=0.2)
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[inverter_can]\nprotocol = "victron"\nchannel = "can1"\n', encoding="utf-8")
    tx = tmp_path / "tx.log"
    rc = main(["replay", str(log), "--config", str(cfg), "--out", str(tmp_path / "r.jsonl"),
               "--tx-out", str(tx)])  # fmt: skip
    assert rc == 0
    msgs = list(can.CanutilsLogReader(tx))
    inverter = [m for m in msgs if m.channel == "can1"]
    bms = [m for m in msgs if m.channel == "bms0"]
    ids = {m.arbitration_id for m in inverter}
    assert {0x351, 0x355, 0x356, 0x35A, 0x35C, 0x373, 0x379} <= ids
    assert {m.arbitration_id for m in bms} == {0x140, 0x150}  # balancing command, heartbeat
    limits = [m for m in inverter if m.arbitration_id == 0x351]
    times = [m.timestamp for m in limits]
    assert times == sorted(times)
    assert len(limits) >= 60
    assert all(decode_frame(False, 0x351, bytes(m.data))["cvl_v"] > 40 for m in limits)


def test_replay_tx_out_with_a_missing_log_writes_nothing(tmp_path: Path) -> None:
    tx = tmp_path / "tx.log"
    rc = main(["replay", str(tmp_path / "missing.log"), "--tx-out", str(tx)])
    assert rc == 1
    assert not tx.exists()


def test_a_stalled_step_clock_does_not_burst() -> None:
    io = InverterOutput(InverterCanConfig(protocol=InverterProtocol.PYLON, period_s=1.0), IDENT)
    assert io.step(output(t_s=0.0)) != []
    assert io.step(output(t_s=3.5)) != []  # three periods late: one send, not three
    assert io.step(output(t_s=3.6)) == []
    assert io.step(output(t_s=4.4)) == []
    assert io.step(output(t_s=4.5)) != []


def test_demo_settings_for_a_battery_can_inverter(tmp_path: Path) -> None:
    from gateway.demo import demo_settings
    from gateway.settings import Settings

    s = demo_settings(
        Settings(), channel="c", modbus_port=1, mqtt_port=2, state_dir=tmp_path, inverter="sma"
    )
    assert s.inverter_can.protocol is InverterProtocol.SMA
    assert s.inverter_can.channel == "c-inv"
    assert s.sunspec.mode == "off"
    s = demo_settings(Settings(), channel="c", modbus_port=1, mqtt_port=2, state_dir=tmp_path)
    assert s.sunspec.mode == "server"
    assert s.inverter_can.protocol is InverterProtocol.OFF


def test_a_higher_dvl_is_a_cut() -> None:
    import dataclasses

    from tests.mqtt.outputs import limit

    io = InverterOutput(InverterCanConfig(protocol=InverterProtocol.PYLON), IDENT)
    base = output(t_s=0.0)
    io.step(base)

    def with_dvl(t_s: float, dvl: float):  # type: ignore[no-untyped-def]
        out = output(t_s=t_s)
        return dataclasses.replace(
            out, limits=dataclasses.replace(out.limits, dvl_v=limit(dvl, "test", test=dvl))
        )

    assert io.step(with_dvl(0.1, base.limits.dvl_v.value - 1.0)) == []  # lower DVL: a rise
    assert _ids(io.step(with_dvl(0.2, base.limits.dvl_v.value + 2.0))) == [0x351, 0x35C]


def test_the_control_step_carries_the_requests_to_mqtt() -> None:
    from gateway.control import Controller
    from gateway.mqtt.payloads import state_payload
    from gateway.settings import Settings

    out = Controller(Settings()).step(0.0)  # no data yet: 0 A both ways
    assert out.requests is not None
    assert not out.requests.charge_enable
    assert not out.requests.discharge_enable
    payload = state_payload(out, "bms1", None)
    assert payload.requests is not None
    assert payload.requests.charge_enable is False
    assert payload.requests.force_charge is False


def test_hv_system_information_answers_command_2() -> None:
    ident = BatteryIdentity(capacity_ah=50.0, cells=96, nominal_cell_v=3.2, modules=4)
    io = InverterOutput(InverterCanConfig(protocol=InverterProtocol.PYLON_HV), ident)
    frames = io.answer(2)  # static: answered before any step
    assert _ids(frames) == [0x7310, 0x7320, 0x7330, 0x7340]
    info = decode_frame(True, 0x7320, next(f.data for f in frames if f.arbitration_id == 0x7320))
    assert info == {
        "series_cells": 96,
        "modules": 4,
        "cells_per_module": 24,
        "voltage_level_v": 307,
        "capacity_ah": 50,
    }
    name = b"".join(f.data for f in frames if f.arbitration_id in (0x7330, 0x7340))
    assert name.rstrip(b"\0") == b"bms-gateway"
    assert io.answer(7) == []  # unknown command: no answer
