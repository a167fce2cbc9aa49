"""gateway/report.py: the replay record of one control step (schema in docs/REPLAY.md)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from gateway.control import Controller
from gateway.core.model import ControlOutput, GatewayMode, InverterLink, Negotiation
from gateway.report import SCHEMA_VERSION, record
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig


@pytest.fixture(scope="module")
def out() -> ControlOutput:
    """A real step: 8 cells, the default 4 sensors, 90 s of a 20 A charge from 50 %."""
    settings = Settings.model_validate({"pack": {"cells": 8}})
    ctrl = Controller(settings)
    sim = PackSim(PackSimConfig(cells=8, initial_soc_pct=50.0), seed=3)
    step = None
    for _ in range(90):
        sim.step(1.0, 20.0)
        ctrl.ingest(sim.readings())
        step = ctrl.step(sim.t_s)
    assert step is not None
    return step


def test_the_record_is_strict_json_with_the_documented_top_level_keys(out: ControlOutput) -> None:
    rec = record(out)
    text = json.dumps(rec, allow_nan=False)  # raises on NaN/inf
    assert json.loads(text) == rec
    assert {
        "t",
        "cells",
        "temps_c",
        "current_a",
        "voltage_v",
        "complete",
        "faults",
        "frames",
        "errors",
        "mode",
        "soc",
        "soc_mean",
        "soh",
        "limits",
        "energy_charged_kwh",
        "energy_discharged_kwh",
        "alarms",
        "evt1",
        "balancing",
        "negotiation",
        "charge",
    } <= set(rec)
    assert SCHEMA_VERSION == 2


def test_values_are_the_step_values_rounded(out: ControlOutput) -> None:
    rec = record(out, t0_s=out.t_s - 12.3456)
    assert rec["t"] == 12.346
    p = out.pack
    assert len(rec["cells"]) == 8
    assert rec["cells"][3]["v"] == round(p.cell_voltage_v[3] or math.nan, 4)
    assert rec["current_a"] == round(p.current_a or math.nan, 3)
    assert rec["mode"] == out.mode
    assert out.soc is not None
    assert rec["soc"] == round(out.soc.soc_pct, 2)
    assert rec["limits"]["ccl_a"]["value"] == round(out.limits.ccl_a.value, 2)
    assert rec["limits"]["ccl_a"]["winner"] == out.limits.ccl_a.winner
    assert rec["limits"]["cvl_v"]["terms"] == {
        t.name: round(t.value, 3) for t in out.limits.cvl_v.terms
    }
    assert rec["balancing"]["mode"] == out.balancing.mode.value
    assert out.charge is not None
    assert rec["charge"]["phase"] == out.charge.phase.value
    # A first start has no full charge on record: requested and due at once.
    assert rec["charge"]["full_charge_requested"] is True
    assert rec["charge"]["full_charge_due_in_s"] == 0.0


def test_with_fewer_sensors_than_cells_each_cell_reports_its_covering_sensor(
    out: ControlOutput,
) -> None:
    rec = record(out)
    temps = out.pack.cell_temp_c
    assert len(temps) == 4
    # 8 cells over 4 sensors: cells 0,1 -> sensor 0; 2,3 -> 1; ...; 7 -> 3.
    expected = [temps[i // 2] for i in range(8)]
    assert [c["t_c"] for c in rec["cells"]] == [
        None if t is None else round(t, 2) for t in expected
    ]


def test_unknown_values_are_null_never_nan(out: ControlOutput) -> None:
    pack = dataclasses.replace(
        out.pack,
        current_a=None,
        pack_voltage_v=None,
        cell_voltage_v=(None, *out.pack.cell_voltage_v[1:]),
    )
    assert out.soc is not None
    cell0 = dataclasses.replace(out.soc.cells[0], r1_mohm=math.nan, tau1_s=math.inf)
    soc = dataclasses.replace(out.soc, cells=(cell0, *out.soc.cells[1:]))
    rec = record(dataclasses.replace(out, pack=pack, soc=soc, negotiation=None, charge=None))
    json.dumps(rec, allow_nan=False)
    assert rec["current_a"] is None
    assert rec["voltage_v"] is None
    assert rec["cells"][0]["v"] is None
    assert rec["cells"][0]["r1_mohm"] is None
    assert rec["cells"][0]["tau1_s"] is None
    assert rec["negotiation"] is None
    assert rec["charge"] is None


def test_no_estimate_means_null_cell_estimates(out: ControlOutput) -> None:
    rec = record(dataclasses.replace(out, soc=None))
    assert rec["soc"] is None
    assert all(c["soc"] is None and c["capacity_ah"] is None for c in rec["cells"])


def test_the_negotiation_record_shows_the_effective_limits(out: ControlOutput) -> None:
    neg = Negotiation(
        link=InverterLink.CLIENT,
        connected=True,
        requested_ccl_a=80.004,
        requested_dcl_a=90.0,
        accepted_ccl_a=50.0,
        accepted_dcl_a=None,
    )
    rec = record(dataclasses.replace(out, negotiation=neg))["negotiation"]
    assert rec == {
        "link": "client",
        "connected": True,
        "requested_ccl_a": 80.0,
        "requested_dcl_a": 90.0,
        "accepted_ccl_a": 50.0,
        "accepted_dcl_a": None,
        "effective_ccl_a": 50.0,
        "effective_dcl_a": 90.0,
    }


def test_the_mode_is_an_enum_in_the_step_and_a_plain_string_in_the_record(
    out: ControlOutput,
) -> None:
    assert isinstance(out.mode, GatewayMode)
    rec = json.loads(json.dumps(record(out)))
    assert rec["mode"] == out.mode.value
    assert type(rec["mode"]) is str


def test_every_record_key_is_in_the_documented_table(out: ControlOutput) -> None:
    """docs/REPLAY.md's table names every key a record carries (top level and per cell)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "REPLAY.md").read_text()
    table = "\n".join(line for line in doc.splitlines() if line.startswith("| `"))
    documented = set(re.findall(r"`([a-z0-9_\[\]\.]+)`", table))
    rec = record(out)
    missing = [k for k in rec if k not in documented]
    missing += [f"cells[i].{k}" for k in rec["cells"][0] if f"cells[i].{k}" not in documented]
    assert missing == []
