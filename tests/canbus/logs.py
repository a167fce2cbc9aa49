"""Writing test CAN logs from decoded values: cantools encodes, python-can writes the file."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import can
import cantools

__all__ = ["BmsFrames", "Frame", "write_log"]


@dataclass(frozen=True)
class Frame:
    """One frame to write: log time, id, data."""

    t_s: float
    frame_id: int
    data: bytes
    extended: bool = False


def write_log(path: Path, frames: Iterable[Frame]) -> int:
    """Write ``frames`` with python-can's writer for the suffix (.log, .asc, .blf)."""
    n = 0
    with can.Logger(str(path)) as writer:
        for f in frames:
            writer.on_message_received(
                can.Message(
                    timestamp=f.t_s,
                    arbitration_id=f.frame_id,
                    is_extended_id=f.extended,
                    data=f.data,
                    channel="can0" if path.suffix == ".log" else 0,
                )
            )
            n += 1
    return n


class BmsFrames:
    """Frames of dbc/bms.dbc for a pack with fixed, known values (cell i at 3.300 + i mV)."""

    def __init__(self, dbc: Path, cells: int, sensors: int) -> None:
        self.db: Any = cantools.database.load_file(dbc, strict=True)
        self.cells = cells
        self.sensors = sensors

    def cell_mv(self, i: int) -> int:
        """The voltage of cell ``i`` in mV."""
        return 3300 + i

    def temp_c(self, i: int) -> float:
        """The temperature of sensor ``i``."""
        return round(20.0 + 0.5 * i, 1)

    current_ma = -12_345
    voltage_v = 52.84

    def encode(self, name: str, values: dict[str, float]) -> bytes:
        """Encode one message strictly."""
        return bytes(self.db.get_message_by_name(name).encode(values, strict=True))

    def cycle(self, t_s: float) -> Iterator[Frame]:
        """One full set of frames at ``t_s`` (every cell, sensor, pack values)."""
        for mux in range((self.cells + 3) // 4):
            values: dict[str, float] = {"CellVoltages_Mux": mux}
            for k in range(4):
                i = mux * 4 + k
                values[f"CellVoltage_{i:03d}"] = self.cell_mv(i) if i < self.cells else 0
                values[f"CellVoltage_{i:03d}_invalidFlag"] = 0 if i < self.cells else 1
            yield Frame(t_s, 0x100, self.encode("BMS_CellVoltages", values))
        for mux in range((self.sensors + 3) // 4):
            values = {"CellTemperatures_Mux": mux}
            for k in range(4):
                i = mux * 4 + k
                values[f"CellTemperature_{i:03d}"] = self.temp_c(i) if i < self.sensors else 0
                values[f"CellTemperature_{i:03d}_invalidFlag"] = 0 if i < self.sensors else 1
            yield Frame(t_s, 0x110, self.encode("BMS_CellTemperatures", values))
        yield Frame(
            t_s,
            0x120,
            self.encode(
                "BMS_PackValues",
                {
                    "PackCurrent": self.current_ma,
                    "PackVoltage": self.voltage_v,
                    "PackCurrent_invalidFlag": 0,
                    "PackVoltage_invalidFlag": 0,
                },
            ),
        )
