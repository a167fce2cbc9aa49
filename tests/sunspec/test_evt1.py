"""SunSpec model 802 ``Evt1``: the bit map against pysunspec2, and the bits of alarm reports."""

from __future__ import annotations

import json
from pathlib import Path

import sunspec2
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.health import HealthCode
from gateway.core.model import Alarm, AlarmReport, Severity
from gateway.core.pack import PackConfig
from gateway.core.protection import ALARMS, Protection, ProtectionConfig
from gateway.sunspec.evt1 import ALARM_EVT1, EVT1_BITS, alarm_mask, evt1_of, warning_mask
from tests.core.packdata import snapshot

PACK4 = PackConfig(cells=4, temp_sensors=2)


def _evt1_symbols() -> dict[str, int]:
    path = Path(sunspec2.__file__).parent / "models" / "json" / "model_802.json"
    model = json.loads(path.read_text())
    evt1 = next(p for p in model["group"]["points"] if p["name"] == "Evt1")
    return {s["name"]: s["value"] for s in evt1["symbols"]}


def test_evt1_bits_match_pysunspec2_model_802() -> None:
    symbols = _evt1_symbols()
    for name, bit in EVT1_BITS.items():
        assert symbols[name] == bit, name
    for warning, alarm in ALARM_EVT1.values():
        assert warning in symbols
        assert alarm in symbols


def test_every_protection_alarm_has_its_evt1_bits() -> None:
    assert list(ALARM_EVT1) == list(ALARMS)
    assert alarm_mask("cell_overvoltage") == 1 << 9
    assert warning_mask("cell_overvoltage") == 1 << 10
    assert alarm_mask("communication_loss") == 1 << 0
    assert alarm_mask("temperature_imbalance") == 1 << 18


def test_a_warning_sets_its_bit_an_alarm_its_own_and_the_warning_while_that_holds() -> None:
    warning = Alarm("cell_overvoltage", Severity.WARNING, "", 0.0)
    assert evt1_of(AlarmReport(active=(warning,))) == 1 << 10
    alone = Alarm("cell_overvoltage", Severity.ALARM, "", 0.0, latched=True)
    assert evt1_of(AlarmReport(active=(alone,))) == 1 << 9
    both = Alarm("cell_overvoltage", Severity.ALARM, "", 0.0, latched=True, warning_too=True)
    assert evt1_of(AlarmReport(active=(both,))) == (1 << 9) | (1 << 10)
    assert evt1_of(AlarmReport()) == 0


def test_health_trend_warnings_set_no_bit() -> None:
    trend = tuple(Alarm(code.value, Severity.WARNING, "", 0.0) for code in HealthCode)
    assert evt1_of(AlarmReport(active=trend)) == 0
    stale = Alarm("stale_data", Severity.WARNING, "", 0.0)
    assert evt1_of(AlarmReport(active=(*trend, stale))) == 1 << EVT1_BITS["OTHER_WARNING"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.floats(2.3, 3.8), min_size=4, max_size=4),
            st.lists(st.floats(-30.0, 70.0), min_size=2, max_size=2),
            st.floats(-200.0, 200.0),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_evt1_is_exactly_the_bits_of_the_active_alarms(
    steps: list[tuple[list[float], list[float], float]],
) -> None:
    p = Protection(ProtectionConfig(debounce_count=1, debounce_s=0, imbalance_debounce_s=0), PACK4)
    for t, (cells, temps, current) in enumerate(steps):
        report = p.step(snapshot(cells, temps, current, float(t)), None, float(t))
        evt1 = evt1_of(report)
        expected = 0
        for a in report.active:
            expected |= alarm_mask(a.code) if a.severity is Severity.ALARM else warning_mask(a.code)
        # Alarms may also carry their warning bit; nothing else may appear.
        allowed = expected
        for a in report.active:
            allowed |= warning_mask(a.code)
        assert evt1 & expected == expected
        assert evt1 & ~allowed == 0
        if max(cells) >= 3.65:
            assert report.has("cell_overvoltage", Severity.ALARM)
            assert evt1 & (1 << EVT1_BITS["OVER_VOLT_ALARM"])


def test_docs_list_every_alarm_with_its_evt1_bits() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "LIMITS.md").read_text()
    rows = {
        line.split("|")[1].strip(" `"): line for line in doc.splitlines() if line.startswith("| `")
    }
    for code in ALARMS:
        row = rows[code]
        warning, alarm = ALARM_EVT1[code]
        assert f"{warning} ({EVT1_BITS[warning]})" in row, code
        assert f"{alarm} ({EVT1_BITS[alarm]})" in row, code
        assert ("yes" in row.split("|")[-2]) is (code in ProtectionConfig().latching), code


def test_readme_lists_every_alarm_with_its_evt1_bits() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Alarms and their SunSpec Evt1 bits", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split("|")[1].strip(" `"): line
        for line in section.splitlines()
        if line.startswith("| `")
    }
    for code in ALARMS:
        assert code in rows, code
        cols = rows[code].split("|")
        warning, alarm = ALARM_EVT1[code]
        assert f"({EVT1_BITS[warning]})" in cols[2], code
        assert f"({EVT1_BITS[alarm]})" in cols[2], code
        assert ("yes" in cols[-2]) is (code in ProtectionConfig().latching), code
