"""Physics checks before a refinement: data that cannot be fitted, constraints no atom can carry.

Run by :func:`chasm.project.build.build` (``chasm refine``, ``chasm simulate``)
and by ``chasm init``. Refusals are :class:`~chasm.errors.InputError` with the
file and line; doubts are returned as warning texts (the run lists them).

F² data (:func:`check_f2_data`)
    refused: no reflection; a non-finite F² or σ; every F² ≤ 0; a σ ≤ 0 or a
    σ below ``SIGMA_FLOOR`` × the median σ (its weight 1/σ² would outweigh the
    whole data set); every reflection systematically absent in the space
    group; an index beyond ``INDEX_MAX`` or a reflection beyond sin(theta)/lambda
    ``STOL_MAX`` for the cell. Warned: absences observed with F²/σ > ``ABSENCE_SIGNIFICANCE``
    (the strongest first, with their file lines, from
    :func:`chasm.io.shelx_hkl.check_absences`); repeated measurements whose
    Rint exceeds ``RINT_WARN`` or with single measurements off their mean by
    more than ``DISCORD_SIGMA`` σ and a factor ``DISCORD_FACTOR``; and, with
    merging off, that equivalent reflections are fitted as independent ones.
Populations (:func:`spin_capacity`, :func:`check_total_spin`, :func:`check_charge`)
    An atom's valence shell holds at most ``2 n_orb`` electrons and at most
    ``min(N_v, n_orb)`` unpaired ones (``N_v`` its valence electrons, ``n_orb``
    its valence orbitals: 1 for H and He, 4 (s, p) for the main groups, 6 (d,
    s) for transition metals, 8 (f, d) for lanthanides and actinides). A
    total spin beyond Σ m_j min(N_v, n_orb) or a charge outside
    [Σ m_j (N_v − 2 n_orb), Σ m_j N_v] (m_j = occupancy / |site group|, as in
    the constraints) cannot be reached with physical populations: refused.
    A split atom whose spin |Pv↑ − Pv↓ + P00↑ − P00↓| exceeds its capacity is
    warned (:func:`spin_warnings`).
"""

from __future__ import annotations

import warnings

import gemmi
import numpy as np

from chasm.data.reflections import Reflections, check_absences, merge, stol
from chasm.density.databank import spherical_atom
from chasm.density.model import HansenCoppensAtom, SplitAtom
from chasm.errors import InputError

__all__ = [
    "check_f2_data",
    "spin_capacity",
    "check_total_spin",
    "check_charge",
    "spin_warnings",
]

#: Largest |h|, |k|, |l| accepted (a 1000 A cell at 0.5 A resolution needs 4000).
INDEX_MAX = 10000
#: Largest sin(theta)/lambda accepted (1/A), as in the project file's smax.
STOL_MAX = 10.0
SIGMA_FLOOR = 1e-6
ABSENCE_SIGNIFICANCE = 3.0
RINT_WARN = 0.10
DISCORD_SIGMA = 10.0
DISCORD_FACTOR = 3.0
SHOW = 5


def _hkl(h) -> str:
    return "{} {} {}".format(*(int(x) for x in h))


def _line(refl: Reflections, k: int) -> int | None:
    line = int(refl.lines[k]) if refl.lines is not None else 0
    return line or None


