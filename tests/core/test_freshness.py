"""core/freshness.py: which required inputs are missing, stale or implausible; cell extremes."""

from __future__ import annotations

import math

import pytest

from gateway.core.freshness import (
    InputTimeouts,
    StaleInput,
    TimeoutsConfig,
    extremes,
    stale_inputs,
)
from gateway.core.model import MeasurementFault, PackSnapshot
from gateway.core.pack import PackConfig

TO = InputTimeouts(cell_voltage_s=5.0, temperature_s=10.0, current_s=2.0)


def _snap(
    cells: tuple[float | None, ...] = (3.3, 3.3, 3.3),
    cell_ages: tuple[float | None, ...] = (1.0, 1.0, 1.0),
    temps: tuple[float | None, ...] = (25.0,),
    temp_ages: tuple[float | None, ...] = (1.0,),
    current: float | None = 1.0,
    current_age: float | None = 0.5,
    pack_v: float | None = None,
    pack_v_age: float | None = None,
    faults: tuple[MeasurementFault, ...] = (),
) -> PackSnapshot:
    return PackSnapshot(
        t_s=100.0,
        cell_voltage_v=cells,
        cell_voltage_age_s=cell_ages,
        cell_temp_c=temps,
        cell_temp_age_s=temp_ages,
        current_a=current,
        current_age_s=current_age,
        pack_voltage_v=pack_v,
        pack_voltage_age_s=pack_v_age,
        balancing_active=(False,) * len(cells),
        complete=True,
        faults=faults,
    )


def test_all_fresh_is_empty() -> None:
    assert stale_inputs(_snap(), TO) == ()


def test_a_value_never_seen_is_missing() -> None:
    (s,) = stale_inputs(_snap(cells=(3.3, None, None), cell_ages=(1.0, None, None)), TO)
    assert (s.kind, s.input, s.index, s.count) == ("missing", "cell_voltage", 1, 2)
    assert s.name == "missing:cell_voltage[2]"  # numbered from 1 for people
    assert s.message == "cell_voltage[2] and 1 more missing (never received or flagged invalid)"


def test_a_value_past_its_timeout_is_stale_with_the_oldest_age() -> None:
    snap = _snap(cells=(3.3, None, None), cell_ages=(1.0, 7.0, 6.0))
    (s,) = stale_inputs(snap, TO)
    assert (s.kind, s.index, s.count, s.age_s) == ("stale", 1, 2, 7.0)
    assert s.message == "cell_voltage[2] and 1 more stale (7.0 s old)"
    # Exactly at the timeout is still fresh.
    assert stale_inputs(_snap(cell_ages=(5.0, 5.0, 5.0)), TO) == ()


@pytest.mark.parametrize("age", [-0.1, math.nan, math.inf])
def test_a_future_stamp_or_a_non_finite_age_is_stale(age: float) -> None:
    (s,) = stale_inputs(_snap(temps=(None,), temp_ages=(age,)), TO)
    assert (s.kind, s.input, s.index) == ("stale", "temperature", 0)
    if not math.isfinite(age):
        assert s.age_s == math.inf


def test_a_nan_age_is_caught_even_when_every_value_is_known() -> None:
    """``max`` is blind to NaN; the fast path must not call such a set fresh."""
    (s,) = stale_inputs(_snap(cell_ages=(1.0, math.nan, 1.0)), TO)
    assert (s.kind, s.index) == ("stale", 1)


def test_single_values_current_and_pack_voltage() -> None:
    (s,) = stale_inputs(_snap(current=None, current_age=3.0), TO)
    assert (s.kind, s.input, s.index, s.age_s) == ("stale", "current", None, 3.0)
    assert s.name == "stale:current"
    (s,) = stale_inputs(_snap(current=None, current_age=None), TO)
    assert s.name == "missing:current"
    # The pack voltage only counts when required.
    assert stale_inputs(_snap(), TO) == ()
    required = InputTimeouts(
        cell_voltage_s=5.0, temperature_s=10.0, current_s=2.0, pack_voltage_s=5.0
    )
    (s,) = stale_inputs(_snap(), required)
    assert s.name == "missing:pack_voltage"
    assert stale_inputs(_snap(pack_v=9.9, pack_v_age=1.0), required) == ()


def test_an_implausible_input_is_reported_as_such_not_as_missing() -> None:
    faults = (
        MeasurementFault("cell_voltage", 2, 9.9, "outside"),
        MeasurementFault("current", None, math.nan, "sentinel"),
    )
    snap = _snap(cells=(3.3, None, None), current=None, faults=faults)
    found = {s.name: s for s in stale_inputs(snap, TO)}
    assert set(found) == {
        "implausible:cell_voltage[3]",
        "missing:cell_voltage[2]",
        "implausible:current",
    }
    assert found["implausible:current"].message == "current implausible (a measurement fault)"


def test_timeouts_config_gives_the_pack_voltage_timeout_only_when_required() -> None:
    cfg = TimeoutsConfig()
    assert cfg.input_timeouts(PackConfig()).pack_voltage_s is None
    t = cfg.input_timeouts(PackConfig(require_pack_voltage=True))
    assert t.pack_voltage_s == cfg.pack_voltage_timeout_s
    assert (t.cell_voltage_s, t.temperature_s, t.current_s) == (5.0, 10.0, 2.0)


def test_the_soc_and_balancing_ages_keep_their_old_values_under_defaults() -> None:
    # soc.stale_s and balancing.max_data_age_s were 5 s for both of their inputs.
    cfg = TimeoutsConfig()
    assert cfg.soc_ages_s() == (5.0, 5.0)
    assert cfg.balancing_ages_s() == (5.0, 5.0)
    cfg = TimeoutsConfig(cell_voltage_timeout_s=4.0, current_timeout_s=6.0, temperature_timeout_s=3)
    assert cfg.soc_ages_s() == (4.0, 6.0)
    assert cfg.balancing_ages_s() == (4.0, 3.0)


def test_a_deprecated_age_is_in_force_until_a_key_replacing_it_is_set() -> None:
    assert TimeoutsConfig().soc_ages_s(15.0) == (15.0, 15.0)
    assert TimeoutsConfig().balancing_ages_s(8.0) == (8.0, 8.0)
    # A key of another consumer does not count; set to its default value, it does.
    assert TimeoutsConfig(temperature_timeout_s=20.0).soc_ages_s(15.0) == (15.0, 15.0)
    assert TimeoutsConfig(current_timeout_s=2.0).soc_ages_s(15.0) == (5.0, 5.0)
    assert TimeoutsConfig(current_timeout_s=20.0).balancing_ages_s(8.0) == (8.0, 8.0)
    assert TimeoutsConfig(temperature_timeout_s=3.0).balancing_ages_s(8.0) == (5.0, 3.0)


def test_extremes_of_the_known_values() -> None:
    assert extremes((3.3, 3.1, 3.5, 3.2)) == (3.1, 1, 3.5, 2)
    assert extremes((None, 3.4, None, 3.2)) == (3.2, 3, 3.4, 1)
    assert extremes((None, None)) is None


def test_stale_input_is_a_frozen_record() -> None:
    s = StaleInput("stale", "temperature", 0, 1, 12.0)
    with pytest.raises(AttributeError):
        s.kind = "missing"  # type: ignore[misc]
