"""The operator's script end to end: init, bundle, image, add, timestamp, then a gateway's TUF
client fetches and verifies what it published."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from gateway.update.firmware import parse_header
from gateway.update.model import TargetKind
from gateway.update.repo import OperatorRepo
from gateway.update.tuf_client import TufClient
from tests.update.harness import RepoServer

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "tuf_repo.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tuf_repo", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["tuf_repo"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_operator_workflow_publishes_what_a_gateway_verifies(
    tmp_path: Path, repo_server: RepoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    tool = _script()
    keys, pub = tmp_path / "repo" / "keys", tmp_path / "repo" / "publish"  # the served repo
    site = tmp_path / "site"
    site.mkdir()
    (site / "config.toml").write_text("[pack]\ncells = 16\n")
    (site / "pack.dbc").write_text('VERSION ""\n')
    common = ["--keys", str(keys), "--publish", str(pub)]
    assert tool.main(["bundle", str(site), str(tmp_path / "site.tar.gz")]) == 0
    (tmp_path / "raw.bin").write_bytes(b"\x01" * 500)
    assert (
        tool.main(
            [
                "image",
                str(tmp_path / "raw.bin"),
                "--version",
                "2.1.0",
                "--hardware",
                "bms-a",
                str(tmp_path / "bms.bin"),
            ]
        )
        == 0
    )
    assert parse_header((tmp_path / "bms.bin").read_bytes()).hardware == "bms-a"
    assert (
        tool.main(
            [
                "add",
                *common,
                str(tmp_path / "site.tar.gz"),
                "--kind",
                "config",
                "--version",
                "1.4.0",
                "--fits",
                "gateway_id=site-a,site-b",
            ]
        )
        == 0
    )
    assert (
        tool.main(
            [
                "add",
                *common,
                str(tmp_path / "bms.bin"),
                "--kind",
                "bms-firmware",
                "--version",
                "2.1.0",
                "--fits",
                "hardware=bms-a",
            ]
        )
        == 0
    )
    assert tool.main(["timestamp", *common, "--days", "2"]) == 0
    assert (
        tool.main(
            [
                "add",
                *common,
                str(tmp_path / "bms.bin"),
                "--kind",
                "bms-firmware",
                "--version",
                "2.2",
                "--fits",
                "site=x",
            ]
        )
        == 1
    )
    assert "--fits 'site=x'" in capsys.readouterr().err
    # A gateway with the shipped root sees and verifies both targets.
    client = TufClient(
        repo_server.root,
        tmp_path / "gw" / "metadata",
        repo_server.metadata_url,
        repo_server.targets_url,
        tmp_path / "gw" / "downloads",
    )
    client.refresh()
    site_b = client.newest(TargetKind.CONFIG, {"gateway_id": "site-b"})
    assert site_b is not None
    assert str(site_b.version) == "1.4.0"
    assert client.newest(TargetKind.CONFIG, {"gateway_id": "site-c"}) is None
    fw = client.newest(TargetKind.BMS_FIRMWARE, {"hardware": "bms-a"})
    assert fw is not None
    assert client.download(fw).read_bytes() == (tmp_path / "bms.bin").read_bytes()
    assert '"timestamp"' in OperatorRepo(keys, pub).describe()


def test_update_demo_runs_the_whole_story(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("update_demo", SCRIPT.parent / "update_demo.py")
    assert spec is not None
    assert spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    monkeypatch.setattr(sys, "argv", ["update_demo.py", "--kib", "64"])
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "refused: hash or length mismatch" in out
    assert "blocks the BMS received: 0" in out
    assert "transfer interrupted at" in out
    assert "1.0.0 -> 1.1.0 flashed" in out
    assert "resumed at byte" in out
    assert "BMS now runs 1.1.0" in out
