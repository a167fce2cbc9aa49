"""The demo's live terminal view: a pure function from the latest control output to text.

The screen fits the terminal (at least 80x24): the header with mode, SoC and the four limits stays
on top, the cell table folds into columns below it, and what does not fit is summarised on one
line. Cells and sensors are numbered from 1, as installers count them (and as in Home Assistant);
only the JSON arrays on MQTT and in replay records are indexed from 0.

``redraw`` turns a screen into the bytes that repaint the terminal in place (cursor home, each line
cleared to its end, the rest of the screen cleared), inside ``alternate_screen`` so nothing lands in
the scrollback. ``ScreenLog`` keeps log records off the terminal while the view is on (a log line
would scroll the screen): the latest one is shown on the view's last line, and the warnings are
written out when the view closes.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from gateway.core.cells import extremes
from gateway.core.model import ControlOutput, Severity

__all__ = ["ScreenLog", "alternate_screen", "redraw", "render", "summary_line"]

_BAR = 6
_CELL_W = 26  # one folded cell, "123 3.312V ██████  75.2%*", and the gap after it
_MAX_ALARM_LINES = 3


def summary_line(out: ControlOutput, sim_time_s: float) -> str:
    """The one line ``demo --no-view`` prints every few seconds instead of the screen.

    Simulated time (s), mode, pack current (A), SoC (%), CCL and DCL (A) with their winning
    terms, the charge phase and how many cells bleed; ``--`` where a value is unknown.
    """
    soc = f"{out.soc.soc_pct:.1f}" if out.soc else "--"
    cur = out.pack.current_a
    ccl, dcl = out.limits.ccl_a, out.limits.dcl_a
    phase = out.charge.phase.value if out.charge is not None else "--"
    return (
        f"t={sim_time_s:8.0f}s mode={out.mode} I={_fmt(cur, '.1f')}A SoC={soc}% "
        f"CCL={_fmt(ccl.value, '.1f')}A ({ccl.winner}) DCL={_fmt(dcl.value, '.1f')}A "
        f"({dcl.winner}) phase={phase} balancing={sum(out.balancing.bleed)}"
    )


def _bar(frac: float) -> str:
    frac = min(max(frac, 0.0), 1.0)
    full = round(frac * _BAR)
    return "█" * full + "·" * (_BAR - full)


def _fmt(x: float | None, spec: str, unit: str = "") -> str:
    return "--" if x is None else f"{x:{spec}}{unit}"


def _cell_entry(
    n: int, v: float | None, soc: float | None, bleeding: bool, lo: float, hi: float
) -> str:
    # The bar is the cell's SoC (what balancing evens out); its voltage window before the
    # estimator has one.
    volt_frac = 0.0 if v is None else (v - lo) / (hi - lo)
    frac = soc / 100.0 if soc is not None else volt_frac
    volts = "  --  " if v is None else f"{v:5.3f}V"
    pct = "  -- " if soc is None else f"{soc:5.1f}%"
    return f"{n:>3} {volts} {_bar(frac)} {pct}{'*' if bleeding else ' '}"


def _cells(out: ControlOutput, v_window: tuple[float, float], width: int, rows: int) -> list[str]:
    """The cell table folded into columns within ``rows`` lines (the last may summarise)."""
    p, soc = out.pack, out.soc
    lo, hi = v_window
    n = p.cell_count
    cols = max(1, (width + 1) // _CELL_W)
    bleed = out.balancing.bleed
    acting = {a.cell for a in out.balancing.actions}
    fits = n <= cols * rows
    shown = n if fits else cols * max(0, rows - 1)
    entries = []
    for i in range(shown):
        cell_soc = soc.cells[i].soc_pct if soc is not None and i < len(soc.cells) else None
        on = (i < len(bleed) and bleed[i]) or i in acting
        entries.append(_cell_entry(i + 1, p.cell_voltage_v[i], cell_soc, on, lo, hi))
    per_col = -(-len(entries) // cols) if entries else 0
    lines = [
        " ".join(entries[r + c * per_col] for c in range(cols) if r + c * per_col < len(entries))
        for r in range(per_col)
    ]
    if not fits:
        ext = extremes(p.cell_voltage_v)
        where = ""
        if ext is not None:
            vmin, imin, vmax, imax = ext
            where = f": lowest {imin + 1} at {vmin:.3f} V, highest {imax + 1} at {vmax:.3f} V"
        lines.append(f" + {n - shown} more cells{where} (MQTT cells)")
    return lines


def _limits(out: ControlOutput) -> list[str]:
    lim = out.limits
    return [
        f" CCL {lim.ccl_a.value:7.1f} A  {lim.ccl_a.winner:24.24s}"
        f" DCL {lim.dcl_a.value:7.1f} A  {lim.dcl_a.winner}",
        f" CVL {lim.cvl_v.value:7.2f} V  {lim.cvl_v.winner:24.24s}"
        f" DVL {lim.dvl_v.value:7.2f} V  {lim.dvl_v.winner}",
    ]


def _temps(out: ControlOutput) -> str:
    ext = extremes(out.pack.cell_temp_c)
    ages = [a for a in out.pack.cell_voltage_age_s if a is not None]
    oldest = f"  age <= {max(ages):.2f} s" if ages else ""
    if ext is None:
        return f" temperatures: none yet{oldest}   * balancing"
    tmin, jmin, tmax, jmax = ext
    return (
        f" temp {tmin:.1f} C (sensor {jmin + 1}) .. {tmax:.1f} C (sensor {jmax + 1})"
        f"{oldest}  * balancing"
    )


def _alarms(out: ControlOutput) -> list[str]:
    active = out.alarms.active
    if not active:
        return [" alarms: none"]
    lines = []
    for a in active[:_MAX_ALARM_LINES]:
        tag = "ALARM" if a.severity >= Severity.ALARM else "warn "
        latched = " (latched)" if a.latched else ""
        lines.append(f" {tag} {a.code}: {a.message}{latched}")
    if len(active) > _MAX_ALARM_LINES:
        lines[-1] = f" ... and {len(active) - _MAX_ALARM_LINES + 1} more (MQTT alarms)"
    return lines


def _balancing(out: ControlOutput) -> str:
    b = out.balancing
    if b.actions:
        acts = ", ".join(f"{a.cell + 1}:{a.action}" for a in b.actions[:12])
        more = f" +{len(b.actions) - 12}" if len(b.actions) > 12 else ""
        return f" balancing ({b.mode}): {acts}{more}"
    return f" balancing ({b.mode}): {b.idle_reason or 'idle'}"


def render(
    out: ControlOutput | None,
    *,
    v_window: tuple[float, float],
    links: Mapping[str, str] = {},
    endpoints: Sequence[str] = (),
    sim_time_s: float | None = None,
    note: str | None = None,
    log_line: str | None = None,
    width: int = 80,
    height: int = 24,
) -> str:
    """The screen for ``out``: at most ``height`` lines of at most ``width - 1`` characters.

    Args:
        out: the latest control step (None before the first).
        v_window: the cell voltage range the bars span (V) while a cell has no SoC yet.
        links: link name -> state word, shown on one line.
        endpoints: where to point an MQTT and a Modbus client (one line each).
        sim_time_s: simulated time since the start, shown in the title.
        note: one line of explanation under the limits (why a limit ramps).
        log_line: the latest log message, shown last.
        width, height: the terminal size; the last column is left free so a full line never
            wraps.
    """
    title = "bms-gateway demo   (Ctrl-C stops)"
    if sim_time_s is not None:
        h, rem = divmod(int(sim_time_s), 3600)
        title += f"   sim time {h:02d}:{rem // 60:02d}:{rem % 60:02d}"
    top: list[str] = [title]
    bottom: list[str] = []
    if links:
        bottom.append(" links: " + "   ".join(f"{k} {v}" for k, v in links.items()))
    bottom.extend(f" {e}" for e in endpoints)
    if log_line:
        bottom.append(f" log: {log_line}")
    if out is None:
        top.append("waiting for the first control step...")
        body: list[str] = []
    else:
        p, soc = out.pack, out.soc
        soc_text = "SoC --" if soc is None else f"SoC {soc.soc_pct:5.1f} % SoH {soc.soh_pct:5.1f} %"
        top.append(
            f" {out.mode.upper():8s} {soc_text}   I {_fmt(p.current_a, '+.2f', ' A')}"
            f"   V {_fmt(p.pack_voltage_v, '.2f', ' V')}   dropped {p.errors}"
        )
        top.extend(_limits(out))
        if out.charge is not None:
            c = out.charge
            full = f"; full charge: {c.full_charge_reason}" if c.full_charge_requested else ""
            if c.full_charge_requested and c.full_charge_due_in_s:
                full += f" (due in {c.full_charge_due_in_s / 3600.0:.1f} h)"
            top.append(f" charge phase {c.phase.value} ({c.reason}){full}")
        if note:
            top.append(f" {note}")
        neg = out.negotiation
        if neg is not None:
            top.append(
                f" inverter ({neg.link}, {'connected' if neg.connected else 'not connected'}):"
                f" accepted {_fmt(neg.accepted_ccl_a, '.1f')}/{_fmt(neg.accepted_dcl_a, '.1f')} A,"
                f" in force {neg.effective_ccl_a:.1f}/{neg.effective_dcl_a:.1f} A"
            )
        top.append(_temps(out))
        bottom[:0] = [_balancing(out), *_alarms(out)]
        rows = max(1, height - len(top) - len(bottom))
        body = _cells(out, v_window, width - 1, rows)
    lines = [*top, *body, *bottom][:height]
    return "\n".join(line[: width - 1] for line in lines)


def redraw(screen: str) -> str:
    """Terminal output that paints ``screen`` over the previous one without scrolling."""
    return "\x1b[H" + "\x1b[K\n".join(screen.split("\n")) + "\x1b[K\x1b[J"


@contextmanager
def alternate_screen(enabled: bool = True) -> Iterator[None]:
    """Draw on the terminal's alternate screen (hidden cursor) and restore it afterwards."""
    if not enabled:
        yield
        return
    sys.stdout.write("\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J")
    sys.stdout.flush()
    try:
        yield
    finally:
        sys.stdout.write("\x1b[?25h\x1b[?1049l")
        sys.stdout.flush()


class ScreenLog(logging.Handler):
    """Holds log records while the view owns the terminal; see ``capture``."""

    def __init__(self, keep: int = 200) -> None:
        super().__init__()
        self.records: deque[logging.LogRecord] = deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record (bounded: the oldest are dropped)."""
        self.records.append(record)

    @property
    def latest(self) -> str | None:
        """``LEVEL message`` of the newest record, or ``None``."""
        if not self.records:
            return None
        r = self.records[-1]
        return f"{r.levelname} {r.getMessage()}"

    @contextmanager
    def capture(self, enabled: bool = True) -> Iterator[None]:
        """Route the root logger here instead of its handlers; afterwards, restore them and
        pass on the warnings and errors that arrived meanwhile."""
        if not enabled:
            yield
            return
        root = logging.getLogger()
        saved = root.handlers[:]
        root.handlers = [self]
        try:
            yield
        finally:
            root.handlers = saved
            for record in self.records:
                if record.levelno >= logging.WARNING:
                    root.handle(record)
