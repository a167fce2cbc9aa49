"""The SunSpec server's connections: allowlist, client cap, timeouts, no coils.

Untrusted clients are bounded before anything is parsed for them: a connection from outside
``allowed_clients`` is closed at once; the owner makes room for a new one at ``max_clients``;
each connection records when it last sent a complete request and since when it holds half a
frame (the owner's ``sweep`` closes the idle ones); requests for coils and discrete inputs are
answered with exception 01 (illegal function) before pymodbus looks at them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import SimDevice

from gateway.sunspec.device import BIT_ACCESS

__all__ = ["ConnectionOwner", "GuardedTcpServer"]

log = logging.getLogger("gateway.sunspec.server")


class ConnectionOwner(Protocol):
    """What the connection handler needs of the server it serves (``SunSpecServer``)."""

    clients: int
    rejected: int
    illegal_function: int
    handlers: set[Any]

    def client_allowed(self, host: str | None) -> bool:
        """Whether a client at ``host`` may connect."""
        ...

    def make_room(self) -> None:
        """Before serving a new connection: close the one idle longest when at the cap."""
        ...


def _make_handler(owner: ConnectionOwner) -> type[ServerRequestHandler]:
    """A request handler that applies the allowlist, the client cap and the timeouts."""

    class _Handler(ServerRequestHandler):
        gw_last_request_s = 0.0  # monotonic time of the last complete request (or connect)
        gw_partial_since_s: float | None = None  # half a frame held since then
        gw_counted = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            peer = transport.get_extra_info("peername")
            host = peer[0] if isinstance(peer, tuple) and peer else None
            if not owner.client_allowed(host):
                owner.rejected += 1
                log.warning("sunspec: connection from %s refused (not in allowed_clients)", host)
                transport.close()
                if self.listener is not None:  # never served: forget it at once
                    self.listener.active_connections.pop(self.unique_id, None)
                return
            owner.make_room()
            owner.clients += 1
            self.gw_counted = True
            self.gw_last_request_s = time.monotonic()
            owner.handlers.add(self)
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.gw_counted:
                owner.clients -= 1
                self.gw_counted = False
            owner.handlers.discard(self)
            super().connection_lost(exc)

        def callback_data(self, data: bytes, addr: tuple[Any, ...] | None = None) -> int:
            used = super().callback_data(data, addr)
            now = time.monotonic()
            if self.last_pdu is not None:
                self.gw_last_request_s = now
            if used < len(data):
                if self.gw_partial_since_s is None:
                    self.gw_partial_since_s = now
            else:
                self.gw_partial_since_s = None
            return used

        async def handle_request(self) -> None:
            pdu = self.last_pdu
            if pdu is not None and pdu.function_code in BIT_ACCESS:
                owner.illegal_function += 1
                response = ExceptionResponse(pdu.function_code, ExcCodes.ILLEGAL_FUNCTION)
                response.transaction_id = pdu.transaction_id
                response.dev_id = pdu.dev_id
                self.server_send(response, self.last_addr)  # type: ignore[no-untyped-call]
                return
            await super().handle_request()  # type: ignore[no-untyped-call]

        def gw_close(self) -> None:
            transport = self.transport
            if transport is not None:
                transport.close()

    return _Handler


class GuardedTcpServer(ModbusTcpServer):
    """pymodbus TCP server whose per-connection handler checks the allowlist."""

    def __init__(
        self, owner: ConnectionOwner, devices: list[SimDevice], address: tuple[str, int]
    ) -> None:
        super().__init__(devices, address=address)
        self._handler_cls = _make_handler(owner)

    def callback_new_connection(self) -> ServerRequestHandler:
        return self._handler_cls(self, self.trace_packet, self.trace_pdu, self.trace_connect)
