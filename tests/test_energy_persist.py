"""Energy counters persist with the estimator state: a restart resumes them, never lowers them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.control import Controller
from gateway.core.model import ControlOutput
from gateway.core.pack import PackConfig
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.state_store import load_state, save_state


def _run(ctrl: Controller, sim: PackSim, seconds: int, current_a: float) -> ControlOutput:
    out = None
    for _ in range(seconds):
        sim.step(1.0, current_a)
        ctrl.ingest(sim.readings())
        out = ctrl.step(sim.t_s)
    assert out is not None
    return out


def test_counters_survive_a_restart_through_the_state_file(tmp_path: Path) -> None:
    sim = PackSim(PackSimConfig(cells=16, initial_soc_pct=50.0), seed=2)
    ctrl = Controller(Settings())
    _run(ctrl, sim, 600, current_a=20.0)
    out = _run(ctrl, sim, 600, current_a=-30.0)
    assert out.energy is not None
    assert out.energy.charged_kwh > 0.05
    assert out.energy.discharged_kwh > 0.05
    state = ctrl.export_state()
    assert state is not None
    path = tmp_path / "estimator.json"
    save_state(path, state)

    again = Controller(Settings())
    loaded = load_state(path)
    assert loaded is not None
    again.restore_state(loaded)
    first = _run(again, sim, 1, current_a=10.0)
    assert first.energy is not None
    # The first step after a restart has no previous sample: nothing is added, nothing lost.
    assert first.energy.charged_kwh == pytest.approx(out.energy.charged_kwh, abs=1e-12)
    assert first.energy.discharged_kwh == pytest.approx(out.energy.discharged_kwh, abs=1e-12)
    later = _run(again, sim, 60, current_a=10.0)
    assert later.energy is not None
    assert later.energy.charged_kwh > first.energy.charged_kwh


def test_counters_are_kept_when_the_estimator_state_is_of_another_pack(tmp_path: Path) -> None:
    sim = PackSim(PackSimConfig(cells=16, initial_soc_pct=50.0), seed=2)
    ctrl = Controller(Settings())
    out = _run(ctrl, sim, 300, current_a=40.0)
    state = ctrl.export_state()
    assert state is not None
    assert out.energy is not None
    other = Controller(Settings(pack=PackConfig(cells=15)))
    with pytest.raises(ValueError, match="cell count"):
        other.restore_state(state)
    assert other.energy.report == out.energy
