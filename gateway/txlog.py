"""``bms-gateway replay LOG --tx-out TX.log``: every frame the gateway would send, as candump -L.

For each control step of a replay: the battery-CAN frames of ``[inverter_can]`` (when a protocol
is set; the same ``InverterOutput`` as the daemon, so periodic frames and immediate cuts fall
where they would on the bus; Pylontech HV, never polled in a replay, broadcasts on its period) on
``inverter_can.channel``, and the balancing command and ``GW_Heartbeat`` frames on
``can.channel`` (on a change of the bleed flags, and at least every second, as the daemon sends
them; a DBC without ``GW_Heartbeat`` gets the balancing command only). Timestamps are log time.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import can

from gateway import __version__
from gateway.canbus.decode import Decoder, OutFrame
from gateway.canbus.link import heartbeat_signals
from gateway.core.chemistry import get_chemistry
from gateway.core.model import ControlOutput
from gateway.errors import FrameError, GatewayError
from gateway.inverter_can.config import InverterProtocol
from gateway.inverter_can.frames import BatteryIdentity, InverterOutput
from gateway.settings import Settings

__all__ = ["TxLog"]

_BLEED_RESEND_S = 1.0


class TxLog:
    """Writes the gateway's outbound frames of each step to a candump -L file.

    Raises:
        GatewayError: the file cannot be opened (at construction).
    """

    def __init__(self, settings: Settings, decoder: Decoder, path: Path) -> None:
        self.settings = settings
        self.decoder = decoder
        self.frames = 0
        self.errors = 0
        cfg = settings.inverter_can
        self.inverter: InverterOutput | None = None
        if cfg.protocol is not InverterProtocol.OFF:
            self.inverter = InverterOutput(
                cfg,
                BatteryIdentity.from_config(
                    cfg,
                    capacity_ah=settings.pack.capacity_ah,
                    version=__version__,
                    cells=settings.pack.cells,
                    nominal_cell_v=get_chemistry(settings.pack.chemistry).nominal_v,
                ),
            )
        self._last_bleed: tuple[bool, ...] | None = None
        self._last_bleed_s = -1e18
        self._counter = 0
        try:
            self._writer = can.CanutilsLogWriter(path)
        except OSError as e:
            raise GatewayError(f"{path}: cannot write: {e.strerror}") from None

    def __call__(self, out: ControlOutput) -> None:
        """Write the frames the gateway would send for the step ``out``."""
        if self.inverter is not None:
            try:
                frames = self.inverter.step(out)
            except FrameError:
                self.errors += 1
                frames = []
            self._write(frames, out.t_s, self.settings.inverter_can.channel)
        bleed = out.balancing.bleed
        if bleed != self._last_bleed or out.t_s - self._last_bleed_s >= _BLEED_RESEND_S:
            frames = self.decoder.encode_balancing(bleed)
            self._counter = (self._counter + 1) % 256
            try:
                frames.append(
                    self.decoder.encode("GW_Heartbeat", heartbeat_signals(out, self._counter))
                )
            except FrameError:
                self.errors += 1  # not in this DBC (or a value it cannot carry)
            self._write(frames, out.t_s, self.settings.can.channel)
            self._last_bleed, self._last_bleed_s = bleed, out.t_s

    def _write(self, frames: list[OutFrame], t_s: float, channel: str) -> None:
        for f in frames:
            self._writer.on_message_received(
                can.Message(
                    timestamp=t_s,
                    arbitration_id=f.arbitration_id,
                    is_extended_id=f.extended,
                    data=f.data,
                    channel=channel,
                    is_rx=False,  # written as a transmitted frame (T)
                )
            )
            self.frames += 1

    def close(self) -> None:
        """Flush and close the file."""
        self._writer.stop()

    def __enter__(self) -> TxLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
