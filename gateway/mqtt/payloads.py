"""Versioned JSON payloads of the MQTT topics, built from a ``ControlOutput``. Pure: no I/O.

Every payload carries ``"v": SCHEMA_VERSION``. Adding a field keeps the version; renaming or
removing one, or changing a unit or meaning, bumps it. Floats that are unknown (or not finite)
are ``null``, never a made-up number. docs/MQTT.md is the reference.

The builders take ``time_s`` (Unix wall-clock seconds) from the caller so that this module never
reads a clock; ``t_s`` in the payloads is the control loop's monotonic time.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from gateway.core.model import (
    AlarmReport,
    BalancingPlan,
    ChargeState,
    CommandResult,
    ControlOutput,
    Limit,
    Negotiation,
    Severity,
)

__all__ = [
    "SCHEMA_VERSION",
    "AlarmItem",
    "AlarmsPayload",
    "BalancingActionItem",
    "BalancingPayload",
    "CellsPayload",
    "ChargePayload",
    "CommandResultPayload",
    "EventPayload",
    "LimitPayload",
    "NegotiationPayload",
    "RequestsPayload",
    "StatePayload",
    "alarms_key",
    "alarms_payload",
    "alarms_payload_of",
    "balancing_key",
    "balancing_payload",
    "balancing_payload_of",
    "cells_payload",
    "command_result_payload",
    "event_payload",
    "state_payload",
]

SCHEMA_VERSION: Literal[1] = 1
"""Version of every payload schema in this module."""


def _r(x: float | None, ndigits: int) -> float | None:
    """Round for the wire; unknown or non-finite values become ``None`` (JSON ``null``)."""
    if x is None or not math.isfinite(x):
        return None
    return round(x, ndigits)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    gateway_id: str


# --- state ----------------------------------------------------------------------------------


class LimitPayload(BaseModel):
    """One limit: its value, the term that won and every term (why the current is limited)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float | None
    winner: str
    terms: dict[str, float | None]

    @classmethod
    def of(cls, limit: Limit) -> LimitPayload:
        """Build from a core ``Limit``."""
        return cls(
            value=_r(limit.value, 3),
            winner=limit.winner,
            terms={t.name: _r(t.value, 3) for t in limit.terms},
        )


class NegotiationPayload(BaseModel):
    """What the inverter link requested, what the inverter accepted and what is in force."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    link: str
    connected: bool
    requested_ccl_a: float | None
    requested_dcl_a: float | None
    accepted_ccl_a: float | None
    accepted_dcl_a: float | None
    effective_ccl_a: float | None
    effective_dcl_a: float | None
    inverter_max_charge_a: float | None
    inverter_max_discharge_a: float | None
    keepalive: bool | None = None

    @classmethod
    def of(cls, n: Negotiation) -> NegotiationPayload:
        """Build from a core ``Negotiation``."""
        return cls(
            link=n.link,
            connected=n.connected,
            requested_ccl_a=_r(n.requested_ccl_a, 3),
            requested_dcl_a=_r(n.requested_dcl_a, 3),
            accepted_ccl_a=_r(n.accepted_ccl_a, 3),
            accepted_dcl_a=_r(n.accepted_dcl_a, 3),
            effective_ccl_a=_r(n.effective_ccl_a, 3),
            effective_dcl_a=_r(n.effective_dcl_a, 3),
            inverter_max_charge_a=_r(n.inverter_max_charge_a, 3),
            inverter_max_discharge_a=_r(n.inverter_max_discharge_a, 3),
            keepalive=n.keepalive,
        )


class ChargePayload(BaseModel):
    """The charge phase (``bulk``, ``absorption``, ``float``), why, and what it asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: str
    reason: str
    since_s: float
    cvl_v: float | None
    full_charge_requested: bool
    full_charge_reason: str
    grid_charge_requested: bool
    last_full_age_h: float | None
    full_charge_due_in_h: float | None = None

    @classmethod
    def of(cls, c: ChargeState) -> ChargePayload:
        """Build from a core ``ChargeState``."""
        age = c.last_full_age_s
        due = c.full_charge_due_in_s
        return cls(
            phase=c.phase.value,
            reason=c.reason,
            since_s=round(c.since_s, 3),
            cvl_v=_r(c.cvl_v, 3),
            full_charge_requested=c.full_charge_requested,
            full_charge_reason=c.full_charge_reason,
            grid_charge_requested=c.grid_charge_requested,
            last_full_age_h=None if age is None else _r(age / 3600.0, 2),
            full_charge_due_in_h=None if due is None else _r(due / 3600.0, 2),
        )


