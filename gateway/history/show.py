"""``bms-gateway health``: the health report of the history file as a table (and a PNG plot).

Reads the history named by the settings (``health.history_path`` or ``history.sqlite`` beside
``state.path``), runs the same analytics as the daemon over the last ``health.window_days``
complete days and prints per cell the trends with their standard errors, the ranking, the
forecasts and the warnings. ``--png`` draws capacity, R0 and balancing effort per cell over the
days with matplotlib, when that optional extra (``pip install 'bms-gateway[plot]'``) is installed.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from gateway.core.daily import DayRecord
from gateway.core.health import HealthReport, Slope, analyse
from gateway.errors import HistoryError
from gateway.history.recorder import history_path
from gateway.history.store import HistoryStore
from gateway.settings import Settings

__all__ = ["format_report", "show_health"]


def _day(day: int | None) -> str:
    if day is None:
        return "-"
    return dt.date.fromordinal(day).isoformat() if day >= 1 else str(day)


def _slope(s: Slope | None, nd: int) -> str:
    if s is None:
        return "-"
    return f"{s.per_day:+.{nd}f}±{s.sigma:.{nd}f}"


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, fmt)


def format_report(report: HealthReport, records: Sequence[DayRecord]) -> str:
    """The report as a plain-text table (one line per cell, then forecasts and warnings)."""
    if report.days == 0:
        return "no complete day in the health history yet\n"
    lines = [
        f"health report: {report.days} days, {_day(report.first_day)} .. {_day(report.last_day)}"
    ]
    e_in = math.fsum(r.pack.energy_in_wh for r in records) / 1000.0
    e_out = math.fsum(r.pack.energy_out_wh for r in records) / 1000.0
    cycles = math.fsum(r.pack.cycles for r in records)
    high_h = math.fsum(r.pack.high_soc_s for r in records) / 3600.0
    lines.append(
        f"pack: {e_in:.1f} kWh in, {e_out:.1f} kWh out, {cycles:.1f} cycles, "
        f"{high_h:.1f} h at high SoC"
    )
    head = (
        f"{'cell':>4} {'rank':>4} {'cap Ah':>7} {'fade %/d':>15} {'R0 mOhm':>8} "
        f"{'R0 growth %/d':>13} {'leak %/d':>13} {'rest mV/d':>10} {'days to EoL':>11}"
    )
    lines += [head, "-" * len(head)]
    for c in report.cells:
        lines.append(
            f"{c.cell + 1:>4} {c.rank:>4} {_num(c.capacity_ah, '.2f'):>7} "
            f"{_slope(c.capacity_fade, 4):>15} {_num(c.r0_mohm, '.3f'):>8} "
            f"{_slope(c.resistance_growth, 2):>13} {_slope(c.self_discharge, 2):>13} "
            f"{_slope(c.rest_drift, 2):>10} {_num(c.days_to_capacity_limit, '.0f'):>11}"
        )
    lines.append(
        "weakest cells: " + ", ".join(str(k + 1) for k in report.ranking[:3])
        if report.ranking
        else "weakest cells: -"
    )
    lines.append(
        f"SoC spread at rest: {_num(report.soc_spread_pct, '.2f')} % "
        f"(trend {_slope(report.spread_trend, 3)} %/d; "
        f"days to the spread limit: {_num(report.days_to_spread_limit, '.0f')}); "
        f"days until the first cell reaches the capacity limit: "
        f"{_num(report.days_to_capacity_limit, '.0f')}"
    )
    if report.warnings:
        lines.append("warnings:")
        lines += [f"  {w.code.value}: {w.message}" for w in report.warnings]
    else:
        lines.append("warnings: none")
    return "\n".join(lines) + "\n"


def _plot(records: Sequence[DayRecord], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [r.day for r in records]
    n = len(records[-1].cells)
    fig, axes = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
    for k in range(n):
        rows = [r for r in records if len(r.cells) == n]
        d = [dt.date.fromordinal(r.day) if r.day >= 1 else r.day for r in rows]
        axes[0].plot(d, [r.cells[k].capacity_ah for r in rows], lw=1)
        axes[1].plot(d, [r.cells[k].r0_mohm for r in rows], lw=1)
        cum = 0.0
        ys = []
        for r in rows:
            cum += r.cells[k].bled_ah - r.cells[k].moved_ah
            ys.append(cum)
        axes[2].plot(d, ys, lw=1, label=str(k + 1) if n <= 16 else None)
    axes[0].set_ylabel("capacity (Ah)")
    axes[1].set_ylabel("R0 (mOhm)")
    axes[2].set_ylabel("balancing bled - received (Ah, cumulative)")
    axes[2].set_xlabel(f"day ({_day(days[0])} .. {_day(days[-1])})")
    fig.autofmt_xdate()
    if n <= 16:
        axes[2].legend(ncol=8, fontsize="small")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def show_health(settings: Settings, out: TextIO, png: Path | None = None) -> int:
    """Print the health report; the exit status (1: no history file or unreadable).

    Raises:
        HistoryError: the history file cannot be read.
    """
    path = history_path(settings.health, settings.state.path)
    if not path.is_file():
        raise HistoryError(f"no health history at {path} (the daemon writes it once running)")
    store = HistoryStore(path)
    try:
        days = store.days()
        if not days:
            out.write(f"{path}: no day recorded yet\n")
            return 0
        # Complete days only (the newest may be today's partial day while the daemon runs).
        last = days[-1] - 1 if days[-1] >= dt.date.today().toordinal() else days[-1]
        records = store.read(last - settings.health.window_days + 1, last)
    finally:
        store.close()
    report = analyse(records, settings.health, settings.pack.capacity_ah, first_day=days[0])
    out.write(f"history: {path}\n")
    out.write(format_report(report, records))
    if png is not None:
        if importlib.util.find_spec("matplotlib") is None:
            out.write("no plot: matplotlib is not installed (pip install 'bms-gateway[plot]')\n")
        elif records:
            _plot(records, png)
            out.write(f"plot: {png}\n")
    return 0
