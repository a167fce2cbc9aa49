"""DBC loading: strict mode, one-line errors naming the file (and line), several files."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.canbus.config import CanConfig
from gateway.canbus.dbc import load_dbcs
from gateway.canbus.decode import load_decoder
from gateway.errors import ConfigError
from tests.conftest import BMS_DBC

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "canbus"


def test_shipped_dbc_loads_strictly() -> None:
    dbcs = load_dbcs([BMS_DBC])
    names = {m.name for m in dbcs.db.messages}
    assert names == {
        "BMS_CellVoltages",
        "BMS_CellTemperatures",
        "BMS_PackValues",
        "BMS_BalancingStatus",
        "GW_BalancingCommand",
        "GW_Heartbeat",
    }
    assert dbcs.origin("BMS_PackValues") == BMS_DBC


def test_missing_dbc_is_one_line_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.dbc"
    with pytest.raises(ConfigError) as e:
        load_decoder(CanConfig(dbc=(str(missing),)))
    assert str(missing) in str(e.value)
    assert "cannot read" in str(e.value)
    assert "\n" not in str(e.value)


def test_malformed_dbc_names_file_and_line(tmp_path: Path) -> None:
    text = BMS_DBC.read_text(encoding="cp1252").splitlines()
    line_no = next(i for i, line in enumerate(text, 1) if line.startswith("BO_ 288 "))
    text[line_no - 1] = text[line_no - 1].replace("BMS_PackValues:", "BMS_PackValues")
    bad = tmp_path / "bad.dbc"
    bad.write_text("\n".join(text), encoding="cp1252")
    with pytest.raises(ConfigError) as e:
        load_decoder(CanConfig(dbc=(str(bad),)))
    msg = str(e.value)
    assert str(bad) in msg
    assert f"line {line_no}" in msg
    assert "\n" not in msg


def test_strict_mode_rejects_overlapping_signals(tmp_path: Path) -> None:
    text = BMS_DBC.read_text(encoding="cp1252")
    bad = tmp_path / "overlap.dbc"
    bad.write_text(
        text.replace(
            "SG_ PackVoltage_invalidFlag : 57|1@1+", "SG_ PackVoltage_invalidFlag : 55|1@1+"
        ),
        encoding="cp1252",
    )
    with pytest.raises(ConfigError, match=r"overlap.*: .*overlapping"):
        load_dbcs([bad])


def test_empty_and_garbage_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dbc"
    empty.write_text("")
    garbage = tmp_path / "garbage.dbc"
    garbage.write_text("this is not a DBC\n")
    for path in (empty, garbage):
        with pytest.raises(ConfigError, match=str(path)):
            load_dbcs([path])


def test_several_files_merge_and_conflicts_are_named(tmp_path: Path) -> None:
    other = FIXTURES / "cellid.dbc"
    dbcs = load_dbcs([BMS_DBC, other])
    assert dbcs.origin("CellReport") == other
    assert dbcs.origin("GW_Heartbeat") == BMS_DBC
    copy = tmp_path / "copy.dbc"
    copy.write_bytes(BMS_DBC.read_bytes())
    with pytest.raises(ConfigError, match=r"copy\.dbc: message 'BMS_CellVoltages' is already"):
        load_dbcs([BMS_DBC, copy])
