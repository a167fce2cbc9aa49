"""SunSpec server mode: the gateway is the battery (model 802); an inverter polls it.

pymodbus 3.16 serves a ``SimDevice`` whose registers are the ``BatteryMap`` image. Its async
action callback runs before a client's write is applied: that is where CtrlHb, AlmRst, SetOp and
SetInvState are checked and acted on (overriding ``setValues`` in a datablock is never called in
3.16). Read-only points are flagged ``readonly`` in the ``SimData`` blocks, so pymodbus itself
answers exception 02 to a write there; addresses outside the map are invalid (also 02). The
device and the write check are shared with the inverter simulator (``gateway.sunspec.device``).

Untrusted clients are bounded before anything is parsed for them: at most ``max_clients``
connections (a new one replaces the one idle longest), a connection without a complete request
for ``idle_timeout_s`` or holding half a frame for ``frame_timeout_s`` is closed, requests for
coils and discrete inputs (FC 1, 2, 5, 15) are answered with exception 01 (illegal function),
and pymodbus' per-request error logs (a traceback each) become one line a minute
(``gateway.logflood``). The per-connection handler is in ``gateway.sunspec.connections``.

Writable points: CtrlHb, AlmRst (1 = ``ResetAlarms`` through ``on_command``, reads back 0),
SetOp (remote mode only: DISCONNECT publishes 0 A both ways until CONNECT) and SetInvState
(recorded). The definitions' other writable points (model 1 DA, 802 SocRsvMax/SoCRsvMin) are not
implemented here and read-only, so writes there get exception 02 too. Requests for another unit
id get exception 0B.

``update`` replaces every register of the map in one slice assignment on the event loop thread,
so a request (served on the same loop) sees one control step or the next, never a mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from pymodbus.constants import ExcCodes
from pymodbus.simulator import SimDevice

from gateway.core.model import (
    Command,
    CommandResult,
    ControlOutput,
    InverterLink,
    Negotiation,
    ResetAlarms,
)
from gateway.errors import ModbusLinkError
from gateway.logflood import install_flood_filter
from gateway.sunspec.config import SunSpecConfig
from gateway.sunspec.connections import GuardedTcpServer
from gateway.sunspec.device import (
    BIT_ACCESS,
    adopt_registers,
    build_sim_device,
    other_units,
    register_writes,
)
from gateway.sunspec.model802 import WRITABLE_802, BatteryInfo, BatteryMap, LinkState

__all__ = ["CommandHandler", "ControllerHeartbeat", "SunSpecServer"]

log = logging.getLogger(__name__)

CommandHandler = Callable[[Command], CommandResult]
"""Applies a command from the Modbus side (e.g. ``ResetAlarms``) and says whether it did."""

_HB_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class ControllerHeartbeat:
    """The storage controller's heartbeat (CtrlHb) as the server sees it."""

    seen: bool  # CtrlHb written at least once
    value: int | None
    age_s: float | None  # since it last changed
    lost: bool  # seen, then unchanged for longer than the timeout
    timeout_s: float
    losses: int = 0  # times it was lost since start


