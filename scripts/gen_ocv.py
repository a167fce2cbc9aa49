"""Generate the built-in chemistry tables (``gateway/data/ocv/``) from PyBaMM.

Needs the ``[bench]`` extra (``pip install -e '.[bench]'``); the gateway itself never imports
PyBaMM. For each chemistry:

- ``<name>.csv``: open-circuit voltage against SoC (``soc_pct,ocv_v``), from the electrode
  open-circuit potentials at the stoichiometries of PyBaMM's electrode state-of-health balance
  between the chemistry's voltage window. 0 % and 100 % are the window's ends.
- ``<name>_params.csv``: nominal cell parameters (``key,value``): the voltage window, and the
  first-order circuit (R0, R1, tau1) fitted to a 1C discharge pulse and relaxation of the SPMe
  model at 50 % SoC and 25 degC. Resistances are per capacity (mOhm * Ah) so they scale to any
  cell size.
- ``<name>_r_temp.csv``: how R0 scales with temperature (``temp_c,factor``, 1.0 at 25 degC),
  from the same pulse at other temperatures. The OCV itself has no temperature dependence in
  these parameter sets (their entropic coefficients are zero), so the OCV table has none either.

Run: ``.venv/bin/python scripts/gen_ocv.py`` (a minute or two on 2 cores).
"""

from __future__ import annotations

import argparse
import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pybamm
from scipy.optimize import curve_fit

__all__ = ["CELLS", "CellSpec", "electrode_capacity_ah", "ocv_curve", "parameter_values"]

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
    """R0, R1 and tau1 at 50 % SoC and ``temp_c`` from a 1C discharge pulse and a relaxation."""
    p = p.copy()
    p.update(
        {
            "Ambient temperature [K]": 273.15 + temp_c,
            "Initial temperature [K]": 273.15 + temp_c,
        }
    )
    model = pybamm.lithium_ion.SPMe()
    pulse_s, relax_s = 600, 3600
    current = cap_ah  # 1C
    exp = pybamm.Experiment(
        [
            "Rest for 60 seconds",
            f"Discharge at {current} A for {pulse_s} seconds",
            f"Rest for {relax_s} seconds",
        ],
        period="1 second",
    )
    sim = pybamm.Simulation(model, parameter_values=p, experiment=exp)
    sol = sim.solve(initial_soc=0.5)
    t = sol["Time [s]"].entries
    v = sol["Voltage [V]"].entries
    v_rest = float(np.interp(59.0, t, v))
    v_step = float(np.interp(61.0, t, v))  # one sample into the pulse, as a BMS at 1 Hz sees
    r0 = (v_rest - v_step) / current
    t_end = 60.0 + pulse_s
    mask = t > t_end + 0.5
    tr = t[mask] - t_end
    vr = v[mask]

    def relax(tt: np.ndarray, v_inf: float, dv: float, tau: float) -> np.ndarray:
        return v_inf - dv * np.exp(-tt / tau)

    (_v_inf, dv, tau), _ = curve_fit(relax, tr, vr, p0=(float(vr[-1]), 0.02, 100.0), maxfev=20000)
    r1 = dv / (current * (1.0 - math.exp(-pulse_s / tau)))
    return {"r0_ohm": r0, "r1_ohm": r1, "tau1_s": float(tau)}


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
    params = {
        "source": f"{spec.parameter_set} PyBaMM {pybamm.__version__}",
        "model_capacity_ah": round(cap, 5),
        "nominal_v": spec.nominal_v,
        "max_v": spec.max_v,
        "min_v": spec.min_v,
        "r0_mohm_ah": round(ref["r0_ohm"] * 1000.0 * cap, 3),
        "r1_mohm_ah": round(float(ref["r1_ohm"]) * 1000.0 * cap, 3),
        "tau1_s": round(float(ref["tau1_s"]), 2),
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
            print(
                f"  {t:5.1f} degC  R0 {fit['r0_ohm'] * 1000:.2f} mOhm  "
                f"R1 {fit['r1_ohm'] * 1000:.2f} mOhm  tau1 {fit['tau1_s']:.0f} s"
            )


if __name__ == "__main__":
    main()
