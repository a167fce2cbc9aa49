"""Shared fixtures: paths of the repository's DBCs and profiles, and the third-party foxBMS DBC."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BMS_DBC = REPO / "dbc" / "bms.dbc"
FOXBMS_DBC = REPO.parent / "shared" / "dbc" / "foxbms.dbc"


@pytest.fixture
def foxbms_dbc() -> Path:
    """The foxBMS 2 DBC from ../shared (never copied into the repo); skip where absent."""
    if not FOXBMS_DBC.is_file():
        pytest.skip(f"foxBMS DBC not found at {FOXBMS_DBC} (it lives in ../shared/dbc)")
    return FOXBMS_DBC
