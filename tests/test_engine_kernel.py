"""The compiled engine (numba kernels) against the numpy reference path.

Every output of :meth:`StructureFactorEngine.compute` — F, the complex
Jacobian, the real path with its imaginary columns, row factors, column maps,
a strided ``out`` — must agree between ``backend="numba"`` and
``backend="numpy"`` to 1e-12 (F relative to max |F|, Jacobian columns relative
to each column's scale), for centric and acentric groups, with and without
anomalous dispersion, with the centric fast path and without; the threaded
kernels must give the same numbers on one thread and on several. (The
finite-difference tests of test_engine_derivatives.py run on the default
backend.)
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from chasm.errors import InputError
from chasm.scattering import kernel
from chasm.scattering.engine import (
    ColumnMap,
    StructureFactorEngine,
    engine_backend,
    engine_threads,
)
from test_engine_derivatives import CASES
from test_engine_real_path import _full, _structure

pytestmark = pytest.mark.skipif(not kernel.HAVE_NUMBA, reason="numba not installed")
TOL = 1e-12


def _pair(crystal, models, hkl, **kw):
    return (
        StructureFactorEngine(crystal, models, hkl, backend="numba", **kw),
        StructureFactorEngine(crystal, models, hkl, backend="numpy", **kw),
    )


def _column_error(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| per column over the column's scale (floored at 1e-3 of the largest)."""
    scale = np.maximum(np.max(np.abs(ref), axis=0), 1e-3 * np.max(np.abs(ref)))
    return float(np.max(np.max(np.abs(a - ref), axis=0) / np.maximum(scale, 1e-300)))


def _f_error(a, b) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "plain sum"])
@pytest.mark.parametrize("dispersion", [True, False], ids=["f''", "no f''"])
@pytest.mark.parametrize("case", list(CASES))
def test_compiled_equals_numpy(case, dispersion, fast):
    crystal, models, hkl, _ = _structure(case, dispersion)
    nb, npy = _pair(crystal, models, hkl, centric_fast_path=fast)
    assert _f_error(nb.compute().F, npy.compute().F) < TOL
    a, b = nb.compute(jacobian=True), npy.compute(jacobian=True)
    assert _f_error(a.F, b.F) < TOL
    assert _column_error(a.jacobian, b.jacobian) < TOL  # complex: |difference| / max |column|
    ra, rb = nb.compute(jacobian=True, real=True), npy.compute(jacobian=True, real=True)
    assert np.array_equal(ra.imag_columns, rb.imag_columns)
    assert _column_error(_full(ra), _full(rb)) < TOL


@pytest.mark.parametrize("case", ["P1 (acentric triclinic)", "P21/n (centric monoclinic)"])
def test_compiled_row_factors_column_map_and_strided_out(case):
    crystal, models, hkl, rng = _structure(case, True)
    nb, npy = _pair(crystal, models, hkl)
    n_e = len(nb.parameter_names)
    # fan-out, coefficients, a shared output column, dropped engine columns
    src = np.concatenate([np.arange(n_e - 3), [0, 1, 2]])
    dst = np.concatenate([np.arange(n_e - 3), [n_e - 2, n_e - 2, n_e]])
    coef = np.concatenate([np.ones(n_e - 3), [0.5, -2.0, 3.0]])
    cmap = ColumnMap(src, dst, coef, [f"c{k}" for k in range(n_e + 2)])

    def factors(rows, f):
        return 2.0 * f.real + 0.1, 2.0 * f.imag - 0.3

    for kw in ({}, {"column_map": cmap}):
        wide_a = np.zeros((len(hkl), len(cmap.names) + 4))
        wide_b = wide_a.copy()
        width = n_e if not kw else len(cmap.names)
        ra = nb.compute(jacobian=True, real=True, out=wide_a[:, :width], row_factors=factors, **kw)
        rb = npy.compute(jacobian=True, real=True, out=wide_b[:, :width], row_factors=factors, **kw)
        assert _f_error(ra.F, rb.F) < TOL
        assert _column_error(wide_a[:, :width], wide_b[:, :width]) < TOL
        assert not wide_a[:, width:].any()
        ca, cb = nb.compute(jacobian=True, **kw), npy.compute(jacobian=True, **kw)
        assert _column_error(ca.jacobian, cb.jacobian) < TOL


