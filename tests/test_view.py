"""The demo view: fits 80x24 whatever the pack, keeps the header on top, numbers cells from 1."""

from __future__ import annotations

import dataclasses
import re

import pytest

from gateway.core.kinds import ChargePhase
from gateway.core.model import Alarm, ChargeState, InverterLink, Negotiation, Severity
from gateway.view import redraw, render, summary_line
from tests.mqtt.outputs import make_output

WINDOW = (2.5, 3.65)
LINKS = {"CAN": "up", "inverter": "polling", "MQTT": "connected"}
ENDPOINTS = (
    "MQTT:   existing broker at 127.0.0.1:1883 (reused), as demo-a-rather-long-host-name-here",
    "  watch: mosquitto_sub -h 127.0.0.1 -p 1883 -t 'bms/demo-a-rather-long-host-name/#' -v",
    "Modbus: SunSpec model 802 at 127.0.0.1:5020, unit 1, base 40000",
)
ALARMS = tuple(Alarm(f"code_{k}", Severity.ALARM, f"cell {k + 1} at 3.71 V", 1.0) for k in range(6))
NEG = Negotiation(InverterLink.SERVER, True, 100.0, 100.0, 90.0, 80.0)


def _screen(cells: int, *, alarms: tuple[Alarm, ...] = (), note: str | None = None) -> list[str]:
    out = make_output(cells=cells, sensors=max(1, cells // 4), alarms=alarms, negotiation=NEG)
    text = render(
        out,
        v_window=WINDOW,
        links=LINKS,
        endpoints=ENDPOINTS,
        sim_time_s=3725.0,
        note=note,
        width=80,
        height=24,
    )
    return text.split("\n")


@pytest.mark.parametrize("cells", [4, 16, 48, 120, 512])
@pytest.mark.parametrize("alarms", [(), ALARMS])
def test_every_screen_fits_80x24(cells: int, alarms: tuple[Alarm, ...]) -> None:
    lines = _screen(cells, alarms=alarms, note="CCL ramp: " + "x" * 100)
    assert len(lines) <= 24
    assert max(len(line) for line in lines) <= 79  # the last column stays free: no wrap
    # The header stays on top: mode, SoC, then the four limits.
    assert "NORMAL" in lines[1]
    assert "SoC  55.0 %" in lines[1]
    assert lines[2].startswith(" CCL")
    assert " DCL " in lines[2]
    assert lines[3].startswith(" CVL")
    assert " DVL " in lines[3]
    assert any(line.startswith(" links:") for line in lines)
    assert any("Modbus: SunSpec model 802" in line for line in lines)


def test_sixteen_cells_all_shown_numbered_from_one() -> None:
    lines = _screen(16)
    numbers = sorted(
        int(m.group(1)) for line in lines for m in re.finditer(r"\s(\d+) 3\.\d{3}V", line)
    )
    assert numbers == list(range(1, 17))


def test_a_large_pack_is_summarised_with_its_extremes() -> None:
    lines = _screen(512)
    summary = [line for line in lines if "more cells" in line]
    assert len(summary) == 1
    # make_output puts the lowest voltage on index 0 and the highest on index 511.
    assert "lowest 1 at 3.300 V" in summary[0]
    assert "highest 512 at 3.811 V" in summary[0]


def test_balancing_actions_and_bleeding_cells_use_the_same_numbers() -> None:
    out = make_output(cells=16, bleed=(0, 15))
    text = render(out, v_window=WINDOW)
    assert re.search(r"\b1 3\.300V \S+ +\S+%\*", text)
    assert re.search(r"\b16 3\.315V \S+ +\S+%\*", text)
    balancing = next(line for line in text.split("\n") if "balancing (" in line)
    assert "1:bleed" in balancing
    assert "16:bleed" in balancing
    assert "0:bleed" not in balancing


def test_redraw_repaints_in_place_without_scrolling() -> None:
    screen = "\n".join(_screen(16))
    out = redraw(screen)
    assert out.startswith("\x1b[H")  # home, no clear-screen flash, no scrolling
    assert "\x1b[2J" not in out
    assert out.count("\n") == screen.count("\n") <= 23
    assert out.endswith("\x1b[K\x1b[J")


def test_screen_log_keeps_logs_off_the_terminal_and_passes_warnings_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from gateway.view import ScreenLog

    caplog.set_level(logging.INFO)
    log = logging.getLogger("gateway.test_view")
    screen_log = ScreenLog()
    with screen_log.capture():
        assert logging.getLogger().handlers == [screen_log]
        log.warning("modbus port 5020 in use")
        log.info("mqtt connected")
        assert screen_log.latest == "INFO mqtt connected"
    # Restored; the warning reaches the usual handlers once the view is gone, the info does not.
    assert screen_log not in logging.getLogger().handlers
    assert [r.getMessage() for r in caplog.records if r.name == "gateway.test_view"] == [
        "modbus port 5020 in use"
    ]
    text = render(make_output(cells=4), v_window=WINDOW, log_line=screen_log.latest)
    assert text.split("\n")[-1] == " log: INFO mqtt connected"


def test_the_no_view_line_names_the_charge_phase() -> None:
    charge = ChargeState(ChargePhase.FLOAT, "absorbed", 50.0, 53.6, False, "", False, 10.0)
    out = dataclasses.replace(make_output(cells=16), charge=charge)
    line = summary_line(out, 3725.0)
    assert "\n" not in line
    assert "phase=float " in line
    assert line.startswith("t=    3725s mode=normal I=-20.0A SoC=55.0% CCL=80.0A (temperature)")
    # A step without a charge state (none yet) says so, never a made-up phase.
    assert "phase=-- " in summary_line(make_output(cells=16), 0.0)
