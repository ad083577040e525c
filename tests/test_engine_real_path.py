"""The engine's real Jacobian path, column maps and row factors against the general path.

The general path is the complex Jacobian of the plain sum over every
operation (``centric_fast_path=False``). The real path (``real=True``) must
give dA/dp in every column and dB/dp in ``imag_columns``, with dB/dp of every
other column zero, to 1e-12 of each column's scale: centric and acentric
groups, with and without anomalous dispersion, atoms on general and special
positions. A :class:`ColumnMap` (fan-out, coefficients, shared and unreached
output columns, dropped engine columns) must equal the dense product J C,
and row factors ga, gb the row-wise ga dA/dp + gb dB/dp. At the data-set
level, the X-ray Jacobian of a joint model (split atoms, dispersion,
extinction, F and F² observables) must equal the observables' chain rule
applied to the mapped complex Jacobian.
"""

from __future__ import annotations

import zlib
from functools import partial

import numpy as np
import pytest

from chasm.io.shelx_hkl import Reflections
from chasm.refine.refinement import Refinement
from chasm.refine.xray_data import XrayData, XrayOptions
from chasm.scattering.engine import ColumnMap, StructureFactorEngine
from chasm.scattering.extinction import bragg_trig, shelx_exti
from chasm.scattering.xray import chain_factors, xray_observables
from engine_helpers import mixed_structure, random_hkl
from test_engine_derivatives import CASES
from test_joint_model import HKL, _crystal, _models

TOL = 1e-12


def _structure(case: str, dispersion: bool):
    sg, cell, special = CASES[case]
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    crystal, models = mixed_structure(sg, cell, rng, special)
    if not dispersion:
        crystal.dispersion = {}
    return crystal, models, random_hkl(90, rng), rng


def _scale(ref: np.ndarray) -> np.ndarray:
    """Each column's scale, floored at 1e-3 of the largest (forbidden multipoles are ~0)."""
    return np.maximum(np.max(np.abs(ref), axis=0), 1e-3 * np.max(np.abs(ref)))


