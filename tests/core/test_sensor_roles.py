"""Sensor roles: one map (``pack.board_sensors``) that protection, limits, SoC and balancing use.

A balancing board runs hotter than the cells; its sensor must not count as a cell temperature
(derating the limits, raising over-temperature alarms) while balancing still guards the board.
"""

from __future__ import annotations

import pytest

from gateway.core.balancing import BalancingConfig, BalancingPlanner
from gateway.core.limits import LimitsCalculator, LimitsConfig
from gateway.core.model import Severity
from gateway.core.pack import PackConfig
from gateway.core.protection import Protection, ProtectionConfig
from gateway.settings import Settings
from tests.core.packdata import snapshot

CELLS = [3.30, 3.31, 3.30, 3.31]
#: Sensor 2 is on the balancing board at 58 degC; the cells are at 25 degC.
TEMPS = (25.0, 25.0, 58.0)


def _run(pack: PackConfig) -> tuple[bool, float]:
    prot = Protection(ProtectionConfig(debounce_count=1, debounce_s=0.0), pack)
    lim = LimitsCalculator(LimitsConfig(ramp_hold_s=0.0, ramp_a_per_s=1e4), pack)
    alarm = False
    ccl = 0.0
    for k in range(5):
        snap = snapshot(CELLS, TEMPS, current_a=10.0, t_s=float(k))
        report = prot.step(snap, None, float(k))
        alarm = alarm or report.has("charge_overtemperature", Severity.ALARM)
        ccl = lim.step(snap, None, report, float(k)).ccl_a.value
    return alarm, ccl


def test_a_board_sensor_is_not_a_cell_temperature() -> None:
    as_cell = PackConfig(cells=4, temp_sensors=3)
    with_board = PackConfig(cells=4, temp_sensors=3, board_sensors=(2,))
    # Without the map, 58 degC counts as a cell: charge alarm and CCL derated to 0 A.
    assert _run(as_cell) == (True, 0.0)
    # With it, the cells are at 25 degC: no alarm, full charge current.
    assert _run(with_board) == (False, 100.0)


@pytest.mark.parametrize(("board", "hot"), [((2,), True), ((1,), False)])
def test_balancing_guards_the_board_from_the_same_map(board: tuple[int], hot: bool) -> None:
    pack = PackConfig(cells=4, temp_sensors=3, board_sensors=board)
    planner = BalancingPlanner(BalancingConfig(max_board_temp_c=55.0), pack)
    plan = planner.step(snapshot(CELLS, TEMPS, current_a=1.0, t_s=0.0), None, 0.0)
    assert ("board at 58.0" in plan.idle_reason) is hot


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"temp_sensors": 2, "board_sensors": (2,)}, r"pack\.board_sensors \(=\[2\]\)"),
        ({"temp_sensors": 1, "board_sensors": (0,)}, "leaves no cell sensor"),
    ],
)
def test_the_map_is_checked(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PackConfig(cells=4, **kw)  # type: ignore[arg-type]


def test_a_board_sensor_known_to_balancing_alone_is_refused() -> None:
    with pytest.raises(ValueError, match=r"balancing\.board_sensors .* pack\.board_sensors"):
        Settings(
            pack=PackConfig(cells=4, temp_sensors=3),
            balancing=BalancingConfig(board_sensors=(2,)),
        )
