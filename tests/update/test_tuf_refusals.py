"""python-tuf's checks through our client: every attack on the metadata is refused, in one line.

The repository is built by ``OperatorRepo`` (tuf.api) in the test and served by http.server on
127.0.0.1; the client is ``bms-gateway update check`` and ``UpdateManager``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.cli import EXIT_UPDATE, main
from gateway.errors import UpdateError
from gateway.settings import load_settings
from gateway.update.manager import UpdateManager
from gateway.update.model import TargetKind
from tests.update.conftest import config_toml
from tests.update.harness import RepoServer


def _bundle(tmp_path: Path, name: str = "site.tar") -> Path:
    import io
    import tarfile

    path = tmp_path / name
    data = b"[pack]\ncells = 8\ntemp_sensors = 2\n"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("config.toml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def config_path(tmp_path: Path, repo_server: RepoServer, channel: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(config_toml(repo_server, tmp_path / "state", channel), encoding="utf-8")
    return path


def _manager(config_path: Path) -> UpdateManager:
    return UpdateManager(load_settings(config_path), config_path=config_path)


def test_check_lists_a_signed_target(
    repo_server: RepoServer, config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo_server.repo.add_target(_bundle(tmp_path), kind=TargetKind.CONFIG, version="1.1.0")
    assert main(["update", "check", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "config: update available: 1.1.0 (installed None)" in out
    assert "bms-firmware: nothing offered" in out


def test_tampered_target_is_refused(
    repo_server: RepoServer, config_path: Path, tmp_path: Path
) -> None:
    path = repo_server.repo.add_target(_bundle(tmp_path), kind=TargetKind.CONFIG, version="1.1.0")
    # An attacker on the mirror changes one byte of the published file (same length).
    published = next((repo_server.repo.targets_dir / "config").glob("*.site.tar"))
    data = bytearray(published.read_bytes())
    data[100] ^= 0x01
    published.write_bytes(bytes(data))
    mgr = _manager(config_path)
    target = next(t for t in mgr.client().targets() if t.path == path)
    with pytest.raises(UpdateError, match=r"refused: hash or length mismatch \(tampered file\)"):
        mgr.client().download(target)
    # Nothing unverified is left where a later step could pick it up.
    assert not any((mgr.state_dir / "tuf" / "downloads").iterdir())


def test_expired_timestamp_is_refused(
    repo_server: RepoServer, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo_server.repo.publish_timestamp(expires=datetime.now(UTC) - timedelta(hours=1))
    assert main(["update", "check", "--config", str(config_path)]) == EXIT_UPDATE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "metadata expired" in err
    assert "timestamp" in err


def test_replayed_old_snapshot_is_refused(
    repo_server: RepoServer, config_path: Path, tmp_path: Path
) -> None:
    repo = repo_server.repo
    old_snapshot = repo._current_snapshot().signed.version
    repo.add_target(_bundle(tmp_path), kind=TargetKind.CONFIG, version="1.1.0")
    _manager(config_path).client()  # the gateway has seen the new snapshot
    # A holder of the timestamp key (or a mirror replaying files) points back at the old one.
    repo.publish_timestamp(snapshot_version=old_snapshot)
    with pytest.raises(UpdateError, match=r"rollback refused.*snapshot"):
        _manager(config_path).client()


def test_one_signature_of_a_threshold_of_two_is_refused(
    repo_server: RepoServer, config_path: Path, tmp_path: Path
) -> None:
    repo = repo_server.repo
    one_key = repo.keyids("targets")[:1]
    repo.add_target(
        _bundle(tmp_path), kind=TargetKind.CONFIG, version="1.1.0", targets_keyids=one_key
    )
    with pytest.raises(UpdateError, match=r"signature threshold not met: targets .* 1/2 keys"):
        _manager(config_path).client()


def test_status_and_refusals_without_configuration(
    repo_server: RepoServer,
    config_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    assert main(["update", "status", "--config", str(config_path)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["config"] == {"current": None, "last_good": None, "previous": None}
    assert status["hold"] is None
    assert status["health"] is None
    # No gateway runs here: the safe-to-update gate refuses without --force, in one line.
    repo_server.repo.add_target(_bundle(tmp_path), kind=TargetKind.CONFIG, version="1.1.0")
    assert main(["update", "apply", "--kind", "config", "--config", str(config_path)]) == 3
    err = capsys.readouterr().err.strip()
    assert err == (
        "update refused: not safe to update: pack state unknown (no health record from the "
        "running gateway) (--force to override)"
    )
    # Updates not configured at all.
    plain = tmp_path / "plain.toml"
    plain.write_text("[pack]\ncells = 8\n")
    assert main(["update", "check", "--config", str(plain)]) == 3
    assert "updates are not configured" in capsys.readouterr().err
    # What needs only the local state still answers (updates turned off by hand, say).
    local = f'[update]\nstate_dir = "{tmp_path / "plain-state"}"\n'
    plain.write_text("[pack]\ncells = 8\n" + local)
    assert main(["update", "status", "--config", str(plain)]) == 0
    assert '"config"' in capsys.readouterr().out
    assert main(["update", "rollback", "--kind", "config", "--config", str(plain)]) == 3
    assert "no other version to roll back to" in capsys.readouterr().err