class RequestsPayload(BaseModel):
    """What the battery asks of the inverter (battery CAN 0x35C / HV 0x4250, 0x4280)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    charge_enable: bool
    discharge_enable: bool
    force_charge: bool
    full_charge: bool


class StatePayload(_Payload):
    """Topic ``state``: the pack at a glance, the limits and why, the inverter negotiation."""

    seq: int
    t_s: float
    time: float | None
    mode: str
    complete: bool
    soc_pct: float | None
    soc_mean_pct: float | None
    soh_pct: float | None
    voltage_v: float | None
    cell_sum_v: float | None
    current_a: float | None
    power_w: float | None
    cell_count: int
    min_cell_v: float | None
    max_cell_v: float | None
    cell_spread_mv: float | None
    min_temp_c: float | None
    max_temp_c: float | None
    ccl_a: LimitPayload
    dcl_a: LimitPayload
    cvl_v: LimitPayload
    dvl_v: LimitPayload
    negotiation: NegotiationPayload | None
    charge: ChargePayload | None
    requests: RequestsPayload | None = None
    alarm_level: str
    alarm_count: int
    balancing_mode: str
    balancing_cells: int
    frames: int
    errors: int
    notes: list[str]
    # Energy counted into and out of the pack (kWh, never decreasing; Home Assistant's Energy
    # dashboard). ``null`` when not counted.
    energy_charged_kwh: float | None = None
    energy_discharged_kwh: float | None = None


def state_payload(out: ControlOutput, gateway_id: str, time_s: float | None) -> StatePayload:
    """The ``state`` payload of one control step.

    ``voltage_v`` is the measured pack voltage; ``cell_sum_v`` the sum of the cells when all are
    known. ``power_w`` is ``voltage_v`` (or the cell sum) times ``current_a`` (positive =
    charging).
    """
    pack = out.pack
    cells = pack.cell_voltage_v
    known = [v for v in cells if v is not None]
    cell_sum = math.fsum(known) if cells and len(known) == len(cells) else None
    temps = [t for t in pack.cell_temp_c if t is not None]
    volts = pack.pack_voltage_v if pack.pack_voltage_v is not None else cell_sum
    power = volts * pack.current_a if volts is not None and pack.current_a is not None else None
    lo, hi = pack.min_cell_v, pack.max_cell_v
    soc = out.soc
    return StatePayload(
        gateway_id=gateway_id,
        seq=out.seq,
        t_s=round(out.t_s, 3),
        time=_r(time_s, 3),
        mode=out.mode,
        complete=pack.complete,
        soc_pct=_r(soc.soc_pct, 2) if soc else None,
        soc_mean_pct=_r(soc.soc_mean_pct, 2) if soc else None,
        soh_pct=_r(soc.soh_pct, 2) if soc else None,
        voltage_v=_r(pack.pack_voltage_v, 3),
        cell_sum_v=_r(cell_sum, 3),
        current_a=_r(pack.current_a, 3),
        power_w=_r(power, 1),
        cell_count=pack.cell_count,
        min_cell_v=_r(lo, 4),
        max_cell_v=_r(hi, 4),
        cell_spread_mv=_r((hi - lo) * 1000.0, 1) if lo is not None and hi is not None else None,
        min_temp_c=_r(min(temps), 2) if temps else None,
        max_temp_c=_r(max(temps), 2) if temps else None,
        ccl_a=LimitPayload.of(out.limits.ccl_a),
        dcl_a=LimitPayload.of(out.limits.dcl_a),
        cvl_v=LimitPayload.of(out.limits.cvl_v),
        dvl_v=LimitPayload.of(out.limits.dvl_v),
        negotiation=NegotiationPayload.of(out.negotiation) if out.negotiation else None,
        charge=ChargePayload.of(out.charge) if out.charge else None,
        requests=RequestsPayload(
            charge_enable=out.requests.charge_enable,
            discharge_enable=out.requests.discharge_enable,
            force_charge=out.requests.force_charge,
            full_charge=out.requests.full_charge,
        )
        if out.requests is not None
        else None,
        alarm_level=out.alarms.worst.name.lower(),
        alarm_count=len(out.alarms.active),
        balancing_mode=str(out.balancing.mode),
        balancing_cells=sum(out.balancing.bleed),
        frames=pack.frames,
        errors=pack.errors,
        notes=list(out.notes),
        energy_charged_kwh=_r(out.energy.charged_kwh, 4) if out.energy else None,
        energy_discharged_kwh=_r(out.energy.discharged_kwh, 4) if out.energy else None,
    )


# --- cells ----------------------------------------------------------------------------------


class CellsPayload(_Payload):
    """Topic ``cells``: per-cell values as parallel arrays (index i = cell i, 0-based).

    ``temp_c`` is per cell only when there is one sensor per cell; otherwise it is ``null`` and
    ``sensor_temp_c`` holds the sensors (their placement is the pack builder's, not ours to guess).
    """

    seq: int
    t_s: float
    time: float | None
    count: int
    voltage_v: list[float | None]
    voltage_age_s: list[float | None]
    temp_c: list[float | None] | None
    soc_pct: list[float | None] | None
    soc_sigma_pct: list[float | None] | None
    soc_rel_sigma_pct: list[float | None] | None
    capacity_ah: list[float | None] | None
    capacity_sigma_ah: list[float | None] | None
    resistance_mohm: list[float | None] | None
    r1_mohm: list[float | None] | None
    tau1_s: list[float | None] | None
    balancing: list[bool]
    sensor_temp_c: list[float | None]
    sensor_age_s: list[float | None]


def cells_payload(out: ControlOutput, gateway_id: str, time_s: float | None) -> CellsPayload:
    """The ``cells`` payload of one control step."""
    pack = out.pack
    n = pack.cell_count
    est = out.soc.cells if out.soc is not None and len(out.soc.cells) == n else None
    sensors = [_r(t, 2) for t in pack.cell_temp_c]
    # The plan's bleed flags are what the gateway commands; the pack's flags are what the cell
    # monitors report. A cell counts as balancing when either says so.
    bleed = out.balancing.bleed
    reported = pack.balancing_active
    balancing = [
        (i < len(bleed) and bleed[i]) or (i < len(reported) and reported[i]) for i in range(n)
    ]
    return CellsPayload(
        gateway_id=gateway_id,
        seq=out.seq,
        t_s=round(out.t_s, 3),
        time=_r(time_s, 3),
        count=n,
        voltage_v=[_r(v, 4) for v in pack.cell_voltage_v],
        voltage_age_s=[_r(a, 3) for a in pack.cell_voltage_age_s],
        temp_c=sensors if len(sensors) == n else None,
        soc_pct=[_r(c.soc_pct, 2) for c in est] if est else None,
        soc_sigma_pct=[_r(c.soc_sigma_pct, 2) for c in est] if est else None,
        soc_rel_sigma_pct=[_r(c.soc_rel_sigma_pct, 2) for c in est] if est else None,
        capacity_ah=[_r(c.capacity_ah, 3) for c in est] if est else None,
        capacity_sigma_ah=[_r(c.capacity_sigma_ah, 3) for c in est] if est else None,
        resistance_mohm=[_r(c.resistance_mohm, 3) for c in est] if est else None,
        r1_mohm=[_r(c.r1_mohm, 3) for c in est] if est else None,
        tau1_s=[_r(c.tau1_s, 1) for c in est] if est else None,
        balancing=balancing,
        sensor_temp_c=sensors,
        sensor_age_s=[_r(a, 3) for a in pack.cell_temp_age_s],
    )


# --- alarms ---------------------------------------------------------------------------------


class AlarmItem(BaseModel):
    """One active warning or alarm."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    severity: Literal["ok", "warning", "alarm"]
    message: str
    since_s: float | None
    latched: bool


class AlarmsPayload(_Payload):
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
        time=_r(time_s, 3),
        level=_severity(report.worst),
        evt1=report.evt1,
        active=[
            AlarmItem(
                code=a.code,
                severity=_severity(a.severity),
                message=a.message,
                since_s=_r(a.since_s, 3),
                latched=a.latched,
            )
            for a in report.active
        ],
    )


