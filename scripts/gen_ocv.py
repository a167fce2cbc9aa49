"""Generate the built-in chemistry tables (``gateway/data/ocv/``) from PyBaMM.

Needs the ``[bench]`` extra (``pip install -e '.[bench]'``); the gateway itself never imports
PyBaMM. For each chemistry:

- ``<name>.csv``: open-circuit voltage against SoC (``soc_pct,ocv_v``), from the electrode
  open-circuit potentials at the stoichiometries of PyBaMM's electrode state-of-health balance
  between the chemistry's voltage window. 0 % and 100 % are the window's ends.
- ``<name>_params.csv``: nominal cell parameters (``key,value``): the voltage window and a
  first-order circuit at 25 degC: R0 from the voltage step one second into a 1C pulse at 50 %
  SoC (what a BMS sampling at 1 Hz sees, and what the estimator re-measures online), R1 and tau1
  fitted by least squares to the SPMe's voltage over a characterisation cycle (rests, partial
  discharges at 0.1C..1C, a charge). Resistances are per capacity (mOhm * Ah) so they scale to
  any cell size. ``fit_rms_mv`` says how well the circuit follows the SPMe on that cycle.
- ``<name>_r_temp.csv``: how R0 scales with temperature (``temp_c,factor``, 1.0 at 25 degC),
  from the same pulse at other temperatures. The OCV itself has no temperature dependence in
  these parameter sets (their entropic coefficients are zero), so the OCV table has none either.

Run: ``.venv/bin/python scripts/gen_ocv.py`` (under a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pybamm
from scipy.optimize import least_squares
from scipy.signal import lfilter

__all__ = ["CELLS", "CellSpec", "electrode_capacity_ah", "ocv_curve", "parameter_values"]

OcvLookup = Callable[[np.ndarray], np.ndarray]

OUT = Path(__file__).resolve().parent.parent / "gateway" / "data" / "ocv"


@dataclass(frozen=True)
class CellSpec:
    """A chemistry as the gateway knows it, and the PyBaMM parameter set behind it."""

    name: str
    parameter_set: str
    min_v: float  # OCV at 0 % SoC and end-of-discharge voltage
    max_v: float  # end-of-charge voltage
    ocv_max_v: float  # OCV at 100 % SoC
    nominal_v: float


CELLS: dict[str, CellSpec] = {
    # LG M50 (21700, NMC811 / graphite-SiOx), Chen et al. 2020.
    "nmc": CellSpec("nmc", "Chen2020", min_v=3.0, max_v=4.2, ocv_max_v=4.2, nominal_v=3.65),
    # A123 26650 (LFP / graphite), Prada et al. 2013. Charged to 3.65 V; its OCV at full is 3.6 V.
    "lfp": CellSpec("lfp", "Prada2013", min_v=2.5, max_v=3.65, ocv_max_v=3.6, nominal_v=3.2),
}


def parameter_values(spec: CellSpec) -> pybamm.ParameterValues:
    """PyBaMM parameters of ``spec`` with the gateway's voltage window.

    Prada2013 lacks the thermal parameters of a lumped thermal model; they are borrowed from
    Chen2020 (a cylindrical cell of similar build).
    """
    p = pybamm.ParameterValues(spec.parameter_set)
    if spec.parameter_set != "Chen2020":
        donor = pybamm.ParameterValues("Chen2020")
        missing = {k: donor[k] for k in donor if k not in p}
        p.update(missing, check_already_exists=False)
    p.update(
        {
            "Open-circuit voltage at 0% SOC [V]": spec.min_v,
            "Open-circuit voltage at 100% SOC [V]": spec.ocv_max_v,
            # The simulation may go past the SoC window under load; stop only well beyond it.
            "Lower voltage cut-off [V]": spec.min_v - 0.5,
            "Upper voltage cut-off [V]": spec.max_v + 0.2,
        }
    )
    return p


def electrode_capacity_ah(p: pybamm.ParameterValues) -> float:
    """Capacity between 0 % and 100 % SoC from the electrode balance (the 'true' capacity)."""
    param = pybamm.LithiumIonParameters()
    solver = pybamm.lithium_ion.ElectrodeSOHSolver(p, param=param)
    inputs = {
        "Q_n": p.evaluate(param.n.Q_init),
        "Q_p": p.evaluate(param.p.Q_init),
        "Q_Li": p.evaluate(param.Q_Li_particles_init),
    }
    return float(solver.solve(inputs)["Q"])


def ocv_curve(p: pybamm.ParameterValues, soc: np.ndarray) -> np.ndarray:
    """Equilibrium cell voltage at each SoC (0..1) of ``soc``."""
    x0, x100, y100, y0 = pybamm.lithium_ion.get_min_max_stoichiometries(p)
    up = p["Positive electrode OCP [V]"]
    un = p["Negative electrode OCP [V]"]
    out = []
    for s in soc:
        x = x0 + s * (x100 - x0)
        y = y0 - s * (y0 - y100)
        out.append(p.evaluate(up(pybamm.Scalar(y))) - p.evaluate(un(pybamm.Scalar(x))))
    return np.asarray(out, dtype=float)


def _soc_grid() -> np.ndarray:
    # 1 % steps, with 0.25 % steps near the ends where the curve bends sharply.
    lo = np.arange(0.0, 5.0, 0.25)
    mid = np.arange(5.0, 95.0, 1.0)
    hi = np.arange(95.0, 100.0 + 1e-9, 0.25)
    return np.concatenate([lo, mid, hi])


def _monotone(v: np.ndarray) -> np.ndarray:
    # The electrode OCPs are fits; keep the table non-decreasing (the lookup needs it).
    return np.maximum.accumulate(v)


def _pulse(p: pybamm.ParameterValues, cap_ah: float, temp_c: float) -> dict[str, float]:
    """R0 at 50 % SoC and ``temp_c``: the voltage step one second into a 1C discharge pulse."""
    p = p.copy()
    p.update(
        {
            "Ambient temperature [K]": 273.15 + temp_c,
            "Initial temperature [K]": 273.15 + temp_c,
        }
    )
    current = cap_ah  # 1C
    exp = pybamm.Experiment(
        ["Rest for 60 seconds", f"Discharge at {current} A for 10 seconds"],
        period="1 second",
    )
    sim = pybamm.Simulation(pybamm.lithium_ion.SPMe(), parameter_values=p, experiment=exp)
    sol = sim.solve(initial_soc=0.5)
    t = sol["Time [s]"].entries
    v = sol["Voltage [V]"].entries
    v_rest = float(np.interp(59.0, t, v))
    v_step = float(np.interp(61.0, t, v))  # one sample into the pulse, as a BMS at 1 Hz sees
    return {"r0_ohm": (v_rest - v_step) / current}


def _fit_rc(
    p: pybamm.ParameterValues, cap_ah: float, ocv: OcvLookup, r0_ohm: float
) -> dict[str, float]:
    """R1 and tau1 that make the circuit follow the SPMe through a characterisation cycle.

    A relaxation after one pulse sees only the fast part of the polarisation; hours of load at
    home-storage rates also build up the slow (solid diffusion) part. So the RC branch is fitted
    by least squares to the voltage of a whole cycle of rests, partial discharges at 0.1C to 1C
    and a charge, with the OCV table and the pulse's R0 held fixed.
    """
    steps = [
        "Rest for 10 minutes",
        f"Discharge at {0.2 * cap_ah} A for 1 hour",
        "Rest for 30 minutes",
        f"Discharge at {1.0 * cap_ah} A for 10 minutes",
        "Rest for 30 minutes",
        f"Discharge at {0.5 * cap_ah} A for 40 minutes",
        "Rest for 1 hour",
        f"Charge at {0.3 * cap_ah} A for 2 hours",
        "Rest for 1 hour",
        f"Discharge at {0.1 * cap_ah} A for 1 hour",
        "Rest for 30 minutes",
    ]
    exp = pybamm.Experiment(steps, period="1 second")
    sim = pybamm.Simulation(pybamm.lithium_ion.SPMe(), parameter_values=p, experiment=exp)
    soc0 = 0.9
    sol = sim.solve(initial_soc=soc0)
    t = sol["Time [s]"].entries
    # Resample at 1 s (experiment steps join with repeated time points).
    tt = np.arange(0.0, float(t[-1]), 1.0)
    _, idx = np.unique(t, return_index=True)
    t = t[idx]
    i_a = np.interp(tt, t, -sol["Current [A]"].entries[idx])
    v = np.interp(tt, t, sol["Voltage [V]"].entries[idx])
    soc = 100.0 * (soc0 - np.interp(tt, t, sol["Discharge capacity [A.h]"].entries[idx]) / cap_ah)
    v_ocv = ocv(soc)

    def residual(x: np.ndarray) -> np.ndarray:
        r1, tau = math.exp(x[0]), math.exp(x[1])
        a = math.exp(-1.0 / tau)
        v1 = lfilter([r1 * (1.0 - a)], [1.0, -a], i_a)
        return np.asarray(v_ocv + r0_ohm * i_a + v1 - v)

    x0 = np.array([math.log(r0_ohm), math.log(200.0)])
    fit = least_squares(residual, x0)
    rms = float(np.sqrt(np.mean(fit.fun**2)))
    return {"r1_ohm": math.exp(fit.x[0]), "tau1_s": math.exp(fit.x[1]), "fit_rms_v": rms}


def generate(spec: CellSpec, out: Path, temps_c: tuple[float, ...]) -> dict[str, Any]:
    """Write the three tables of ``spec`` into ``out`` and return the nominal parameters."""
    p = parameter_values(spec)
    cap = electrode_capacity_ah(p)
    grid = _soc_grid()
    ocv = _monotone(ocv_curve(p, grid / 100.0))
    with (out / f"{spec.name}.csv").open("w", newline="") as f:
        f.write(
            f"# OCV of {spec.parameter_set} (PyBaMM {pybamm.__version__}), scripts/gen_ocv.py\n"
        )
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["soc_pct", "ocv_v"])
        for s, v in zip(grid, ocv, strict=True):
            w.writerow([f"{s:g}", f"{v:.5f}"])

    fits = {t: _pulse(p, cap, t) for t in temps_c}
    ref = fits[25.0]
    soc_tab, ocv_tab = grid.copy(), ocv.copy()
    rc = _fit_rc(p, cap, lambda x: np.interp(x, soc_tab, ocv_tab), ref["r0_ohm"])
    ref = {**ref, "r1_ohm": rc["r1_ohm"], "tau1_s": rc["tau1_s"]}
    params = {
        "source": f"{spec.parameter_set} PyBaMM {pybamm.__version__}",
        "model_capacity_ah": round(cap, 5),
        "nominal_v": spec.nominal_v,
        "max_v": spec.max_v,
        "min_v": spec.min_v,
        "r0_mohm_ah": round(ref["r0_ohm"] * 1000.0 * cap, 3),
        "r1_mohm_ah": round(float(ref["r1_ohm"]) * 1000.0 * cap, 3),
        "tau1_s": round(float(ref["tau1_s"]), 2),
        "fit_rms_mv": round(rc["fit_rms_v"] * 1000.0, 2),
    }
    with (out / f"{spec.name}_params.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["key", "value"])
        for k, val in params.items():
            w.writerow([k, val])
    with (out / f"{spec.name}_r_temp.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["temp_c", "factor"])
        for t in sorted(fits):
            w.writerow([f"{t:g}", f"{fits[t]['r0_ohm'] / ref['r0_ohm']:.4f}"])
    return {"params": params, "fits": fits}


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--chemistry", choices=sorted(CELLS), action="append")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    temps = (0.0, 10.0, 25.0, 40.0)
    for name in args.chemistry or sorted(CELLS):
        result = generate(CELLS[name], args.out, temps)
        print(name, result["params"])
        for t, fit in result["fits"].items():
            print(f"  {t:5.1f} degC  R0 {fit['r0_ohm'] * 1000:.2f} mOhm")


if __name__ == "__main__":
    main()
