"""SunSpec model 802: a value past its timeout is the point's "not implemented" value.

Read back with pysunspec2 (an independent decoder): a NI point decodes to ``None``.
"""

from __future__ import annotations

import struct

import sunspec2.device as ss_device

from gateway.control import Controller
from gateway.core.model import ControlOutput, Reading, Role
from gateway.core.pack import PackConfig
from gateway.settings import Settings
from gateway.sunspec.maps import BatteryInfo, BatteryMap, LinkState, battery_points


def _read(out: ControlOutput) -> ss_device.Model:
    bmap = BatteryMap(BatteryInfo())
    lay = bmap.battery
    regs = lay.encode(battery_points(out, bmap.info, bmap.sf, LinkState(), lay))
    return ss_device.Model(802, data=struct.pack(f">{len(regs)}H", *regs))


def test_stale_points_are_not_implemented() -> None:
    ctrl = Controller(Settings(pack=PackConfig(cells=4, temp_sensors=1)))

    def feed(t: float, with_current: bool = True) -> None:
        readings = [Reading(Role.CELL_VOLTAGE, i, 3.3, t) for i in range(4)]
        readings.append(Reading(Role.CELL_TEMPERATURE, 0, 20.0, t))
        if with_current:
            readings.append(Reading(Role.PACK_CURRENT, 0, 20.0, t))
        ctrl.ingest(readings)

    feed(100.0)
    live = _read(ctrl.step(100.5))
    assert live.A.cvalue is not None
    assert abs(live.A.cvalue - 20.0) < 0.5
    assert live.W.cvalue is not None
    assert live.CellVMax.cvalue is not None

    # The current stops; the cells keep coming: A and W are unknown, the cells are not.
    for k in range(1, 5):
        feed(100.0 + k, with_current=False)
    no_current = _read(ctrl.step(104.5))
    assert no_current.A.cvalue is None
    assert no_current.W.cvalue is None
    assert no_current.CellVMax.cvalue is not None
    assert no_current.AChaMax.cvalue == 0

    # Everything silent past every timeout: the cell points and the voltage are unknown too.
    silent = _read(ctrl.step(120.0))
    for point in ("A", "W", "V", "CellVMax", "CellVMin", "CellVAvg"):
        assert getattr(silent, point).cvalue is None, point
    assert silent.AChaMax.cvalue == 0
    assert silent.ADisChaMax.cvalue == 0


def test_cell_extremes_of_a_partly_stale_string_are_not_implemented() -> None:
    ctrl = Controller(Settings(pack=PackConfig(cells=4, temp_sensors=1)))
    for k in range(12):
        t = 100.0 + k
        cells = range(4) if k == 0 else range(3)  # cell 3 falls silent after the first second
        readings = [Reading(Role.CELL_VOLTAGE, i, 3.3 + 0.01 * i, t) for i in cells]
        readings += [
            Reading(Role.CELL_TEMPERATURE, 0, 20.0, t),
            Reading(Role.PACK_CURRENT, 0, 5.0, t),
        ]
        ctrl.ingest(readings)
    m = _read(ctrl.step(111.5))
    # Cell 3 is 11.5 s old: the extremes of the other three would be false, so none is given.
    for point in ("CellVMax", "CellVMin", "CellVAvg", "V"):
        assert getattr(m, point).cvalue is None, point
    assert m.A.cvalue is not None  # the current is fresh
    assert m.AChaMax.cvalue == 0
