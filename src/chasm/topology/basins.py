"""Atomic basins (QTAIM) on a periodic cell grid: charges, spin moments, volumes.

Partition. The static charge density (core + valence + multipoles) is
evaluated on a cell grid (:func:`basin_grid`: rounded up to a shape the space
group maps onto itself, evaluated once per orbit); every grid point is assigned to the maximum that
on-grid steepest ascent reaches (Henkelman, Arnaldsson & Jónsson, Comput.
Mater. Sci. 36 (2006) 354): from each point the neighbour (of 26) with the
largest (ρ_nb − ρ)/|Δr| is followed until a point has no higher neighbour.
Each maximum is given to the nearest nucleus copy (within 0.5 Å) or else
reported as a non-nuclear attractor. The on-grid method has a lattice bias
of order the step on the basin surfaces: the populations converge linearly
with the step (shown by :func:`basin_convergence`).

Integration. Core densities are too sharp for a 0.05–0.1 Å grid (their
aliasing error is ~0.1 e), but lie entirely in their own basin: each atom
gets its Pc·n_core core electrons exactly. So does the inner part of its
spherical valence density (the lobe inside a 2s node is as sharp):
w(r) Pv κ³ρ_v(κr), with w = 1 below 0.15 Å tapering (cos²) to 0 at 0.4 Å,
is integrated radially and subtracted from the grid, which sums the rest of
the valence + multipole density (and the spin density) over each basin. The
window must lie inside the atom's basin (true for C, N, O and heavier atoms,
whose BCPs are ≥ 0.45 Å away; H and He are nodeless and not windowed). Per atom of
the asymmetric unit the populations of all its copies in the cell are
averaged (they are equal by symmetry up to the grid bias).

Sum rules (reported): the basin populations sum to the integral of the
density over the cell (exactly, by construction), which should equal the
electron count of the model Σ (Pc n_core + Pv + P00) × multiplicity; their
difference is the grid's quadrature error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chasm.density.databank import spherical_atom
from chasm.density.model import HansenCoppensAtom, SphericalAtom, SplitAtom
from chasm.errors import InputError
from chasm.maps.grids import CellGrid, atom_sites
from chasm.topology.density_derivatives import DensityField
from chasm.topology.grid_values import on_grid as _on_grid

__all__ = ["BasinResult", "MAX_GRID_POINTS", "basin_cubes", "basin_grid", "grid_basins"]

MAX_GRID_POINTS = 20_000_000
"""Largest cell grid accepted (≈ 1 GB of work arrays)."""


@dataclass
class BasinResult:
    """Basin populations per atom of the asymmetric unit.

    Attributes
    ----------
    labels : list of str
    population : ndarray
        Electrons in the basin of one copy of each atom (core exact + grid valence).
    charge : ndarray
        Z − population (e).
    spin : ndarray or None
        Spin moment (μB) in each basin, for models with spin-split atoms.
    volume : ndarray
        Basin volume (Å³).
    monopole_charge : ndarray
        Hansen–Coppens charge Z − Pc n_core − Pv − P00, beside the basin charge.
    cell_integral : float
        Integral of the density over the cell (= Σ basin populations x copies).
    cell_electrons : float
        Electron count of the model in the cell.
    nna : int
        Grid maxima not within 0.5 Å of a nucleus (non-nuclear attractors).
    spacing : float
        Grid step used, Å.
    """

    labels: list[str]
    population: np.ndarray
    charge: np.ndarray
    spin: np.ndarray | None
    volume: np.ndarray
    monopole_charge: np.ndarray
    cell_integral: float
    cell_electrons: float
    nna: int
    spacing: float
    notes: list[str] = field(default_factory=list)


def basin_grid(crystal, spacing: float) -> CellGrid:
    """The cell grid of step at most ``spacing`` that the space group maps onto itself.

    Each edge gets ceil(edge/spacing) points or up to 8 more, the fewest in
    total for which every operation sends grid points to grid points (so the
    density is evaluated once per orbit, and the basins of symmetry copies
    see the same grid); the plain grid if no such shape is that close.
    """
    from itertools import product

    base = np.array(CellGrid.cell(crystal, spacing=spacing).shape)
    rot, trans = crystal.symops
    best = None
    for extra in product(range(9), repeat=3):
        n = (base + np.array(extra)).astype(float)
        m = rot * n[None, :, None] / n[None, None, :]
        tn = trans * n[None, :]
        if np.allclose(m, np.rint(m), atol=1e-9) and np.allclose(tn, np.rint(tn), atol=1e-9):
            if best is None or np.prod(n) < np.prod(best):
                best = n
    shape = base if best is None else best.astype(int)
    return CellGrid.cell(crystal, shape=tuple(int(k) for k in shape))


def _charge_grids(crystal, charge, grid: CellGrid) -> tuple[np.ndarray, np.ndarray]:
    """The static charge density on the grid and its part without the cores (e/Å³)."""
    field_ = DensityField(crystal, charge, "charge")

    def both(p):
        rho, core = field_.density_and_core(p)
        return rho, rho - core

    rho, val = _on_grid(grid, both)
    return rho, val


def _charge_models(models):
    return [m.charge_model() for m in models]


def _core_and_monopole(atom, model) -> tuple[float, float, float]:
    """(Z, core electrons, total electrons) of one atom's model."""
    import periodictable

    z = float(getattr(periodictable, atom.element).number)
    if model is None:
        return z, 0.0, 0.0
    if isinstance(model, SphericalAtom):
        sa = spherical_atom(model.element, int(model.charge))
        return z, float(sa.n_core), float(sa.n_core + sa.n_valence)
    vk = list(model.valence) if model.valence else None
    n_core = float(spherical_atom(model.element, int(model.charge), valence=vk).n_core)
    p00 = float(model.plm[0]) if model.lmax >= 0 else 0.0
    return z, model.pc * n_core, model.pc * n_core + model.pv + p00


