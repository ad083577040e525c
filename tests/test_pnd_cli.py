"""PND through the command line only: ``chasm init X.rcif`` then ``chasm refine`` (issue 17).

On each rcif of ``pnd/`` (YTiO₃ three blocks, Ho₂Ti₂O₇, MnF₂ ``main.rcif`` with
its twin and cryspy's asymmetry fit):

- the project ``chasm init`` writes computes, at its start values (the file's
  model), the ratios cryspy computes for the file (cryspy 0.18,
  ``rhochi_calc_chi_sq_by_dictionary``, R = I+/I− from its ``dict_in_out``),
  to 1e-6 relative;
- ``chasm refine`` reaches the true minimum of χ²: no one-dimensional scan
  through the refined point (along every free parameter and every principal
  axis of the covariance, ±4 su, a 41-point grid then Brent's method in the
  best interval) finds a χ² lower by more than 1e-6 relative, and the su in
  result.json are those of the covariance;
- the same with a λ/2 ratio written into the file: cryspy's unpolarised model.

The project is built in Python only to evaluate what the command line wrote.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from chasm.cli import main
from chasm.project.build import build
from chasm.project.project import load_project

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pnd_conventions import cryspy_ratios  # noqa: E402

RTOL = 1e-6
FILES = {
    "ytio3": "ytio3/ytio3.rcif",
    "ho2ti2o7": "ho2ti2o7/ho2ti2o7.rcif",
    "mnf2": "mnf2/main.rcif",
}


def _init(tmp_path: Path, source: Path, text: str | None = None) -> Path:
    rcif = tmp_path / source.name
    rcif.write_text(source.read_text() if text is None else text)
    project = tmp_path / "project.toml"
    assert main(["init", str(rcif), "-o", str(project)]) == 0
    return project


def _ratios(built) -> dict[str, np.ndarray]:
    p = built.refinement.params.values
    return {d.dataset.name.lower(): d.ratios(p) for d in built.refinement.datasets}


def _chi2(built, names: list[str], values) -> float:
    ref = built.refinement
    p = ref.params.values.copy()
    for n, v in zip(names, values, strict=True):
        p[ref.params.names.index(n)] = v
    return sum(d.agreement(p)["chi2"] for d in ref.datasets)


@pytest.mark.parametrize("key", list(FILES))
def test_init_project_computes_cryspy_ratios(shared_data, tmp_path, key, capsys):
    pytest.importorskip("cryspy")
    source = shared_data / "pnd" / FILES[key]
    project = _init(tmp_path, source)
    out = capsys.readouterr().out
    assert "magnetic atoms:" in out and "from the file" in out
    text = project.read_text()
    assert 'conventions = "cryspy"' in text and "[model.spin." in text
    built = build(load_project(project))
    ours = _ratios(built)
    theirs = cryspy_ratios(source)
    assert sorted(ours) == sorted(theirs)
    for name, r_c in theirs.items():
        ok = np.isfinite(r_c)  # cryspy's 0/0 at the absences of P n m a
        assert ok.sum() > 0.9 * len(r_c) and np.ptp(r_c[ok]) > 0.3
        np.testing.assert_allclose(ours[name][ok], r_c[ok], rtol=RTOL, atol=0, err_msg=name)
    if key == "mnf2":
        assert "twins = true" in text and 'fit = "asymmetry"' in text
        assert "pnd.twin1" in built.refinement.params.names


def _covariance(built, names: list[str], x) -> np.ndarray:
    """chasm's covariance under UNIT (solver docstring) recomputed from the Jacobians at x.

    M_e = J_eᵀ W_e J_e, M = Σ M_e, H_e = M_e M⁻¹; the variance factors s_e² solve
    χ²_e = s_e² (N_e − 2 tr H_e) + Σ_f s_f² tr(H_e H_f); cov = M⁻¹ (Σ s_e² M_e) M⁻¹
    (one set: SHELXL's M⁻¹ χ²/(N − n)).
    """
    ref = built.refinement
    p = ref.params.values.copy()
    idx = [ref.params.names.index(n) for n in names]
    p[idx] = x
    parts, chi2, n_obs = [], [], []
    for d in ref.datasets:
        ev = d.evaluate(p)
        j = ev.jacobian[:, idx]
        parts.append(j.T @ (ev.weights[:, None] * j))
        chi2.append(float(np.sum(ev.weights * (ev.y_obs - ev.y_calc) ** 2)))
        n_obs.append(len(ev.y_obs))
    m_inv = np.linalg.inv(sum(parts))
    h = [m_e @ m_inv for m_e in parts]
    a = np.array([[np.trace(he @ hf) for hf in h] for he in h])
    a += np.diag([n - 2 * np.trace(he) for n, he in zip(n_obs, h, strict=True)])
    s2 = np.linalg.solve(a, chi2)
    return m_inv @ sum(s * m_e for s, m_e in zip(s2, parts, strict=True)) @ m_inv


def _scan_minimum(built, names, x0, directions, step) -> float:
    """Smallest χ² on 1-D scans through x0 (grid of ±4 steps, then Brent in the best cell)."""
    from scipy.optimize import minimize_scalar

    best = np.inf
    for u in directions:
        t = np.linspace(-4.0, 4.0, 41)
        grid = np.array([_chi2(built, names, x0 + ti * step * u) for ti in t])
        k = int(np.argmin(grid))
        lo, hi = t[max(k - 1, 0)], t[min(k + 1, len(t) - 1)]
        res = minimize_scalar(
            lambda s, u=u: _chi2(built, names, x0 + s * step * u),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-7},
        )
        best = min(best, float(grid.min()), float(res.fun))
    return best


#: the refinements checked for the true minimum: the files, and cryspy's spin-multipole model
#: of MnF2 (init reads its _atom_rho_multipole loops; moments free)
REFINED = {**FILES, "mnf2_multipole_prior": "mnf2/MnF2_multipole_prior.rcif"}


@pytest.mark.parametrize("key", list(REFINED))
def test_refine_reaches_the_minimum_with_su(shared_data, tmp_path, key):
    source = shared_data / "pnd" / REFINED[key]
    project = _init(tmp_path, source)
    assert main(["refine", str(project), "--no-report", "--quiet"]) == 0
    result = json.loads((tmp_path / "refined" / "result.json").read_text())
    free = {n: v for n, v in result["parameters"].items() if v["free"]}
    assert free and all(v["su"] and np.isfinite(v["su"]) and v["su"] > 0 for v in free.values())
    names = list(free)
    x = np.array([free[n]["value"] for n in names])
    su = np.array([free[n]["su"] for n in names])
    built = build(load_project(project))
    c = _covariance(built, names, x)
    np.testing.assert_allclose(np.sqrt(np.diag(c)), su, rtol=1e-4)
    chi2 = _chi2(built, names, x)
    total = sum(d["chi2"] for d in result["datasets"].values())
    assert chi2 == pytest.approx(total, rel=1e-9)
    corr = c / np.outer(su, su)
    _, vec = np.linalg.eigh(corr)
    directions = [*np.eye(len(names)), *vec.T]
    lowest = _scan_minimum(built, names, x, directions, su)
    assert lowest >= chi2 * (1 - RTOL)  # nothing lower around the refined point
    assert lowest <= chi2 * (1 + 1e-12)  # and the scans pass through it
    # the scans do find a lower χ² from a point off the minimum (half an su away)
    off = x + 0.5 * su * np.eye(len(names))[0]
    assert _scan_minimum(built, names, off, directions[:1], su) < _chi2(built, names, off) * (
        1 - 1e-4
    )


@pytest.mark.slow  # 4-8 s per file (cryspy twice); keeps the file's default run under 30 s
@pytest.mark.parametrize("key", ["ytio3", "ho2ti2o7"])
def test_lambda_half_of_the_file_is_cryspy_s(shared_data, tmp_path, key, capsys):
    """_setup_ratio_lambda/2 0.12 (the spelling cryspy reads) in every block: init writes
    lambda_half = 0.12 with the unpolarised model, and the project's ratios are cryspy's
    for the same file (extinction on for Ho2Ti2O7). The spelling _setup_ratio_lambdaover2
    (cryspy's attribute name, which its CIF reader ignores) is read by chasm, with a note."""
    pytest.importorskip("cryspy")
    source = shared_data / "pnd" / FILES[key]
    lines = source.read_text().splitlines()
    out = []
    for line in lines:
        out.append(line)
        if line.startswith("_setup_wavelength"):
            out.append("_setup_ratio_lambda/2 0.12")
    text = "\n".join(out) + "\n"
    other = tmp_path / "other"
    other.mkdir()
    _init(other, source, text.replace("_setup_ratio_lambda/2", "_setup_ratio_lambdaover2"))
    assert "lambda_half = 0.12" in (other / "project.toml").read_text()
    assert "cryspy's own reader ignores" in capsys.readouterr().out
    project = _init(tmp_path, source, text)
    written = project.read_text()
    assert "lambda_half = 0.12" in written and 'lambda_half_model = "unpolarised"' in written
    theirs = cryspy_ratios(tmp_path / source.name)
    plain = cryspy_ratios(source)
    ours = _ratios(build(load_project(project)))
    for name, r_c in theirs.items():
        ok = np.isfinite(r_c) & np.isfinite(plain[name])
        assert np.max(np.abs(r_c[ok] / plain[name][ok] - 1)) > 1e-3  # λ/2 is visible
        np.testing.assert_allclose(ours[name][ok], r_c[ok], rtol=RTOL, atol=0, err_msg=name)


# ------------------------------------------------------------------ bad input
HO = "ho2ti2o7/ho2ti2o7.rcif"

BAD = {
    # name: (file, line to replace (exact text), replacement, words of the message)
    "P above 1": (
        HO,
        "_diffrn_radiation_polarization -0.87",
        "_diffrn_radiation_polarization -1.3",
        "_diffrn_radiation_polarization",
    ),
    "P zero": (
        HO,
        "_diffrn_radiation_polarization -0.87",
        "_diffrn_radiation_polarization 0",
        "unpolarised beam",
    ),
    "e above 1": (
        HO,
        "_diffrn_radiation_efficiency 1.0",
        "_diffrn_radiation_efficiency 1.2",
        "_diffrn_radiation_efficiency",
    ),
    "e below 0": (
        HO,
        "_diffrn_radiation_efficiency 1.0",
        "_diffrn_radiation_efficiency -0.1",
        "_diffrn_radiation_efficiency",
    ),
    "zero field": (HO, "_setup_field 1.00", "_setup_field 0.0", "_setup_field = 0 T"),
    "singular UB": (
        HO,
        "_diffrn_orient_matrix_ub_11 6.59783",
        "_diffrn_orient_matrix_ub_11 0.0\n_diffrn_orient_matrix_ub_12_x 0",
        "singular",
    ),
    "no form factor": (HO, "  Ho1   Ho3+   1.25   1.0", "  Ho1   Ba2+   1.25   1.0", "Ba2+"),
}


def _bad_file(shared_data, tmp_path, key: str) -> tuple[Path, int, str]:
    file, old, new, words = BAD[key]
    lines = (shared_data / "pnd" / file).read_text().splitlines()
    line = lines.index(old) + 1
    text = "\n".join(lines[: line - 1] + [new] + lines[line:]) + "\n"
    if key == "singular UB":  # every element of the first row 0: det = 0
        text = text.replace("_diffrn_orient_matrix_ub_12_x 0\n", "")
        for tag in ("_diffrn_orient_matrix_ub_12 -6.99807", "_diffrn_orient_matrix_ub_13 3.3663"):
            text = text.replace(tag, tag.split()[0] + " 0.0")
    path = tmp_path / "bad.rcif"
    path.write_text(text)
    return path, line, words


def _one_line_error(capsys, path: Path, line: int, words: str) -> None:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith(f"chasm: error: {path}, line {line}: "), err
    assert words in err, err


@pytest.mark.parametrize("key", list(BAD))
def test_bad_rcif_one_line_exit_2(shared_data, tmp_path, key, capsys):
    path, line, words = _bad_file(shared_data, tmp_path, key)
    assert main(["init", str(path), "-o", str(tmp_path / "p.toml")]) == 2
    _one_line_error(capsys, path, line, words)
    assert not (tmp_path / "p.toml").exists()


@pytest.mark.parametrize("value", ["0", "-0.5"])
@pytest.mark.parametrize("column", ["fr", "sigma"])
def test_bad_ratio_or_sigma_one_line_exit_2(shared_data, tmp_path, capsys, column, value):
    """R <= 0 or sigma(R) <= 0 in a reflection row, also when the project already exists."""
    source = shared_data / "pnd" / HO
    project = _init(tmp_path, source)
    capsys.readouterr()
    rcif = tmp_path / source.name
    lines = rcif.read_text().splitlines()
    k = next(i for i, t in enumerate(lines) if t.split()[:3] == ["1", "1", "1"])
    cells = lines[k].split()
    cells[3 if column == "fr" else 4] = value
    lines[k] = "   ".join(cells)
    rcif.write_text("\n".join(lines) + "\n")
    assert main(["refine", str(project), "--no-report", "--quiet"]) == 2
    _one_line_error(capsys, rcif, k + 1, "flipping")
