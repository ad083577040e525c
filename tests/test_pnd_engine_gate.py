"""Gate of the one-engine refactor of the PND route (issue 17, item 1).

Flipping ratios and Jacobians of YTiO₃ (three blocks), Ho₂Ti₂O₇, MnF₂
``main.rcif`` (the projects ``chasm init`` writes, at the file's model and at a
perturbed point) and of the seed case's flipping-ratio set (the joint
engine route) must equal the values the code computed before the refactor
(commit a75060f, stored in ``tests/references/pnd_gate/gate.npz``) to 1e-10
relative (plus 1e-13 of the largest entry of each Jacobian column, for the rounding
of entries far below their column's size).

Regenerate the reference only from the code before a refactor:
``PYTHONPATH=src python tests/test_pnd_engine_gate.py --write``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
REFERENCE = HERE / "references" / "pnd_gate" / "gate.npz"
SHARED = HERE.parent.parent / "shared" / "data" / "pnd"
FILES = {
    "ytio3": "ytio3/ytio3.rcif",
    "ho2ti2o7": "ho2ti2o7/ho2ti2o7.rcif",
    "mnf2": "mnf2/main.rcif",
}
TOL = 1e-10


def _project_arrays(key: str, source: Path, tmp: Path) -> dict[str, np.ndarray]:
    """Ratios and Jacobian columns (spin and data-set parameters) of every block, two points."""
    from chasm.cli import main
    from chasm.project.build import build
    from chasm.project.project import load_project

    rcif = tmp / source.name
    rcif.write_text(source.read_text())
    project = tmp / f"{key}.toml"
    assert main(["init", str(rcif), "-o", str(project)]) == 0
    ref = build(load_project(project)).refinement
    p0 = ref.params.values.copy()
    rng = np.random.default_rng(17)
    u = rng.uniform(0.0, 1.0, len(p0))
    p1 = p0 * (1.0 + 0.04 * u) + 0.003 * u  # keeps radius, mosaicity >= 0 and |P| <= 1
    out = {}
    for d in ref.datasets:
        for tag, p in (("file", p0), ("moved", p1)):
            _, r, jac = d.calculate(p, jacobian=True)
            cols = np.flatnonzero(np.any(jac != 0.0, axis=0))
            out[f"{key}/{d.name}/{tag}/ratio"] = r
            out[f"{key}/{d.name}/{tag}/jacobian"] = jac
            out[f"{key}/{d.name}/{tag}/columns"] = np.array(
                [ref.params.names[k] for k in cols], dtype=str
            )
    return out


def _seed_arrays() -> dict[str, np.ndarray]:
    """The seed case's flipping-ratio set (FlippingData through the engine) at the truth."""
    from chasm.examples import seed

    crystal = seed.seed_crystal()
    truth = seed.truth_models(crystal)
    data = seed.simulate(crystal, truth, xray_smax=0.3, und_count=50, pnd_count=212, seed=0)
    ref = seed.build_refinement(crystal, truth, data)
    pnd = next(d for d in ref.datasets if d.kind == "pnd")
    p = ref.params.values.copy()
    _, r, jac = pnd.calculate(p, jacobian=True)
    cols = np.flatnonzero(np.any(jac != 0.0, axis=0))
    return {
        "seed/pnd/ratio": r,
        "seed/pnd/jacobian": jac[:, cols],
        "seed/pnd/columns": np.array([ref.params.names[k] for k in cols], dtype=str),
    }


def compute(tmp: Path) -> dict[str, np.ndarray]:
    """Every gate array (needs the shared data)."""
    out = {}
    for key, rel in FILES.items():
        sub = tmp / key
        sub.mkdir(parents=True, exist_ok=True)
        out.update(_project_arrays(key, SHARED / rel, sub))
    out.update(_seed_arrays())
    return out


def _shrink(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Store only the non-zero Jacobian columns of the projects (named in ``.../columns``)."""
    out = dict(arrays)
    for name in [n for n in arrays if n.endswith("/jacobian") and not n.startswith("seed/")]:
        jac = arrays[name]
        out[name] = jac[:, np.any(jac != 0.0, axis=0)]
    return out


def _close(ours: np.ndarray, ref: np.ndarray, name: str) -> None:
    """|Δ| ≤ 1e-10 |ref| + 1e-13 max|ref| (per Jacobian column): relative 1e-10, except that
    an entry far below its column's size may carry the rounding of the column's larger terms
    (MnF₂: Δ = 2.2e-16 on dR/dF.mz entries of 9e-7, 2.4e-10 of themselves)."""
    assert ours.shape == ref.shape, name
    col = np.max(np.abs(ref), axis=0, keepdims=True) if ref.ndim == 2 else np.max(np.abs(ref))
    bound = TOL * np.abs(ref) + 1e-13 * col
    worst = float(np.max(np.abs(ours - ref) - bound))
    assert worst <= 0.0, f"{name}: exceeds 1e-10 relative (worst excess {worst:.3g})"


@pytest.mark.parametrize("make", ["_orthorhombic", "_trigonal", "_monoclinic_noncentro"])
def test_engine_operation_terms_are_the_reference_sum(make):
    """The engine's per-operation terms (its phases and Debye–Waller factors, which the PND
    spin models now use) equal neutron.structure_factors.site_sums (the reference) × w."""
    from chasm.density.model import NuclearAtom
    from chasm.neutron.structure_factors import site_sums
    from chasm.scattering.engine import StructureFactorEngine
    from test_pnd_dorbital import _monoclinic_noncentro, _orthorhombic, _trigonal

    crystal = {
        "_orthorhombic": _orthorhombic,
        "_trigonal": _trigonal,
        "_monoclinic_noncentro": _monoclinic_noncentro,
    }[make]()
    hkl = np.array([[1, 2, 3], [0, 0, 2], [3, -1, 2], [2, 2, 0], [-4, 1, 5]])
    models = [NuclearAtom(a.element, 1.0) for a in crystal.atoms]
    engine = StructureFactorEngine(crystal, models, hkl, centric_fast_path=False)
    for j in range(len(crystal.atoms)):
        terms, weight = site_sums(crystal, hkl, j)
        np.testing.assert_allclose(engine.operation_terms(j), weight * terms, rtol=0, atol=1e-14)
    if crystal.inversion_at_origin:
        with pytest.raises(ValueError, match="centric_fast_path=False"):
            StructureFactorEngine(crystal, models, hkl).operation_terms(0)


@pytest.mark.slow  # about 10 s: three projects and the seed simulation
def test_ratios_and_jacobians_equal_the_pre_refactor_values(shared_data, tmp_path):
    if not REFERENCE.is_file():
        pytest.fail(f"{REFERENCE} is missing")
    stored = np.load(REFERENCE)
    ours = _shrink(compute(tmp_path))
    assert sorted(ours) == sorted(stored.files)
    for name in stored.files:
        if name.endswith("/columns"):
            assert list(ours[name]) == list(stored[name]), name
        else:
            _close(ours[name], stored[name], name)


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        arrays = _shrink(compute(Path(tmp)))
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, **arrays)
    print(f"wrote {REFERENCE}: {len(arrays)} arrays")
