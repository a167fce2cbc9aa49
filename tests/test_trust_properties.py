"""No sequence of readings yields a limit above what the fresh, plausible data allows.

Hypothesis drives the whole control step (``Controller``) with sequences of readings that mix
plausible values with NaN, infinities, sentinels (0 V, 65.535 V, 215 degC), flagged-invalid
values, readings stamped in the future or with a non-finite time, and jumps of the clock. An
oracle written apart from the pack state keeps the last reading of every input and decides
which are trustworthy: valid, finite, inside the plausibility window and no older than the
input's timeout (and not from the future). The CCL and DCL must never exceed the configured
maximum times the cell-voltage and temperature tapers at the trusted values, and must be 0 A
whenever any required input is not trusted.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.control import Controller
from gateway.core.limits import LimitsConfig
from gateway.core.model import Reading, Role
from gateway.core.pack import PackConfig
from gateway.settings import Settings

CELLS, SENSORS = 4, 2
PACK = PackConfig(cells=CELLS, temp_sensors=SENSORS, chemistry="lfp")
SETTINGS = Settings(
    pack=PACK,
    # No hold and a fast ramp, so the limits follow the data and a wrong one would show.
    limits=LimitsConfig(ramp_hold_s=0.0, ramp_a_per_s=10_000.0),
)
TIMEOUT_S = {
    Role.CELL_VOLTAGE: SETTINGS.timeouts.cell_voltage_timeout_s,
    Role.CELL_TEMPERATURE: SETTINGS.timeouts.temperature_timeout_s,
    Role.PACK_CURRENT: SETTINGS.timeouts.current_timeout_s,
}
# The plausibility windows for an LFP pack of 100 Ah (the section's defaults).
WINDOW = {
    Role.CELL_VOLTAGE: (1.0, 4.5),
    Role.CELL_TEMPERATURE: (-40.0, 125.0),
    Role.PACK_CURRENT: (-1000.0, 1000.0),
}
BAD = [math.nan, math.inf, -math.inf]
VALUES = {
    Role.CELL_VOLTAGE: st.one_of(
        st.floats(2.6, 3.6), st.sampled_from([*BAD, 0.0, 65.535, 8.191, 0.85, 4.6])
    ),
    Role.CELL_TEMPERATURE: st.one_of(
        st.floats(-25.0, 65.0), st.sampled_from([*BAD, 215.0, -273.15, 130.0])
    ),
    Role.PACK_CURRENT: st.one_of(st.floats(-150.0, 150.0), st.sampled_from([*BAD, 1e9, -5000.0])),
}
INPUTS = [
    *[(Role.CELL_VOLTAGE, i) for i in range(CELLS)],
    *[(Role.CELL_TEMPERATURE, j) for j in range(SENSORS)],
    (Role.PACK_CURRENT, 0),
]
STAMP_OFFSETS = [0.0, 0.0, 0.0, -0.5, -3.0, -30.0, 5.0, math.nan, math.inf, -math.inf]


@st.composite
def readings(draw: st.DrawFn) -> tuple[Role, int, float, float, bool]:
    role, index = draw(st.sampled_from(INPUTS))
    return (
        role,
        index,
        draw(VALUES[role]),
        draw(st.sampled_from(STAMP_OFFSETS)),
        draw(st.booleans() | st.just(True)),
    )


@st.composite
def good_set(draw: st.DrawFn) -> list[tuple[Role, int, float, float, bool]]:
    """A complete, plausible data set stamped now (so that trusted steps are common)."""
    return [
        (
            role,
            index,
            draw(
                st.floats(3.0, 3.45)
                if role is Role.CELL_VOLTAGE
                else st.floats(5.0, 40.0)
                if role is Role.CELL_TEMPERATURE
                else st.floats(-100.0, 100.0)
            ),
            0.0,
            True,
        )
        for role, index in INPUTS
    ]


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[Role, int, float, float, bool]]:
    """Often a complete good set, then a few readings of any kind (the perturbations)."""
    base = draw(good_set()) if draw(st.integers(0, 3)) else []
    return base + draw(st.lists(readings(), max_size=3))


EVENTS = st.lists(
    st.tuples(st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0, 3.0, 12.0, 400.0]), batches()),
    min_size=1,
    max_size=40,
)


def _trusted(last: tuple[float, float, bool] | None, role: Role, now: float) -> float | None:
    if last is None:
        return None
    value, t, valid = last
    lo, hi = WINDOW[role]
    age = now - t
    if not valid or not math.isfinite(value) or not lo <= value <= hi:
        return None
    if not (math.isfinite(age) and 0.0 <= age <= TIMEOUT_S[role]):
        return None
    return value


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=EVENTS)
def test_no_reading_sequence_raises_a_limit_above_what_trusted_data_allows(
    events: list[tuple[float, list[tuple[Role, int, float, float, bool]]]],
) -> None:
    ctrl = Controller(SETTINGS)
    tables = SETTINGS.limits.tables(PACK)
    max_c, max_d = SETTINGS.limits.max_charge_a, SETTINGS.limits.max_discharge_a
    last: dict[tuple[Role, int], tuple[float, float, bool]] = {}
    now = 1000.0
    for dt, batch in events:
        now += dt
        for role, index, value, offset, valid in batch:
            t = now + offset
            ctrl.ingest([Reading(role, index, value, t, valid)])
            last[(role, index)] = (value, t, valid)
        out = ctrl.step(now)
        ccl, dcl = out.limits.ccl_a.value, out.limits.dcl_a.value
        assert 0.0 <= ccl <= max_c
        assert 0.0 <= dcl <= max_d
        trusted = {k: _trusted(last.get(k), k[0], now) for k in INPUTS}
        if any(v is None for v in trusted.values()):
            assert ccl == 0.0, (trusted, out.limits.ccl_a)
            assert dcl == 0.0, (trusted, out.limits.dcl_a)
            continue
        cells = [trusted[(Role.CELL_VOLTAGE, i)] for i in range(CELLS)]
        temps = [trusted[(Role.CELL_TEMPERATURE, j)] for j in range(SENSORS)]
        vmax, vmin = max(cells), min(cells)  # type: ignore[type-var]
        ccl_bound = max_c * min(
            tables.charge_cell(vmax),  # type: ignore[arg-type]
            *(tables.charge_temp(x) for x in temps),  # type: ignore[arg-type]
        )
        dcl_bound = max_d * min(
            tables.discharge_cell(vmin),  # type: ignore[arg-type]
            *(tables.discharge_temp(x) for x in temps),  # type: ignore[arg-type]
        )
        assert ccl <= ccl_bound + 1e-9, (cells, temps, out.limits.ccl_a)
        assert dcl <= dcl_bound + 1e-9, (cells, temps, out.limits.dcl_a)
