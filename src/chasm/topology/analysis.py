"""Topology of a model (Python API) and ``properties.json`` of a result folder.

:func:`topology` runs the critical-point search on the static charge density
(and, for a model with spin-split atoms, on the spin density), traces the bond
paths, computes the BCP properties and, given a covariance, their su.
:func:`write_properties` does this for a result folder of ``chasm refine``
(``chasm properties RESULT --topology``): the model is read from model.cif;
the covariance is not stored there, so the su come from the su of model.cif
without correlations (said in the file's ``notes``); with a
:class:`~chasm.refine.refinement.Refinement` in hand, pass its covariance
(:func:`chasm.neutron.moments.refinement_covariance`) to :func:`topology`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chasm.density.model import HansenCoppensAtom, SplitAtom
from chasm.errors import InputError
from chasm.io.atomic import write_text_atomic
from chasm.io.su_format import format_su
from chasm.topology.bcp import (
    BondCriticalPoint,
    bcp_uncertainties,
    bond_critical_points,
    density_jacobian,
)
from chasm.topology.covariance import read_covariance
from chasm.topology.critical_points import CriticalPointSearch, find_critical_points
from chasm.topology.density_derivatives import DensityField

__all__ = ["Topology", "topology", "topology_dict", "write_properties"]

SPHERICAL_NOTE = (
    "the model has no multipole populations: this is the topology of a sum of spherical "
    "(kappa-modified) atoms, a promolecule density; its bond paths and BCPs come from the "
    "overlap of the atoms, not from a refined deformation"
)


@dataclass
class Topology:
    """Critical points and bond critical points of a model."""

    charge: CriticalPointSearch
    bcps: list[BondCriticalPoint]
    spin: CriticalPointSearch | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _has_multipoles(models) -> bool:
    for m in models:
        parts = [m.up, m.dn] if isinstance(m, SplitAtom) else [m]
        for p in parts:
            if isinstance(p, HansenCoppensAtom) and p.lmax >= 0 and np.any(p.plm != 0):
                return True
    return False


def topology(
    crystal,
    models,
    names=None,
    cov=None,
    *,
    grid_step: float = 0.0,
    spin: bool = True,
    su_note: str = "",
    random_seeds: int = 0,
) -> Topology:
    """Critical points of the static charge (and spin) density with BCP properties.

    Parameters
    ----------
    crystal : Crystal
    models : sequence
        One density model per atom (HansenCoppensAtom, SphericalAtom, SplitAtom, None).
    names, cov : sequence of str, ndarray, optional
        Parameter names and their covariance, for the su of the BCP properties.
    grid_step : float
        Seed-grid step (Å), see :func:`find_critical_points`.
    random_seeds : int
        Extra random seeds in the cell, see :func:`find_critical_points`.
    spin : bool
        Also search the spin density when the model has spin-split atoms.
    su_note : str
        Where the covariance came from (copied into ``notes``).

    Returns
    -------
    Topology
    """
    t0 = time.perf_counter()
    notes = []
    if not _has_multipoles(models):
        notes.append(SPHERICAL_NOTE)
    field_ = DensityField(crystal, models, "charge")
    search = find_critical_points(field_, grid_step=grid_step, random_seeds=random_seeds)
    split = any(isinstance(m, SplitAtom) for m in models)
    spin_field = DensityField(crystal, models, "spin") if split else None
    bcps = bond_critical_points(field_, search.points, spin=spin_field)
    if not search.morse_ok:
        notes.append(
            f"Morse sum n - b + r - c = {search.morse} per cell, not 0: some critical "
            "points were missed; rerun with more seeds (--random-seeds 3000 and/or "
            "--grid-step 0.3)"
        )
    if names is not None and cov is not None:
        bcp_uncertainties(crystal, models, bcps, names, cov)
        if split and bcps:
            x = np.array([b.point.cart for b in bcps])
            drho, dhess = density_jacobian(crystal, models, names, x, kind="spin")
            lap = np.trace(dhess, axis1=2, axis2=3)
            for k, b in enumerate(bcps):
                b.spin["rho_su"] = float(np.sqrt(max(drho[:, k] @ cov @ drho[:, k], 0.0)))
                b.spin["laplacian_su"] = float(np.sqrt(max(lap[:, k] @ cov @ lap[:, k], 0.0)))
        if su_note:
            notes.append(su_note)
    spin_search = None
    if split and spin:
        spin_search = find_critical_points(spin_field, grid_step=grid_step, rho_min=1e-4)
    return Topology(search, bcps, spin_search, notes + search.notes, time.perf_counter() - t0)


def _f(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _cp_dict(p) -> dict:
    return {
        "kind": p.kind,
        "nucleus": p.nucleus,
        "frac": [round(float(v), 6) for v in p.frac],
        "cart_A": [round(float(v), 6) for v in p.cart],
        "rho": _f(p.rho),
        "laplacian": _f(p.laplacian) if p.nucleus is None else None,
        "eigenvalues": [_f(v) for v in p.eigenvalues] if p.nucleus is None else None,
        "multiplicity": int(p.multiplicity),
    }


def _search_dict(s: CriticalPointSearch) -> dict:
    return {
        "counts_per_cell": s.counts,
        "morse_sum": int(s.morse),
        "morse_ok": bool(s.morse_ok),
        "seeds": int(s.seeds),
        "rejected_seeds": int(s.rejected),
        "critical_points": [_cp_dict(p) for p in s.points],
    }


def topology_dict(t: Topology) -> dict:
    """JSON-ready dictionary of a :class:`Topology` (units in ``units``)."""
    out = {
        "units": {
            "rho": "e/A^3 (spin: muB/A^3)",
            "laplacian, lambda1-3, eigenvalues": "e/A^5",
            "G, V, H": "hartree/bohr^3 (Abramov 1997; V from the local virial theorem)",
            "distances, path_length": "A",
        },
        "charge": _search_dict(t.charge),
        "bond_critical_points": [
            {
                "atoms": list(b.atoms),
                "distances_A": [_f(d) for d in b.distances],
                "internuclear_A": _f(b.internuclear),
                "path_length_A": _f(b.path_length),
                "frac": [round(float(v), 6) for v in b.point.frac],
                "multiplicity": int(b.point.multiplicity),
                "values": {k: _f(v) for k, v in b.values.items()},
                "su": {k: _f(v) for k, v in b.su.items()},
                "spin": {k: _f(v) for k, v in b.spin.items()},
            }
            for b in t.bcps
        ],
        "notes": t.notes,
        "seconds": round(t.seconds, 2),
    }
    if t.spin is not None:
        out["spin"] = _search_dict(t.spin)
    return out


def basins_dict(b) -> dict:
    """JSON-ready dictionary of a :class:`chasm.topology.basins.BasinResult`."""
    return {
        "method": "near-grid ascent (Tang, Sanville & Henkelman 2009), cores exact",
        "grid_step_A": b.spacing,
        "atoms": [
            {
                "label": lab,
                "population": round(float(p), 4),
                "charge": round(float(q), 4),
                "monopole_charge": round(float(qm), 4),
                "volume_A3": round(float(v), 3),
                "spin_muB": None if b.spin is None else round(float(b.spin[i]), 4),
            }
            for i, (lab, p, q, qm, v) in enumerate(
                zip(b.labels, b.population, b.charge, b.monopole_charge, b.volume, strict=True)
            )
        ],
        "cell_integral": round(b.cell_integral, 4),
        "cell_electrons_model": round(b.cell_electrons, 4),
        "non_nuclear_attractors": b.nna,
        "notes": b.notes,
    }


def write_properties(
    folder,
    *,
    topology_on: bool = True,
    grid_step: float = 0.0,
    output=None,
    basins: bool = False,
    basin_step: float = 0.1,
    random_seeds: int = 0,
    esp: bool = False,
    esp_step: float = 0.25,
    molecule: str | None = None,
    laplacian_plane: str | None = None,
) -> Path:
    """Write ``properties.json`` for a result folder of ``chasm refine``.

    Parameters
    ----------
    folder : path
        The result folder (model.cif, result.json).
    topology_on : bool
        Run the critical-point search.
    basins : bool
        Integrate QTAIM basins on a cell grid of step ``basin_step`` (Å).
    grid_step : float
        Seed-grid step, Å.
    esp : bool
        Electrostatics: potential, field and field gradient at the nuclei, the
        potential on the 0.001 au isodensity surface on a grid of step
        ``esp_step`` (Å; cube files and a picture beside the output), and the
        dipole moment of the molecule containing atom ``molecule``.
    laplacian_plane : str, optional
        Three atom labels, comma-separated: draw ∇²ρ of the static model on
        the plane through them (``laplacian.png`` beside the output, 6 x 6 Å).
    output : path, optional
        Where to write (default ``folder/properties.json``).

    Returns
    -------
    Path of the file written.
    """
    from chasm.io.rhocif import read_rhocif, read_rhocif_su

    folder = Path(folder)
    model = folder / "model.cif"
    if not folder.is_dir():
        raise InputError(f"{folder}: no such result folder; give the output folder of chasm refine")
    if not model.is_file():
        raise InputError(
            f"{folder}: no refined model (model.cif is missing); run chasm refine first "
            "or give its output folder"
        )
    if molecule is not None and not esp:
        raise InputError("chasm properties: --molecule needs --esp (it asks for a dipole moment)")
    if not (topology_on or basins or esp or laplacian_plane):
        raise InputError(
            "chasm properties: choose what to compute: --topology, --basins, --esp "
            "and/or --laplacian-plane"
        )
    crystal, models = read_rhocif(model)
    plane = None
    if laplacian_plane is not None:
        from chasm.maps.grids import Plane

        labels = [x.strip() for x in laplacian_plane.split(",") if x.strip()]
        try:
            plane = Plane.through_atoms(crystal, labels)
        except InputError as exc:
            raise InputError(
                f"--laplacian-plane {laplacian_plane}: {exc}; give three atom labels of "
                f"the model ({', '.join(a.label for a in crystal.atoms)}), comma-separated"
            ) from exc
    if esp:  # bad options refused before any long computation
        from chasm.topology.dipole import molecule as grow_molecule
        from chasm.topology.isosurface import check_grid

        check_grid(crystal, esp_step)
        if molecule is not None:
            grow_molecule(crystal, molecule)
    stored = read_covariance(folder)
    if stored is not None:
        names, cov, note = stored
        lone = note.split(": ", 1)[1].split(", ") if ": " in note else []
        note = "su from covariance.npz (last stage, with correlations)" + (
            f"; {len(lone)} parameters not refined in the last stage enter with su² only "
            "(fixed ones have su 0)"
            if lone
            else ""
        )
    else:
        su = read_rhocif_su(model)
        names = sorted(su)
        cov = np.diag([su[n] ** 2 for n in names])
        note = (
            "su from the su of model.cif without correlations (no covariance.npz in "
            "the result folder); with the Python API pass the refinement's covariance"
        )
    data: dict = {"model": str(model)}
    if topology_on:
        t = topology(
            crystal,
            models,
            names,
            cov,
            grid_step=grid_step,
            su_note=note,
            random_seeds=random_seeds,
        )
        data["topology"] = topology_dict(t)
    if basins:
        from chasm.topology.basins import grid_basins

        data["basins"] = basins_dict(grid_basins(crystal, models, basin_step))
    path = Path(output) if output else folder / "properties.json"
    if plane is not None:
        from chasm.topology.laplacian_map import plot_laplacian

        picture = path.parent / "laplacian.png"
        plot_laplacian(picture, DensityField(crystal, models, "charge"), plane)
        data["laplacian_map"] = {"atoms": laplacian_plane, "file": picture.name}
    if esp:
        from chasm.topology.esp_report import electrostatics_dict

        data["electrostatics"] = electrostatics_dict(
            crystal, models, path.parent, esp_step, molecule, names, cov, note
        )
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")
    return path


def summary_lines(path: Path) -> list[str]:
    """A few lines for the terminal: Morse sum, bond critical points, basin charges."""
    data = json.loads(Path(path).read_text())
    out = _topology_lines(data["topology"]) if "topology" in data else []
    if "electrostatics" in data:
        out += _esp_lines(data["electrostatics"])
    if "laplacian_map" in data:
        m = data["laplacian_map"]
        out.append(f"Laplacian map through {m['atoms']}: {m['file']}")
    if "basins" in data:
        b = data["basins"]
        out.append(
            f"basins (grid {b['grid_step_A']} A): cell integral {b['cell_integral']:.3f} e, "
            f"model {b['cell_electrons_model']:.3f} e"
        )
        for a in b["atoms"]:
            spin = "" if a["spin_muB"] is None else f", spin {a['spin_muB']:+.3f} muB"
            out.append(
                f"  {a['label']}: q = {a['charge']:+.3f} e (monopole {a['monopole_charge']:+.3f})"
                f", V = {a['volume_A3']:.2f} A^3{spin}"
            )
    return out


def _topology_lines(d: dict) -> list[str]:
    c = d["charge"]
    n = c["counts_per_cell"]
    lines = [
        f"critical points per cell: n={n['n']} b={n['b']} r={n['r']} c={n['c']}, "
        f"n-b+r-c = {c['morse_sum']} ({'ok' if c['morse_ok'] else 'VIOLATED'})"
    ]
    for b in d["bond_critical_points"]:
        v, s = b["values"], b["su"]
        su_r = f"({s['rho']:.3f})" if s.get("rho") is not None else ""
        su_l = f"({s['laplacian']:.2f})" if s.get("laplacian") is not None else ""
        lines.append(
            f"  BCP {'-'.join(b['atoms'])}: rho = {v['rho']:.3f}{su_r} e/A^3, "
            f"lap = {v['laplacian']:.2f}{su_l} e/A^5, eps = {v['ellipticity']:.2f}"
        )
    return lines + [f"  note: {x}" for x in d["notes"]]


def _esp_lines(d: dict) -> list[str]:
    out = ["electrostatics (cell average 0; at a nucleus its own charge left out):"]
    for a in d["nuclei"]:
        out.append(
            f"  {a['label']}: phi = {a['potential_e_per_A']:+.3f} e/A, "
            f"Vzz = {a['Vzz_e_per_A3']:+.3f} e/A^3 ({a['Vzz_au']:+.4f} au), eta = {a['eta']:.2f}"
        )
    s = d["isodensity_surface"]
    if s.get("points"):
        out.append(
            f"  on the {d['isovalue_au']} au isodensity surface: phi from "
            f"{s['min_e_per_A']:+.3f} to {s['max_e_per_A']:+.3f} e/A"
        )
    m = d.get("dipole")
    if m:
        value = format_su(m["magnitude_D"], m.get("su_magnitude_D"), exact_decimals=2)
        out.append(
            f"  dipole of the molecule of {m['atoms'][0]} ({len(m['atoms'])} atoms): {value} D"
        )
    return out
