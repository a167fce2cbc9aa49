"""The ``state`` topic: the pack at a glance, the limits and why, the inverter negotiation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from gateway.core.cells import cell_sum_v
from gateway.core.model import ChargeState, ControlOutput, Limit, Negotiation
from gateway.mqtt.payloads.common import Payload, rounded

__all__ = [
    "ChargePayload",
    "LimitPayload",
    "NegotiationPayload",
    "RequestsPayload",
    "StatePayload",
    "state_payload",
]


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
            value=rounded(limit.value, 3),
            winner=limit.winner,
            terms={t.name: rounded(t.value, 3) for t in limit.terms},
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
            requested_ccl_a=rounded(n.requested_ccl_a, 3),
            requested_dcl_a=rounded(n.requested_dcl_a, 3),
            accepted_ccl_a=rounded(n.accepted_ccl_a, 3),
            accepted_dcl_a=rounded(n.accepted_dcl_a, 3),
            effective_ccl_a=rounded(n.effective_ccl_a, 3),
            effective_dcl_a=rounded(n.effective_dcl_a, 3),
            inverter_max_charge_a=rounded(n.inverter_max_charge_a, 3),
            inverter_max_discharge_a=rounded(n.inverter_max_discharge_a, 3),
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
            cvl_v=rounded(c.cvl_v, 3),
            full_charge_requested=c.full_charge_requested,
            full_charge_reason=c.full_charge_reason,
            grid_charge_requested=c.grid_charge_requested,
            last_full_age_h=None if age is None else rounded(age / 3600.0, 2),
            full_charge_due_in_h=None if due is None else rounded(due / 3600.0, 2),
        )


class RequestsPayload(BaseModel):
    """What the battery asks of the inverter (battery CAN 0x35C / HV 0x4250, 0x4280)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    charge_enable: bool
    discharge_enable: bool
    force_charge: bool
    full_charge: bool


class StatePayload(Payload):
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
    cell_sum = cell_sum_v(cells)
    temps = [t for t in pack.cell_temp_c if t is not None]
    volts = pack.pack_voltage_v if pack.pack_voltage_v is not None else cell_sum
    power = volts * pack.current_a if volts is not None and pack.current_a is not None else None
    lo, hi = pack.min_cell_v, pack.max_cell_v
    soc = out.soc
    return StatePayload(
        gateway_id=gateway_id,
        seq=out.seq,
        t_s=round(out.t_s, 3),
        time=rounded(time_s, 3),
        mode=out.mode,
        complete=pack.complete,
        soc_pct=rounded(soc.soc_pct, 2) if soc else None,
        soc_mean_pct=rounded(soc.soc_mean_pct, 2) if soc else None,
        soh_pct=rounded(soc.soh_pct, 2) if soc else None,
        voltage_v=rounded(pack.pack_voltage_v, 3),
        cell_sum_v=rounded(cell_sum, 3),
        current_a=rounded(pack.current_a, 3),
        power_w=rounded(power, 1),
        cell_count=pack.cell_count,
        min_cell_v=rounded(lo, 4),
        max_cell_v=rounded(hi, 4),
        cell_spread_mv=rounded((hi - lo) * 1000.0, 1)
        if lo is not None and hi is not None
        else None,
        min_temp_c=rounded(min(temps), 2) if temps else None,
        max_temp_c=rounded(max(temps), 2) if temps else None,
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
        energy_charged_kwh=rounded(out.energy.charged_kwh, 4) if out.energy else None,
        energy_discharged_kwh=rounded(out.energy.discharged_kwh, 4) if out.energy else None,
    )
