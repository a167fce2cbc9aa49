"""The debounce, hysteresis and latch level on its own, and the set of them (pure, no loop)."""

from __future__ import annotations

from gateway.core.model import Severity
from gateway.core.protection.alarms import ALARMS
from gateway.core.protection.levels import CLEAR, HOLD, Check, Level, Levels, above, below

VIOLATED = (True, False)


def test_above_and_below_say_violated_and_cleared_with_the_band() -> None:
    assert above(3.65, 3.65, 0.05) == (True, False)  # at the threshold: violated
    assert above(3.62, 3.65, 0.05) == (False, False)  # inside the band: neither (hold)
    assert above(3.59, 3.65, 0.05) == (False, True)
    assert below(2.50, 2.50, 0.05) == (True, False)
    assert below(2.53, 2.50, 0.05) == (False, False)
    assert below(2.56, 2.50, 0.05) == (False, True)


def test_activates_after_count_and_time_both() -> None:
    level = Level(debounce_n=3, debounce_s=1.0, clear_s=0.0, latch=False)
    for t in (0.0, 0.5, 0.9):  # three steps, but under a second
        level.update(True, False, t)
        assert not level.active, t
    level.update(True, False, 1.0)
    assert level.active
    assert level.since_s == 1.0


def test_a_good_step_restarts_the_debounce() -> None:
    level = Level(debounce_n=2, debounce_s=0.0, clear_s=0.0, latch=False)
    level.update(True, False, 0.0)
    level.update(False, True, 1.0)
    level.update(True, False, 2.0)
    assert not level.active
    level.update(True, False, 3.0)
    assert level.active


def test_hold_in_the_band_then_clear_after_the_clear_debounce() -> None:
    level = Level(debounce_n=1, debounce_s=0.0, clear_s=2.0, latch=False)
    level.update(True, False, 0.0)
    for t in (1.0, 5.0):
        level.update(*HOLD, t)
        assert level.active
    level.update(*CLEAR, 6.0)
    level.update(*CLEAR, 7.9)
    assert level.active
    level.update(*CLEAR, 8.0)
    assert not level.active


def test_a_latched_level_stays_until_reset_and_only_once_its_cause_is_gone() -> None:
    level = Level(debounce_n=1, debounce_s=0.0, clear_s=1.0, latch=True)
    level.update(True, False, 0.0)
    assert not level.reset()  # cause persists
    level.update(*CLEAR, 1.0)
    level.update(*CLEAR, 2.0)
    assert level.active
    assert level.cause_gone
    level.update(True, False, 3.0)  # back again: the cause is not gone any more
    assert not level.cause_gone
    assert not level.reset()
    level.update(*CLEAR, 4.0)
    level.update(*CLEAR, 5.0)
    assert level.reset()
    assert not level.active


def test_restore_activates_with_the_cause_not_known_gone() -> None:
    level = Level(debounce_n=1, debounce_s=0.0, clear_s=1.0, latch=True)
    level.restore("cell 3 at 3.71 V", 100.0)
    assert level.active
    assert level.since_s == 100.0
    assert level.message == "cell 3 at 3.71 V (restored after a restart)"
    assert not level.reset()


def _levels(*codes: str, latch: bool = True) -> Levels:
    return Levels(
        {
            c: Check(
                ALARMS[c],
                Level(1, 0.0, 0.0, latch=False),
                Level(1, 0.0, 0.0, latch=latch),
            )
            for c in codes
        }
    )


def test_report_lists_each_code_once_at_its_worst_level() -> None:
    levels = _levels("cell_overvoltage", "cell_undervoltage", "soc_low")
    levels.run("cell_overvoltage", 0.0, VIOLATED, HOLD, "cell 1 at 3.56 V")
    levels.run("cell_overvoltage", 1.0, VIOLATED, VIOLATED, "cell 1 at 3.70 V")
    levels.run("cell_undervoltage", 1.0, HOLD, VIOLATED, "cell 2 at 2.40 V")
    report = levels.report()
    assert [a.code for a in report.active] == ["cell_overvoltage", "cell_undervoltage"]
    over, under = report.active
    assert over.severity is Severity.ALARM
    assert over.since_s == 0.0  # the earlier of the two levels
    assert over.warning_too
    assert over.message == "cell 1 at 3.70 V [latched]"
    assert over.latched
    assert not under.warning_too  # its warning level never activated


def test_reset_says_what_it_cleared_and_what_it_kept() -> None:
    levels = _levels("cell_overvoltage", "cell_undervoltage")
    assert levels.reset(0.0).message == "no latched alarms"
    levels.run("cell_overvoltage", 0.0, HOLD, VIOLATED, "over")
    levels.run("cell_undervoltage", 0.0, HOLD, VIOLATED, "under")
    levels.run("cell_overvoltage", 1.0, CLEAR, CLEAR, "")
    assert "cause gone" in levels.report().active[0].message
    result = levels.reset(2.0)
    assert not result.accepted
    assert result.message == (
        "at 2.0 s: cleared cell_overvoltage; kept cell_undervoltage (cause persists)"
    )
    assert [a.code for a in levels.report().active] == ["cell_undervoltage"]


def test_export_and_restore_latched_skip_unknown_codes() -> None:
    levels = _levels("cell_overvoltage", "cell_undervoltage")
    levels.run("cell_overvoltage", 0.0, HOLD, VIOLATED, "over")
    exported = levels.export_latched()
    assert exported == {"cell_overvoltage": "over"}
    fresh = _levels("cell_overvoltage", "cell_undervoltage")
    assert fresh.restore_latched({**exported, "no_such_code": "x"}, 50.0) == ["cell_overvoltage"]
    alarm = fresh.report().active[0]
    assert alarm.since_s == 50.0
    assert alarm.message == "over (restored after a restart) [latched]"