# --- balancing ------------------------------------------------------------------------------


class BalancingActionItem(BaseModel):
    """One balancing action: which cell, what it does, why, how much charge so far."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cell: int
    mode: str
    action: str
    reason: str
    current_a: float | None
    charge_ah: float | None


class BalancingPayload(_Payload):
    """Topic ``balancing`` (retained): the plan of the step and each action in it."""

    seq: int
    t_s: float
    time: float | None
    mode: str
    idle_reason: str
    bleeding: list[int]
    actions: list[BalancingActionItem]


def balancing_key(plan: BalancingPlan) -> tuple[Any, ...]:
    """What must differ for the plan to count as changed.

    Charge moved grows every step and reasons may quote live values: neither counts (the plan is
    re-sent with the cells anyway).
    """
    return (
        str(plan.mode),
        plan.idle_reason,
        tuple((a.cell, str(a.mode), a.action) for a in plan.actions),
        plan.bleed,
    )


def balancing_payload(
    out: ControlOutput, gateway_id: str, time_s: float | None
) -> BalancingPayload:
    """The ``balancing`` payload of one control step."""
    return balancing_payload_of(out.balancing, out.seq, out.t_s, gateway_id, time_s)


def balancing_payload_of(
    plan: BalancingPlan, seq: int, t_s: float, gateway_id: str, time_s: float | None
) -> BalancingPayload:
    """The ``balancing`` payload from the plan of step ``seq`` (no need to keep the step)."""
    return BalancingPayload(
        gateway_id=gateway_id,
        seq=seq,
        t_s=round(t_s, 3),
        time=_r(time_s, 3),
        mode=str(plan.mode),
        idle_reason=plan.idle_reason,
        bleeding=[i for i, on in enumerate(plan.bleed) if on],
        actions=[
            BalancingActionItem(
                cell=a.cell,
                mode=str(a.mode),
                action=a.action,
                reason=a.reason,
                current_a=_r(a.current_a, 4),
                charge_ah=_r(a.charge_ah, 6),
            )
            for a in plan.actions
        ],
    )


# --- events and command results -------------------------------------------------------------


class EventPayload(_Payload):
    """Topic ``events``: something happened (``start``, ``stop``, ``mqtt_link_lost``, ...)."""

    event: str
    time: float | None
    data: dict[str, Any]


def event_payload(
    name: str, gateway_id: str, time_s: float | None, data: dict[str, Any]
) -> EventPayload:
    """An event with free-form, JSON-serialisable ``data``."""
    return EventPayload(gateway_id=gateway_id, event=name, time=_r(time_s, 3), data=data)


class CommandResultPayload(_Payload):
    """Topic ``cmd/result``: the answer to one command, accepted or rejected."""

    command: str
    id: str | None
    accepted: bool
    message: str
    time: float | None


def command_result_payload(
    command: str,
    request_id: str | None,
    result: CommandResult,
    gateway_id: str,
    time_s: float | None,
) -> CommandResultPayload:
    """The reply to command ``command`` (``id`` echoes the request's ``id``)."""
    return CommandResultPayload(
        gateway_id=gateway_id,
        command=command,
        id=request_id,
        accepted=result.accepted,
        message=result.message,
        time=_r(time_s, 3),
    )
