"""Config updates end to end: signed bundle -> check-config -> symlink switch -> restart of the
real gateway (the restart hook) -> health check over the window -> kept or rolled back.

The pack is simulated on a virtual CAN bus and the gateway daemon runs in a thread; the health
record the updater judges is the one the daemon's update agent writes.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import UpdateError
from gateway.settings import load_settings
from gateway.update.manager import UpdateManager
from gateway.update.model import TargetKind
from tests.update.conftest import config_toml
from tests.update.harness import GatewayDaemon, PackOnBus, RepoServer


def _bundle(path: Path, config: str) -> Path:
    data = config.encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("config.toml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


class Site:
    """A running gateway with a simulated pack, and the updater pointed at it."""

    def __init__(self, tmp_path: Path, server: RepoServer, channel: str) -> None:
        self.tmp = tmp_path
        self.server = server
        self.channel = channel
        self.state_dir = tmp_path / "state"
        self.config_path = tmp_path / "config.toml"
        self.config_path.write_text(config_toml(server, self.state_dir, channel))
        self.pack = PackOnBus(channel, cells=8, temp_sensors=2)
        self.daemon = GatewayDaemon(self.config_path, self.state_dir)
        self.daemon.start()
        self.manager = UpdateManager(
            load_settings(self.config_path),
            config_path=self.config_path,
            restart=self.daemon.restart,
        )

    def wait_healthy(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rec = self.manager.health()
            if rec is not None and rec.complete and rec.links.get("can"):
                return
            time.sleep(0.1)
        raise AssertionError(f"the gateway did not become healthy: {self.manager.health()}")

    def publish(self, version: str, config: str) -> None:
        bundle = _bundle(self.tmp / f"site-{version}.tar.gz", config)
        self.server.repo.add_target(
            bundle, kind=TargetKind.CONFIG, version=version, fits={"gateway_id": ["bms1"]}
        )

    def close(self) -> None:
        self.daemon.stop()
        self.pack.stop()


@pytest.fixture
def site(tmp_path: Path, repo_server: RepoServer, channel: str) -> Iterator[Site]:
    s = Site(tmp_path, repo_server, channel)
    try:
        s.wait_healthy()
        yield s
    finally:
        s.close()


def test_good_config_applies_and_passes_the_health_check(site: Site) -> None:
    good = config_toml(
        site.server, site.state_dir, site.channel, limits_extra="max_charge_a = 80.0"
    )
    site.publish("1.1.0", good)
    lines = site.manager.apply(TargetKind.CONFIG)
    assert lines == ["config: 1.1.0 applied; healthy for 1.5 s"]
    store = site.manager.stores[TargetKind.CONFIG]
    assert store.current == "1.1.0"
    assert store.link("last-good") == "1.1.0"
    # The running config was kept as version 0, the one to go back to.
    assert store.link("previous") == "0"
    assert site.daemon.starts == 2
    assert load_settings(site.daemon.current_config()).limits.max_charge_a == 80.0
    # Applying again finds nothing newer and does not restart.
    assert site.manager.apply(TargetKind.CONFIG) == ["config: 1.1.0 is installed"]
    assert site.daemon.starts == 2
    # The operator goes back: the version before, restarted and watched like an apply.
    assert site.manager.rollback(TargetKind.CONFIG) == "config: rolled back from 1.1.0 to 0"
    assert store.current == "0"
    assert store.link("last-good") == "0"
    assert site.daemon.starts == 3
    assert load_settings(site.daemon.current_config()).limits.max_charge_a == 100.0


def test_config_failing_check_config_is_never_switched_to(site: Site) -> None:
    bad = config_toml(
        site.server, site.state_dir, site.channel, limits_extra="cvl_cell_v = 3.4\ndvl_cell_v = 3.5"
    )
    site.publish("1.2.0", bad)
    with pytest.raises(UpdateError, match=r"config 1\.2\.0 refused by check-config: .*dvl_cell_v"):
        site.manager.apply(TargetKind.CONFIG)
    store = site.manager.stores[TargetKind.CONFIG]
    assert store.current == "0"
    assert "1.2.0" not in store.installed()
    assert site.daemon.starts == 1  # never restarted
    assert "check-config" in site.manager.status()["config"]["last_result"]


def test_config_failing_the_health_check_rolls_back(site: Site) -> None:
    # Valid settings, but the CAN channel is wrong: no BMS data after the restart.
    wrong = config_toml(site.server, site.state_dir, "no-bms-here")
    site.publish("1.3.0", wrong)
    with pytest.raises(
        UpdateError, match=r"config 1\.3\.0 rolled back to 0: (data incomplete|link down)"
    ):
        site.manager.apply(TargetKind.CONFIG)
    store = site.manager.stores[TargetKind.CONFIG]
    assert store.current == "0"
    assert store.link("last-good") == "0"
    # Restarted into the bad version, then back into the good one, which is healthy again.
    assert site.daemon.starts == 3
    assert site.daemon.current_config().resolve().parent.name == "0"
    site.wait_healthy()


# --- gateway releases -------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def _wheel(path: Path, version: str, *, broken: bool = False) -> Path:
    """A pure wheel of this package (its source as it is, or with a syntax error)."""
    import os
    import zipfile

    src = REPO / "gateway"
    dist = f"bms_gateway-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        for dirpath, dirnames, files in os.walk(src, followlinks=True):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in files:
                full = Path(dirpath, name)
                arc = str(Path("gateway") / full.relative_to(src))
                if broken and arc == "gateway/update/config.py":
                    zf.writestr(arc, "this is not python\n")
                else:
                    zf.write(full, arc)
        zf.writestr(
            f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: bms-gateway\nVersion: {version}\n"
        )
        zf.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{dist}/RECORD", "")
    return path


def test_gateway_release_is_checked_unpacked_beside_and_kept(site: Site) -> None:
    # A broken release first: check-config runs the new code and refuses it.
    broken = _wheel(site.tmp / "bms_gateway-0.3.0-py3-none-any.whl", "0.3.0", broken=True)
    site.server.repo.add_target(broken, kind=TargetKind.GATEWAY, version="0.3.0")
    with pytest.raises(UpdateError, match=r"gateway 0\.3\.0 refused by check-config: .*Error"):
        site.manager.apply(TargetKind.GATEWAY)
    store = site.manager.stores[TargetKind.GATEWAY]
    assert store.current is None
    assert site.daemon.starts == 1
    # A good one, signed as a newer version, goes in and stays.
    good = _wheel(site.tmp / "bms_gateway-0.4.0-py3-none-any.whl", "0.4.0")
    site.server.repo.add_target(good, kind=TargetKind.GATEWAY, version="0.4.0")
    assert site.manager.apply(TargetKind.GATEWAY) == ["gateway: 0.4.0 applied; healthy for 1.5 s"]
    assert store.current == "0.4.0"
    assert store.link("last-good") == "0.4.0"
    assert (site.state_dir / "gateway" / "current" / "site" / "gateway" / "cli.py").is_file()
    assert site.daemon.starts == 2