class SunSpecServer:
    """SunSpec model 802 server on pymodbus.

    Args:
        config: the ``sunspec`` settings section.
        info: static battery description (ratings, names) for models 1 and 802; by default
            ``BatteryInfo.from_config(config)`` (a 16-cell 100 Ah LFP pack, 100 A both ways).
        on_command: called with ``ResetAlarms`` when a client writes AlmRst = 1.
        clock: monotonic seconds for Hb and the CtrlHb timeout. The controller on the other end
            runs in real time, so keep the default unless it shares this clock (an accelerated
            clock shrinks the CtrlHb timeout to ``ctrl_hb_timeout_s / speed`` real seconds).
    """

    def __init__(
        self,
        config: SunSpecConfig,
        *,
        info: BatteryInfo | None = None,
        on_command: CommandHandler | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.map = BatteryMap(info or BatteryInfo.from_config(config), base=config.base_address)
        self._on_command = on_command
        self._clock = clock
        self._networks = [ipaddress.ip_network(a, strict=False) for a in config.allowed_clients]
        self._out: ControlOutput | None = None
        self._hb = 0
        self._next_hb_s = math.inf  # ``clock`` time of the next Hb count (set by ``run``)
        self._ctrl_hb: int | None = None
        self._ctrl_hb_changed_s = 0.0
        self._ctrl_hb_lost = False
        self._ctrl_hb_losses = 0
        self._ctrl_hb_logged_s = -math.inf
        self._set_op: int | None = None
        self._set_inv_state: int | None = None
        self._disconnect = False
        self._regs: list[int] = self.map.image(None, self._link())
        self._server: GuardedTcpServer | None = None
        self.clients = 0
        self.rejected = 0
        self.evicted = 0  # connections closed to make room for a new one (max_clients)
        self.timed_out = 0  # connections closed for idling or holding half a frame
        self.illegal_function = 0  # FC 1/2/5/15 requests answered with exception 01
        self.handlers: set[Any] = set()  # the served connections (pymodbus request handlers)
        self.bound_port: int | None = None
        self.started = asyncio.Event()
        self._writable = {
            self.map.address(n): n for n in WRITABLE_802
        }  # all writable points are one register

    # --- the gateway side --------------------------------------------------------------------

    def update(self, out: ControlOutput) -> None:
        """Publish one control step (call on the event loop thread)."""
        self._out = out
        self._render()

    def negotiation(self) -> Negotiation:
        """What the server currently offers the inverter (``accepted`` = what it publishes).

        ``connected``: a Modbus client is connected. A lost controller heartbeat or a remote
        DISCONNECT shows as ``accepted`` = 0 A (what the registers say), so a current that still
        flows counts as the inverter disobeying, and as ``link_hold``, so the limits hold 0 A
        too and come back through the ramp once the heartbeat or CONNECT returns.
        """
        out = self._out
        req_c = out.limits.ccl_a.value if out is not None else 0.0
        req_d = out.limits.dcl_a.value if out is not None else 0.0
        blocked = out is None or self._ctrl_hb_lost or self._disconnect
        hold = None
        if self._ctrl_hb_lost:
            hold = "controller_heartbeat_lost"
        elif self._disconnect:
            hold = "setop_disconnect"
        return Negotiation(
            link=InverterLink.SERVER,
            connected=self.clients > 0,
            requested_ccl_a=req_c,
            requested_dcl_a=req_d,
            accepted_ccl_a=0.0 if blocked else req_c,
            accepted_dcl_a=0.0 if blocked else req_d,
            link_hold=hold,
        )

    def controller_heartbeat(self) -> ControllerHeartbeat:
        """The controller heartbeat state, for MQTT and the report."""
        seen = self._ctrl_hb is not None
        return ControllerHeartbeat(
            seen=seen,
            value=self._ctrl_hb,
            age_s=(self._clock() - self._ctrl_hb_changed_s) if seen else None,
            lost=self._ctrl_hb_lost,
            timeout_s=self.config.ctrl_hb_timeout_s,
            losses=self._ctrl_hb_losses,
        )

    def client_allowed(self, host: str | None) -> bool:
        """Whether a client at ``host`` may connect."""
        if not self._networks:
            return True
        if host is None:
            return False
        try:
            addr = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self._networks)

    def make_room(self) -> None:
        """Before serving a new connection: close the one idle longest when at ``max_clients``."""
        while len(self.handlers) >= self.config.max_clients:
            oldest = min(self.handlers, key=lambda h: h.gw_last_request_s)
            self.handlers.discard(oldest)
            self.evicted += 1
            log.warning(
                "sunspec: %d connections (max_clients); closing the one idle longest",
                self.config.max_clients,
            )
            oldest.gw_close()

    def sweep(self, now_s: float) -> None:
        """Close connections idle past ``idle_timeout_s`` or half a frame past ``frame_timeout_s``.

        ``now_s`` is ``time.monotonic()`` (the handlers' clock), whatever ``clock`` is.
        """
        cfg = self.config
        for h in list(self.handlers):
            partial = h.gw_partial_since_s
            if partial is not None and now_s - partial > cfg.frame_timeout_s:
                why = f"half a request frame for {cfg.frame_timeout_s:g} s"
            elif now_s - h.gw_last_request_s > cfg.idle_timeout_s:
                why = f"no request for {cfg.idle_timeout_s:g} s"
            else:
                continue
            self.handlers.discard(h)
            self.timed_out += 1
            log.debug("sunspec: closing a connection: %s", why)
            h.gw_close()

    # --- internals ---------------------------------------------------------------------------

    def tick(self) -> None:
        """Count Hb up once per whole second of ``clock`` since the last count, run the CtrlHb
        watchdog, and close idle connections.

        ``run`` calls it every 0.25 s (or a fifth of ``ctrl_hb_timeout_s``); a test that injects
        ``clock`` calls it after moving the clock, so nothing depends on the wall clock.
        """
        now_s = self._clock()
        changed = False
        while now_s >= self._next_hb_s:
            self._hb = (self._hb + 1) & 0xFFFF
            self._next_hb_s += 1.0
            changed = True
        self._check_ctrl_hb(now_s)
        if changed:
            self._render()
        self.sweep(time.monotonic())

    def _link(self) -> LinkState:
        return LinkState(
            hb=self._hb,
            ctrl_hb=self._ctrl_hb,
            ctrl_hb_lost=self._ctrl_hb_lost,
            remote=self.config.control == "remote",
            disconnect=self._disconnect,
            set_op=self._set_op,
            set_inv_state=self._set_inv_state,
        )

    def _render(self) -> None:
        image = self.map.image(self._out, self._link())
        # One slice assignment: atomic with respect to request handling on this loop.
        self._regs[: len(image)] = image

    def _check_ctrl_hb(self, now_s: float) -> None:
        if self._ctrl_hb is None or self._ctrl_hb_lost:
            return
        if now_s - self._ctrl_hb_changed_s > self.config.ctrl_hb_timeout_s:
            self._ctrl_hb_lost = True
            self._ctrl_hb_losses += 1
            # A flapping heartbeat logs its first loss, then one line a minute at most.
            quiet = now_s - self._ctrl_hb_logged_s < _HB_LOG_INTERVAL_S
            if not quiet:
                self._ctrl_hb_logged_s = now_s
            log.log(
                logging.DEBUG if quiet else logging.WARNING,
                "sunspec: controller heartbeat (CtrlHb) unchanged for more than %.1f s; "
                "publishing 0 A charge and discharge (loss %d)",
                self.config.ctrl_hb_timeout_s,
                self._ctrl_hb_losses,
            )
            self._render()

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus calls this before serving a request; for writes, before applying them."""
        if function_code in BIT_ACCESS:  # the handler answers these first; kept regardless
            return ExcCodes.ILLEGAL_FUNCTION
        # Read-only flags reject writes outside ``_writable`` first; checked here regardless.
        writes = register_writes(function_code, address, count, set_values, self._writable)
        if writes is None or isinstance(writes, ExcCodes):
            return writes
        # Validate everything before acting on anything.
        sym = self.map.battery.points
        for name, value in writes:
            if name == "AlmRst" and value not in (0, 1):
                return ExcCodes.ILLEGAL_VALUE
            if name == "SetOp":
                if self.config.control != "remote":
                    return ExcCodes.ILLEGAL_VALUE
                if value not in sym["SetOp"].symbols.values():
                    return ExcCodes.ILLEGAL_VALUE
            if name == "SetInvState" and value not in sym["SetInvState"].symbols.values():
                return ExcCodes.ILLEGAL_VALUE
        now_s = self._clock()
        for i, (name, value) in enumerate(writes):
            if name == "CtrlHb":
                self._on_ctrl_hb(value, now_s)
            elif name == "AlmRst" and value == 1:
                result = self._command(ResetAlarms(source="modbus"))
                if not result.accepted:
                    log.warning("sunspec: AlmRst rejected: %s", result.message)
                    return ExcCodes.DEVICE_FAILURE
                cast(list[int], set_values)[i] = 0  # reads back 0 once the reset is done
            elif name == "SetOp":
                self._set_op = value
                self._disconnect = value == sym["SetOp"].symbols["DISCONNECT"]
                log.info(
                    "sunspec: SetOp %s by the controller",
                    "DISCONNECT" if self._disconnect else "CONNECT",
                )
            elif name == "SetInvState":
                self._set_inv_state = value
        self._render()
        return None

    def _on_ctrl_hb(self, value: int, now_s: float) -> None:
        if value == self._ctrl_hb:
            return
        if self._ctrl_hb is None:
            log.info("sunspec: controller heartbeat (CtrlHb) seen; watching it")
        self._ctrl_hb = value
        self._ctrl_hb_changed_s = now_s
        if self._ctrl_hb_lost:
            self._ctrl_hb_lost = False
            quiet = now_s - self._ctrl_hb_logged_s < _HB_LOG_INTERVAL_S and self._ctrl_hb_losses > 1
            log.log(
                logging.DEBUG if quiet else logging.INFO,
                "sunspec: controller heartbeat (CtrlHb) back; limits restored",
            )

    def _command(self, cmd: Command) -> CommandResult:
        if self._on_command is None:
            return CommandResult(False, "no command handler")
        return self._on_command(cmd)

    def _device(self) -> SimDevice:
        writable = {a for a, _n in self.map.writable()}
        return build_sim_device(
            self.config.unit_id, self.map.base, self._regs, writable, self._action
        )

    async def run(self) -> None:
        """Serve until cancelled; Hb counts seconds and the CtrlHb watchdog runs meanwhile.

        Raises:
            ModbusLinkError: the address cannot be bound (in use, or port < 1024 without
                CAP_NET_BIND_SERVICE).
        """
        cfg = self.config
        flood = install_flood_filter("pymodbus.logging", "pymodbus")
        devices = [self._device()]
        if cfg.unit_id != 0:
            devices.append(other_units())
        server = GuardedTcpServer(self, devices, (cfg.host, cfg.port))
        self._regs = adopt_registers(server, self.config.unit_id, self.map.base, self._regs)
        try:
            await server.serve_forever(background=True)
        except RuntimeError as e:
            raise ModbusLinkError(f"sunspec: cannot listen on {cfg.host}:{cfg.port}: {e}") from None
        self._server = server
        sockets = getattr(server.transport, "sockets", None) or ()
        self.bound_port = sockets[0].getsockname()[1] if sockets else cfg.port
        log.info(
            "sunspec: serving model 802 on %s:%s unit %d", cfg.host, self.bound_port, cfg.unit_id
        )
        self.started.set()
        tick_s = min(0.25, cfg.ctrl_hb_timeout_s / 5)
        self._next_hb_s = self._clock() + 1.0
        try:
            while True:
                await asyncio.sleep(tick_s)
                self.tick()
                flood.flush(log)
        finally:
            self.started.clear()
            self._server = None
            with contextlib.suppress(OSError):
                await cast(Any, server).shutdown()
            log.info("sunspec: server stopped")
