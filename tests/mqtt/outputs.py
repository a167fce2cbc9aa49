"""ControlOutputs for the MQTT tests, built directly from the model dataclasses."""

from __future__ import annotations

from gateway.core.model import (
    Alarm,
    AlarmReport,
    BalancingAction,
    BalancingMode,
    BalancingPlan,
    CellEstimate,
    ControlOutput,
    GatewayMode,
    Limit,
    Limits,
    LimitTerm,
    Negotiation,
    PackSnapshot,
    Severity,
    SocReport,
)

__all__ = ["limit", "make_output"]


def limit(value: float, winner: str, **terms: float) -> Limit:
    """A limit whose terms are ``terms`` (the winner must be among them)."""
    return Limit(value, winner, tuple(LimitTerm(k, v) for k, v in terms.items()))


def make_output(
    *,
    seq: int = 1,
    t_s: float = 100.0,
    cells: int = 16,
    sensors: int = 4,
    alarms: tuple[Alarm, ...] = (),
    bleed: tuple[int, ...] = (),
    mode: GatewayMode = GatewayMode.NORMAL,
    with_soc: bool = True,
    negotiation: Negotiation | None = None,
    base_v: float = 3.3,
) -> ControlOutput:
    """A plausible LFP pack step: cell i at ``base_v + i mV``, 25 + i/10 degC per sensor."""
    volts = tuple(base_v + 0.001 * i for i in range(cells))
    pack = PackSnapshot(
        t_s=t_s,
        cell_voltage_v=volts,
        cell_voltage_age_s=(0.05,) * cells,
        cell_temp_c=tuple(25.0 + 0.1 * i for i in range(sensors)),
        cell_temp_age_s=(0.5,) * sensors,
        current_a=-20.0,
        current_age_s=0.01,
        pack_voltage_v=sum(volts),
        pack_voltage_age_s=0.01,
        balancing_active=(False,) * cells,
        complete=True,
        frames=1234,
        errors=2,
    )
    soc = (
        SocReport(
            soc_pct=55.0,
            soc_mean_pct=56.5,
            soh_pct=97.0,
            cells=tuple(
                CellEstimate(50.0 + 0.5 * i, 1.5, 100.0 - 0.1 * i, 0.8) for i in range(cells)
            ),
        )
        if with_soc
        else None
    )
    limits = Limits(
        ccl_a=limit(80.0, "temperature", configured=100.0, temperature=80.0, soc_taper=95.0),
        dcl_a=limit(100.0, "configured", configured=100.0, temperature=120.0),
        cvl_v=limit(3.55 * cells, "configured", configured=3.55 * cells),
        dvl_v=limit(2.8 * cells, "configured", configured=2.8 * cells),
    )
    actions = tuple(
        BalancingAction(c, BalancingMode.PASSIVE, "bleed", "soc above mean", 0.08, 0.002)
        for c in bleed
    )
    plan = BalancingPlan(
        mode=BalancingMode.PASSIVE,
        bleed=tuple(i in bleed for i in range(cells)),
        actions=actions,
        idle_reason="" if bleed else "balanced",
    )
    return ControlOutput(
        seq=seq,
        t_s=t_s,
        pack=pack,
        soc=soc,
        alarms=AlarmReport(active=alarms),
        limits=limits,
        balancing=plan,
        negotiation=negotiation,
        mode=mode,
    )


OVERVOLTAGE = Alarm("cell_overvoltage", Severity.ALARM, "cell 3 at 3.71 V", 90.0, latched=True)
"""A latched alarm for the tests."""
