"""What the demo changes in the user's settings (``gateway.demo_config``): pure, no I/O."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gateway.demo import _ports
from gateway.demo_config import (
    DEMO_RAMP_HOLD_S,
    INVERTERS,
    DemoInverter,
    demo_rates,
    demo_settings,
    modbus_host,
)
from gateway.inverter_can.config import InverterProtocol
from gateway.settings import Settings
from gateway.sim.emitter import FrameRates


def _demo(
    settings: Settings,
    *,
    inverter: DemoInverter | str = DemoInverter.SUNSPEC,
    speed: float = 1.0,
    web_port: int | None = None,
) -> Settings:
    return demo_settings(
        settings,
        channel="bms-demo-1",
        modbus_port=1502,
        mqtt_port=1883,
        state_dir=Path("/tmp/demo-state"),
        gateway_id="demo-test",
        inverter=inverter,
        speed=speed,
        web_port=web_port,
    )


def test_the_links_and_identity_are_the_demos_whatever_the_config_says() -> None:
    s = _demo(Settings(), web_port=8099)
    assert (s.can.interface, s.can.channel) == ("virtual", "bms-demo-1")
    assert s.control.gateway_id == "demo-test"
    assert s.mqtt.client_id.startswith("bms-gateway-demo-test-")
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.enabled, s.mqtt.commands) == (
        "127.0.0.1",
        1883,
        True,
        True,
    )
    assert (s.sunspec.mode, s.sunspec.host, s.sunspec.port) == ("server", "127.0.0.1", 1502)
    assert s.inverter_can.protocol is InverterProtocol.OFF
    assert (s.web.enabled, s.web.host, s.web.port) == (True, "127.0.0.1", 8099)
    assert s.state.path == "/tmp/demo-state/estimator.json"
    assert s.limits.ramp_hold_s == DEMO_RAMP_HOLD_S


def test_a_configured_ramp_hold_and_modbus_host_are_kept() -> None:
    user = Settings.model_validate(
        {"limits": {"ramp_hold_s": 12.0}, "sunspec": {"host": "0.0.0.0"}}
    )
    s = _demo(user)
    assert s.limits.ramp_hold_s == 12.0
    assert modbus_host(user) == "0.0.0.0"
    assert s.sunspec.host == "0.0.0.0"
    assert modbus_host(Settings()) == "127.0.0.1"


@pytest.mark.parametrize("kind", [k for k in DemoInverter if k.battery_can])
def test_a_battery_can_inverter_turns_sunspec_off(kind: DemoInverter) -> None:
    s = _demo(Settings(), inverter=kind)
    assert s.sunspec.mode == "off"
    assert s.inverter_can.protocol is InverterProtocol(kind.value)
    assert (s.inverter_can.interface, s.inverter_can.channel) == ("virtual", "bms-demo-1-inv")


def test_none_and_sunspec_serve_model_802() -> None:
    assert set(INVERTERS) == {k.value for k in DemoInverter}
    for kind in ("none", "sunspec"):
        assert _demo(Settings(), inverter=kind).sunspec.mode == "server"


def test_timeouts_stretch_with_speed_like_the_frame_periods_and_are_capped() -> None:
    base = Settings().timeouts
    assert _demo(Settings(), speed=20.0).timeouts == base  # up to 20x nothing stretches
    fast = _demo(Settings(), speed=240.0).timeouts  # k = 12
    assert fast.current_timeout_s == min(60.0, base.current_timeout_s * 12)
    assert fast.cell_voltage_timeout_s == min(60.0, base.cell_voltage_timeout_s * 12)
    assert fast.temperature_timeout_s == min(300.0, base.temperature_timeout_s * 12)
    assert fast.pack_voltage_timeout_s == min(60.0, base.pack_voltage_timeout_s * 12)
    huge = _demo(Settings(), speed=1e6).timeouts
    assert huge.current_timeout_s == 60.0
    assert huge.temperature_timeout_s == 300.0
    rates = demo_rates(240.0)
    assert rates.pack_values_s is not None
    assert rates.pack_values_s < fast.current_timeout_s


def test_frame_rates_are_the_dbcs_at_real_time_and_sparser_when_accelerated() -> None:
    assert demo_rates(1.0) == FrameRates()
    fast = demo_rates(240.0)
    assert fast.cell_voltages_s == 1.0  # 0.1 s * 12, capped at 1 s
    assert fast.pack_values_s == pytest.approx(0.24)
    assert fast.cell_temperatures_s == 2.0
    assert fast.balancing_status_s == FrameRates().balancing_status_s


def test_a_busy_port_is_moved_and_said(caplog: pytest.LogCaptureFixture) -> None:
    """A configured Modbus or web port that another program holds is replaced by a free one, and
    the log says so (the user's bookmark would otherwise point at the other program)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        settings = Settings.model_validate(
            {"sunspec": {"host": "127.0.0.1", "port": port}, "web": {"port": port}}
        )
        with caplog.at_level("WARNING", logger="gateway.demo"):
            modbus_port, web_port = _ports(settings)
    assert port not in (modbus_port, web_port)
    said = caplog.text
    assert f"Modbus port {port} is in use; serving on {modbus_port}" in said
    assert f"web port {port} is in use; serving the dashboard on {web_port}" in said


def test_port_zero_is_chosen_and_the_web_port_never_takes_the_modbus_one() -> None:
    zero = Settings.model_validate({"sunspec": {"host": "127.0.0.1", "port": 0}})
    modbus_port, web_port = _ports(zero)
    assert modbus_port > 0
    assert web_port > 0
    assert web_port != modbus_port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    same = Settings.model_validate(
        {"sunspec": {"host": "127.0.0.1", "port": port}, "web": {"port": port}}
    )
    modbus_port, web_port = _ports(same)
    assert modbus_port == port
    assert web_port != port
