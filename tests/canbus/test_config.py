"""CanConfig: defaults resolve to the packaged files, paths to the CWD, bad values are named."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from gateway.canbus.config import CanConfig
from gateway.canbus.decode import load_decoder
from gateway.errors import ConfigError
from gateway.settings import load_settings
from tests.conftest import REPO


def test_defaults_resolve_to_the_packaged_profile() -> None:
    cfg = CanConfig()
    assert cfg.profile_is_packaged()
    with ExitStack() as stack:
        path = cfg.profile_path(stack)
        assert path.name == "bms.toml"
        assert path.read_bytes() == (REPO / "dbc" / "profiles" / "bms.toml").read_bytes()
    assert cfg.dbc_paths() == []


def test_relative_paths_resolve_against_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = CanConfig(profile="conf/my.toml", dbc=("my.dbc", "/abs/other.dbc"))
    assert not cfg.profile_is_packaged()
    with ExitStack() as stack:
        assert cfg.profile_path(stack) == tmp_path / "conf" / "my.toml"
    assert cfg.dbc_paths() == [tmp_path / "my.dbc", Path("/abs/other.dbc")]


def test_settings_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[can]\ninterface = "socketcan"\nchannel = "can1"\nprofile = "foxbms"\n'
        'dbc = ["/etc/bms-gateway/foxbms.dbc"]\n'
        "receive_filters = [{ can_id = 0x250, mask = 0x7F0 }]\n"
    )
    monkeypatch.setenv("BMSGW_CAN__BITRATE", "500000")
    can = load_settings(path).can
    assert (can.interface, can.channel, can.bitrate, can.profile) == (
        "socketcan",
        "can1",
        500_000,
        "foxbms",
    )
    assert can.dbc == ("/etc/bms-gateway/foxbms.dbc",)
    assert can.receive_filters[0].can_id == 0x250
    assert can.receive_filters[0].mask == 0x7F0


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[can]\nreconnect_min_s = 10\nreconnect_max_s = 1\n", "reconnect_min_s"),
        ("[can]\nbitrate = -5\n", "can.bitrate"),
        ("[can]\nprofil = 'bms'\n", "can.profil"),
        ("[can]\nreceive_filters = [{ can_id = 1, maks = 2 }]\n", "maks"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, body: str, key: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=key):
        load_settings(path)


def test_packaged_defaults_load_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    decoder = load_decoder(CanConfig())
    assert [p.name for p in decoder.dbcs.files] == ["bms.dbc"]
    # A profile path given relative to the CWD works too.
    (tmp_path / "mine.toml").write_text(
        (REPO / "dbc" / "profiles" / "bms.toml").read_text().replace('"../bms.dbc"', '"bms.dbc"')
    )
    (tmp_path / "bms.dbc").write_bytes((REPO / "dbc" / "bms.dbc").read_bytes())
    mine = load_decoder(CanConfig(profile="mine.toml"))
    assert mine.dbcs.files == [tmp_path / "bms.dbc"]
