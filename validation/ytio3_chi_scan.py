"""YTiO3, spherical Ti³⁺ model: cryspy's χ² on a grid of χ, and chasm's refinement.

The model and settings are those of ``../shared/data/pnd/ytio3/ytio3.rcif``
(P n m a, Ti³⁺ ⟨j0⟩ with Landé factor 2, i.e. C2 = 0, isotropic susceptibility
``Ciso``, three LLB 6T2 blocks of 110, 95 and 61 flipping ratios at 1 T, P = −0.9,
e = 0.95, no extinction). The Ti susceptibility χ (μB/T) is the only free
parameter.

What is computed
----------------
1. cryspy's χ² at χ = 0.10, 0.15, ..., 1.60 (μB/T): its own function
   ``cryspy.procedure_rhochi.rhochi_by_dictionary.rhochi_calc_chi_sq_by_dictionary``
   on the dictionary of the loaded file, with the Ti ``Ciso`` value set to χ
   (cryspy builds the tensor χ·1 from it). The parabola through the lowest grid
   point and its two neighbours gives χ_scan, and cryspy's χ² is evaluated there.
2. chasm's refinement (:class:`chasm.refine.refinement.Refinement`, one stage,
   ``Ti.chi_iso`` free, default solver options) from the starts 0.2, 0.3, ...,
   1.5: refined χ, its su, χ², cycles, and cryspy's χ² at chasm's χ.

Systematically absent reflections
---------------------------------
The three blocks contain 15 reflections that are systematically absent in
P n m a (gemmi's ``GroupOps.systematic_absences``): (0 0 ±1), (0 ±1 0), (0 2 1),
(1 0 0)... Their F_N and F_M vanish by symmetry, so R = I+/I− is 0/0 and what
a program computes there is rounding. chasm sets R = 1 with zero derivatives
when both intensities are below ``chasm.neutron.flipping.ABSENT_INTENSITY``.
cryspy's F_M of the Ti site happens to cancel exactly, which gives R = 1 at
most χ but 0/0 = NaN at others: its χ² is NaN at 6 of the 31 grid points
(χ = 0.15, 0.30, 0.60, 1.15, 1.20, 1.25), and its own BFGS refinement of the
file stops at the first NaN or runs away (benchmarks/bench_pnd.py). The scan
and the refinements below therefore use the file with these 15 reflections
marked as excluded (the ``_diffrn_refln_excluded`` flag, which both programs
honour): 251 ratios. At R = 1 they add a constant to χ² and do not move the
minimum; ``--keep-absent`` runs the file as it is (cryspy's NaN included).

Usage: python validation/ytio3_chi_scan.py [--keep-absent]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import warnings
from pathlib import Path

import gemmi
import numpy as np

from chasm.density.model import SphericalAtom
from chasm.neutron import CRYSPY_P, PndDataset, PndFile, read_rcif
from chasm.refine.pnd_data import PndData, PndSpinModel
from chasm.refine.problem import SolverOptions
from chasm.refine.refinement import Refinement, Stage

RCIF = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "pnd" / "ytio3").resolve()
RCIF = RCIF / "ytio3.rcif"
#: Sears, Neutron News 3(3) (1992) 26 (fm): the scattering lengths of cryspy's table.
SEARS_1992 = {"Ti": -3.438, "O": 5.803, "Y": 7.75}
GRID = np.round(np.arange(0.10, 1.6001, 0.05), 2)
STARTS = np.round(np.arange(0.2, 1.5001, 0.1), 1)
CHI = "Ti.chi_iso"


# ----------------------------------------------------------------------------- shared
def absent_mask(hkl, spacegroup: str) -> np.ndarray:
    """Systematic absences of a space group (gemmi, independent of chasm), (n,) bool."""
    ops = gemmi.SpaceGroup(spacegroup).operations()
    return np.asarray(ops.systematic_absences(np.asarray(hkl, dtype=int)), dtype=bool)


def exclude_absent(pnd: PndFile) -> list[PndDataset]:
    """The data blocks of ``pnd`` with their systematically absent reflections excluded."""
    group = pnd.crystal().spacegroup
    return [
        dataclasses.replace(d, excluded=np.asarray(d.excluded, bool) | absent_mask(d.hkl, group))
        for d in pnd.datasets
    ]


def chasm_spin(pnd: PndFile, start: float | None = None, moment: bool = False) -> PndSpinModel:
    """chasm's spin model of the file, set up as cryspy computes it.

    Sears (1992) scattering lengths and p = 2.695 fm/μB (cryspy's constants);
    the Ti³⁺ ⟨j0⟩ of periodictable is cryspy's to its 4 decimals, and g = 2 makes
    C2 = 0. ``moment=True`` describes Ti by a moment χ·B along the field
    (``Ti.moment``, B = 1 T) instead of the file's ``Ciso`` (``Ti.chi_iso``).
    """
    block = pnd.crystal()
    chi0 = float(block.susceptibility["Ti"].chi[0]) if start is None else float(start)
    moments = {"Ti": chi0} if moment else None
    spin = PndSpinModel.from_rcif(block, moments=moments, b_overrides=SEARS_1992, p=CRYSPY_P)
    if not moment:
        spin.set_values({CHI: chi0})
    return spin


def chasm_refinement(
    pnd: PndFile,
    datasets: list[PndDataset],
    start: float,
    options: SolverOptions | None = None,
) -> dict:
    """Refine Ti χ with chasm from ``start``: value, su, χ², cycles, convergence."""
    spin = chasm_spin(pnd, start)
    sets = [PndData(d.name, d, spin) for d in datasets]
    models = [SphericalAtom(a.element) for a in spin.crystal.atoms]
    ref = Refinement(spin.crystal, models, sets, options=options)
    out = ref.run_stage(Stage("chi", free=[CHI]))
    par = ref.params[CHI]
    chi2 = sum(a["chi2"] for a in ref.agreement().values())
    return {
        "start": float(start),
        "chi": float(par.value),
        "su": float(par.su),
        "chi2": float(chi2),
        "n": sum(len(s.r_obs) for s in sets),
        "converged": bool(out.result.converged),
        "cycles": int(out.result.cycles),
        "message": out.result.message,
    }


class CryspyChi2:
    """cryspy's χ² of the file as a function of the Ti susceptibility χ (μB/T).

    Parameters
    ----------
    path : Path
        The rcif file.
    exclude_absent : bool
        Mark the systematically absent reflections as excluded
        (``flip_ratio_excluded`` of cryspy's data dictionaries).

    Attributes
    ----------
    calls : int
        Number of χ² evaluations so far.
    """

    def __init__(self, path: Path = RCIF, exclude_absent: bool = True):
        import cryspy

        self.globaln = cryspy.load_file(str(path))
        self.dict = self.globaln.get_dictionary()
        self.crystal = next(k for k in self.dict if k.startswith("crystal_"))
        crystal = next(i for i in self.globaln.items if type(i).__name__ == "Crystal")
        group = crystal.space_group.name_hm_alt
        self.n_absent = 0
        if exclude_absent:
            for key, block in self.dict.items():
                if key.startswith("diffrn_"):
                    absent = absent_mask(block["index_hkl"].T, group)
                    block["flip_ratio_excluded"] = block["flip_ratio_excluded"] | absent
                    self.n_absent += int(absent.sum())
        self.calls = 0

    def evaluate(self, chi: float) -> tuple[float, int, dict]:
        """χ², number of ratios used, and cryspy's per-block intermediate results."""
        from cryspy.procedure_rhochi.rhochi_by_dictionary import (
            rhochi_calc_chi_sq_by_dictionary,
        )

        # Ciso: cryspy makes the tensor from chi_11 (its atom_para_sc_chi); set all three.
        self.dict[self.crystal]["atom_para_susceptibility"][:3, 0] = chi
        dict_in_out: dict = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 at absent reflections
            chi2, n = rhochi_calc_chi_sq_by_dictionary(self.dict, dict_in_out=dict_in_out)[:2]
        self.calls += 1
        return float(chi2), int(n), dict_in_out

    def __call__(self, chi: float) -> float:
        return self.evaluate(chi)[0]

    def ratios(self, chi: float) -> dict[str, np.ndarray]:
        """cryspy's flipping ratios R = I+/I− of every reflection of each block."""
        blocks = self.evaluate(chi)[2]
        with np.errstate(invalid="ignore", divide="ignore"):
            return {
                key.removeprefix("diffrn_"): block["iint_plus"] / block["iint_minus"]
                for key, block in blocks.items()
            }


def parabolic_minimum(grid, values) -> float:
    """Vertex of the parabola through the lowest grid point and its two neighbours."""
    grid, values = np.asarray(grid, float), np.asarray(values, float)
    i = int(np.argmin(values))
    if i == 0 or i == len(grid) - 1:
        raise ValueError("the minimum of the scan is at its edge")
    x, y = grid[i - 1 : i + 2], values[i - 1 : i + 2]
    a, b, _ = np.polyfit(x, y, 2)
    return float(-b / (2 * a))


# ----------------------------------------------------------------------------- report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep-absent", action="store_true", help="use the file as it is")
    args = parser.parse_args()
    excluded = not args.keep_absent
    pnd = read_rcif(RCIF)
    datasets = exclude_absent(pnd) if excluded else pnd.datasets
    cry = CryspyChi2(RCIF, exclude_absent=excluded)
    print(f"file: {RCIF}")
    print(f"systematically absent reflections excluded: {cry.n_absent if excluded else 'no'}")

    print("\ncryspy chi2 on the grid (rhochi_calc_chi_sq_by_dictionary)")
    print(f"{'chi (muB/T)':>12} {'chi2':>14} {'chi2/N':>10}")
    values = []
    for chi in GRID:
        chi2, n, _ = cry.evaluate(float(chi))
        values.append(chi2)
        print(f"{chi:12.2f} {chi2:14.2f} {chi2 / n:10.2f}")
    values = np.array(values)
    finite = np.isfinite(values)
    chi_scan = parabolic_minimum(GRID[finite], values[finite])
    chi2_scan = cry(chi_scan)
    print(f"\nparabolic minimum of the scan: chi = {chi_scan:.5f}, cryspy chi2 = {chi2_scan:.3f}")
    nan = int(np.sum(~np.isfinite(values)))
    if nan:
        print(f"({nan} grid points give chi2 = NaN in cryspy: 0/0 at absent reflections)")

    print("\nchasm refinement of Ti.chi_iso (default SolverOptions)")
    head = (
        f"{'start':>6} {'chi':>9} {'su':>8} {'(chi-scan)/su':>13} {'chi2 chasm':>13} "
        f"{'chi2 cryspy':>13} {'rel.diff':>9} {'cycles':>6}  status"
    )
    print(head)
    worst = 0.0
    for start in STARTS:
        r = chasm_refinement(pnd, datasets, float(start))
        c_cry = cry(r["chi"])
        rel = r["chi2"] / c_cry - 1.0
        dev = (r["chi"] - chi_scan) / r["su"]
        ok = math.isfinite(r["chi2"]) and r["converged"]
        worst = max(worst, abs(r["chi2"] / chi2_scan - 1.0))
        print(
            f"{start:6.1f} {r['chi']:9.5f} {r['su']:8.5f} {dev:13.3f} {r['chi2']:13.3f} "
            f"{c_cry:13.3f} {rel:9.1e} {r['cycles']:6d}  {r['message'] if ok else 'FAILED'}"
        )
    print(f"\nlargest |chi2_chasm / chi2_cryspy(scan minimum) - 1| = {worst:.2e}")
    print(f"cryspy chi2 evaluations: {cry.calls}")


if __name__ == "__main__":
    main()
