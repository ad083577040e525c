"""The compiled dense steps of the normal equations against the numpy expressions they replace."""

from __future__ import annotations

import numpy as np
import pytest

from chasm.refine import dense
from chasm.refine.solver import _scaled


def _layouts(n: int, rng: np.random.Generator):
    """The same lower triangle in a C array, an F array and an F view of a wider accumulator."""
    base = rng.normal(size=(n, n))
    acc = np.asfortranarray(rng.normal(size=(n + 3, n + 3)))
    view = acc[:n, :n]
    view[...] = base
    return {"C": base.copy(), "F": np.asfortranarray(base), "F view": view}


@pytest.mark.parametrize("n", [1, 7, 63, 64, 65, 200, 333])
def test_symmetrise_lower_copies_exactly_the_lower_triangle(n):
    rng = np.random.default_rng(n)
    for name, a in _layouts(n, rng).items():
        want = np.tril(a) + np.tril(a, -1).T
        before = a.copy()
        out = dense.symmetrise_lower(a)
        assert out is a, name
        assert np.array_equal(a, want), name
        assert np.array_equal(np.tril(a), np.tril(before)), name  # lower triangle untouched


def test_symmetrise_lower_never_reads_the_upper_triangle():
    """A syrk accumulator's upper triangle is uninitialised: NaN there must not leak."""
    big = np.asfortranarray(np.random.default_rng(9).normal(size=(100, 100)))  # compiled path
    big[np.triu_indices(100, 1)] = np.nan
    dense.symmetrise_lower(big)
    assert np.all(np.isfinite(big)) and np.array_equal(big, big.T)


@pytest.mark.parametrize("k", [5, 64, 150])
def test_add_into_equals_fancy_index_addition(k):
    rng = np.random.default_rng(k)
    u = k + 40
    live = np.sort(rng.choice(u, size=k, replace=False))
    m = rng.normal(size=(u, u))
    part = rng.normal(size=(k, k))
    for p in (part, np.asfortranarray(part), np.asfortranarray(np.pad(part, 2))[2:-2, 2:-2]):
        want = m.copy()
        want[np.ix_(live, live)] += p
        got = m.copy()
        dense.add_into(got, p, live)
        assert np.array_equal(got, want)


def test_add_into_with_unsorted_indices():
    rng = np.random.default_rng(3)
    live = rng.permutation(120)[:90]
    m = rng.normal(size=(120, 120))
    part = rng.normal(size=(90, 90))
    want = m.copy()
    want[np.ix_(live, live)] += part
    dense.add_into(m, part, live)
    assert np.array_equal(m, want)


@pytest.mark.parametrize("order", ["C", "F"])
def test_scaled_is_the_same_quotient_in_either_layout(order):
    rng = np.random.default_rng(5)
    a = rng.normal(size=(700, 300))
    m = a.T @ a
    m = np.tril(m) + np.tril(m, -1).T  # exactly symmetric
    d = np.sqrt(np.diag(m))
    got = _scaled(np.asarray(m, order=order), d)
    assert np.array_equal(got, m / np.outer(d, d))
    assert got.flags.c_contiguous


def test_compiled_path_is_taken_when_numba_is_present():
    from chasm.scattering.kernel import HAVE_NUMBA

    assert dense._compiled() is HAVE_NUMBA
