"""The ``balancing`` topic (retained): the plan of the step and each action in it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from gateway.core.model import BalancingPlan, ControlOutput
from gateway.mqtt.payloads.common import Payload, rounded

__all__ = [
    "BalancingActionItem",
    "BalancingPayload",
    "balancing_key",
    "balancing_payload",
    "balancing_payload_of",
]


class BalancingActionItem(BaseModel):
    """One balancing action: which cell, what it does, why, how much charge so far."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cell: int
    mode: str
    action: str
    reason: str
    current_a: float | None
    charge_ah: float | None


class BalancingPayload(Payload):
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
        time=rounded(time_s, 3),
        mode=str(plan.mode),
        idle_reason=plan.idle_reason,
        bleeding=[i for i, on in enumerate(plan.bleed) if on],
        actions=[
            BalancingActionItem(
                cell=a.cell,
                mode=str(a.mode),
                action=a.action,
                reason=a.reason,
                current_a=rounded(a.current_a, 4),
                charge_ah=rounded(a.charge_ah, 6),
            )
            for a in plan.actions
        ],
    )