def check_f2_data(
    refl: Reflections, crystal, where: str, merged: bool = True
) -> tuple[Reflections, list[str]]:
    """Check an F² data set; return it (merged when ``merged``) and the warnings.

    Parameters
    ----------
    refl : Reflections
        As read (every measurement, file lines).
    crystal : Crystal
        For the space group.
    where : str
        What the data set is in the project (e.g. ``datasets[0] (xray)``), for messages.
    merged : bool
        Merge equivalents (the data set's ``merge``).

    Raises
    ------
    InputError
        The data cannot be fitted (module docstring), naming the file and line.
    """
    src = refl.path
    n = len(refl)
    if n == 0:
        raise InputError(f"{where}: the file holds no reflection", src)
    if refl.f2 is None or refl.sigma is None:
        raise InputError(f"{where}: F² and σ(F²) are needed for every reflection", src)
    _check_indices(refl, crystal, where)
    f2, sigma = refl.f2, refl.sigma
    bad = np.flatnonzero(~np.isfinite(f2) | ~np.isfinite(sigma))
    if bad.size:
        k = int(bad[0])
        raise InputError(
            f"{where}: reflection {_hkl(refl.hkl[k])} has F² = {f2[k]!r}, σ = {sigma[k]!r}; "
            "both must be finite numbers",
            src,
            _line(refl, k),
        )
    if not np.any(f2 > 0):
        raise InputError(
            f"{where}: all {n} F² are <= 0 (largest {np.max(f2):g}); there is no signal to "
            "fit: are the columns h k l F² σ(F²) in this order?",
            src,
        )
    low = np.flatnonzero(sigma <= 0)
    if low.size:
        k = int(low[0])
        raise InputError(
            f"{where}: σ(F²) = {sigma[k]:g} of {_hkl(refl.hkl[k])} is not positive "
            f"({low.size} such); every σ must be > 0",
            src,
            _line(refl, k),
        )
    median = float(np.median(sigma))
    tiny = np.flatnonzero(sigma < SIGMA_FLOOR * median)
    if tiny.size:
        k = int(tiny[np.argmin(sigma[tiny])])
        raise InputError(
            f"{where}: σ(F²) = {sigma[k]:g} of {_hkl(refl.hkl[k])} is below {SIGMA_FLOOR:g} × "
            f"the median σ ({median:g}; {tiny.size} such): its weight 1/σ² would outweigh "
            "the whole data set; correct or remove it",
            src,
            _line(refl, k),
        )
    out = _absences(refl, crystal, where)
    together, _, info = merge(refl, crystal)
    if info.n_multiple:
        out += _duplicates(refl, info, where, merged)
    return (together if merged else refl), out


def _check_indices(refl: Reflections, crystal, where: str) -> None:
    """Refuse indices beyond ``INDEX_MAX`` or beyond sin(theta)/lambda ``STOL_MAX``."""
    h = np.asarray(refl.hkl)
    huge = np.flatnonzero(np.any((h > INDEX_MAX) | (h < -INDEX_MAX), axis=1))
    if huge.size:
        k = int(huge[0])
        raise InputError(
            f"{where}: indices {_hkl(h[k])} beyond |h|, |k|, |l| <= {INDEX_MAX}; "
            "is the file's column layout right?",
            refl.path,
            _line(refl, k),
        )
    s = stol(h, crystal)
    far = np.flatnonzero(s > STOL_MAX)
    if far.size:
        k = int(far[np.argmax(s[far])])
        raise InputError(
            f"{where}: reflection {_hkl(h[k])} lies at sin(theta)/lambda = {s[k]:.4g} 1/A "
            f"for this cell, beyond {STOL_MAX:g} 1/A (no diffraction experiment reaches it); "
            "check the indices and the cell",
            refl.path,
            _line(refl, k),
        )


