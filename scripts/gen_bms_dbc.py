"""Generate ``dbc/bms.dbc``, the gateway's default message set, with cantools.

Run: ``.venv/bin/python scripts/gen_bms_dbc.py`` (writes dbc/bms.dbc and checks it loads strictly).
The layout is documented in dbc/README.md; change both together.
"""

from __future__ import annotations

from pathlib import Path

import cantools
from cantools.database import Database, Message, Node, Signal
from cantools.database.conversion import BaseConversion

OUT = Path(__file__).resolve().parent.parent / "dbc" / "bms.dbc"

MAX_CELLS = 512
MAX_TEMPS = 256
VOLTS_PER_FRAME = 4
TEMPS_PER_FRAME = 4
FLAGS_PER_FRAME = 56


def sig(
    name: str,
    start: int,
    length: int,
    *,
    signed: bool = False,
    scale: float = 1,
    offset: float = 0,
    minimum: float | None = None,
    maximum: float | None = None,
    unit: str | None = None,
    mux_ids: list[int] | None = None,
    mux_signal: str | None = None,
    is_mux: bool = False,
    receivers: list[str] | None = None,
    comment: str | None = None,
) -> Signal:
    return Signal(
        name=name,
        start=start,
        length=length,
        byte_order="little_endian",
        is_signed=signed,
        conversion=BaseConversion.factory(scale=scale, offset=offset),
        minimum=minimum,
        maximum=maximum,
        unit=unit,
        multiplexer_ids=mux_ids,
        multiplexer_signal=mux_signal,
        is_multiplexer=is_mux,
        receivers=receivers or [],
        comment=comment,
    )


