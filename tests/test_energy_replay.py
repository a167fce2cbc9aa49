"""Energy counters against the integral of the replayed current times voltage (within 0.5 %).

A simulated home-storage day (charge from PV, discharge in the evening) is written as a candump
log; the replay runs it through the controller (one step per second of log time), and the test
integrates the same log on its own: every decoded pack current times the latest pack voltage,
held until the next current frame. Both counters must agree within 0.5 %.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.canbus.config import CanConfig
from gateway.canbus.decode import load_decoder
from gateway.core.model import Role
from gateway.core.pack import PackConfig
from gateway.replay import iter_log, replay
from gateway.settings import Settings
from gateway.sim.log import simulate_to_log
from gateway.sim.pack import PackSimConfig
from gateway.sim.profiles import HomeStorageProfile


def _integral_kwh(log: Path) -> tuple[float, float]:
    decoder = load_decoder(CanConfig())
    charged = discharged = 0.0
    i = v = None
    t_i = 0.0
    for f in iter_log(log):
        if not decoder.handles(f.frame_id, f.extended):
            continue
        for r in decoder.decode(f.frame_id, f.data, f.t_s, f.extended):
            if r.role is Role.PACK_VOLTAGE:
                v = r.value
            elif r.role is Role.PACK_CURRENT:
                if i is not None and v is not None:
                    e = i * v * (r.t_s - t_i)
                    charged += max(e, 0.0)
                    discharged += max(-e, 0.0)
                i, t_i = r.value, r.t_s
    return charged / 3.6e6, discharged / 3.6e6


@pytest.mark.slow
def test_replayed_energy_matches_the_integral_of_current_times_voltage(tmp_path: Path) -> None:
    cfg = PackSimConfig(cells=16, initial_soc_pct=30.0)
    log = tmp_path / "day.log"
    # 06:00 to 12:00 of a home-storage day: the morning load, then PV with clouds and pulses.
    day = HomeStorageProfile(capacity_ah=cfg.capacity_ah, seed=5, start_hour=6.0)
    simulate_to_log(log, config=cfg, hours=6.0, seed=5, rate=0.05, step_s=1.0, current_source=day)
    want_charged, want_discharged = _integral_kwh(log)
    assert want_charged > 0.5
    assert want_discharged > 0.5
    settings = Settings(pack=PackConfig(cells=16, temp_sensors=cfg.temp_sensor_count))
    records = list(replay(settings, log))
    last = records[-1]
    assert last["energy_charged_kwh"] == pytest.approx(want_charged, rel=0.005)
    assert last["energy_discharged_kwh"] == pytest.approx(want_discharged, rel=0.005)