def _absences(refl: Reflections, crystal, where: str) -> list[str]:
    """Refuse data of absences only; warn of absences observed strongly (strongest first)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        absent = check_absences(refl, crystal)
    sg = crystal.spacegroup.hm if crystal.spacegroup is not None else "the CIF's symmetry"
    if absent.size == len(refl):
        raise InputError(
            f"{where}: all {len(refl)} reflections are systematic absences of {sg}: "
            "wrong space group or indexing",
            refl.path,
        )
    z = refl.f2[absent] / refl.sigma[absent]
    strong = absent[z > ABSENCE_SIGNIFICANCE]
    if not strong.size:
        return []
    order = strong[np.argsort(-(refl.f2[strong] / refl.sigma[strong]), kind="stable")]
    items = [
        f"{_hkl(refl.hkl[k])} F²/σ = {refl.f2[k] / refl.sigma[k]:.1f} (line {refl.lines[k]})"
        for k in order[:SHOW]
    ]
    more = ", ..." if order.size > SHOW else ""
    return [
        f"{where}: {strong.size} of {absent.size} systematic absences of {sg} are observed "
        f"with F²/σ > {ABSENCE_SIGNIFICANCE:g} in {refl.path}; strongest: "
        f"{'; '.join(items)}{more}; check the space group and the indexing"
    ]


def _duplicates(refl: Reflections, info, where: str, merged: bool) -> list[str]:
    """Rint and discordant measurements of reflections measured more than once."""
    out = []
    extra = info.n_in - info.n_out
    if not merged:
        out.append(
            f"{where}: {extra} measurements repeat a reflection or an equivalent (Rint = "
            f"{info.rint:.4f}); merge = false fits them as independent observations "
            "(su's too small); set merge = true unless this is intended"
        )
    elif info.rint > RINT_WARN:
        out.append(
            f"{where}: Rint = {info.rint:.4f} over the {info.n_multiple} reflections measured "
            f"more than once (> {RINT_WARN:g}): equivalents disagree; check the space group, "
            "absorption and the file"
        )
    g = info.group
    sw = np.bincount(g, weights=1 / refl.sigma**2)
    mean = np.bincount(g, weights=refl.f2 / refl.sigma**2) / sw
    multiple = info.counts[g] > 1
    dev = np.abs(refl.f2 - mean[g]) / refl.sigma
    ratio = np.abs(refl.f2) / np.maximum(np.abs(mean[g]), 1e-300)
    off = np.flatnonzero(
        multiple & (dev > DISCORD_SIGMA) & ((ratio > DISCORD_FACTOR) | (ratio < 1 / DISCORD_FACTOR))
    )
    if off.size:
        order = off[np.argsort(-dev[off], kind="stable")]
        items = [
            f"{_hkl(refl.hkl[k])} F² = {refl.f2[k]:g} vs mean {mean[g[k]]:g} (line {refl.lines[k]})"
            for k in order[:SHOW]
        ]
        out.append(
            f"{where}: {off.size} measurements differ from the mean of their equivalents by "
            f"more than {DISCORD_SIGMA:g} σ and a factor {DISCORD_FACTOR:g} (Rint = "
            f"{info.rint:.4f}): {'; '.join(items)}; check them in {refl.path}"
        )
    return out


# ----------------------------------------------------------------------------- populations
def _orbitals(element: str) -> int:
    """Valence orbitals of an element (module docstring)."""
    z = gemmi.Element(element).atomic_number
    if z <= 2:
        return 1
    if 57 <= z <= 71 or 89 <= z <= 103:
        return 8
    if 21 <= z <= 30 or 39 <= z <= 48 or 72 <= z <= 80 or 104 <= z <= 112:
        return 6
    return 4


def spin_capacity(element: str) -> float:
    """Most unpaired electrons (μB) the valence shell of ``element`` can carry."""
    return float(min(spherical_atom(element).n_valence, _orbitals(element)))


def _weights(crystal) -> list[float]:
    return [a.occupancy / len(crystal.site_symmetry(i)) for i, a in enumerate(crystal.atoms)]


def check_total_spin(crystal, models, total: float, src: str | None, line: int | None) -> None:
    """Refuse a total-spin constraint the split atoms cannot carry (module docstring)."""
    w = _weights(crystal)
    parts = [
        (crystal.atoms[i].label, w[i], spin_capacity(crystal.atoms[i].element))
        for i, m in enumerate(models)
        if isinstance(m, SplitAtom)
    ]
    most = sum(wi * c for _, wi, c in parts)
    if abs(total) > most + 1e-9:
        terms = ", ".join(f"{lab} {c:g} x {wi:g}" for lab, wi, c in parts)
        raise InputError(
            f"constraints.total_spin: {total:g} muB cannot be carried by the split atoms: "
            f"at most {most:g} muB per asymmetric unit (unpaired electrons of each valence "
            f"shell x occupancy/multiplicity: {terms}); give the number of unpaired electrons "
            "per asymmetric unit, or split more atoms (model.magnetic)",
            src,
            line,
        )


def check_charge(crystal, models, charge: float, src: str | None, line: int | None) -> None:
    """Refuse a charge outside what the valence shells can give or take (module docstring)."""
    w = _weights(crystal)
    lo = hi = 0.0
    for i, m in enumerate(models):
        if not isinstance(m, HansenCoppensAtom | SplitAtom):
            continue
        el = crystal.atoms[i].element
        nv = spherical_atom(el).n_valence
        lo += w[i] * (nv - 2 * _orbitals(el))
        hi += w[i] * nv
    if not lo - 1e-9 <= charge <= hi + 1e-9:
        raise InputError(
            f"constraints.charge: {charge:g} e is outside what the valence shells of the "
            f"multipole atoms can give or take per asymmetric unit [{lo:g}, {hi:g}] e; "
            "check the value (charge of the asymmetric unit, not of the cell)",
            src,
            line,
        )


def spin_warnings(crystal, models) -> list[str]:
    """Split atoms whose spin population exceeds what the atom can carry."""
    out = []
    for i, m in enumerate(models):
        if not isinstance(m, SplitAtom):
            continue
        spin = m.spin_pv + (m.spin_plm[0] if m.lmax >= 0 else 0.0)
        cap = spin_capacity(crystal.atoms[i].element)
        if abs(spin) > cap + 1e-9:
            out.append(
                f"{crystal.atoms[i].label}: spin population {spin:.4g} muB is beyond what "
                f"its valence shell can carry ({cap:g} unpaired electrons); check "
                "constraints.total_spin and the starting spins"
            )
    return out
