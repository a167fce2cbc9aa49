"""Runs one MqttPublisher until it is killed: the gateway process of the last-will test.

Usage: ``python tests/mqtt/publisher_proc.py PORT GATEWAY_ID`` (repository root on PYTHONPATH).
"""

from __future__ import annotations

import asyncio
import sys

from gateway.core.model import Command, CommandResult
from gateway.mqtt.config import MqttConfig
from gateway.mqtt.publisher import MqttPublisher
from tests.mqtt.outputs import make_output


def _refuse(cmd: Command) -> CommandResult:
    return CommandResult(False, f"{type(cmd).__name__}: not in this test")


async def main(port: int, gateway_id: str) -> None:
    """Publish one output at 5 Hz until killed."""
    config = MqttConfig(
        enabled=True, port=port, state_interval_s=0.2, cells_interval_s=1.0, discovery_cells=False
    )
    pub = MqttPublisher(config, gateway_id, _refuse)
    pub.publish_output(make_output())
    await pub.run()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