@pytest.mark.parametrize("case", ["P1 (acentric triclinic)", "P63/mmc (centric, -6m2 site)"])
def test_direct_phases_equal_the_phase_tables(case):
    """The kernels' cosine-and-sine path (rotations not integral) against the tables."""
    crystal, models, hkl, _ = _structure(case, True)
    tables, _ = _pair(crystal, models, hkl)
    direct = StructureFactorEngine(crystal, models, hkl, backend="numba")
    direct._kidx = None  # as for a setting whose rotations are not integral
    assert _f_error(direct.compute().F, tables.compute().F) < TOL
    a, b = direct.compute(jacobian=True, real=True), tables.compute(jacobian=True, real=True)
    assert _f_error(a.F, b.F) < TOL
    assert _column_error(_full(a), _full(b)) < TOL
    assert direct._kernel_args(direct._prepare(False, compiled=True))[0][9] is False


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_kept_valence_form_factors_follow_kappa_pc_and_pv(backend):
    """Valence tables kept from the previous call: a changed kappa, P_c or P_v is seen."""
    crystal, models, hkl, _ = _structure("P1 (acentric triclinic)", True)
    eng = StructureFactorEngine(crystal, models, hkl, backend=backend)
    first = eng.compute(jacobian=True)
    hc = [m for m in models if hasattr(m, "kappa")]
    assert hc
    hc[0].kappa *= 1.07
    hc[-1].pv += 0.3
    hc[-1].pc = 0.9
    again = eng.compute(jacobian=True)
    other = StructureFactorEngine(crystal, models, hkl, backend=backend)
    fresh = other.compute(jacobian=True)
    assert np.array_equal(again.F, fresh.F)
    assert np.array_equal(again.jacobian, fresh.jacobian)
    assert np.array_equal(eng.compute().F, other.compute().F)
    assert not np.array_equal(again.F, first.F)


def test_threads_give_the_same_numbers(monkeypatch):
    crystal, models, _, rng = _structure("P212121 (acentric)", True)
    hkl = np.unique(rng.integers(-9, 10, size=(3000, 3)), axis=0)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    eng = StructureFactorEngine(crystal, models, hkl, backend="numba")
    out = {}
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("CHASM_ENGINE_THREADS", threads)
        assert engine_threads() == int(threads)
        res = eng.compute(jacobian=True, real=True)
        out[threads] = (eng.compute().F, res.F, res.jacobian, res.jacobian_imag)
    for threads in ("2", "3"):
        for x, y in zip(out["1"], out[threads], strict=True):
            assert np.array_equal(x, y)


def test_backend_and_threads_from_the_environment(monkeypatch):
    monkeypatch.setenv("CHASM_ENGINE", "numpy")
    assert engine_backend() == "numpy"
    monkeypatch.setenv("CHASM_ENGINE", "Numba")
    assert engine_backend() == "numba"
    monkeypatch.delenv("CHASM_ENGINE")
    assert engine_backend() == "numba"
    monkeypatch.setenv("CHASM_ENGINE", "fortran")
    with pytest.raises(InputError, match="CHASM_ENGINE='fortran'.*'numba'.*'numpy'"):
        engine_backend()
    for bad in ("0", "two"):
        monkeypatch.setenv("CHASM_ENGINE_THREADS", bad)
        with pytest.raises(InputError, match="CHASM_ENGINE_THREADS.*whole number >= 1"):
            engine_threads()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_threads(monkeypatch):
    """After fork the parent's pool has no threads in the child: the child must not hang."""
    import multiprocessing

    monkeypatch.setenv("CHASM_ENGINE_THREADS", "2")
    crystal, models, _, rng = _structure("P1 (acentric triclinic)", True)
    hkl = np.unique(rng.integers(-8, 9, size=(1500, 3)), axis=0)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    eng = StructureFactorEngine(crystal, models, hkl, backend="numba")
    expected = eng.compute(jacobian=True).jacobian  # the parent's pool now exists
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_jacobian_in_child, (eng,)).get(timeout=120)
    assert np.array_equal(got, expected)


def _jacobian_in_child(eng):
    return eng.compute(jacobian=True).jacobian
