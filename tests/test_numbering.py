"""One numbering for what a person reads: cells and sensors count from 1 in messages and reasons.

JSON arrays stay indexed from 0 (documented in docs/MQTT.md); these tests pin the texts: an alarm
on the cell at index 2 says ``cell 3``, a stale reading at index 5 is ``cell_voltage[6]``, and the
demo's identity is never a real gateway's.
"""

from __future__ import annotations

from pathlib import Path

from gateway.core.freshness import StaleInput
from gateway.core.pack import PackConfig
from gateway.core.protection import Protection, ProtectionConfig
from gateway.demo import demo_identity, demo_settings
from gateway.settings import Settings
from tests.core.packdata import snapshot


def test_an_alarm_names_the_cell_as_installers_count() -> None:
    cfg = ProtectionConfig(startup_grace_s=0.0, debounce_s=0.0)
    p = Protection(cfg, PackConfig(cells=4, temp_sensors=2))
    report = None
    for t in range(5):
        report = p.step(snapshot((3.30, 3.30, 3.80, 3.30), (25.0, 60.0), 0.0, float(t)), None, t)
    assert report is not None
    messages = {a.code: a.message for a in report.active}
    assert messages["cell_overvoltage"].startswith("cell 3 at 3.8")  # index 2
    assert "sensor 2" in messages["discharge_overtemperature"]  # index 1


def test_stale_reasons_number_from_one() -> None:
    s = StaleInput("stale", "cell_voltage", 5, 1, 6.0)
    assert s.name == "stale:cell_voltage[6]"
    assert s.message.startswith("cell_voltage[6] stale")


def test_demo_identity_is_never_a_real_gateways() -> None:
    assert demo_identity("raspberrypi.local") == "demo-raspberrypi"
    assert demo_identity("weird host_name!") == "demo-weird-host_name"
    settings = Settings()
    demo = demo_settings(
        settings, channel="x", modbus_port=5020, mqtt_port=1883, state_dir=Path("/tmp")
    )
    assert demo.control.gateway_id.startswith("demo-")
    assert demo.control.gateway_id != settings.control.gateway_id
    assert demo.mqtt.client_id.startswith(f"bms-gateway-{demo.control.gateway_id}-")
    assert demo.limits.ramp_hold_s == 5.0  # shortened: the config did not set it
    own = Settings(limits={"ramp_hold_s": 12.0}, control={"gateway_id": "bms1"})  # type: ignore[arg-type]
    demo = demo_settings(own, channel="x", modbus_port=5020, mqtt_port=1883, state_dir=Path("/tmp"))
    assert demo.limits.ramp_hold_s == 12.0  # the user's choice stands
    assert demo.control.gateway_id != "bms1"
