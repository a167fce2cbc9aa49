"""Fault-injection suite: every test here is slow (it still runs in CI, a few minutes in all).

``GATEWAY_FAULTS_SCALE`` (default 1) multiplies the repetition counts for a longer soak.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mqtt.conftest import Mosquitto

SCALE = max(1, int(os.environ.get("GATEWAY_FAULTS_SCALE", "1")))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A mosquitto of this test's own, stopped however the test ends."""
    mosquitto = Mosquitto(tmp_path)
    mosquitto.start()
    try:
        yield mosquitto
    finally:
        mosquitto.stop()
