"""Finding a SunSpec map on a Modbus device: ``SunS``, then the model headers.

``scan_map`` looks for the ``SunS`` marker at each candidate base address and walks the model
headers (ID, L) to the end model; ``scan`` picks the storage-control model (124 or 702) the
client drives. The register layout of a model comes from pysunspec2 (``gateway.sunspec.maps``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.errors import ModbusLinkError
from gateway.sunspec.maps import END_MODEL_ID, SUNS_MARKER, ModelLayout
from gateway.sunspec.modbus_link import ModbusExceptionResponse, ModbusLink

__all__ = ["InverterModel", "SunSpecMap", "scan", "scan_map"]

_MAX_MODELS = 64  # a map with more models than this is broken (or a loop)


@dataclass(frozen=True, slots=True)
class InverterModel:
    """Where the storage-control model sits in the inverter's map."""

    base: int  # address of "SunS"
    model_id: int  # 124 or 702
    address: int  # address of the model's ID register
    length: int  # the model's L
    models: tuple[int, ...]  # every model id found, in order


@dataclass(frozen=True, slots=True)
class SunSpecMap:
    """What a scan found: the base address and every model's (address, L), in order."""

    base: int
    models: tuple[tuple[int, int, int], ...]  # (model id, address of its ID register, L)

    def find(self, model_id: int) -> tuple[int, int] | None:
        """(address, L) of the first model ``model_id``, if present."""
        return next(((a, n) for m, a, n in self.models if m == model_id), None)


async def scan_map(link: ModbusLink, bases: Sequence[int]) -> SunSpecMap:
    """Find ``SunS`` at one of ``bases`` and walk the model headers to the end model.

    Raises:
        ModbusLinkError: no SunSpec map at any base, or the link failed.
    """
    base = None
    for b in bases:
        try:
            if tuple(await link.read(b, 2)) == SUNS_MARKER:
                base = b
                break
        except ModbusExceptionResponse:
            continue  # nothing mapped there: try the next base
    if base is None:
        raise ModbusLinkError(f"no SunSpec map (SunS) at {', '.join(map(str, bases))}")
    models: list[tuple[int, int, int]] = []
    addr = base + 2
    for _ in range(_MAX_MODELS):
        mid, length = await link.read(addr, 2)
        if mid == END_MODEL_ID:
            break
        models.append((mid, addr, length))
        addr += 2 + length
        if addr > 0xFFFF:
            break
    return SunSpecMap(base, tuple(models))


async def scan(link: ModbusLink, bases: Sequence[int], prefer: int = 124) -> InverterModel:
    """Find the inverter's storage-control model (``prefer``, else the other of 124/702).

    Raises:
        ModbusLinkError: no SunSpec map, or neither model 124 nor 702.
    """
    found = await scan_map(link, bases)
    for mid in (prefer, 702 if prefer == 124 else 124):
        hit = found.find(mid)
        if hit is not None:
            address, length = hit
            need = ModelLayout.from_definition(mid).length
            if length < need:
                raise ModbusLinkError(f"model {mid} at {address}: L={length}, {need} expected")
            return InverterModel(
                found.base, mid, address, length, tuple(m for m, _a, _n in found.models)
            )
    ids = [m for m, _a, _n in found.models]
    raise ModbusLinkError(f"no storage control model (124 or 702) among {ids}")
