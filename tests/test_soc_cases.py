"""Field case ``restored-soc-on-plateau`` (../shared/cases): a restored SoC a rest contradicts.

The gateway restarts with an estimator state it wrote itself (LFP, cells 86..95 %) while the
pack rests at 0 A with every cell at 3.20 V (about 27 %: it was discharged while the gateway was
down). The rest voltage contradicts the restored SoC far beyond what the LFP plateau and the OCV
hysteresis can explain, so the first rest recalibration (``soc.rest_s`` = 900 s) replaces it.
The 30 s log is run through the real decoder and controller, repeated with shifted timestamps
to make a 930 s rest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.canbus.decode import load_decoder
from gateway.control import Controller
from gateway.core.model import SocReport
from gateway.replay import iter_log
from gateway.settings import load_settings
from gateway.state_store import load_state

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
CASE = SHARED / "cases" / "restored-soc-on-plateau"


@pytest.fixture
def case_dir() -> Path:
    if not (CASE / "rest.log").is_file():
        pytest.skip(f"field case not found at {CASE} (it lives in ../shared/cases)")
    return CASE


def _run(case: Path, restore: bool, until_s: float) -> dict[float, SocReport]:
    """The SoC report by seconds since the start, with or without the saved state."""
    settings = load_settings(case / "config.toml")
    decoder = load_decoder(settings.can)
    ctrl = Controller(settings)
    if restore:
        state = load_state(case / "state_saved.json")
        assert state is not None
        ctrl.restore_state(state)
    frames = list(iter_log(case / "rest.log"))
    t0 = frames[0].t_s
    span = frames[-1].t_s - t0 + 0.2
    out: dict[float, SocReport] = {}
    next_step = 1.0
    rep = 0
    while next_step <= until_s:
        for f in frames:
            t = f.t_s - t0 + rep * span
            while t >= next_step:
                soc = ctrl.step(t0 + next_step).soc
                if soc is not None:
                    out[next_step] = soc
                next_step += 1.0
            readings = decoder.decode(f.frame_id, f.data, t0 + t, f.extended)
            ctrl.ingest(readings)
        rep += 1
    return out


def test_restored_soc_is_corrected_at_the_first_rest_recalibration(case_dir: Path) -> None:
    fresh = _run(case_dir, restore=False, until_s=60.0)
    restored = _run(case_dir, restore=True, until_s=930.0)
    # A fresh start reads the rest voltage: about 27 %.
    assert fresh[60.0].soc_pct == pytest.approx(27.0, abs=4.0)
    # The restore is in place: the cells it claimed to know within 17 % (2 and 3) are
    # contradicted by the first voltage at once; cells 0 and 1 (restored sigma 50 %, 86 and
    # 92 %) are not contradicted beyond 3 sigma and keep their SoC until the rest has lasted
    # rest_s ...
    first = restored[1.0].cells
    assert first[0].soc_pct > 80.0
    assert first[1].soc_pct > 80.0
    assert restored[899.0].cells[0].soc_pct > 80.0
    # ... then the first rest recalibration corrects them: about 27 %, within a few points.
    late = restored[920.0]
    assert late.soc_pct == pytest.approx(27.0, abs=4.0)
    for cell in late.cells:
        assert cell.soc_pct == pytest.approx(27.0, abs=4.0)
        # Honest sigma: the rest voltage on LFP's low end, with hysteresis, is worth a few %.
        assert 0.5 < cell.soc_sigma_pct < 5.0