def _column_error(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| per column over the column's scale."""
    return float(np.max(np.max(np.abs(a - ref), axis=0) / _scale(ref)))


def _full(res) -> np.ndarray:
    """The complex Jacobian rebuilt from the real path's two parts."""
    imag = np.zeros_like(res.jacobian)
    imag[:, res.imag_columns] = res.jacobian_imag
    return res.jacobian + 1j * imag


@pytest.mark.parametrize("dispersion", [True, False], ids=["f''", "no f''"])
@pytest.mark.parametrize("case", list(CASES))
def test_real_path_equals_general_path(case, dispersion):
    crystal, models, hkl, _ = _structure(case, dispersion)
    general = StructureFactorEngine(
        crystal, models, hkl, centric_fast_path=False, block_size=37
    ).compute(jacobian=True)
    for fast in (True, False):
        eng = StructureFactorEngine(crystal, models, hkl, centric_fast_path=fast, block_size=37)
        res = eng.compute(jacobian=True, real=True)
        assert res.jacobian.dtype == np.float64 and res.jacobian_imag.dtype == np.float64
        assert np.max(np.abs(res.F - general.F)) < TOL * np.max(np.abs(general.F))
        assert _column_error(_full(res), general.jacobian) < TOL
        assert _column_error(res.jacobian, general.jacobian.real) < TOL
        # dB/dp outside imag_columns is zero in the general path too
        others = np.setdiff1d(np.arange(res.jacobian.shape[1]), res.imag_columns)
        imag = np.max(np.abs(general.jacobian.imag[:, others]), axis=0)
        assert np.all(imag <= TOL * _scale(general.jacobian)[others])
        n_col = len(eng.parameter_names)
        if eng.centric and not dispersion:
            assert res.imag_columns.size == 0  # the Jacobian is real
        elif eng.centric:  # x, ADPs, occupancy of Cu and O (f'' != 0)
            assert 0 < res.imag_columns.size < n_col
            names = {eng.parameter_names[c].split(".")[0] for c in res.imag_columns}
            assert names == {"Cu1", "O2"}
        else:
            assert np.array_equal(res.imag_columns, np.arange(n_col))


@pytest.mark.parametrize("case", ["P21/n (centric monoclinic)", "P212121 (acentric)"])
def test_real_path_writes_into_a_strided_view(case):
    crystal, models, hkl, _ = _structure(case, True)
    eng = StructureFactorEngine(crystal, models, hkl, block_size=37)
    ref = eng.compute(jacobian=True)
    n, m = ref.jacobian.shape
    wide = np.full((n, m + 3), -7.0)
    res = eng.compute(jacobian=True, real=True, out=wide[:, 1 : m + 1])
    assert np.shares_memory(res.jacobian, wide)
    assert np.array_equal(wide[:, 1 : m + 1], ref.jacobian.real)
    assert np.all(wide[:, 0] == -7.0) and np.all(wide[:, m + 1 :] == -7.0)
    with pytest.raises(ValueError, match="float64"):
        eng.compute(jacobian=True, real=True, out=np.zeros((n, m), dtype=np.float32))
    with pytest.raises(ValueError, match="real"):
        eng.compute(jacobian=True, out=np.zeros((n, m)))


def _random_map(rng, n_engine: int) -> tuple[ColumnMap, np.ndarray]:
    """Fan-out, coefficients, shared outputs, dropped engine and unreached output columns."""
    n_out = n_engine + 4
    src = rng.permutation(n_engine)[: n_engine - 6]  # six engine columns dropped
    src = np.concatenate([src, rng.integers(0, n_engine, 25)])  # fan-out
    dst = rng.integers(0, n_out - 2, src.size)  # shared outputs; the last two unreached
    dst[: n_engine // 2] = np.arange(n_engine // 2)  # and a run of plain copies
    coef = rng.choice([1.0, 1.0, 0.5, -0.5, -1.0], src.size)
    dense = np.zeros((n_engine, n_out))
    np.add.at(dense, (src, dst), coef)
    return ColumnMap(src, dst, coef, [f"q{i}" for i in range(n_out)]), dense


@pytest.mark.parametrize("dispersion", [True, False], ids=["f''", "no f''"])
@pytest.mark.parametrize("case", ["P-1 (centric triclinic)", "P-421m (acentric, mm2 site)"])
def test_column_map_equals_dense_product(case, dispersion):
    crystal, models, hkl, rng = _structure(case, dispersion)
    eng = StructureFactorEngine(crystal, models, hkl, block_size=37)
    cmap, dense = _random_map(rng, len(eng.parameter_names))
    ref = eng.compute(jacobian=True).jacobian @ dense
    mapped = eng.compute(jacobian=True, column_map=cmap)
    assert mapped.parameter_names == cmap.names
    assert _column_error(mapped.jacobian, ref) < TOL
    real = eng.compute(jacobian=True, real=True, column_map=cmap)
    assert _column_error(_full(real), ref) < TOL
    assert np.all(ref[:, -2:] == 0.0) and np.all(real.jacobian[:, -2:] == 0.0)


@pytest.mark.parametrize("mapped", [False, True], ids=["engine columns", "column map"])
@pytest.mark.parametrize("case", ["P21/n (centric monoclinic)", "P1 (acentric triclinic)"])
def test_row_factors_apply_the_chain_rule(case, mapped):
    crystal, models, hkl, rng = _structure(case, True)
    eng = StructureFactorEngine(crystal, models, hkl, block_size=37)
    cmap, dense = _random_map(rng, len(eng.parameter_names)) if mapped else (None, None)
    general = eng.compute(jacobian=True)
    J = general.jacobian if cmap is None else general.jacobian @ dense
    seen = []

    def factors(rows, f_rows):  # any real function of F works; |F|^2 and something odd
        seen.append(rows)
        assert np.array_equal(f_rows, general.F[rows])
        return 2.0 * f_rows.real + np.cos(f_rows.imag), 2.0 * f_rows.imag - 0.3

    ga, gb = factors(slice(None), general.F)
    seen.clear()
    res = eng.compute(jacobian=True, real=True, column_map=cmap, row_factors=factors)
    assert res.jacobian_imag is None and res.imag_columns is None
    assert len(seen) == -(-len(hkl) // 37)  # once per block
    ref = ga[:, None] * J.real + gb[:, None] * J.imag
    assert _column_error(res.jacobian, ref) < TOL


@pytest.mark.parametrize("observable,extinction", [("F2", "none"), ("F2", "shelx"), ("F", "shelx")])
def test_joint_xray_jacobian_equals_mapped_general_path(observable, extinction):
    """Split atoms (column map with fan-out), dispersion on Cu, through XrayData."""
    rng = np.random.default_rng(5)
    cr = _crystal(rng)
    split, _ = _models(rng)
    hkl = np.concatenate([HKL, random_hkl(300, rng, hmax=5)])
    hkl = np.unique(hkl[np.any(hkl != 0, axis=1)], axis=0)
    f2 = rng.uniform(10.0, 100.0, len(hkl))
    opts = XrayOptions(observable=observable, extinction=extinction, extinction_start=0.05)
    data = XrayData("x", Reflections(hkl, f2, 0.05 * f2 + 1.0), cr, opts)
    ref = Refinement(cr, split, [data], basis="chargespin")
    p = ref.params.values.copy()
    p[ref.params.index("x.scale")] = 0.7
    ref.set_values(p)
    J = data.evaluate(p).jacobian
    # the general path: complex engine Jacobian of the view, its columns mapped, then
    # the observables' chain rule, scale and extinction columns
    view = data._view
    eng = view.engine(hkl, centric_fast_path=False)
    view.refresh()
    res = eng.compute(jacobian=True)
    ext = None
    if extinction == "shelx":
        s2t, _ = bragg_trig(data.stol, data.wavelength)
        ext = partial(shelx_exti, x=0.05, wavelength=data.wavelength, sin2theta=s2t)
    obs = xray_observables(
        res.F, view.map_columns(res.jacobian), scale=0.7, extinction=ext, kind=observable
    )
    n_struct = ref.n_struct
    assert _column_error(J[:, :n_struct], obs.jacobian[:, :n_struct]) < TOL
    assert _column_error(J[:, n_struct:], obs.jacobian[:, n_struct:]) < TOL
    assert np.any(J[:, :n_struct] != 0.0, axis=0).sum() > 100
    # chain_factors is the structural part of xray_observables row by row
    ga, gb = chain_factors(res.F, 0.7, ext, observable)
    mapped = view.map_columns(res.jacobian)
    direct = ga[:, None] * mapped.real + gb[:, None] * mapped.imag
    assert _column_error(direct, obs.jacobian[:, :n_struct]) < TOL


def test_jacobian_arrays_are_reused_only_when_released():
    """XrayData hands out a pooled full-width Jacobian only when nobody holds it."""
    rng = np.random.default_rng(8)
    cr = _crystal(rng)
    split, _ = _models(rng)
    f2 = rng.uniform(10.0, 100.0, len(HKL))
    data = XrayData("x", Reflections(HKL, f2, 0.05 * f2 + 1.0), cr)
    ref = Refinement(cr, split, [data], basis="chargespin")
    p1 = ref.params.values.copy()
    p2 = p1 + rng.normal(scale=1e-3, size=p1.size) * (np.abs(p1) > 0)
    ref.set_values(p1)
    first = data.evaluate(p1).jacobian
    view = first[:, :5]  # a view keeps its base array
    ref.set_values(p2)
    second = data.evaluate(p2).jacobian
    assert not np.shares_memory(first, second)
    del first
    ref.set_values(p1)
    third = data.evaluate(p1).jacobian
    assert not np.shares_memory(third, view) and not np.shares_memory(third, second)
    del view
    expected = third.copy()
    ref.set_values(p2)
    data.evaluate(p2)  # released at once: its array goes back to the pool
    ref.set_values(p1)
    again = data.evaluate(p1).jacobian
    # (the unweighted J of evaluate() is formed on request since the weighted rows: no
    #  identity with a pooled array to check, only that held arrays are never reused)
    assert np.array_equal(again, expected)
    assert len(data._buffers) <= 3


@pytest.mark.parametrize("basis", ["updown", "chargespin"])
def test_merged_split_atoms_equal_separate_parts(basis):
    """Shared κ and κ': one engine atom per split atom (X-ray and magnetic views)."""
    from chasm.refine.structure_model import EngineView, StructureModel

    rng = np.random.default_rng(11)
    cr = _crystal(rng)
    split, _ = _models(rng)
    for m in split[:2]:
        m.share_kappa = m.share_kappa_prime = True
        m.dn.kappa, m.dn.kappa_prime = m.up.kappa, m.up.kappa_prime
    sm = StructureModel(cr, split, adp_sets=["N"], basis=basis)
    hkl = np.unique(np.concatenate([HKL, random_hkl(200, rng, hmax=5)]), axis=0)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    for kind, adp in (("xray", "X"), ("magnetic", "N")):
        merged, separate = sm.view(kind, adp), EngineView(sm, kind, adp, merge=False)
        assert len(merged.atoms) == len(separate.atoms) - (4 if kind == "xray" else 2)
        f1, j1 = merged.compute(merged.engine(hkl), jacobian=True)
        f2, j2 = separate.compute(separate.engine(hkl), jacobian=True)
        assert np.max(np.abs(f1 - f2)) < TOL * np.max(np.abs(f2))
        assert _column_error(j1, j2) < TOL
        names = sm.names
        if basis == "chargespin" and kind == "xray":  # X-rays do not see spin populations
            unseen = [k for k, n in enumerate(names) if n.endswith(".spin")]
            assert unseen and np.all(j1[:, unseen] == 0.0)
        # moving the populations moves the merged model (refreshed at every compute)
        p = sm.parameters()
        p.set_values(sm.values() * (1.0 + 0.01 * rng.normal(size=len(names))))
        sm.apply(p)
        f1 = merged.compute(merged.engine(hkl))[0]
        f2 = separate.compute(separate.engine(hkl))[0]
        assert np.max(np.abs(f1 - f2)) < TOL * np.max(np.abs(f2))
