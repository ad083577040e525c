"""MnF2 unpolarised single-crystal neutron intensities refined with UndData.

Data: ../shared/data/pnd/mnf2/mnf2_unpol_SC.rcif (431 intensities) and
mnF2_80K.rcif (750), cryspy rcif files of MnF2 (rutile type, P 42/mnm, Mn on
2a at 0 0 0, F on 4f at x x 0). Each block lists h k l, the integrated
intensity I, σ(I), cryspy's calculated I and excluded flags. In cryspy's model
I = scale · y · (|F_N|² + |F_M⊥|²) for an unpolarised beam, so I is F² on an
arbitrary scale (not |F|): it is used as F² with σ(F²) = σ(I) and weights
1/σ². Repeated and symmetry-equivalent measurements are kept unmerged (as
cryspy fits them); the internal agreement R_int of the equivalents (Laue
class 4/mmm) is printed as the floor any model can reach.

What the model includes: the NUCLEAR structure factor only, F_N = Σ b T
exp(2πi h·x) (UndData's nuclear view: Mn b = −3.73 fm, F b = 5.654 fm,
anisotropic neutron ADPs under the site symmetry, x(F) free), an overall
scale k (F² per fm²) and an isotropic extinction correction (SHELXL's EXTI,
or Becker–Coppens type I gaussian). The magnetic scattering of the ordered
antiferromagnet is NOT in UndData. With the Mn moments along c and the Mn at
0 0 0 and ½ ½ ½ antiparallel, the Mn magnetic amplitude is
p f(Q) m (1 − (−1)^(h+k+l)) ⊥-projected: it vanishes for h + k + l even. The
default selection is therefore h + k + l even (which also removes every
systematic absence of P 42/mnm: 00l l odd, 0kl k + l odd, h00 h odd). The
transferred spin on F (−0.025 μB in the files' model) would still contribute
at h + k + l even; its magnetic intensity is ≤ (4 · 0.025 · 2.695 fm)² =
0.07 fm², below 0.1 % of the weakest nuclear |F_N|² used here — negligible.
The misfit of a nuclear-only model on ALL reflections (h + k + l odd
included) is printed too, to show the magnetic signal it cannot describe.

Usage: python validation/mnf2_und.py [--file mnF2_80K.rcif] [--all-parities]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from chasm.crystal.adp import ueq
from chasm.density.model import SphericalAtom
from chasm.io.shelx_hkl import Reflections
from chasm.neutron.model import PndModel
from chasm.neutron.rcif import read_rcif
from chasm.refine.refinement import Refinement, Stage
from chasm.refine.xray_data import UndData, XrayOptions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pnd" / "mnf2"
FILES = ("mnf2_unpol_SC.rcif", "mnF2_80K.rcif")


def laue_key(hkl: np.ndarray) -> np.ndarray:
    """A representative of each reflection's 4/mmm class (|h| ≥ |k|, |l|)."""
    h, k, l = np.abs(hkl).T  # noqa: E741
    return np.stack([np.maximum(h, k), np.minimum(h, k), l], axis=1)


def r_int(hkl: np.ndarray, i_obs: np.ndarray) -> tuple[float, int]:
    """Σ|I − <I>| / ΣI over the classes measured more than once, and their count."""
    keys = laue_key(hkl)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    mean = np.bincount(inverse, i_obs) / counts
    multi = counts[inverse] > 1
    num = np.sum(np.abs(i_obs - mean[inverse])[multi])
    return float(num / np.sum(i_obs[multi])), int(np.sum(counts > 1))