def cell_voltages() -> Message:
    signals = [
        sig(
            "CellVoltages_Mux",
            0,
            8,
            is_mux=True,
            maximum=MAX_CELLS // 4 - 1,
            minimum=0,
            comment="Group of 4 cells: cells 4*mux .. 4*mux+3",
        )
    ]
    for mux in range(MAX_CELLS // VOLTS_PER_FRAME):
        for k in range(VOLTS_PER_FRAME):
            i = mux * VOLTS_PER_FRAME + k
            signals.append(
                sig(
                    f"CellVoltage_{i:03d}",
                    8 + 13 * k,
                    13,
                    unit="mV",
                    minimum=0,
                    maximum=8191,
                    mux_ids=[mux],
                    mux_signal="CellVoltages_Mux",
                    receivers=["GW"],
                )
            )
            signals.append(
                sig(
                    f"CellVoltage_{i:03d}_invalidFlag",
                    60 + k,
                    1,
                    minimum=0,
                    maximum=1,
                    mux_ids=[mux],
                    mux_signal="CellVoltages_Mux",
                    receivers=["GW"],
                )
            )
    return Message(
        frame_id=0x100,
        name="BMS_CellVoltages",
        length=8,
        signals=signals,
        senders=["BMS"],
        cycle_time=100,
        comment="Cell voltages, 4 per frame, 1 mV, up to 512 cells",
    )


def cell_temperatures() -> Message:
    signals = [
        sig(
            "CellTemperatures_Mux",
            0,
            8,
            is_mux=True,
            minimum=0,
            maximum=MAX_TEMPS // TEMPS_PER_FRAME - 1,
            comment="Group of 4 sensors: sensors 4*mux .. 4*mux+3",
        )
    ]
    for mux in range(MAX_TEMPS // TEMPS_PER_FRAME):
        for k in range(TEMPS_PER_FRAME):
            i = mux * TEMPS_PER_FRAME + k
            signals.append(
                sig(
                    f"CellTemperature_{i:03d}",
                    8 + 12 * k,
                    12,
                    signed=True,
                    scale=0.1,
                    unit="degC",
                    minimum=-204.8,
                    maximum=204.7,
                    mux_ids=[mux],
                    mux_signal="CellTemperatures_Mux",
                    receivers=["GW"],
                )
            )
            signals.append(
                sig(
                    f"CellTemperature_{i:03d}_invalidFlag",
                    56 + k,
                    1,
                    minimum=0,
                    maximum=1,
                    mux_ids=[mux],
                    mux_signal="CellTemperatures_Mux",
                    receivers=["GW"],
                )
            )
    return Message(
        frame_id=0x110,
        name="BMS_CellTemperatures",
        length=8,
        signals=signals,
        senders=["BMS"],
        cycle_time=1000,
        comment="Cell temperatures, 4 per frame, 0.1 degC, up to 256 sensors",
    )


def pack_values() -> Message:
    signals = [
        sig(
            "PackCurrent",
            0,
            32,
            signed=True,
            unit="mA",
            minimum=-2147483648,
            maximum=2147483647,
            receivers=["GW"],
            comment="Pack current, positive = charging",
        ),
        sig(
            "PackVoltage",
            32,
            24,
            scale=0.01,
            unit="V",
            minimum=0,
            maximum=167772.15,
            receivers=["GW"],
        ),
        sig("PackCurrent_invalidFlag", 56, 1, minimum=0, maximum=1, receivers=["GW"]),
        sig("PackVoltage_invalidFlag", 57, 1, minimum=0, maximum=1, receivers=["GW"]),
    ]
    return Message(
        frame_id=0x120,
        name="BMS_PackValues",
        length=8,
        signals=signals,
        senders=["BMS"],
        cycle_time=20,
        comment="Pack current (signed 32-bit mA) and pack voltage",
    )


def flag_message(
    frame_id: int, name: str, prefix: str, sender: str, receiver: str, comment: str, cycle_time: int
) -> Message:
    groups = -(-MAX_CELLS // FLAGS_PER_FRAME)
    signals = [
        sig(
            f"{prefix}_Mux",
            0,
            8,
            is_mux=True,
            minimum=0,
            maximum=groups - 1,
            comment=f"Group of {FLAGS_PER_FRAME} cells",
        )
    ]
    for mux in range(groups):
        for k in range(FLAGS_PER_FRAME):
            i = mux * FLAGS_PER_FRAME + k
            if i >= MAX_CELLS:
                break
            signals.append(
                sig(
                    f"{prefix}_{i:03d}",
                    8 + k,
                    1,
                    minimum=0,
                    maximum=1,
                    mux_ids=[mux],
                    mux_signal=f"{prefix}_Mux",
                    receivers=[receiver],
                )
            )
    return Message(
        frame_id=frame_id,
        name=name,
        length=8,
        signals=signals,
        senders=[sender],
        cycle_time=cycle_time,
        comment=comment,
    )


def heartbeat() -> Message:
    signals = [
        sig("Counter", 0, 8, minimum=0, maximum=255, receivers=["BMS"]),
        sig(
            "Mode",
            8,
            4,
            minimum=0,
            maximum=15,
            receivers=["BMS"],
            comment="0 starting, 1 normal, 2 fault, 3 stale",
        ),
        sig(
            "WorstSeverity",
            12,
            2,
            minimum=0,
            maximum=2,
            receivers=["BMS"],
            comment="0 ok, 1 warning, 2 alarm",
        ),
        sig(
            "ChargeLimit", 16, 16, scale=0.1, unit="A", minimum=0, maximum=6553.5, receivers=["BMS"]
        ),
        sig(
            "DischargeLimit",
            32,
            16,
            scale=0.1,
            unit="A",
            minimum=0,
            maximum=6553.5,
            receivers=["BMS"],
        ),
        sig(
            "BalancingCells",
            48,
            10,
            minimum=0,
            maximum=512,
            receivers=["BMS"],
            comment="Number of cells the gateway asks to balance",
        ),
    ]
    return Message(
        frame_id=0x150,
        name="GW_Heartbeat",
        length=8,
        signals=signals,
        senders=["GW"],
        cycle_time=1000,
        comment="Gateway alive and its decision",
    )


def main() -> None:
    messages = [
        cell_voltages(),
        cell_temperatures(),
        pack_values(),
        flag_message(
            0x130,
            "BMS_BalancingStatus",
            "BalancingStatus",
            "BMS",
            "GW",
            "Bleed switches as reported by the cell monitors",
            1000,
        ),
        flag_message(
            0x140,
            "GW_BalancingCommand",
            "BalancingCommand",
            "GW",
            "BMS",
            "Bleed switches requested by the gateway; the BMS stops bleeding when "
            "no command arrives for 5 s",
            1000,
        ),
        heartbeat(),
    ]
    db = Database(messages=messages, nodes=[Node("BMS"), Node("GW")], version="1.0")
    OUT.write_text(db.as_dbc_string(), encoding="utf-8")
    cantools.database.load_file(OUT, strict=True)
    print(f"wrote {OUT} ({len(messages)} messages)")


if __name__ == "__main__":
    main()
