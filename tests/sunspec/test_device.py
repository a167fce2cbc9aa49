"""The shared Modbus device helpers: function codes, register writes, the served blocks (pure)."""

from __future__ import annotations

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.pdu import bit_message, register_message

from gateway.sunspec.device import (
    BIT_ACCESS,
    REGISTER_WRITES,
    FunctionCode,
    build_sim_device,
    register_writes,
)


async def _no_action(*_args: object) -> ExcCodes | None:
    return None


@pytest.mark.parametrize(
    ("code", "request_cls"),
    [
        (FunctionCode.READ_COILS, bit_message.ReadCoilsRequest),
        (FunctionCode.READ_DISCRETE_INPUTS, bit_message.ReadDiscreteInputsRequest),
        (FunctionCode.WRITE_SINGLE_COIL, bit_message.WriteSingleCoilRequest),
        (FunctionCode.WRITE_MULTIPLE_COILS, bit_message.WriteMultipleCoilsRequest),
        (FunctionCode.WRITE_SINGLE_REGISTER, register_message.WriteSingleRegisterRequest),
        (FunctionCode.WRITE_MULTIPLE_REGISTERS, register_message.WriteMultipleRegistersRequest),
        (FunctionCode.MASK_WRITE_REGISTER, register_message.MaskWriteRegisterRequest),
        (
            FunctionCode.READ_WRITE_MULTIPLE_REGISTERS,
            register_message.ReadWriteMultipleRegistersRequest,
        ),
    ],
)
def test_function_codes_are_pymodbus_own(code: FunctionCode, request_cls: type) -> None:
    assert request_cls.function_code == code


def test_register_writes_and_bit_access_do_not_overlap() -> None:
    assert not REGISTER_WRITES & BIT_ACCESS
    assert register_message.ReadHoldingRegistersRequest.function_code not in REGISTER_WRITES


WRITABLE = {40100: "CtrlHb", 40101: "AlmRst"}


def test_a_read_or_an_empty_write_is_no_write() -> None:
    assert register_writes(3, 40100, 2, [1, 2], WRITABLE) is None
    assert register_writes(16, 40100, 0, [], WRITABLE) is None
    assert register_writes(16, 40100, 1, None, WRITABLE) is None


def test_writes_come_back_named_in_order() -> None:
    got = register_writes(FunctionCode.WRITE_MULTIPLE_REGISTERS, 40100, 2, [7, 1], WRITABLE)
    assert got == [("CtrlHb", 7), ("AlmRst", 1)]
    single = register_writes(FunctionCode.WRITE_SINGLE_REGISTER, 40101, 1, [0], WRITABLE)
    assert single == [("AlmRst", 0)]


def test_one_register_outside_the_writable_ones_rejects_the_whole_request() -> None:
    got = register_writes(FunctionCode.WRITE_MULTIPLE_REGISTERS, 40100, 3, [1, 1, 1], WRITABLE)
    assert got is ExcCodes.ILLEGAL_ADDRESS


def test_any_writable_key_type_works() -> None:
    by_model = {10: (124, "InWRte"), 11: (124, "OutWRte")}
    got = register_writes(FunctionCode.WRITE_MULTIPLE_REGISTERS, 10, 2, [500, 600], by_model)
    assert got == [((124, "InWRte"), 500), ((124, "OutWRte"), 600)]


def test_sim_device_has_one_block_per_run_of_equal_access() -> None:
    regs = list(range(6))
    device = build_sim_device(1, 100, regs, {102, 103}, _no_action)
    blocks = [(b.address, b.values, b.readonly) for b in device.simdata]
    assert blocks == [(100, [0, 1], True), (102, [2, 3], False), (104, [4, 5], True)]
