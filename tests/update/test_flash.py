"""BMS firmware over CAN: a signed image flashed with UDS over ISO-TP to the simulated bootloader
on a python-can virtual bus, through ``UpdateManager.apply_firmware``."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import can
import pytest

from gateway.errors import UpdateError
from gateway.settings import load_settings
from gateway.sim.bootloader import BootloaderSim
from gateway.update.firmware import HEADER, build_image
from gateway.update.manager import UpdateManager
from gateway.update.model import TargetKind
from gateway.update.uds import FlashInterrupted
from tests.update.conftest import config_toml, free_port
from tests.update.harness import GatewayDaemon, PackOnBus, RepoServer

HW = "bms-sim"
IMAGE_BYTES = 64 * 1024


def _image(version: str, size: int = IMAGE_BYTES) -> bytes:
    return build_image(os.urandom(size - HEADER.size), version, HW)


@pytest.fixture
def uds_channel() -> str:
    return f"uds-test-{uuid.uuid4().hex}"


@pytest.fixture
def bootloader(uds_channel: str) -> Iterator[BootloaderSim]:
    with BootloaderSim(uds_channel, _image("1.0.0"), hardware=HW) as sim:
        yield sim


def _publish(server: RepoServer, tmp_path: Path, version: str, image: bytes) -> Path:
    path = tmp_path / f"bms-{version}.bin"
    path.write_bytes(image)
    server.repo.add_target(
        path, kind=TargetKind.BMS_FIRMWARE, version=version, fits={"hardware": [HW]}
    )
    return path


def _manager(
    tmp_path: Path, server: RepoServer, channel: str, uds_channel: str, **kw: object
) -> UpdateManager:
    config = tmp_path / "config.toml"
    if not config.exists():
        config.write_text(config_toml(server, tmp_path / "state", channel, **kw))  # type: ignore[arg-type]
    return UpdateManager(
        load_settings(config),
        config_path=config,
        restart=lambda: None,
        bus_factory=lambda: can.Bus(interface="virtual", channel=uds_channel),
    )


def test_flash_succeeds_and_the_new_version_runs(
    tmp_path: Path,
    repo_server: RepoServer,
    channel: str,
    uds_channel: str,
    bootloader: BootloaderSim,
) -> None:
    _publish(repo_server, tmp_path, "1.0.0", _image("1.0.0"))
    _publish(repo_server, tmp_path, "1.1.0", _image("1.1.0"))
    mgr = _manager(tmp_path, repo_server, channel, uds_channel)
    line = mgr.apply_firmware(force=True)  # force: no gateway runs here to vouch for the pack
    assert line.startswith("bms-firmware: 1.0.0 -> 1.1.0 flashed (65536 bytes")
    assert bootloader.active_version == "1.1.0"
    assert bootloader.active == 1
    assert bootloader.slots[0].version == "1.0.0"  # the old slot is kept
    assert mgr.status()["bms-firmware"]["installed"] == "1.1.0"
    assert mgr.status()["hold"] is None
    # The same version again: nothing to do; an older one: refused unless forced.
    assert mgr.apply_firmware(force=True) == "bms-firmware: 1.1.0 is installed"
    with pytest.raises(UpdateError, match=r"1\.0\.0 is older than the BMS's 1\.1\.0"):
        mgr.apply_firmware(version="1.0.0")


def test_downgrade_refused_without_force(
    tmp_path: Path, repo_server: RepoServer, channel: str, uds_channel: str
) -> None:
    with BootloaderSim(uds_channel, _image("2.0.0"), hardware=HW) as sim:
        _publish(repo_server, tmp_path, "1.9.0", _image("1.9.0"))
        mgr = _manager(tmp_path, repo_server, channel, uds_channel)
        with pytest.raises(UpdateError, match=r"older than the BMS's 2\.0\.0 \(--force\)"):
            mgr.apply_firmware()
        assert sim.blocks_received == 0
        assert sim.active_version == "2.0.0"


def test_flipped_bit_is_refused_before_transfer(
    tmp_path: Path,
    repo_server: RepoServer,
    channel: str,
    uds_channel: str,
    bootloader: BootloaderSim,
) -> None:
    _publish(repo_server, tmp_path, "1.1.0", _image("1.1.0"))
    published = next((repo_server.repo.targets_dir / "bms-firmware").glob("*.bms-1.1.0.bin"))
    data = bytearray(published.read_bytes())
    data[len(data) // 2] ^= 0x04  # one bit
    published.write_bytes(bytes(data))
    mgr = _manager(tmp_path, repo_server, channel, uds_channel)
    with pytest.raises(UpdateError, match=r"hash or length mismatch"):
        mgr.apply_firmware(force=True)
    assert bootloader.blocks_received == 0
    assert bootloader.session == 1  # never even entered programming
    assert bootloader.active_version == "1.0.0"


def test_image_the_bootloader_rejects_leaves_the_old_slot_active(
    tmp_path: Path,
    repo_server: RepoServer,
    channel: str,
    uds_channel: str,
    bootloader: BootloaderSim,
) -> None:
    # Signed correctly, but its payload does not match its own header CRC (a bad build).
    image = bytearray(_image("1.1.0"))
    image[-1] ^= 0xFF
    _publish(repo_server, tmp_path, "1.1.0", bytes(image))
    mgr = _manager(tmp_path, repo_server, channel, uds_channel)
    with pytest.raises(UpdateError, match=r"check routine rejected the image"):
        mgr.apply_firmware(force=True)
    assert bootloader.blocks_received > 0  # it was transferred, and then refused
    assert bootloader.active == 0
    assert bootloader.active_version == "1.0.0"
    assert bootloader.app_running
    assert mgr.status()["hold"] is None


def test_cut_transfer_resumes(
    tmp_path: Path,
    repo_server: RepoServer,
    channel: str,
    uds_channel: str,
    bootloader: BootloaderSim,
) -> None:
    image = _image("1.1.0", 256 * 1024)
    _publish(repo_server, tmp_path, "1.1.0", image)
    mgr = _manager(tmp_path, repo_server, channel, uds_channel)
    bootloader.cut_after_blocks = 30  # about half of the 64 blocks
    with pytest.raises(FlashInterrupted, match=r"interrupted at \d+/262144 bytes.*resume"):
        mgr.apply_firmware(force=True)
    staged = len(bootloader.staged)
    assert 0 < staged < len(image)
    assert not bootloader.app_running  # left in its bootloader
    assert mgr.status()["hold"] == "update"  # and the inverter stays at 0 A meanwhile
    assert mgr.status()["bms-firmware"]["interrupted_transfer"]["version"] == "1.1.0"
    bootloader.reconnect()
    line = mgr.apply_firmware(force=True)
    assert f"resumed at byte {staged}" in line
    assert f"({len(image) - staged} bytes" in line
    assert bootloader.active_version == "1.1.0"
    assert mgr.status()["hold"] is None
    assert "interrupted_transfer" not in mgr.status()["bms-firmware"]


def test_inverter_is_told_0_a_during_the_flash(
    tmp_path: Path, repo_server: RepoServer, channel: str, uds_channel: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        config_toml(repo_server, tmp_path / "state", channel, sunspec_port=free_port())
    )
    pack = PackOnBus(channel, cells=8, temp_sensors=2)
    daemon = GatewayDaemon(config, tmp_path / "state")
    daemon.start()
    try:
        mgr = _manager(tmp_path, repo_server, channel, uds_channel)
        # The storage controller reads real limits before the flash.
        deadline = time.monotonic() + 15
        while not any(c and c > 0 for _, c, _, _ in daemon.told) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any(c and c > 0 for _, c, _, _ in daemon.told), "no limit reached the inverter"
        # ... and the daemon has written its health record (about once a second), which the
        # gate reads: on a busy machine the first one can come after the first limits.
        while mgr.health() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        _publish(repo_server, tmp_path, "1.1.0", _image("1.1.0", 256 * 1024))
        with BootloaderSim(uds_channel, _image("1.0.0"), hardware=HW) as sim:
            line = mgr.apply_firmware()  # no --force: the gate passes on the running gateway
        assert "1.0.0 -> 1.1.0 flashed" in line
        assert sim.first_block_s is not None
        assert sim.last_block_s is not None
        # From the first block to the last, what the storage controller last read (it polls
        # every 0.05 s, sampled every 0.05 s here: 0.15 s of allowed lag).
        t0, t1 = sim.first_block_s + 0.15, sim.last_block_s
        during = [(c, d, w) for t, c, d, w in daemon.told if t0 < t < t1]
        assert during, "the inverter was not polled during the flash"
        assert all(c == 0 and d == 0 for c, d, _ in during), during
        assert all(w == "update" for _, _, w in during)
        # Afterwards the hold is lifted; the limits come back through the ramp.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rec = mgr.health()
            if rec is not None and rec.hold is None and rec.ccl_a > 0:
                break
            time.sleep(0.1)
        rec = mgr.health()
        assert rec is not None
        assert rec.hold is None
        assert rec.ccl_a > 0
    finally:
        daemon.stop()
        pack.stop()


def test_cut_transfer_is_retried_and_resumed_in_one_apply(
    tmp_path: Path,
    repo_server: RepoServer,
    channel: str,
    uds_channel: str,
    bootloader: BootloaderSim,
) -> None:
    import threading

    config = tmp_path / "config.toml"
    text = config_toml(repo_server, tmp_path / "state", channel)
    config.write_text(
        text.replace("flash_retries = 0", "flash_retries = 3\nflash_retry_wait_s = 0.3")
    )
    image = _image("1.1.0", 128 * 1024)
    _publish(repo_server, tmp_path, "1.1.0", image)
    mgr = _manager(tmp_path, repo_server, channel, uds_channel)
    bootloader.cut_after_blocks = 10
    # The cable is back 1 s later: within the retries (0.5 s timeout + 0.3 s pause each).
    timer = threading.Timer(1.0, bootloader.reconnect)
    timer.start()
    try:
        line = mgr.apply_firmware(force=True)
    finally:
        timer.cancel()
    assert "1.0.0 -> 1.1.0 flashed" in line
    assert "resumed at byte" in line
    assert bootloader.active_version == "1.1.0"
    assert mgr.status()["hold"] is None
