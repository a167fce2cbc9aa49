"""The demo's live terminal view: a pure function from the latest control output to text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.core.model import ControlOutput, Severity

__all__ = ["render"]

_BAR = 24


def _bar(frac: float) -> str:
    frac = min(max(frac, 0.0), 1.0)
    full = round(frac * _BAR)
    return "█" * full + "·" * (_BAR - full)


def _fmt(x: float | None, spec: str, unit: str = "") -> str:
    return "  --  " if x is None else f"{x:{spec}}{unit}"


def render(
    out: ControlOutput | None,
    *,
    v_window: tuple[float, float],
    links: Mapping[str, str] = {},
    endpoints: Sequence[str] = (),
    sim_time_s: float | None = None,
) -> str:
    """The screen for ``out``: cell bars, SoC, balancing, limits with reasons, alarms, links."""
    lines: list[str] = ["bms-gateway demo   (Ctrl-C stops)"]
    if sim_time_s is not None:
        h, rem = divmod(int(sim_time_s), 3600)
        lines[0] += f"   sim time {h:02d}:{rem // 60:02d}:{rem % 60:02d}"
    if out is None:
        return "\n".join([*lines, "waiting for the first control step..."])
    p = out.pack
    lo, hi = v_window
    soc = out.soc
    head = (
        f"mode {out.mode:8s} step {out.seq:7d}   "
        f"I {_fmt(p.current_a, '+8.2f', ' A')}   V {_fmt(p.pack_voltage_v, '7.2f', ' V')}   "
        f"frames {p.frames} dropped {p.errors}"
    )
    lines.append(head)
    if soc is not None:
        lines.append(
            f"SoC {soc.soc_pct:5.1f} % (mean {soc.soc_mean_pct:5.1f} %)   SoH {soc.soh_pct:5.1f} %"
        )
    lines.append("")
    lines.append(" cell    voltage  " + " " * _BAR + "   temp     age    SoC   bal")
    temps = p.cell_temp_c
    n, m = p.cell_count, len(temps)
    bleeding = {a.cell: a.action for a in out.balancing.actions}
    for i, v in enumerate(p.cell_voltage_v):
        t = temps[i * m // n] if m else None
        age = p.cell_voltage_age_s[i]
        cell_soc = soc.cells[i].soc_pct if soc is not None and i < len(soc.cells) else None
        frac = 0.0 if v is None else (v - lo) / (hi - lo)
        bal = bleeding.get(i, "bleed" if out.balancing.bleed[i] else "")
        lines.append(
            f" {i:4d}  {_fmt(v, '7.3f', ' V')}  {_bar(frac)}  {_fmt(t, '5.1f', 'C')}"
            f"  {_fmt(age, '5.2f', 's')}  {_fmt(cell_soc, '5.1f', '%')}  {bal}"
        )
    lines.append("")
    lim = out.limits
    for label, limit, unit in (
        ("CCL", lim.ccl_a, "A"),
        ("DCL", lim.dcl_a, "A"),
        ("CVL", lim.cvl_v, "V"),
        ("DVL", lim.dvl_v, "V"),
    ):
        lines.append(f" {label} {limit.value:8.2f} {unit}   limited by: {limit.winner}")
    if out.charge is not None:
        c = out.charge
        full = f"; full charge requested: {c.full_charge_reason}" if c.full_charge_requested else ""
        lines.append(f" charge phase {c.phase.value} ({c.reason}){full}")
    neg = out.negotiation
    if neg is not None:
        acc_c = _fmt(neg.accepted_ccl_a, ".1f")
        acc_d = _fmt(neg.accepted_dcl_a, ".1f")
        lines.append(
            f" inverter ({neg.link}, {'connected' if neg.connected else 'not connected'}): "
            f"requested {neg.requested_ccl_a:.1f}/{neg.requested_dcl_a:.1f} A, "
            f"accepted {acc_c}/{acc_d} A, "
            f"effective {neg.effective_ccl_a:.1f}/{neg.effective_dcl_a:.1f} A (charge/discharge)"
        )
    lines.append("")
    if out.balancing.actions:
        acts = ", ".join(f"{a.cell}:{a.action}" for a in out.balancing.actions[:12])
        lines.append(f" balancing ({out.balancing.mode}): {acts}")
    else:
        idle = out.balancing.idle_reason or "idle"
        lines.append(f" balancing ({out.balancing.mode}): {idle}")
    if out.alarms.active:
        for a in out.alarms.active[:8]:
            tag = "ALARM" if a.severity >= Severity.ALARM else "warn "
            latched = " (latched)" if a.latched else ""
            lines.append(f" {tag} {a.code}: {a.message}{latched}")
    else:
        lines.append(" alarms: none")
    if links:
        lines.append(" links: " + "   ".join(f"{k} {v}" for k, v in links.items()))
    lines.extend(f" {e}" for e in endpoints)
    return "\n".join(lines)
