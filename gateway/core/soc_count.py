"""The string's count for the SoC estimator: time, current, charge and rest per step. Pure.

One current flows through every series cell, so what a step means for the cells (its time, the
current sample and how long it covers, the charge counted, a rest) is worked out once per step
(``PackCount.step_inputs``, giving ``StepInputs``). The pack current's recent readings are kept
so that a cell voltage can be weighed with the reading nearest to it in time
(``PackCount.paired_current``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from gateway.core.model import PackSnapshot
from gateway.core.soc_cell import CellState, StepInputs
from gateway.core.soc_config import SocConfig
from gateway.core.soc_learn import forget_anchor

__all__ = ["I_HISTORY", "PackCount", "check_extra"]

I_HISTORY = 256  # pack current readings kept for pairing with the cell voltages


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


class PackCount:
    """Pack-level state of the count: one current flows through every series cell.

    Args:
        config: estimator settings (``min_interval_s``, ``current_hold_s``, rest settings).
        q_nom_ah: nominal capacity (Ah).
        voltage_age_s: how old a cell voltage may be to be used (s).
        current_age_s: how old a current may be to be used (s).
    """

    def __init__(
        self, config: SocConfig, q_nom_ah: float, voltage_age_s: float, current_age_s: float
    ) -> None:
        self.config = config
        self._q_nom_ah = q_nom_ah
        self._voltage_age_s = voltage_age_s
        self._current_age_s = current_age_s
        self.ah = 0.0  # net charge counted since start (charge positive)
        self.discharged_ah = 0.0
        self.last_now_s: float | None = None
        self.last_i: float | None = None  # the pack current at the last step, if known then
        # The pack current's recent readings (receive time, value), oldest first: a cell voltage
        # is weighed with the reading nearest to it in time (``paired_current``).
        self.i_ts: list[float] = []
        self.i_vs: list[float] = []
        self._rest_since_s: float | None = None
        self._rest_epoch = 0  # counts rests begun

    def keep_current(self, t_s: float, i_a: float, now_s: float) -> None:
        """Keep the pack current reading ``i_a`` received at ``t_s`` (once per reading), and
        those of the last cell-voltage age limit (at most ``I_HISTORY`` readings)."""
        ts, vs = self.i_ts, self.i_vs
        if ts and t_s <= ts[-1]:
            return  # seen (or out of order: the latest reading stays the latest)
        ts.append(t_s)
        vs.append(i_a)
        horizon = now_s - self._voltage_age_s - 1.0
        if len(ts) > I_HISTORY or ts[0] < horizon:
            j = max(len(ts) - I_HISTORY, bisect.bisect_left(ts, horizon))
            j = min(j, len(ts) - 1)
            del ts[:j]
            del vs[:j]

    def paired_current(self, rx_t: float, now_s: float) -> float | None:
        """The pack current to weigh a voltage received at ``rx_t`` with: the reading nearest
        to it in time, or ``None`` (wait) while a newer reading is due and would be nearer.

        A voltage and the current it was measured with may arrive in either order, in
        different frames, some time apart; the latest current at the step that first sees the
        voltage can be the previous sample's (a second off, at a 1 Hz BMS: across a load step
        that is the whole IR drop of the step, taken as a SoC error). A voltage newer than the
        latest current by more than half the current's interval (its last two readings) waits
        for the next reading until that is 50 % late, then takes the latest.
        """
        ts, vs = self.i_ts, self.i_vs
        t_last = ts[-1]
        if rx_t >= t_last:
            d = t_last - ts[-2] if len(ts) > 1 else 0.0
            if 2.0 * (rx_t - t_last) > d and now_s - t_last < 1.5 * d:
                return None
            return vs[-1]
        j = bisect.bisect_left(ts, rx_t)
        if j == 0:
            return vs[0]
        return vs[j] if ts[j] - rx_t <= rx_t - ts[j - 1] else vs[j - 1]

    def step_inputs(
        self, snapshot: PackSnapshot, now_s: float, cells: list[CellState]
    ) -> StepInputs:
        """What this step means for every cell: time, current, charge, rest (pack state moves).

        A gap (time with unknown current) forgets every cell's capacity anchor in ``cells``.
        """
        cfg = self.config
        dt = 0.0 if self.last_now_s is None else now_s - self.last_now_s
        dt = max(dt, 0.0)  # a clock that went backwards: treat as no time passed
        self.last_now_s = now_s
        i_a = snapshot.current_a
        i_age = snapshot.current_age_s
        i_known = _finite(i_a) and (i_age is None or i_age <= self._current_age_s)
        cur = float(i_a) if i_known and i_a is not None else 0.0
        if i_known:
            self.keep_current(now_s - (i_age if i_age is not None else 0.0), cur, now_s)
        # Time covered by the current sample; the rest of dt is a gap with unknown current. A
        # current known at both ends of the step is held across it (up to current_hold_s): a
        # step longer than the current's age limit is then not a gap (treating it as one would
        # throw away the charge of every step beyond it and call the loss a zero-mean guess).
        prev_i = self.last_i
        hold_var = 0.0
        if not i_known:
            known_dt = 0.0
        elif prev_i is not None and dt <= cfg.current_hold_s:
            known_dt = dt
            # The path between the two samples is unknown: up to half the change each way.
            sd = 100.0 * abs(cur - prev_i) * dt / 2.0 / 3600.0 / self._q_nom_ah
            hold_var = sd * sd
        else:
            known_dt = min(dt, self._current_age_s)
        gap_dt = dt - known_dt
        self.last_i = cur if i_known else None
        d_ah = cur * known_dt / 3600.0
        self.ah += d_ah
        if d_ah < 0.0:
            self.discharged_ah -= d_ah
        if gap_dt > 0.0:
            # Charge moved during a gap is unknown: no capacity sample may span it.
            for cell in cells:
                forget_anchor(cell)
        # Rest: a small current for long enough; one recalibration per completed rest_s.
        resting = i_known and abs(cur) <= cfg.rest_current_c * self._q_nom_ah
        if not resting:
            self._rest_since_s = None
        elif self._rest_since_s is None:
            self._rest_since_s = now_s - known_dt
            self._rest_epoch += 1
        rest_id = -1
        if resting and self._rest_since_s is not None:
            n_rest = int((now_s - self._rest_since_s) // cfg.rest_s) if cfg.rest_s > 0 else 1
            if n_rest >= 1:
                rest_id = self._rest_epoch * 1_000_000 + min(n_rest, 999_999)
        return StepInputs(
            dt_s=dt,
            known_dt_s=known_dt,
            gap_dt_s=gap_dt,
            current_a=cur,
            current_known=i_known,
            d_ah=d_ah,
            extra_dt_s=min(dt, cfg.current_hold_s),
            hold_var=hold_var,
            resting=resting,
            rest_id=rest_id,
            q_nom_ah=self._q_nom_ah,
            accumulated_ah=self.ah,
            rc_current_a=cur,
            gap_sq_s2=gap_dt * gap_dt,
        )


def check_extra(values: Sequence[float] | None, n: int) -> list[float] | None:
    """``cell_extra_current_a`` checked: ``None`` when absent or all zero.

    Raises:
        ValueError: ``values`` has another length than ``n`` or a value is not finite.
    """
    if values is None:
        return None
    extra = [float(x) for x in values]
    if len(extra) != n:
        raise ValueError(f"cell_extra_current_a has {len(extra)} cells, estimator {n}")
    bad = [k for k, x in enumerate(extra) if not math.isfinite(x)]
    if bad:
        raise ValueError(f"cell_extra_current_a[{bad[0]}] (={extra[bad[0]]}) is not finite")
    return extra if any(extra) else None
