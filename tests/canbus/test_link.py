"""The CAN link over python-can's virtual bus: frames in, readings out; send; reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import can
import pytest

from gateway.canbus.config import CanConfig
from gateway.canbus.decode import DecodeCounters, Decoder, load_decoder
from gateway.canbus.link import CanLink, open_bus
from gateway.core.model import Reading, Role
from gateway.errors import ConfigError

_channels = itertools.count()


def unique_channel() -> str:
    return f"gw-test-{os.getpid()}-{next(_channels)}"


@pytest.fixture(scope="module")
def compiled() -> Decoder:
    return load_decoder(CanConfig())


@pytest.fixture
def decoder(compiled: Decoder) -> Decoder:
    compiled.counters = DecodeCounters()  # compiled once per module, counted per test
    return compiled


class Sink:
    """Collects what the link hands over."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Reading] | None, float]] = []
        self.event = asyncio.Event()

    def __call__(self, readings: list[Reading] | None, t_s: float) -> None:
        self.calls.append((readings, t_s))
        self.event.set()

    async def wait_for(self, n: int, timeout_s: float = 3.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.calls) < n:
                self.event.clear()
                await self.event.wait()


@contextlib.asynccontextmanager
async def running(link: CanLink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(link.run(), name="test.can")
    try:
        async with asyncio.timeout(3):
            await link.wait_connected()
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def pack_frame(decoder: Decoder, current_ma: int) -> can.Message:
    data = decoder.dbcs.db.get_message_by_name("BMS_PackValues").encode(
        {
            "PackCurrent": current_ma,
            "PackVoltage": 48.0,
            "PackCurrent_invalidFlag": 0,
            "PackVoltage_invalidFlag": 0,
        }
    )
    return can.Message(arbitration_id=0x120, is_extended_id=False, data=data)


async def test_frames_in_readings_out(decoder: Decoder) -> None:
    channel = unique_channel()
    sink = Sink()
    ticks = iter(range(100, 200))
    link = CanLink(
        CanConfig(channel=channel), sink, clock=lambda: float(next(ticks)), decoder=decoder
    )
    with can.Bus(interface="virtual", channel=channel) as peer:
        async with running(link):
            peer.send(pack_frame(decoder, -2500))
            peer.send(can.Message(arbitration_id=0x7AA, is_extended_id=False, data=b"\x01"))
            peer.send(can.Message(arbitration_id=0x100, is_extended_id=False, data=b"\xc8" * 8))
            peer.send(pack_frame(decoder, 1000))
            await sink.wait_for(3)
    (first, t1), (bad, _), (last, t3) = sink.calls
    assert first is not None
    assert last is not None
    current = {r.role: r.value for r in first}
    assert current[Role.PACK_CURRENT] == pytest.approx(-2.5)
    assert {r.role: r.value for r in last}[Role.PACK_CURRENT] == pytest.approx(1.0)
    assert {r.t_s for r in first} == {t1}
    assert t1 < t3
    assert bad is None  # mux 200 does not exist: dropped, counted
    assert link.decoder.counters.errors["unknown_mux"] == 1
    assert link.decoder.counters.ignored == 1  # 0x7AA is not mapped, not handed over
    assert link.stats.rx_frames == 4


async def test_send_encodes_with_the_dbc(decoder: Decoder) -> None:
    channel = unique_channel()
    link = CanLink(CanConfig(channel=channel), Sink(), decoder=decoder)
    assert not link.send("GW_Heartbeat", _heartbeat(1))  # not connected yet: counted, False
    assert link.stats.tx_errors == 1
    with can.Bus(interface="virtual", channel=channel) as peer:
        async with running(link):
            assert link.send("GW_Heartbeat", _heartbeat(42))
            bleed = [i % 3 == 0 for i in range(16)]
            assert link.send_balancing(bleed) == 1
            got = [await asyncio.to_thread(peer.recv, 2.0) for _ in range(2)]
    hb, bal = got
    assert hb is not None
    assert bal is not None
    assert hb.arbitration_id == 0x150
    decoded = decoder.dbcs.db.decode_message(0x150, hb.data)
    assert decoded["Counter"] == 42
    assert decoded["ChargeLimit"] == pytest.approx(12.3)
    assert bal.arbitration_id == 0x140
    flags = decoder.dbcs.db.decode_message(0x140, bal.data, decode_choices=False)
    assert [bool(flags[f"BalancingCommand_{i:03d}"]) for i in range(16)] == bleed
    assert link.stats.tx_frames == 2


def _heartbeat(counter: int) -> dict[str, float]:
    return {
        "Counter": counter,
        "Mode": 1,
        "WorstSeverity": 0,
        "ChargeLimit": 12.3,
        "DischargeLimit": 45.6,
        "BalancingCells": 0,
    }


class RecordingFactory:
    """Opens real virtual buses, fails the first ``fail`` times, keeps what it opened."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.attempts = 0
        self.buses: list[can.BusABC] = []

    def __call__(self, config: CanConfig) -> can.BusABC:
        self.attempts += 1
        if self.attempts <= self.fail:
            raise can.CanInitializationError(f"adapter {config.channel} not present")
        bus = open_bus(config)
        self.buses.append(bus)
        return bus


async def test_reconnects_after_the_interface_fails(
    decoder: Decoder, caplog: pytest.LogCaptureFixture
) -> None:
    channel = unique_channel()
    sink = Sink()
    factory = RecordingFactory()
    cfg = CanConfig(channel=channel, reconnect_min_s=0.01, reconnect_max_s=0.05)
    link = CanLink(cfg, sink, decoder=decoder, bus_factory=factory)
    caplog.set_level(logging.INFO, logger="gateway.canbus.link")
    with can.Bus(interface="virtual", channel=channel) as peer:
        async with running(link):
            peer.send(pack_frame(decoder, 100))
            await sink.wait_for(1)
            factory.buses[0].shutdown()  # the interface goes away under the link
            async with asyncio.timeout(3):
                while len(factory.buses) < 2 or not link.connected:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)  # the link offers no reconnect event to wait on
            peer.send(pack_frame(decoder, 200))
            await sink.wait_for(2)
    assert link.stats.reconnects == 1
    last = sink.calls[-1][0]
    assert last is not None
    assert {r.role: r.value for r in last}[Role.PACK_CURRENT] == 0.2
    lost = [r for r in caplog.records if "link lost" in r.getMessage()]
    back = [r for r in caplog.records if "recovered" in r.getMessage()]
    assert len(lost) == 1
    assert len(back) == 1


async def test_open_failures_back_off_and_log_once(
    decoder: Decoder, caplog: pytest.LogCaptureFixture
) -> None:
    channel = unique_channel()
    factory = RecordingFactory(fail=4)
    cfg = CanConfig(channel=channel, reconnect_min_s=0.005, reconnect_max_s=0.02)
    link = CanLink(cfg, Sink(), decoder=decoder, bus_factory=factory)
    caplog.set_level(logging.INFO, logger="gateway.canbus.link")
    async with running(link):
        assert link.connected
    assert factory.attempts == 5
    warnings = [r for r in caplog.records if "not present" in r.getMessage()]
    assert len(warnings) == 1  # the loss once, not once per attempt
    assert sum("recovered" in r.getMessage() for r in caplog.records) == 1


async def test_unknown_interface_is_a_config_error(decoder: Decoder) -> None:
    link = CanLink(CanConfig(interface="no_such_interface"), Sink(), decoder=decoder)
    with pytest.raises(ConfigError, match="no_such_interface"):
        await asyncio.wait_for(link.run(), 3)


async def test_default_construction_loads_the_profile(tmp_path: Path) -> None:
    link = CanLink(CanConfig(channel=unique_channel()), Sink())
    assert link.decoder.profile.name == "bms"
    with pytest.raises(ConfigError, match=r"nope\.dbc"):
        CanLink(CanConfig(dbc=(str(tmp_path / "nope.dbc"),)), Sink())


async def test_receive_filters_reach_the_bus(decoder: Decoder) -> None:
    channel = unique_channel()
    sink = Sink()
    cfg = CanConfig(channel=channel, receive_filters=({"can_id": 0x120, "mask": 0x7FF},))
    link = CanLink(cfg, sink, decoder=decoder)
    with can.Bus(interface="virtual", channel=channel) as peer:
        async with running(link):
            peer.send(can.Message(arbitration_id=0x100, is_extended_id=False, data=b"\xc8" * 8))
            peer.send(pack_frame(decoder, 100))
            await sink.wait_for(1)
    assert len(sink.calls) == 1
    assert sink.calls[0][0] is not None
    assert link.stats.rx_frames == 1  # 0x100 was filtered before the link saw it
    assert link.decoder.counters.errors["unknown_mux"] == 0


async def test_bus_off_reconnects_and_remote_frames_are_dropped(
    decoder: Decoder, caplog: pytest.LogCaptureFixture
) -> None:
    channel = unique_channel()
    sink = Sink()
    factory = RecordingFactory()
    cfg = CanConfig(channel=channel, reconnect_min_s=0.01, reconnect_max_s=0.05)
    link = CanLink(cfg, sink, decoder=decoder, bus_factory=factory)
    caplog.set_level(logging.INFO, logger="gateway.canbus.link")
    with can.Bus(interface="virtual", channel=channel) as peer:
        async with running(link):
            peer.send(can.Message(arbitration_id=0x120, is_extended_id=False, is_remote_frame=True))
            await sink.wait_for(1)
            # An error frame with CAN_ERR_BUSOFF, as SocketCAN reports a controller gone bus-off.
            peer.send(can.Message(arbitration_id=0x40, is_error_frame=True, dlc=8))
            async with asyncio.timeout(3):
                while len(factory.buses) < 2 or not link.connected:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
    assert sink.calls[0][0] is None
    assert link.decoder.counters.errors["remote"] == 1
    assert link.stats.error_frames == 1
    assert link.stats.reconnects == 1
    assert "bus-off" in link.stats.last_error
    assert sum("link lost (controller is bus-off)" in r.getMessage() for r in caplog.records) == 1
