"""Scenario from a replayed simulator log: a cell monitor frame stops, the limits go to 0 A.

The simulator writes a candump log with ``gateway.sim.log.simulate_to_log`` (frames encoded with
cantools per ``dbc/bms.dbc``); the log is read back with ``gateway.replay.iter_log`` and decoded
with the shipped ``bms`` profile, exactly as a replay would. After five minutes the voltage frame
carrying cells 4..7 is dropped from the stream, as when a cell monitor stops answering.
"""

from __future__ import annotations

from pathlib import Path

from gateway.canbus.config import CanConfig
from gateway.canbus.decode import load_decoder
from gateway.core.freshness import TimeoutsConfig
from gateway.core.limits import LimitsCalculator, LimitsConfig
from gateway.core.model import Reading, Role, Severity
from gateway.core.pack import PackConfig, PackState
from gateway.core.protection import Protection, ProtectionConfig
from gateway.replay import iter_log
from gateway.sim.log import simulate_to_log
from gateway.sim.pack import PackSimConfig


def test_replayed_log_with_a_silent_cell_monitor(tmp_path: Path) -> None:
    sim_cfg = PackSimConfig(cells=16, initial_soc_pct=60.0)
    log = tmp_path / "pack.log"
    simulate_to_log(
        log, config=sim_cfg, hours=0.2, seed=3, rate=0.2, current_source=lambda t: -30.0
    )
    decoder = load_decoder(CanConfig())
    pack = PackConfig(cells=16, temp_sensors=sim_cfg.temp_sensor_count)
    state = PackState(pack)
    timeouts = TimeoutsConfig()
    timeout_s = timeouts.cell_voltage_timeout_s
    protection = Protection(ProtectionConfig(), pack, timeouts)
    limits = LimitsCalculator(LimitsConfig(ramp_hold_s=5.0), pack, timeouts)

    frames = list(iter_log(log))
    t0 = frames[0].t_s
    silent_from = t0 + 300.0
    last_cell4: float | None = None
    next_step = t0 + 0.1
    results = []
    for f in frames:
        while f.t_s >= next_step:  # a control step every 100 ms of log time
            snap = state.snapshot(next_step)
            alarms = protection.step(snap, None, next_step)
            results.append((next_step, alarms, limits.step(snap, None, alarms, next_step)))
            next_step += 0.1
        if not decoder.handles(f.frame_id, f.extended):
            continue
        readings: list[Reading] = decoder.decode(f.frame_id, f.data, f.t_s, f.extended)
        carries_cell4 = any(r.role is Role.CELL_VOLTAGE and r.index == 4 for r in readings)
        if carries_cell4 and f.t_s >= silent_from:
            continue  # the monitor of cells 4..7 is silent from here on
        if carries_cell4:
            last_cell4 = f.t_s
        state.apply_all(readings)

    assert last_cell4 is not None
    before = [r for r in results if r[0] - t0 > 60.0 and r[0] < last_cell4]
    assert before
    assert all(lim.dcl_a.value > 0.0 for _, _, lim in before)
    after = [r for r in results if r[0] - last_cell4 > timeout_s + 1e-6]
    assert after
    for _, _, lim in after:
        assert lim.ccl_a.value == 0.0
        assert lim.dcl_a.value == 0.0
        assert lim.dcl_a.winner == "stale:cell_voltage[5]"
    # The first step past the timeout already cuts: no debounce on the fail-safe, and the same
    # step already warns (one timeouts section for both).
    first = after[0]
    assert first[0] - last_cell4 < timeout_s + 0.1 + 1e-6
    assert first[1].has("stale_data", Severity.WARNING)
    assert after[-1][1].has("stale_data", Severity.ALARM)
    assert "cell_voltage[5] and 3 more" in after[-1][1].active[0].message