_R1, _R2 = 0.15, 0.4  # Å: window of the nuclear part of the spherical valence


def _window(r: np.ndarray) -> np.ndarray:
    """1 below _R1, cos² taper to 0 at _R2."""
    t = np.clip((r - _R1) / (_R2 - _R1), 0.0, 1.0)
    return np.cos(0.5 * np.pi * t) ** 2


def _spherical_valence(model):
    """(table, electrons, κ) of the spherical valence of a model, or None (H, He: nodeless)."""
    from chasm.topology.density_derivatives import _species_terms

    if model is None:
        return None
    if isinstance(model, SphericalAtom):
        _, vt, nv = _species_terms(model.element, int(model.charge), None)
        pv, kappa = nv, 1.0
    else:
        vk = tuple(model.valence) if model.valence else None
        _, vt, _ = _species_terms(model.element, int(model.charge), vk)
        pv, kappa = model.pv, float(model.kappa)
    if model.element.capitalize() in ("H", "He") or pv == 0.0:
        return None
    return vt[3], pv, kappa


def _nuclear_valence(crystal, charge, grid) -> tuple[np.ndarray, np.ndarray]:
    """Σ_copies w(r) ρ_sph(r) on the grid, and ∫ w ρ_sph d³r per atom (e).

    The inner lobes of valence shells with a radial node are too sharp for the
    grid; this part is taken out of the grid sum and integrated radially.
    """
    out = np.zeros(grid.shape)
    exact = np.zeros(len(crystal.atoms))
    shape = np.array(grid.shape)
    reach = np.ceil(_R2 * np.linalg.norm(np.linalg.inv(crystal.A), axis=1) * shape).astype(int) + 1
    offs = np.stack(np.meshgrid(*[np.arange(-k, k + 1) for k in reach], indexing="ij"), -1).reshape(
        -1, 3
    )
    rq = np.linspace(0.0, _R2, 4001)[1:]
    for i, m in enumerate(charge):
        sv = _spherical_valence(m)
        if sv is None:
            continue
        table, pv, kappa = sv
        scale = pv * crystal.atoms[i].occupancy * kappa**3
        f = scale * table(kappa * rq, 0)[0] * _window(rq)
        exact[i] = float(np.trapezoid(4.0 * np.pi * rq * rq * f, rq))
        for frac in atom_sites(crystal, i).frac:
            centre = np.round(frac * shape).astype(int)
            idx = centre + offs
            d = (idx / shape - frac) @ crystal.A.T
            r = np.linalg.norm(d, axis=1)
            near = r < _R2
            vals = scale * table(kappa * r[near], 0)[0] * _window(r[near])
            flat = np.ravel_multi_index(tuple((idx[near] % shape).T), grid.shape)
            np.add.at(out.reshape(-1), flat, vals)
    return out, exact


