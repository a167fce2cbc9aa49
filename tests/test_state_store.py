"""Estimator state on disk: atomic writes, corrupt and mismatched files, user OCV tables."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from gateway import state_store
from gateway.core.chemistry import get_chemistry
from gateway.core.pack import PackConfig
from gateway.core.soc import SocConfig, SocEstimator
from gateway.errors import ConfigError
from gateway.state_store import (
    OCV_TABLE_MAX_BYTES,
    load_ocv_table,
    load_state,
    resolve_chemistry,
    restore_estimator,
    save_state,
)
from tests.core.test_soc import EcmPack, drive


def _estimator(cells: int = 4, chemistry: str = "nmc") -> SocEstimator:
    pack = PackConfig(cells=cells, chemistry=chemistry)
    return SocEstimator(SocConfig(restore_sigma_pct=0.0), pack, get_chemistry(chemistry))


def _running(cells: int = 4, chemistry: str = "nmc") -> SocEstimator:
    est = _estimator(cells, chemistry)
    chem = get_chemistry(chemistry)
    pack = EcmPack(chem, [30.0 + 10 * k for k in range(cells)], [100.0] * cells)
    drive(est, pack, [-20.0] * 300)
    return est


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    est = _running()
    path = tmp_path / "state" / "estimator.json"  # the directory is created
    save_state(path, est.export_state())
    loaded = load_state(path)
    assert loaded == est.export_state()
    est2 = _estimator()
    assert restore_estimator(est2, path)
    a, b = est.report(), est2.report()
    assert a is not None
    assert b is not None
    assert [c.soc_pct for c in a.cells] == [c.soc_pct for c in b.cells]
    assert [c.capacity_ah for c in a.cells] == [c.capacity_ah for c in b.cells]


def test_save_replaces_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "estimator.json"
    save_state(path, {"a": 1})
    inode_before = path.stat().st_ino
    save_state(path, {"a": 2})
    assert load_state(path) == {"a": 2}
    # A rename put a new file in place (never an in-place rewrite a crash could truncate).
    assert path.stat().st_ino != inode_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["estimator.json"]


def test_a_failed_save_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "estimator.json"
    save_state(path, {"a": 1})
    with pytest.raises(ValueError, match="JSON compliant"):
        save_state(path, {"a": float("nan")})  # JSON cannot carry it: refused, not written
    assert load_state(path) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["estimator.json"]


def test_missing_file_is_none_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.state_store"):
        assert load_state(tmp_path / "nope.json") is None
    assert "no estimator state" in caplog.text


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"format": "bms-gateway-estimator-state", "state": {"ver', "corrupt"),
        (b"\x00\x01\x02garbage", "corrupt"),
        (b"\xff\xfe\xfa", "unreadable"),
        (b'{"something": "else"}', "not a gateway state file"),
        (b"[1, 2, 3]", "not a gateway state file"),
        (b'{"format": "bms-gateway-estimator-state", "state": 5}', "no state object"),
        (b"", "corrupt"),
    ],
)
def test_corrupt_file_is_none_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, reason: str
) -> None:
    path = tmp_path / "estimator.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="gateway.state_store"):
        assert load_state(path) is None
    assert reason in caplog.text
    assert str(path) in caplog.text


@pytest.mark.parametrize(("cells", "chemistry"), [(5, "nmc"), (4, "lfp")])
def test_mismatched_state_is_refused_logged_and_the_estimator_starts_from_ocv(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cells: int, chemistry: str
) -> None:
    path = tmp_path / "estimator.json"
    save_state(path, _running(4, "nmc").export_state())
    other = _estimator(cells, chemistry)
    with caplog.at_level(logging.WARNING, logger="gateway.state_store"):
        assert not restore_estimator(other, path)
    assert "does not fit this pack" in caplog.text
    assert other.report() is None  # nothing loaded: it waits for voltages and starts from OCV


def test_tampered_state_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "estimator.json"
    save_state(path, _running().export_state())
    doc = json.loads(path.read_text())
    doc["state"]["soc_pct"][2] = 250.0
    path.write_text(json.dumps(doc))
    est = _estimator()
    with caplog.at_level(logging.WARNING, logger="gateway.state_store"):
        assert not restore_estimator(est, path)
    assert "soc_pct[2]" in caplog.text


def test_unreadable_state_is_none(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "estimator.json"
    path.mkdir()  # a directory where the file should be
    with caplog.at_level(logging.WARNING, logger="gateway.state_store"):
        assert load_state(path) is None
    assert "unreadable" in caplog.text


def test_user_ocv_table_is_loaded_and_applied(tmp_path: Path) -> None:
    path = tmp_path / "ocv.csv"
    path.write_text("soc_pct,ocv_v\n0,3.0\n50,3.5\n100,4.1\n")
    table = load_ocv_table(path)
    assert table.voltage(50.0) == 3.5
    chem = resolve_chemistry(PackConfig(chemistry="nmc"), SocConfig(ocv_table=str(path)))
    assert chem.ocv.voltage(75.0) == pytest.approx(3.8)
    assert chem.max_v == get_chemistry("nmc").max_v
    default = resolve_chemistry(PackConfig(chemistry="lfp"), SocConfig())
    assert default is get_chemistry("lfp")


def test_malformed_user_ocv_table_is_a_config_error_naming_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "ocv.csv"
    path.write_text("soc_pct,ocv_v\n0,3.0\n50,3.5\n40,3.6\n")
    with pytest.raises(ConfigError) as info:
        load_ocv_table(path)
    msg = str(info.value)
    assert f"{path}:4:" in msg
    assert "soc.ocv_table" in msg


def test_missing_user_ocv_table_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_chemistry(PackConfig(), SocConfig(ocv_table=str(tmp_path / "missing.csv")))
    # A relative path (from the environment) names where it was looked for: the working
    # directory.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        resolve_chemistry(PackConfig(), SocConfig(ocv_table="cell.csv"))
    assert f"soc.ocv_table: cell.csv ({tmp_path / 'cell.csv'}): cannot read" in str(info.value)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not a text file"):
        load_ocv_table(binary)


def test_unwritable_target_raises_oserror_and_keeps_the_old_file(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    with pytest.raises(OSError, match="state"):
        save_state(blocker / "estimator.json", {"a": 1})
    # A target that is a directory: the rename fails, the temp file is cleaned up.
    target = tmp_path / "estimator.json"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(OSError, match=r"estimator\.json"):
        save_state(target, {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["estimator.json", "state"]


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_a_user_ocv_table_that_is_no_regular_file_is_refused_unread(
    tmp_path: Path, kind: str
) -> None:
    # /dev/zero never ends; a FIFO without a writer would block the start for good.
    path = Path("/dev/zero")
    if kind == "fifo":
        path = tmp_path / "table.fifo"
        os.mkfifo(path)
    with pytest.raises(ConfigError, match=f"soc.ocv_table: {path}: not a regular file"):
        load_ocv_table(path)


def test_a_user_ocv_table_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    row = "50.000000,3.300000\n"
    path.write_text("soc_pct,ocv_v\n" + row * (OCV_TABLE_MAX_BYTES // len(row) + 1))
    with pytest.raises(ConfigError, match=f"soc.ocv_table: {path}: larger than 1 MiB"):
        load_ocv_table(path)


def test_a_directory_or_a_symlink_loop_as_the_table_is_a_config_error(tmp_path: Path) -> None:
    folder = tmp_path / "tables"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"soc.ocv_table: .*tables: not a regular file"):
        state_store.read_ocv_table(folder)
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError, match=r"soc.ocv_table: .*loop.csv.*cannot read"):
        state_store.read_ocv_table(loop)
