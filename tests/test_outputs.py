"""Every output behind the ``Output`` protocol (gateway/outputs.py, docs/ARCHITECTURE.md).

Each output type the gateway builds satisfies the protocol (members present, the protocol's
signatures, a coroutine per start), is registered with the supervisor as a contained output
under its name, and receives each control step from the control loop, inverter links first. A
failing output built on the protocol is restarted while the control step goes on.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from pathlib import Path
from typing import Any

import pytest

import gateway.outputs as outputs_module
from gateway.app import Gateway
from gateway.core.model import ControlOutput
from gateway.inverter_can.config import InverterProtocol
from gateway.outputs import Output
from gateway.settings import Settings
from gateway.supervisor import Supervisor, TaskKind

PROTOCOL_METHODS = ("run", "publish")


def _settings(tmp_path: Path, sunspec_mode: str) -> Settings:
    s = Settings()
    channel = f"outputs-{uuid.uuid4().hex}"
    return s.model_copy(
        update={
            "can": s.can.model_copy(update={"interface": "virtual", "channel": channel}),
            "state": s.state.model_copy(update={"path": str(tmp_path / "state.json")}),
            "sunspec": s.sunspec.model_copy(update={"mode": sunspec_mode, "port": 0}),
            "inverter_can": s.inverter_can.model_copy(
                update={"protocol": InverterProtocol.PYLON, "channel": f"{channel}-inv"}
            ),
            "mqtt": s.mqtt.model_copy(update={"enabled": True}),
            "web": s.web.model_copy(update={"enabled": True, "port": 0}),
            "sparkplug": s.sparkplug.model_copy(update={"enabled": True}),
        }
    )


def _adapter_types() -> set[type]:
    """Every adapter class ``gateway.outputs`` exports (``...Output`` but the protocol)."""
    return {
        getattr(outputs_module, n)
        for n in outputs_module.__all__
        if n.endswith("Output") and n != "Output"
    }


def _signature(fn: Any) -> list[tuple[str, Any]]:
    return [(p.name, p.kind) for p in inspect.signature(fn).parameters.values()]


def _conformance_problems(obj: object) -> list[str]:
    """Why ``obj`` does not satisfy ``Output`` (empty when it does)."""
    problems = []
    if not isinstance(obj, Output):
        problems.append("isinstance(obj, Output) is false")
    name = getattr(obj, "name", None)
    if not (isinstance(name, str) and name.startswith("gateway.")):
        problems.append(f"name {name!r} is not a gateway.<output> task name")
    for member in PROTOCOL_METHODS:
        impl = getattr(type(obj), member, None)
        if impl is None or not callable(impl):
            problems.append(f"{member} missing")
        elif _signature(impl) != _signature(getattr(Output, member)):
            problems.append(f"{member}{inspect.signature(impl)} differs from the protocol")
    return problems


async def _gateways(tmp_path: Path) -> list[Gateway]:
    # Built inside a running loop (the SunSpec client creates its Modbus client there).
    return [
        Gateway(_settings(tmp_path / "server", "server")),
        Gateway(_settings(tmp_path / "client", "client")),
    ]


async def test_every_output_type_satisfies_the_protocol_and_is_contained(
    tmp_path: Path,
) -> None:
    seen: set[type] = set()
    for gw in await _gateways(tmp_path):
        kinds = {s.name: s.kind for s in gw.supervisor.status()}
        for output in gw.outputs.all:
            assert _conformance_problems(output) == [], type(output).__name__
            assert kinds.get(output.name) is TaskKind.OUTPUT, output.name
            coro = output.run()
            assert inspect.iscoroutine(coro), type(output).__name__
            coro.close()  # never started: nothing to clean up
            seen.add(type(output))
        assert kinds["gateway.can"] is TaskKind.CRITICAL
        assert kinds["gateway.control"] is TaskKind.CRITICAL
    # Every adapter the module offers was built from settings and checked above.
    assert seen == _adapter_types()
    assert len(seen) == 6


def test_the_conformance_check_can_fail() -> None:
    class NoPublish:
        name = "gateway.broken"

        async def run(self) -> None:
            return None

    class WrongPublish(NoPublish):
        def publish(self, out: ControlOutput) -> None:  # no step_s
            return None

    assert "isinstance(obj, Output) is false" in _conformance_problems(NoPublish())
    assert any("publish" in p for p in _conformance_problems(WrongPublish()))


async def test_each_step_reaches_every_output_inverter_links_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = (await _gateways(tmp_path))[0]
    got: list[tuple[str, ControlOutput]] = []

    def recorder(label: str) -> Any:
        return lambda out, *rest: got.append((label, out))

    assert gw.sunspec_server is not None
    assert gw.inverter_can is not None
    assert gw.mqtt is not None
    assert gw.web is not None
    assert gw.sparkplug is not None
    monkeypatch.setattr(gw.sunspec_server, "update", recorder("sunspec_server"))
    monkeypatch.setattr(gw.inverter_can, "update", recorder("inverter_can"))
    monkeypatch.setattr(gw.mqtt, "publish_output", recorder("mqtt"))
    monkeypatch.setattr(gw.web, "publish_output", recorder("web"))
    monkeypatch.setattr(gw.sparkplug, "publish_output", recorder("sparkplug"))
    out = gw.step()
    assert [label for label, _ in got] == [
        "sunspec_server",
        "inverter_can",
        "mqtt",
        "web",
        "sparkplug",
    ]
    assert all(o is out for _, o in got)
    # No data yet: every output is handed the fail-safe step.
    assert out.limits.ccl_a.value == 0.0
    assert out.limits.dcl_a.value == 0.0


class _CrashingOutput:
    """An output that fails at every start (a bug escaping its own retry loop)."""

    name = "gateway.crashing"

    def __init__(self) -> None:
        self.starts = 0
        self.published = 0
        self.restarted = asyncio.Event()

    async def run(self) -> None:
        self.starts += 1
        if self.starts >= 3:
            self.restarted.set()
        await asyncio.sleep(0)
        raise RuntimeError("bug in the output")

    def publish(self, out: ControlOutput, step_s: float) -> None:
        self.published += 1


async def test_a_failing_output_is_restarted_and_the_control_step_goes_on() -> None:
    crashing = _CrashingOutput()
    assert _conformance_problems(crashing) == []
    sup = Supervisor(backoff_max_s=0.01)
    ticks = 0

    async def control() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    sup.add_critical("gateway.control", control)
    sup.add(crashing)
    stop = asyncio.Event()
    runner = asyncio.create_task(sup.run(stop))
    await asyncio.wait_for(crashing.restarted.wait(), 5.0)
    ticks_then = ticks
    await asyncio.sleep(0.05)
    assert ticks > ticks_then  # the control loop never stopped
    status = {s.name: s for s in sup.status()}
    assert status["gateway.crashing"].kind is TaskKind.OUTPUT
    assert status["gateway.crashing"].restarts >= 2
    assert "bug in the output" in status["gateway.crashing"].last_error
    assert status["gateway.control"].running
    stop.set()
    await asyncio.wait_for(runner, 2.0)
