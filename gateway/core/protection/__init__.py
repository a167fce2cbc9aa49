"""Protection: warnings and alarms with hysteresis, debounce and latching. Pure, clock-injected.

Each check has a warning and an alarm level. A level becomes active once its condition has held
for ``debounce_count`` consecutive steps *and* ``debounce_s`` seconds (count, time, or both), and
clears once the value is back past the threshold by the hysteresis for ``clear_debounce_s``.
Alarm levels of the codes in ``ProtectionConfig.latching`` stay active after their cause is gone
until :meth:`Protection.reset` (MQTT ``cmd/reset_alarms``, SunSpec ``AlmRst``).

Thresholds left unset (``None``) take the chemistry default from ``PROTECTION_DEFAULTS``; current
thresholds default to a C-rate times the pack capacity. ``docs/LIMITS.md`` lists every alarm with
its SunSpec model 802 ``Evt1`` bits (``gateway.sunspec.evt1``) and its MQTT name.

One concept per module:

* ``alarms``: the alarm catalogue (``ALARMS``: code, meaning, which limits its alarm cuts);
* ``defaults``: the chemistry defaults of the thresholds;
* ``config``: the ``protection`` settings section and its resolved thresholds;
* ``levels``: the debounce, hysteresis and latch level of each code, and the report;
* ``checks``: ``Protection``, what each code measures, run once per control step.
"""

from __future__ import annotations

from gateway.core.protection.alarms import ALARMS, AlarmSpec
from gateway.core.protection.checks import Protection
from gateway.core.protection.config import ProtectionConfig, ProtectionThresholds
from gateway.core.protection.defaults import PROTECTION_DEFAULTS

__all__ = [
    "ALARMS",
    "PROTECTION_DEFAULTS",
    "AlarmSpec",
    "Protection",
    "ProtectionConfig",
    "ProtectionThresholds",
]
