"""The real mosquitto of the MQTT tests, for the dashboard's browser test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mqtt.conftest import Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of the test's own."""
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()