def refine(
    path: Path, parity: str = "even", extinction: str = "shelx", verbose: bool = False
) -> dict:
    """Refine scale, extinction, x(F) and the neutron ADPs against one file.

    Parameters
    ----------
    path : Path
        An MnF2 rcif with one ``_diffrn_refln_intensity`` block.
    parity : {"even", "all"}
        Keep h + k + l even only (no AFM magnetic scattering) or every reflection.
    extinction : {"shelx", "bc-gauss", "none"}
        Extinction model of UndData.
    verbose : bool
        Print the refinement cycles.

    Returns
    -------
    dict
        ``agreement`` (UndData.agreement: R1, wR2, GOF, ...), ``scale`` (F² per
        fm²), ``extinction`` (and su), ``x_F`` (and su), ``U`` per atom
        (U11, U33, U12 in Å², Ueq, su), counts.
    """
    pf = read_rcif(path)
    block = pf.intensity_sets[0]
    model = PndModel.from_rcif(pf.crystal(block.phase))
    cr = model.crystal
    for a in cr.atoms:  # anisotropic neutron ADPs, started from the file's Uiso
        u = max(a.uiso, 0.002)
        a.u_aniso = np.array([u, u, u, 0.1 * u if a.element == "F" else 0.0, 0.0, 0.0])
        a.uiso = u
        a.occupancy = 1.0
    keep = ~block.excluded
    if parity == "even":
        keep &= block.hkl.sum(axis=1) % 2 == 0
    hkl, i_obs, s_obs = block.hkl[keep], block.intensity[keep], block.sigma[keep]
    refl = Reflections(hkl=hkl, f2=i_obs, sigma=s_obs, lines=block.lines[keep], path=str(path))
    opts = XrayOptions(
        extinction=extinction,
        extinction_start=0.0 if extinction == "shelx" else 0.01,
        wavelength=block.wavelength,
        path_length=1000.0,
    )
    data = UndData("und", refl, cr, opts)
    models = [SphericalAtom(a.element) for a in cr.atoms]
    ref = Refinement(cr, models, [data])
    b = {a.label: bb for a, bb in zip(cr.atoms, ref.structure._b, strict=True)}
    free = ["F.x", "F.y", "*.N", "und.scale"] + (["und.extinction"] if extinction != "none" else [])
    callback = (lambda info: print("   ", info)) if verbose else None
    # Mn U12: the two Mn (0 0 0 and ½ ½ ½, related by the 4₂ axis) have opposite U12,
    # so at h+k+l even their Debye-Waller factors enter as T(U12) + T(-U12): even in
    # U12, zero derivative at U12 = 0 and no sign information. Fixed at 0 there.
    fix = ["Mn.U12.N"] if parity == "even" else []
    stages = [
        Stage("scale", free=["und.scale"]),
        Stage("all", free=free, fix=fix, max_cycles=100),
    ]
    outcomes = ref.run(stages, callback)
    result = outcomes[-1].result
    p = ref.params
    u_out = {}
    for k, a in enumerate(cr.atoms):
        u6, _ = ref.structure.adp["N"][k]
        u_out[a.label] = {
            "U11": u6[0],
            "U33": u6[2],
            "U12": u6[3],
            "su": [p[f"{a.label}.{c}.N"].su for c in ("U11", "U33", "U12")],
            "Ueq": float(ueq(u6, cr.cell)),
        }
    r, n_classes = r_int(hkl, i_obs)
    return {
        "file": path.name,
        "parity": parity,
        "extinction_model": extinction,
        "n_read": len(block.hkl),
        "n_used": int(keep.sum()),
        "agreement": ref.agreement()["und"],
        "converged": result.converged,
        "cycles": result.cycles,
        "scale": p["und.scale"].value,
        "scale_su": p["und.scale"].su,
        "extinction": p["und.extinction"].value if extinction != "none" else None,
        "extinction_su": p["und.extinction"].su if extinction != "none" else None,
        "x_F": p["F.x"].value,
        "x_F_su": p["F.x"].su,
        "U": u_out,
        "b": b,
        "R_int": r,
        "n_classes_multi": n_classes,
        "cryspy_scale": block.phase_scale,
    }


def report(res: dict) -> None:
    a = res["agreement"]
    print(
        f"{res['file']}: {res['n_used']} of {res['n_read']} intensities "
        f"(h+k+l {res['parity']}), extinction {res['extinction_model']}; "
        f"converged {res['converged']} in {res['cycles']} cycles"
    )
    print(
        f"    R1 = {a['R1']:.4f}  wR2 = {a['wR2']:.4f}  GOF = {a['gof']:.2f}  "
        f"(N = {a['n_obs']}, P = {a['n_par']}); R_int of the unmerged equivalents "
        f"{res['R_int']:.4f} ({res['n_classes_multi']} classes measured more than once)"
    )
    print(
        f"    scale k = {res['scale']:.3f}({res['scale_su']:.3f}) per fm² "
        f"(cryspy's phase scale {res['cryspy_scale']} is per (10 fm)²: "
        f"{res['cryspy_scale'] / 100:.2f} per fm²)"
    )
    if res["extinction"] is not None:
        print(f"    extinction = {res['extinction']:.5g}({res['extinction_su']:.2g})")
    print(f"    x(F) = {res['x_F']:.5f}({res['x_F_su']:.5f}); b (fm) {res['b']}")
    for label, u in res["U"].items():
        su = [0.0 if x is None else x for x in u["su"]]  # 0: fixed
        print(
            f"    {label:3s} U11=U22 = {u['U11']:.5f}({su[0]:.5f})  U33 = {u['U33']:.5f}"
            f"({su[1]:.5f})  U12 = {u['U12']:+.5f}({su[2]:.5f})  Ueq = {u['Ueq']:.5f} Å²"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", default=None, help="one of the rcif names (default: both)")
    ap.add_argument("--all-parities", action="store_true", help="only h+k+l all (misfit study)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"data folder {DATA} absent")
    files = [args.file] if args.file else list(FILES)
    for name in files:
        print(f"=== {name}")
        for ext in ("shelx", "bc-gauss", "none"):
            report(refine(DATA / name, "even", ext, args.verbose))
        print("  misfit of the nuclear-only model on every reflection (AFM part missing):")
        report(refine(DATA / name, "all", "shelx", args.verbose))


if __name__ == "__main__":
    main()
