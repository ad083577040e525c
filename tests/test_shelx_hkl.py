"""Tests of the SHELX HKLF 4 reader, absences and merging."""

from __future__ import annotations

import math

import gemmi
import numpy as np
import pytest

from chasm.crystal.cif import read_cif
from chasm.errors import InputError
from chasm.io.shelx_hkl import (
    Reflections,
    check_absences,
    merge,
    read_hkl4,
    read_hkl_indices,
    stol,
    systematic_absences,
)


def _write(tmp_path, lines, name="t.hkl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _fixed(h, k, l, f2, sigma, batch=None):
    text = f"{h:4d}{k:4d}{l:4d}{f2:8.2f}{sigma:8.2f}"
    return text + (f"{batch:4d}" if batch is not None else "")


# --------------------------------------------------------------------------- real files
@pytest.mark.parametrize(
    ("name", "count", "stol_max"), [("urea", 1022, 1.405), ("l-alanine", 2519, 1.080)]
)
def test_real_files(shared_data, name, count, stol_max):
    folder = shared_data / "xray" / name
    refl = read_hkl4(folder / "iam.hkl")
    crystal = read_cif(folder / "iam.cif")
    assert len(refl) == count  # data README: urea 1022, L-alanine 2519
    assert refl.batch is None
    assert np.all(refl.sigma > 0)
    assert refl.lines[0] == 1 and refl.lines[-1] == count
    assert stol(refl.hkl, crystal).max() == pytest.approx(stol_max, abs=1e-3)
    assert len(check_absences(refl, crystal.spacegroup)) == 0
    # SHELXL merged them already (urea in the Laue class): merging changes nothing
    for friedel in (True, False):
        merged, rint, info = merge(refl, crystal.spacegroup, friedel=friedel)
        assert len(merged) == count and info.n_multiple == 0 and math.isnan(rint)
        order = np.argsort(info.group)
        assert merged.f2 == pytest.approx(refl.f2[order])
        assert merged.sigma == pytest.approx(refl.sigma[order])


def test_real_first_and_last_reflections(shared_data):
    urea = read_hkl4(shared_data / "xray" / "urea" / "iam.hkl")  # CRLF line ends, no 0 0 0
    assert urea.hkl[0].tolist() == [0, 0, 1]
    assert (urea.f2[0], urea.sigma[0]) == (13.43, 0.05)
    assert urea.hkl[-1].tolist() == [15, 4, 0]
    ala = read_hkl4(shared_data / "xray" / "l-alanine" / "iam.hkl")  # ends with a blank line
    assert ala.hkl[1].tolist() == [0, 4, 0] and ala.f2[1] == 9448.91


def test_benchmark_indices(shared_data):
    refl = read_hkl_indices(shared_data / "benchmark" / "ref.hkl")
    crystal = read_cif(shared_data / "benchmark" / "ref.cif")
    assert len(refl) == 15060 and refl.f2 is None and refl.sigma is None
    assert refl.hkl[0].tolist() == [-23, 0, 3]
    assert not systematic_absences(refl.hkl, crystal.spacegroup).any()
    assert stol(refl.hkl, crystal.B).max() <= 1.0
    with pytest.raises(InputError, match="only h k l"):
        read_hkl4(shared_data / "benchmark" / "ref.hkl")


# --------------------------------------------------------------------------- layouts
def test_terminator_and_trailer(tmp_path):
    lines = [
        _fixed(1, 0, 0, 10.0, 1.0),
        "",
        _fixed(0, 1, 0, 20.0, 2.0),
        _fixed(0, 0, 0, 0.0, 0.0),
        "   5.000   6.000   7.000  90.000  90.000  90.000",
        "  0.1234 -0.3456  0.7777",
        "not reflections at all",
    ]
    refl = read_hkl4(_write(tmp_path, lines))
    assert len(refl) == 2
    assert refl.lines.tolist() == [1, 3]
    assert refl.f2.tolist() == [10.0, 20.0]


def test_fixed_columns_glued_negative_indices(tmp_path):
    lines = [
        _fixed(-123, -110, 5, 1.5, 0.25),  # '-123-110   5': no blank between h and k
        _fixed(-12, -10, 5, 100.0, 2.0),  # ' -12 -10   5'
        _fixed(3, -4, -99, 7.25, 0.5),
        "   0   0   0",
    ]
    assert lines[0].startswith("-123-110   5")
    refl = read_hkl4(_write(tmp_path, lines))
    assert refl.hkl.tolist() == [[-123, -110, 5], [-12, -10, 5], [3, -4, -99]]
    assert refl.f2.tolist() == [1.5, 100.0, 7.25]
    assert refl.sigma.tolist() == [0.25, 2.0, 0.5]


def test_fixed_columns_with_batch_and_large_values(tmp_path):
    lines = [_fixed(1, 2, 3, 99999.99, 12.5, 1), _fixed(-1, 2, 3, -1.25, 0.75, 12)]
    lines.append("   1   1   1123456.7    1.00   2")  # F² glued to l: fixed columns only
    refl = read_hkl4(_write(tmp_path, lines))
    assert refl.batch.tolist() == [1, 12, 2]
    assert refl.f2.tolist() == [99999.99, -1.25, 123456.7]
    assert refl.hkl[2].tolist() == [1, 1, 1]


def test_free_format(tmp_path):
    lines = ["1 2 3 100.5 2.5", "  -10   0  4   3.25e2  1.5", "12 -13 14 -0.5 0.1", "0 0 0 0 0"]
    refl = read_hkl4(_write(tmp_path, lines))
    assert refl.hkl.tolist() == [[1, 2, 3], [-10, 0, 4], [12, -13, 14]]
    assert refl.f2.tolist() == [100.5, 325.0, -0.5]
    assert refl.batch is None


def test_free_format_batch_and_no_sigma(tmp_path):
    refl = read_hkl4(_write(tmp_path, ["1 2 3 100.5 2.5 1", "2 2 3 10.5 0.5 2"], "b.hkl"))
    assert refl.batch.tolist() == [1, 2]
    refl = read_hkl4(_write(tmp_path, ["1 2 3 100.5", "2 2 3 10.5"], "c.hkl"))
    assert refl.sigma is None and refl.f2.tolist() == [100.5, 10.5]
    idx = read_hkl_indices(_write(tmp_path, ["1 2 3 100.5 2.5 1", "2 2 3 10.5 0.5 2"], "d.hkl"))
    assert idx.hkl.tolist() == [[1, 2, 3], [2, 2, 3]] and idx.f2 is None


# --------------------------------------------------------------------------- errors
def test_malformed_line(tmp_path):
    lines = [_fixed(1, 0, 0, 10.0, 1.0), _fixed(2, 0, 0, 10.0, 1.0), "   3   0   0   abc    1.00"]
    path = _write(tmp_path, lines)
    with pytest.raises(InputError) as err:
        read_hkl4(path)
    assert err.value.line == 3
    assert str(path) in str(err.value) and "line 3" in str(err.value)
    assert "abc" in str(err.value)


def test_malformed_free_line(tmp_path):
    path = _write(tmp_path, ["1 2 3 4.0 1.0", "1 2 3 4.0 1.0", "1 2 x 4.0 1.0"])
    with pytest.raises(InputError, match="line 3"):
        read_hkl4(path)


def test_inconsistent_columns(tmp_path):
    path = _write(tmp_path, ["1 2 3 4.0 1.0", "1 2 4 4.0 1.0 7"])
    with pytest.raises(InputError, match="6 fields") as err:
        read_hkl4(path)
    assert err.value.line == 2


@pytest.mark.parametrize("bad_sigma", [0.0, -1.0])
def test_nonpositive_sigma(tmp_path, bad_sigma):
    lines = [_fixed(1, 0, 0, 10.0, 1.0), "", _fixed(2, 0, 0, 10.0, bad_sigma)]
    path = _write(tmp_path, lines)
    with pytest.raises(InputError, match="must be positive; fix or remove") as err:
        read_hkl4(path)
    assert err.value.line == 3 and str(path) in str(err.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_hkl4(tmp_path / "none.hkl")
    with pytest.raises(InputError, match="no reflections"):
        read_hkl4(_write(tmp_path, ["", "   0   0   0    0.00    0.00"]))


# --------------------------------------------------------------------------- geometry
def test_stol_against_gemmi():
    cell = gemmi.UnitCell(5.1, 6.3, 7.7, 81.0, 97.5, 104.2)
    hkl = np.array([[1, 0, 0], [1, -2, 3], [-4, 5, 6]])
    expected = [1 / (2 * cell.calculate_d(list(h))) for h in hkl]
    assert stol(hkl, cell) == pytest.approx(expected)
    b = np.linalg.inv(np.array(cell.orth.mat.tolist())).T
    assert stol(hkl, b) == pytest.approx(expected)


# --------------------------------------------------------------------------- absences
def test_absences_p21c():
    """P 1 21/c 1: h0l absent for l odd, 0k0 absent for k odd."""
    hkl = np.array(list(np.ndindex(5, 5, 5))) - 2
    absent = systematic_absences(hkl, "P 21/c")
    h, k, l = hkl.T
    expected = ((k == 0) & (l % 2 == 1)) | ((h == 0) & (l == 0) & (k % 2 == 1))
    assert np.array_equal(absent, expected)
    assert absent.sum() == 10 + 2
    refl = Reflections(hkl=hkl, f2=np.ones(len(hkl)), sigma=np.ones(len(hkl)), path="x.hkl")
    with pytest.warns(UserWarning, match="x.hkl: 12 systematically absent reflections"):
        found = check_absences(refl, gemmi.SpaceGroup("P 1 21/c 1"))
    assert np.array_equal(found, np.flatnonzero(expected))


# --------------------------------------------------------------------------- merging
def test_merge_by_hand():
    """P 1 21/c 1 (Laue 2/m): (1,2,3) ~ (-1,2,-3) ~ (1,-2,3) ~ (-1,-2,-3)."""
    hkl = [[1, 2, 3], [-1, 2, -3], [1, -2, 3], [2, 1, 1], [0, 4, 0], [0, -4, 0]]
    f2 = np.array([100.0, 104.0, 98.0, 50.0, 10.0, 12.0])
    sigma = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 1.0])
    refl = Reflections(hkl=hkl, f2=f2, sigma=sigma, lines=np.arange(1, 7))
    merged, rint, info = merge(refl, "P 21/c")
    assert len(merged) == 3 and info.counts.tolist().count(1) == 1

    mean_a = (100 / 1 + 104 / 4 + 98 / 1) / (1 + 1 / 4 + 1)  # 1/σ² weights
    chi_a = (100 - mean_a) ** 2 + (104 - mean_a) ** 2 / 4 + (98 - mean_a) ** 2
    sigma_a = max(1 / math.sqrt(2.25), math.sqrt(chi_a / (2 * 2.25)))  # external wins
    mean_b, sigma_b = 11.0, max(1 / math.sqrt(2), math.sqrt(2 / (1 * 2)))
    expected_rint = (abs(100 - mean_a) + abs(104 - mean_a) + abs(98 - mean_a) + 1 + 1) / (
        100 + 104 + 98 + 10 + 12
    )

    rows = {tuple(h): k for k, h in enumerate(merged.hkl.tolist())}
    a = rows[(1, 2, 3)]
    assert merged.f2[a] == pytest.approx(mean_a)
    assert merged.sigma[a] == pytest.approx(sigma_a)
    assert sigma_a > 1 / math.sqrt(2.25)
    b = rows[(0, 4, 0)]
    assert merged.f2[b] == pytest.approx(mean_b) and merged.sigma[b] == pytest.approx(sigma_b)
    c = rows[(2, 1, 1)]
    assert merged.f2[c] == 50.0 and merged.sigma[c] == 0.5
    assert rint == pytest.approx(expected_rint) and info.rint == rint
    assert info.group.tolist() == [a, a, a, c, b, b]
    assert merged.lines[a] == 1 and merged.lines[b] == 5


