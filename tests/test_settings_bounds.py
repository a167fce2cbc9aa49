"""Every number a user can set is bounded on both sides (DESIGN.md: times, voltages and
percentages are bounded), so a typo such as ``rest_s = 9e8`` is a config error, not a setting."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import annotated_types as at
import pytest
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from gateway.core.config import _is_number, _is_numbers
from gateway.errors import ConfigError
from gateway.settings import Settings, load_settings

# Numeric keys without a bound in their field: each is bounded another way (the reason says how)
# and the test below checks that by loading a huge and a hugely negative value.
BOUNDED_ELSEWHERE = {
    # Chemistry defaults when unset, so the bounds apply to the resolved thresholds: by the
    # unit suffix of the key (gateway.core.protection.config._BOUNDS: times up to an hour,
    # cell voltages up to 10 V, currents up to 100 kA, temperatures -60..150 degC, ...).
    "protection": "bounded by its unit at resolve (protection.config._BOUNDS)",
}

# Keys holding a list of numbers: a table's knots and values, sensor indices, register
# addresses. Each list is checked whole by its section (knots strictly increasing, fractions
# within 0..1, a sensor index within the sensors, an address within the Modbus space), not
# by a field bound.
LISTS = {
    "pack.board_sensors",
    "balancing.board_sensors",
    "sunspec.base_addresses",
    "limits.charge_cell_v",
    "limits.charge_cell_fraction",
    "limits.discharge_cell_v",
    "limits.discharge_cell_fraction",
    "limits.charge_temp_c",
    "limits.charge_temp_fraction",
    "limits.discharge_temp_c",
    "limits.discharge_temp_fraction",
    "limits.charge_soc_pct",
    "limits.charge_soc_fraction",
    "limits.discharge_soc_pct",
    "limits.discharge_soc_fraction",
    "limits.imbalance_spread_v",
    "limits.imbalance_fraction",
}


def _numeric_fields() -> Iterator[tuple[str, str, FieldInfo]]:
    for section, info in Settings.model_fields.items():
        model = info.annotation
        for key, field in model.model_fields.items():  # type: ignore[union-attr]
            if _is_number(field.annotation) or _is_numbers(field.annotation):
                yield section, key, field


def _bounds(field: FieldInfo) -> tuple[float | None, float | None]:
    lo = hi = None
    for m in field.metadata:
        if isinstance(m, at.Ge | at.Gt):
            lo = float(m.ge if isinstance(m, at.Ge) else m.gt)  # type: ignore[arg-type]
        if isinstance(m, at.Le | at.Lt):
            hi = float(m.le if isinstance(m, at.Le) else m.lt)  # type: ignore[arg-type]
    return lo, hi


def test_every_numeric_key_has_a_lower_and_an_upper_bound() -> None:
    unbounded = []
    for section, key, field in _numeric_fields():
        name = f"{section}.{key}"
        if name in LISTS:
            assert _is_numbers(field.annotation), f"{name} is no longer a list"
            continue
        lo, hi = _bounds(field)
        if lo is None or hi is None:
            if section in BOUNDED_ELSEWHERE:
                continue
            unbounded.append(f"{name} ({lo}..{hi})")
        else:
            assert math.isfinite(lo), name
            assert math.isfinite(hi), name
            assert lo < hi, name
    assert unbounded == []


def test_the_lists_are_still_lists_of_numbers() -> None:
    # The allow-list names real keys (a renamed one would be unbounded unnoticed).
    names = {f"{s}.{k}" for s, k, _ in _numeric_fields()}
    assert names >= LISTS


@pytest.mark.parametrize(
    "key",
    sorted(
        k
        for s, k, f in _numeric_fields()
        if s in BOUNDED_ELSEWHERE and _is_number(f.annotation) and None in _bounds(f)
    ),
)
@pytest.mark.parametrize("value", [1e9, -1e9])
def test_keys_bounded_elsewhere_refuse_huge_values(key: str, value: float) -> None:
    with pytest.raises(ValidationError, match=key):
        Settings(protection={key: value})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        *(
            (k, 1e9)
            for k in (
                "rest_s",
                "current_hold_s",
                "innovation_window_s",
                "rls_memory_s",
                "voltage_sigma_mv",
                "rest_voltage_sigma_mv",
                "ocv_hysteresis_mv",
                "current_gain_sigma_pct",
                "extra_current_sigma_pct",
                "confident_sigma_pct",
                "restore_sigma_pct",
                "plateau_k_sigma",
                "full_current_c",
                "gap_current_c",
            )
        ),
        ("rest_s", 0),
        ("rest_current_c", 0),
        ("rls_min_current_c", 0),
    ],
)
def test_soc_keys_out_of_range_are_config_errors(key: str, value: float, tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(f"[soc]\n{key} = {value!r}\n")
    with pytest.raises(ConfigError, match=rf"^{f}: soc\.{key} \(={value!r}\): Input should be"):
        load_settings(f)
