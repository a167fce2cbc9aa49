"""``bms-gateway health --config X``: the report table from the history file."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.history import HistoryStore
from tests.core.test_health import history


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[state]\npath = "{tmp_path / "state" / "estimator.json"}"\n')
    return cfg


def test_prints_the_report_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    yesterday = dt.date.today().toordinal() - 1
    store = HistoryStore(tmp_path / "state" / "history.sqlite")
    for rec in history(25, leak_cell=3, growth_cell=9, seed=7, start_day=yesterday - 24):
        store.write(rec)
    store.close()
    png = tmp_path / "health.png"
    assert main(["health", "--config", str(_config(tmp_path)), "--png", str(png)]) == 0
    text = capsys.readouterr().out
    assert f"25 days, {dt.date.fromordinal(yesterday - 24).isoformat()}" in text
    rows = [ln for ln in text.splitlines() if ln.strip()[:1].isdigit() and "±" in ln]
    assert len(rows) == 16
    assert "cell_self_discharge: cell 4: leaks" in text
    assert "cell_resistance_growth: cell 10:" in text
    assert "cell_capacity_fade" not in text
    assert "weakest cells: " in text
    assert {"4", "10"} <= set(text.split("weakest cells: ")[1].split("\n")[0].split(", "))
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "matplotlib is not installed" in text
        assert not png.exists()


def test_no_history_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--config", str(_config(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert "no health history at" in err
    assert "history.sqlite" in err
