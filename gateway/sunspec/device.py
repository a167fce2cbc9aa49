"""A pymodbus ``SimDevice`` serving a register list, and the writes a client asks of it.

Shared by the SunSpec server (``gateway.sunspec.server``) and the inverter simulator
(``gateway.sim.inverter``): both serve a list of registers from a base address and check a
client's writes in pymodbus' action callback, which runs before a write is applied.

The Modbus function codes are named once here (``FunctionCode``; Modbus Application Protocol
Specification V1.1b3, section 6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any, TypeVar, cast

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from gateway.errors import ModbusLinkError

__all__ = [
    "BIT_ACCESS",
    "REGISTER_WRITES",
    "FunctionCode",
    "adopt_registers",
    "build_sim_device",
    "other_units",
    "register_writes",
]

T = TypeVar("T")


class FunctionCode(IntEnum):
    """The Modbus function codes the gateway's servers tell apart."""

    READ_COILS = 1
    READ_DISCRETE_INPUTS = 2
    WRITE_SINGLE_COIL = 5
    WRITE_SINGLE_REGISTER = 6
    WRITE_MULTIPLE_COILS = 15
    WRITE_MULTIPLE_REGISTERS = 16
    MASK_WRITE_REGISTER = 22
    READ_WRITE_MULTIPLE_REGISTERS = 23


REGISTER_WRITES: frozenset[int] = frozenset(
    {
        FunctionCode.WRITE_SINGLE_REGISTER,
        FunctionCode.WRITE_MULTIPLE_REGISTERS,
        FunctionCode.MASK_WRITE_REGISTER,
        FunctionCode.READ_WRITE_MULTIPLE_REGISTERS,
    }
)
"""Function codes that write holding registers."""

BIT_ACCESS: frozenset[int] = frozenset(
    {
        FunctionCode.READ_COILS,
        FunctionCode.READ_DISCRETE_INPUTS,
        FunctionCode.WRITE_SINGLE_COIL,
        FunctionCode.WRITE_MULTIPLE_COILS,
    }
)
"""Function codes on coils and discrete inputs (SunSpec has none)."""


def register_writes(
    function_code: int,
    address: int,
    count: int,
    set_values: Sequence[int] | Sequence[bool] | None,
    writable: Mapping[int, T],
) -> list[tuple[T, int]] | ExcCodes | None:
    """The register writes of one request, as ``(writable[address], value)`` in order.

    Args:
        function_code, address, count, set_values: what pymodbus passes the action callback.
        writable: what each writable register address stands for (a point name, say).

    Returns:
        ``None`` when the request writes no register (a read, or nothing to write);
        ``ExcCodes.ILLEGAL_ADDRESS`` when one of its registers is not in ``writable``; else the
        writes, each value as an ``int``.
    """
    if function_code not in REGISTER_WRITES or not set_values:
        return None
    writes: list[tuple[T, int]] = []
    for i in range(count):
        what = writable.get(address + i)
        if what is None:
            return ExcCodes.ILLEGAL_ADDRESS
        writes.append((what, int(set_values[i])))
    return writes


def build_sim_device(
    unit_id: int, base: int, regs: list[int], writable: set[int], action: SimAction
) -> SimDevice:
    """A pymodbus ``SimDevice`` holding ``regs`` from ``base``; only ``writable`` accept writes.

    One ``SimData`` block per run of equal access, so pymodbus itself answers exception 02 to a
    write on a read-only register; addresses outside the blocks are invalid (also 02).
    """
    blocks: list[SimData] = []
    start = 0
    for i in range(1, len(regs) + 1):
        if i == len(regs) or ((base + i) in writable) != ((base + start) in writable):
            blocks.append(
                SimData(
                    address=base + start,
                    values=list(regs[start:i]),
                    datatype=DataType.REGISTERS,
                    readonly=(base + start) not in writable,
                )
            )
            start = i
    return SimDevice(id=unit_id, simdata=blocks, action=action)


def adopt_registers(server: ModbusTcpServer, unit_id: int, base: int, regs: list[int]) -> list[int]:
    """The register list pymodbus serves ``unit_id`` from, filled with ``regs``.

    Later updates go straight into it (one slice assignment = one consistent step for readers).

    Raises:
        ModbusLinkError: pymodbus' datastore is not laid out as 3.16's is.
    """
    try:
        context: Any = server.context
        runtime: Any = context.devices[unit_id]
        start, _n, served, _flags = runtime.block["x"]
    except (AttributeError, KeyError, ValueError) as e:  # pymodbus internals moved
        raise ModbusLinkError(f"unsupported pymodbus datastore layout ({e})") from None
    if start != base or len(served) < len(regs):
        raise ModbusLinkError(
            f"datastore starts at {start} ({len(served)} registers), map at {base}"
        )
    served[: len(regs)] = regs
    return cast(list[int], served)


async def _no_such_unit(
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    current_registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    return ExcCodes.GATEWAY_NO_RESPONSE


def other_units() -> SimDevice:
    """Device 0, which pymodbus uses for every unit id it has no device for.

    Without it pymodbus logs a traceback and answers 04 to a request for another unit id; with
    it the answer is 0B (gateway target failed to respond), the usual "no such unit" code.
    """
    return SimDevice(
        id=0,
        simdata=[SimData(address=0, count=0xFFFF, datatype=DataType.REGISTERS)],
        action=_no_such_unit,
    )
