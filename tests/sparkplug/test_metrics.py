"""Sparkplug metrics of a control step and report by exception (pure)."""

from __future__ import annotations

from dataclasses import replace

from gateway.control import Controller
from gateway.core.model import ChargePhase, ControlOutput
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sparkplug.metrics import (
    Metric,
    MetricType,
    changed,
    device_metrics,
    node_metrics,
)


def _steps() -> list[ControlOutput]:
    ctrl = Controller(Settings())
    sim = PackSim(PackSimConfig(cells=16, initial_soc_pct=50.0), seed=1)
    outs = [ctrl.step(0.0)]
    for _ in range(80):
        sim.step(1.0, -40.0)
        ctrl.ingest(sim.readings())
        outs.append(ctrl.step(sim.t_s))
    return outs


def test_metrics_cover_the_pack_limits_and_cells_with_nulls_when_unknown() -> None:
    first, *_, last = _steps()
    m = device_metrics(last)
    assert m["Limits/CCL"].value == round(last.limits.ccl_a.value, 1)
    assert m["Limits/CCL Winner"].value == last.limits.ccl_a.winner
    assert {f"Limits/CCL Terms/{t.name}" for t in last.limits.ccl_a.terms} <= set(m)
    assert m["Pack/Current"].value == -40.0
    assert m["Cells/016/Voltage"].type is MetricType.DOUBLE
    assert "Cells/017/Voltage" not in m
    assert not any(k.startswith("Cells/") for k in device_metrics(last, cells=False))
    # Before any data: null, never zero.
    start = device_metrics(first)
    assert start["Pack/Voltage"].value is None
    assert start["Pack/SoC"].value is None
    node = node_metrics(7, "1.2.3", "gw1")
    assert node["bdSeq"].value == 7
    assert node["Node Control/Rebirth"].value is False


def test_report_by_exception_sends_only_changes_and_asks_for_a_birth_on_new_metrics() -> None:
    outs = _steps()
    a, b = device_metrics(outs[-2]), device_metrics(outs[-1])
    delta = changed(a, b)
    assert delta is not None
    assert delta  # discharging at 40 A moves something every second
    assert all(a[k] != v for k, v in delta.items())
    assert all(a[k] == v for k, v in b.items() if k not in delta)
    assert changed(b, b) == {}
    fewer = dict(b)
    fewer.pop("Limits/CCL")
    assert changed(fewer, b) is None  # the metric set changed: rebirth, not data


def test_charge_phase_and_full_charge_request_reported_by_exception() -> None:
    last = _steps()[-1]
    assert last.charge is not None
    m = device_metrics(last, cells=False)
    assert m["Charge/Phase"] == Metric(MetricType.STRING, last.charge.phase.value)
    assert m["Charge/Full Charge Requested"] == Metric(
        MetricType.BOOLEAN, last.charge.full_charge_requested
    )
    # A transition (to float, the request served) is data, not a rebirth: only these two change.
    moved = replace(last.charge, phase=ChargePhase.FLOAT, full_charge_requested=False)
    after = device_metrics(replace(last, charge=moved), cells=False)
    assert changed(m, after) == {
        "Charge/Phase": Metric(MetricType.STRING, "float"),
        "Charge/Full Charge Requested": Metric(MetricType.BOOLEAN, False),
    }
    # Without the charge-phase machine the metrics are there as null: the set never changes.
    without = device_metrics(replace(last, charge=None), cells=False)
    assert changed(m, without) == {
        "Charge/Phase": Metric(MetricType.STRING, None),
        "Charge/Full Charge Requested": Metric(MetricType.BOOLEAN, None),
    }
