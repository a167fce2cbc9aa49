"""The Modbus TCP link of the SunSpec client: pymodbus is confined here.

``ModbusLink`` reads and writes holding registers; every pymodbus error becomes
``gateway.errors.ModbusLinkError`` and every exception response ``ModbusExceptionResponse``
(with its code), so nothing above it catches a third-party exception. A cancellation that
pymodbus turned into an error is re-raised as one (``gateway.cancel.raise_if_cancelling``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from gateway.cancel import raise_if_cancelling
from gateway.errors import ModbusLinkError

__all__ = ["ModbusExceptionResponse", "ModbusLink"]

_MAX_READ = 125  # registers per Modbus read request


class ModbusExceptionResponse(ModbusLinkError):
    """The peer answered with a Modbus exception code (the link itself is fine)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class ModbusLink:
    """A thin async Modbus TCP client; pymodbus errors become ``ModbusLinkError``.

    Must be created inside a running event loop (pymodbus' client needs one).
    """

    def __init__(self, host: str, port: int, unit_id: int, timeout_s: float) -> None:
        self.host, self.port, self.unit_id = host, port, unit_id
        self._client = AsyncModbusTcpClient(
            host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0
        )

    async def connect(self) -> None:
        """Open the TCP connection."""
        try:
            ok = await self._client.connect()
        except (ModbusException, OSError) as e:
            raise self._link_error(f"{self.host}:{self.port}: cannot connect: {e}") from None
        if not ok:
            # pymodbus' connect can also answer a cancel with False (wait_for on 3.11).
            raise self._link_error(f"{self.host}:{self.port}: cannot connect")

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._client.close()

    @staticmethod
    def _link_error(message: str) -> ModbusLinkError:
        """The error for a failed call, unless the failure was a cancellation pymodbus turned
        into an error (or into ``connect`` returning False): that is re-raised as one."""
        raise_if_cancelling()
        return ModbusLinkError(message)

    def _check(self, what: str, resp: Any) -> Any:
        if resp.isError():
            code = int(getattr(resp, "exception_code", 0) or 0)
            raise ModbusExceptionResponse(
                f"{self.host}:{self.port}: {what}: exception {code}", code
            )
        return resp

    async def read(self, address: int, count: int) -> list[int]:
        """Read ``count`` holding registers from ``address`` (split into legal requests)."""
        regs: list[int] = []
        while count > 0:
            n = min(count, _MAX_READ)
            try:
                resp = await self._client.read_holding_registers(
                    address, count=n, device_id=self.unit_id
                )
            except (TimeoutError, ModbusException, OSError) as e:
                raise self._link_error(f"{self.host}:{self.port}: read {address}: {e}") from None
            resp = self._check(f"read {address}+{n}", resp)
            got = list(resp.registers)
            if len(got) != n:
                raise ModbusLinkError(f"{self.host}:{self.port}: read {address}: short answer")
            regs.extend(got)
            address += n
            count -= n
        return regs

    async def write(self, address: int, values: Sequence[int]) -> None:
        """Write holding registers from ``address``."""
        try:
            resp = await self._client.write_registers(address, list(values), device_id=self.unit_id)
        except (TimeoutError, ModbusException, OSError) as e:
            raise self._link_error(f"{self.host}:{self.port}: write {address}: {e}") from None
        self._check(f"write {address}", resp)
