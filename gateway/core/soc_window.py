"""Step windows: a cell weighed every few steps takes the string's steps between as one.

A large pack is estimated in slices (``SocConfig.cells_per_step``): each step weighs the
voltages of one group of cells, round-robin, and every group's ``StepWindow`` sums the string's
steps since the group was last weighed. When its turn comes, the window is one ``StepInputs``
and the group's cells are advanced by it, then corrected with their latest voltage. A pack no
larger than ``cells_per_step`` has one group whose window always holds exactly one step: the
step itself, unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gateway.core.soc_cell import StepInputs

__all__ = ["StepWindow"]


@dataclass(slots=True)
class StepWindow:
    """The string's steps since a group of cells was last weighed, summed into one step.

    Time, charge, gap lengths (as the sum of their squares: each gap's unknown charge is its own
    guess) and hold variance add up exactly. The RC branch's drive is the constant current that
    leaves the branch where the steps' currents did, zero-order hold per step with the
    chemistry's ``tau1``: with ``a_j = exp(-known_dt_j / tau1)``, ``A = prod a_j`` and
    ``B = sum_j (1 - a_j) i_j prod_{l>j} a_l`` (the exact solution of the first-order branch
    per step), the drive is ``B / (1 - A)``. What happens at the window's end (the current now,
    rest, ``rest_id``, the charge counted since start) is the last step's.
    """

    steps: int = 0
    last: StepInputs | None = None
    dt_s: float = 0.0
    known_dt_s: float = 0.0
    gap_dt_s: float = 0.0
    gap_sq_s2: float = 0.0
    d_ah: float = 0.0
    extra_dt_s: float = 0.0
    hold_var: float = 0.0
    decay: float = 1.0  # A
    drive: float = 0.0  # B, A

    def add(self, step: StepInputs, a: float) -> None:
        """Add ``step``, whose RC decay factor is ``a = exp(-step.known_dt_s / tau1)``."""
        self.steps += 1
        self.last = step
        self.dt_s += step.dt_s
        self.known_dt_s += step.known_dt_s
        self.gap_dt_s += step.gap_dt_s
        self.gap_sq_s2 += step.gap_sq_s2
        self.d_ah += step.d_ah
        self.extra_dt_s += step.extra_dt_s
        self.hold_var += step.hold_var
        self.decay *= a
        self.drive = a * self.drive + (1.0 - a) * step.rc_current_a

    def take(self) -> StepInputs:
        """The window as one step (the step itself when it holds one), and empty the window.

        Raises:
            ValueError: the window is empty.
        """
        last = self.last
        if last is None:
            raise ValueError("empty step window")
        if self.steps == 1:
            out = last
        else:
            one_less = 1.0 - self.decay
            drive = self.drive / one_less if one_less > 1e-12 else last.current_a
            out = dataclasses.replace(
                last,
                dt_s=self.dt_s,
                known_dt_s=self.known_dt_s,
                gap_dt_s=self.gap_dt_s,
                gap_sq_s2=self.gap_sq_s2,
                d_ah=self.d_ah,
                extra_dt_s=self.extra_dt_s,
                hold_var=self.hold_var,
                rc_current_a=drive,
            )
        self.clear()
        return out

    def clear(self) -> None:
        """Forget every step (after a restore: the cells are as of now)."""
        self.steps = 0
        self.last = None
        self.dt_s = self.known_dt_s = self.gap_dt_s = self.gap_sq_s2 = 0.0
        self.d_ah = self.extra_dt_s = self.hold_var = 0.0
        self.decay = 1.0
        self.drive = 0.0
