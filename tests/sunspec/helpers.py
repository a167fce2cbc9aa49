"""Builders shared by the SunSpec tests: ControlOutputs from the model dataclasses directly."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from gateway.core.model import (
    Alarm,
    AlarmReport,
    BalancingMode,
    BalancingPlan,
    CellEstimate,
    ControlOutput,
    GatewayMode,
    Limit,
    Limits,
    LimitTerm,
    PackSnapshot,
    SocReport,
)
from tests.clock import Clock, wait_until

__all__ = ["Clock", "free_port", "make_output", "stop_task", "wait_until"]


def _limit(value: float, name: str = "configured") -> Limit:
    return Limit(value, name, (LimitTerm(name, value),))


def make_output(
    *,
    seq: int = 1,
    cells_v: tuple[float | None, ...] = (3.30, 3.31, 3.45, 3.29) * 4,
    current_a: float | None = 12.5,
    pack_voltage_v: float | None = 53.1,
    ccl_a: float = 80.0,
    dcl_a: float = 95.5,
    cvl_v: float = 56.8,
    dvl_v: float = 44.0,
    soc_pct: float | None = 63.4,
    soh_pct: float = 97.2,
    alarms: tuple[Alarm, ...] = (),
    mode: GatewayMode = GatewayMode.NORMAL,
) -> ControlOutput:
    """A control step with every field the 802 map reads set to a recognisable value."""
    n = len(cells_v)
    pack = PackSnapshot(
        t_s=float(seq),
        cell_voltage_v=cells_v,
        cell_voltage_age_s=(0.1,) * n,
        cell_temp_c=(25.0,) * 4,
        cell_temp_age_s=(0.1,) * 4,
        current_a=current_a,
        current_age_s=0.1,
        pack_voltage_v=pack_voltage_v,
        pack_voltage_age_s=0.1,
        balancing_active=(False,) * n,
        complete=True,
    )
    soc = (
        None
        if soc_pct is None
        else SocReport(
            soc_pct=soc_pct,
            soc_mean_pct=soc_pct,
            soh_pct=soh_pct,
            cells=tuple(CellEstimate(soc_pct, 1.0, 100.0, 1.0) for _ in range(n)),
        )
    )
    return ControlOutput(
        seq=seq,
        t_s=float(seq),
        pack=pack,
        soc=soc,
        alarms=AlarmReport(active=alarms),
        limits=Limits(
            ccl_a=_limit(ccl_a), dcl_a=_limit(dcl_a), cvl_v=_limit(cvl_v), dvl_v=_limit(dvl_v)
        ),
        balancing=BalancingPlan(BalancingMode.OFF, (False,) * n),
        mode=mode,
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def stop_task(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait (5 s at most) until it has ended."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task
