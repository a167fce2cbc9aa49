"""The ``alarms`` topic (retained, sent on change): every active warning and alarm."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from gateway.core.model import AlarmReport, ControlOutput, Severity
from gateway.mqtt.payloads.common import Payload, rounded
from gateway.sunspec.evt1 import evt1_of

__all__ = ["AlarmItem", "AlarmsPayload", "alarms_key", "alarms_payload", "alarms_payload_of"]


class AlarmItem(BaseModel):
    """One active warning or alarm."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    severity: Literal["ok", "warning", "alarm"]
    message: str
    since_s: float | None
    latched: bool


class AlarmsPayload(Payload):
    """Topic ``alarms`` (retained, sent on change): every active warning and alarm."""

    seq: int
    t_s: float
    time: float | None
    level: Literal["ok", "warning", "alarm"]
    evt1: int
    active: list[AlarmItem]


def _severity(s: Severity) -> Literal["ok", "warning", "alarm"]:
    if s is Severity.ALARM:
        return "alarm"
    return "warning" if s is Severity.WARNING else "ok"


def alarms_key(report: AlarmReport) -> tuple[tuple[str, int, bool, float], ...]:
    """What must differ for the alarms to count as changed (messages may carry live values)."""
    return tuple((a.code, int(a.severity), a.latched, a.since_s) for a in report.active)


def alarms_payload(out: ControlOutput, gateway_id: str, time_s: float | None) -> AlarmsPayload:
    """The ``alarms`` payload of one control step."""
    return alarms_payload_of(out.alarms, out.seq, out.t_s, gateway_id, time_s)


def alarms_payload_of(
    report: AlarmReport, seq: int, t_s: float, gateway_id: str, time_s: float | None
) -> AlarmsPayload:
    """The ``alarms`` payload from the alarm report of step ``seq`` (no need to keep the step)."""
    return AlarmsPayload(
        gateway_id=gateway_id,
        seq=seq,
        t_s=round(t_s, 3),
        time=rounded(time_s, 3),
        level=_severity(report.worst),
        evt1=evt1_of(report),
        active=[
            AlarmItem(
                code=a.code,
                severity=_severity(a.severity),
                message=a.message,
                since_s=rounded(a.since_s, 3),
                latched=a.latched,
            )
            for a in report.active
        ],
    )