def _ongrid_step(rho: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Flat index of the steepest uphill neighbour of each grid point (itself at a maximum)."""
    shape = rho.shape
    n = rho.size
    best = np.zeros(shape)
    target = np.arange(n).reshape(shape)
    flat_idx = np.arange(n).reshape(shape)
    for s in np.stack(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij"), -1).reshape(-1, 3):
        if not s.any():
            continue
        dist = float(np.linalg.norm(s @ axes))
        nb = np.roll(rho, tuple(-s), axis=(0, 1, 2))
        slope = (nb - rho) / dist
        better = slope > best
        best[better] = slope[better]
        target[better] = np.roll(flat_idx, tuple(-s), axis=(0, 1, 2))[better]
    return target.reshape(-1)


def _fixed_points(t: np.ndarray) -> np.ndarray:
    while True:  # pointer jumping to the fixed points
        nxt = t[t]
        if np.array_equal(nxt, t):
            return t
        t = nxt


def _ascent_targets(rho: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Flat index of the maximum each grid point climbs to (on-grid, periodic, 26 neighbours)."""
    return _fixed_points(_ongrid_step(rho, axes))


def _neargrid_targets(rho: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Flat index of the maximum each grid point reaches by near-grid ascent.

    The near-grid method of Tang, Sanville & Henkelman (J. Phys.: Condens.
    Matter 21 (2009) 084204): each trajectory steps to the grid point nearest
    to its position plus the gradient direction (in grid steps, the largest
    component scaled to one step), and carries the remainder (the off-grid
    correction) to the next step, so that the path follows the true gradient
    instead of the lattice directions. Every point's trajectory is followed to
    its maximum (no shortcut through already assigned points, so no edge
    refinement is needed). A step that would not go uphill falls back to the
    on-grid step and drops the correction.
    """
    shape = np.array(rho.shape)
    n = rho.size
    step = _ongrid_step(rho, axes)
    flat = rho.reshape(-1)
    gcov = np.stack(
        [(np.roll(rho, -1, a) - np.roll(rho, 1, a)).reshape(-1) / 2.0 for a in range(3)], -1
    )
    d = gcov @ np.linalg.inv(axes @ axes.T)  # gradient direction in grid steps
    big = np.abs(d).max(axis=1)
    d /= np.where(big > 0, big, 1.0)[:, None]
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    pos = np.stack(np.unravel_index(np.arange(n), tuple(shape)), -1)
    delta = np.zeros((n, 3))
    out = np.full(n, -1)
    active = np.arange(n)
    for _ in range(8 * int(shape.max())):
        f = pos[active] @ strides
        at_max = step[f] == f
        out[active[at_max]] = f[at_max]
        active, f = active[~at_max], f[~at_max]
        if active.size == 0:
            break
        dd = d[f] + delta[active]
        s = np.rint(dd).astype(int)
        q = (pos[active] + s) % shape
        fq = q @ strides
        bad = flat[fq] < flat[f]
        q[bad] = np.stack(np.unravel_index(step[f[bad]], tuple(shape)), -1)
        delta[active] = np.where(bad[:, None], 0.0, dd - s)
        pos[active] = q
    if active.size:  # not arrived (should not happen): finish on the grid
        out[active] = _fixed_points(step)[pos[active] @ strides]
    return out


def grid_basins(crystal, models, spacing: float = 0.1, method: str = "neargrid") -> BasinResult:
    """QTAIM basins of the static density on a cell grid of step ``spacing`` (Å).

    Parameters
    ----------
    crystal : Crystal
    models : sequence
        One per atom (HansenCoppensAtom, SphericalAtom, SplitAtom or None).
    spacing : float
        Largest grid step along a cell edge, Å (0.05–0.15 sensible).
    method : {"neargrid", "ongrid"}
        Near-grid ascent (default; follows the true gradient) or on-grid
        steepest ascent (biased by the lattice directions, kept for comparison).

    Returns
    -------
    BasinResult
    """
    if method not in ("neargrid", "ongrid"):
        raise InputError(f"basin method must be 'neargrid' or 'ongrid', got {method!r}")
    if not (np.isfinite(spacing) and 0.02 <= spacing <= 0.5):
        raise InputError(f"basin grid spacing must be 0.02-0.5 Å, got {spacing!r}")
    grid = basin_grid(crystal, spacing)
    if grid.n_points > MAX_GRID_POINTS:
        raise InputError(
            f"a basin grid of step {spacing} Å has {grid.n_points:,} points, more than "
            f"{MAX_GRID_POINTS:,} (memory); use a coarser spacing"
        )
    models = list(models)
    charge = _charge_models(models)
    for atom, m in zip(crystal.atoms, charge, strict=True):
        if m is not None and not isinstance(m, (HansenCoppensAtom, SphericalAtom)):
            raise InputError(f"atom {atom.label}: a {type(m).__name__} has no static density")
    rho, val = _charge_grids(crystal, charge, grid)
    nuclear, nuclear_exact = _nuclear_valence(crystal, charge, grid)
    val -= nuclear
    split = any(isinstance(m, SplitAtom) for m in models)
    if split:
        spin_field = DensityField(crystal, models, "spin")
        (spin,) = _on_grid(grid, lambda p: (spin_field(p, order=0)[0],))
    target = (_neargrid_targets if method == "neargrid" else _ascent_targets)(rho, grid.axes)
    maxima = np.unique(target)
    frac = np.stack(np.unravel_index(maxima, grid.shape), -1) / np.array(grid.shape)
    # nucleus copies in the cell: (atom index, fractional position)
    copies = [(i, s) for i in range(len(crystal.atoms)) for s in atom_sites(crystal, i).frac]
    copy_atom = np.array([i for i, _ in copies])
    copy_frac = np.array([s for _, s in copies])
    d = frac[:, None, :] - copy_frac[None]
    d -= np.round(d)
    dist = np.linalg.norm(d @ crystal.A.T, axis=2)  # (maxima, copies), Å
    nearest = np.argmin(dist, axis=1)
    close = dist[np.arange(len(maxima)), nearest] < 0.5
    owner = np.where(close, copy_atom[nearest], -1)
    nna = int(np.sum(~close))
    which = owner[np.searchsorted(maxima, target)]
    dv = grid.voxel_volume
    n_at = len(crystal.atoms)
    mult = np.array([len(atom_sites(crystal, i).frac) for i in range(n_at)], dtype=float)
    vsum = np.bincount(which + 1, weights=val.reshape(-1), minlength=n_at + 1)[1:] * dv
    count = np.bincount(which + 1, minlength=n_at + 1)[1:] * dv
    info = [_core_and_monopole(a, m) for a, m in zip(crystal.atoms, charge, strict=True)]
    z = np.array([i[0] for i in info])
    core = np.array([i[1] for i in info])
    total = np.array([i[2] for i in info])
    occ = np.array([a.occupancy for a in crystal.atoms])
    population = vsum / mult + core * occ + nuclear_exact
    spins = None
    if split:
        spins = np.bincount(which + 1, weights=spin.reshape(-1), minlength=n_at + 1)[1:] * dv
        spins = spins / mult
    cell_integral = float(val.sum() * dv + np.sum((core * occ + nuclear_exact) * mult))
    notes = []
    if nna:
        notes.append(f"{nna} grid maxima are not at nuclei (non-nuclear attractors): their")
        notes[-1] += " basins are left out of the atoms"
    return BasinResult(
        [a.label for a in crystal.atoms],
        population,
        z * occ - population,
        spins,
        count / mult,
        z - total,
        cell_integral,
        float(np.sum(total * occ * mult)),
        nna,
        float(spacing),
        notes,
    )


def basin_cubes(folder, crystal, models, spacing: float = 0.1) -> dict:
    """Cube files of the basin grids, for an independent grid-based Bader code.

    Writes ``basins_reference.cube`` (the static charge density, whose
    gradient defines the basins) and ``basins_integrand.cube`` (what
    :func:`grid_basins` sums on the grid: valence + multipoles less the
    windowed nuclear part of the spherical valence), both e/bohr³, the cell's
    atom copies listed in the order of ``grid.atoms()``. An external code run
    with the first as reference and the second as the density gives the grid
    part of each basin population; adding ``exact`` (core Pc·n_core and the
    radially integrated nuclear valence, e per copy) gives the population.

    Returns
    -------
    dict
        ``reference``, ``integrand`` (paths), ``atoms`` (labels of the listed
        copies), ``exact`` (label -> electrons integrated radially per copy),
        ``grid`` (the CellGrid).
    """
    from pathlib import Path

    from chasm.io.volumetric import write_cube

    if not (np.isfinite(spacing) and 0.02 <= spacing <= 0.5):
        raise InputError(f"basin grid spacing must be 0.02-0.5 Å, got {spacing!r}")
    grid = basin_grid(crystal, spacing)
    if grid.n_points > MAX_GRID_POINTS:
        raise InputError(f"a basin grid of step {spacing} Å has {grid.n_points:,} points")
    charge = _charge_models(list(models))
    rho, val = _charge_grids(crystal, charge, grid)
    nuclear, nuclear_exact = _nuclear_valence(crystal, charge, grid)
    val -= nuclear
    atoms = grid.atoms()
    folder = Path(folder)
    ref, integrand = folder / "basins_reference.cube", folder / "basins_integrand.cube"
    write_cube(ref, crystal, grid, rho, atoms=atoms, comment="chasm static charge density")
    write_cube(integrand, crystal, grid, val, atoms=atoms, comment="chasm basin integrand")
    exact = {}
    for i, (a, m) in enumerate(zip(crystal.atoms, charge, strict=True)):
        _, core, _ = _core_and_monopole(a, m)
        exact[a.label] = core * a.occupancy + float(nuclear_exact[i])
    return {
        "reference": ref,
        "integrand": integrand,
        "atoms": [lab for _, lab, _ in atoms],
        "exact": exact,
        "grid": grid,
    }