def test_merge_friedel_in_acentric_group():
    """P 1 2 1: h,k,l ~ -h,k,-l; Friedel mates apart unless friedel=True or centric."""
    hkl = [[1, 2, 3], [-1, 2, -3], [-1, -2, -3], [1, -2, 3], [1, 0, 2], [-1, 0, -2]]
    f2 = np.array([10.0, 12.0, 20.0, 22.0, 5.0, 7.0])
    refl = Reflections(hkl=hkl, f2=f2, sigma=np.ones(6))
    merged, rint, info = merge(refl, "P 1 2 1", friedel=True)
    assert len(merged) == 2 and sorted(info.counts.tolist()) == [2, 4]
    merged, rint, info = merge(refl, "P 1 2 1", friedel=False)
    assert len(merged) == 3  # (1,0,2) is centric: its Friedel mate is equivalent
    means = sorted(merged.f2.tolist())
    assert means == pytest.approx([6.0, 11.0, 21.0])
    assert rint == pytest.approx(6 * 1.0 / f2.sum())
    plus = info.group[0]
    minus = info.group[2]
    assert plus != minus and info.group[1] == plus and info.group[3] == minus
    assert merged.hkl[minus].tolist() == (-merged.hkl[plus]).tolist()


def test_merge_needs_sigma():
    refl = Reflections(hkl=[[1, 2, 3]], f2=[1.0])
    with pytest.raises(InputError, match="needs F²"):
        merge(refl, "P 1")
