"""A user OCV table whose float SoC sits 10 mV below the absorption voltage, in the closed loop:
the Controller, the pack simulator (built-in LFP cells) and a charger obeying CCL and CVL, with a
small steady load. Before session 11 the float voltage was clamped to 3.40 V while the float SoC
stayed 93 %: every float began below its SoC and went straight back to bulk (hundreds of
transitions in 8 simulated hours); now the float SoC is the one 3.40 V holds by that table."""

from __future__ import annotations

import math
from pathlib import Path

from gateway.control import Controller
from gateway.core.model import ChargePhase
from gateway.core.pack import PackConfig
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig

CAP_AH = 10.0
DT_S = 2.0
HIGH_OCV = "soc_pct,ocv_v\n0,2.5\n10,3.2\n80,3.35\n90,3.43\n93,3.44\n100,3.6\n"


def test_a_clamped_float_holds_instead_of_flapping(tmp_path: Path) -> None:
    table = tmp_path / "high.csv"
    table.write_text(HIGH_OCV)
    pack = PackConfig(cells=4, capacity_ah=CAP_AH, chemistry="lfp", temp_sensors=1)
    ctrl = Controller(
        Settings(pack=pack, soc={"ocv_table": str(table)}, charge={"absorption_max_s": 300.0})
    )
    sim_cfg = PackSimConfig(
        cells=4,
        capacity_ah=CAP_AH,
        capacity_spread_pct=0.0,
        initial_soc_pct=70.0,
        initial_soc_spread_pct=0.0,
        temp_sensors=1,
    )
    sim = PackSim(sim_cfg, seed=3)
    r_pack = math.fsum(p.r0_ohm + p.r1_ohm for p in sim.params)
    current, phases = 0.0, []
    for _ in range(round(4 * 3600 / DT_S)):
        t = sim.t_s
        ctrl.ingest(sim.readings(t))
        out = ctrl.step(t)
        sim.set_bleed(out.balancing.bleed)
        lim = out.limits
        cv = current + (lim.cvl_v.value - sim.pack_voltage_v()) / r_pack
        current = max(0.0, min(5.0, lim.ccl_a.value, cv)) - 0.3  # a 0.3 A load
        sim.step(DT_S, current)
        assert out.charge is not None
        phases.append((out.charge.phase, out.charge.reason))
    floated = [i for i, (p, _) in enumerate(phases) if p is ChargePhase.FLOAT]
    assert floated, "never floated"
    after = phases[floated[0] :]
    back = [r for (p, r), (q, _) in zip(after[1:], after, strict=False) if p is not q]
    assert back == [], back  # it stays in float: the pack floats at the SoC 3.40 V holds
