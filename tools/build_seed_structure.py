"""Build the crystal structure of chasm's "seed case": a synthetic Cu(II) azide dimer.

The seed paper (joint X-ray / polarised-neutron refinement of an end-to-end
azido double-bridged Cu(II) dimer, Cu2L2(N3)2 with
L = 1,1,1-trifluoro-7-(dimethylamino)-4-methyl-5-aza-3-hepten-2-onato) gives the
space group (P21/n), the Cu...Cu distance across the inversion centre
(5.068 Å), the two Cu-N(azide) distances (2.000 and 2.346 Å) and the spin
populations of Cu1, O1 and N1...N5. It gives neither the cell nor the
coordinates, so this script MAKES UP a chemically plausible structure with those
features; it is not the published structure.

What it does, deterministically:

1. Heavy atoms of one half-dimer in a local Cartesian frame (Cu at the origin,
   basal plane about xy, apical bond about +z) by restrained least squares on
   standard bond lengths, bond angles, the planarity of the enaminone chelate
   and the three distances quoted by the paper, with the apical azide nitrogen
   N5' = the inversion image of N5 (so the dimer closes exactly).
2. Hydrogen atoms at neutron distances (C-H 1.089 Å; the ligand has no N-H)
   from ideal sp2 / sp3 directions; methyl groups staggered, their torsions
   chosen to maximise the smallest H...H distance.
3. The dimer on the inversion centre at the origin of P 1 21/n 1; its
   orientation searched (seeded random rotations, then polished) to maximise
   the smallest intermolecular (d - sum of van der Waals radii), and the cell
   (shape of a = 11.7, b = 14.2, c = 11.2 Å, β = 105°) shrunk uniformly while
   that margin stays above -0.35 Å.
4. Anisotropic ADPs from a rigid-body TL model about the inversion centre (S = 0
   is forced by the inversion symmetry of the dimer) plus a torsional libration
   of the CF3 group about C2-C1: one set for the 10 K X-ray experiment and a
   larger one for the 30 K neutron experiment; H isotropic, 1.2 (CH, CH2) or
   1.5 (CH3) x U_eq of the parent atom.
5. Writes ``src/chasm/examples/seed_cu_dimer.cif`` (two data blocks, X-ray
   10 K and neutron 30 K, same cell and coordinates) and prints the checks.

Run: ``python tools/build_seed_structure.py [--out PATH]``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import gemmi
import numpy as np
from scipy.optimize import least_squares, minimize

from chasm.crystal.adp import ucart_to_ucif

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "chasm" / "examples" / "seed_cu_dimer.cif"

# ---------------------------------------------------------------- targets from the paper
CU_CU = 5.068  # Cu...Cu' across the inversion centre, Å
CU_N3 = 2.000  # Cu1-N3 (basal azide N), Å
CU_N5 = 2.346  # Cu1-N5' (apical azide N of the other azide), Å
CH = 1.089  # neutron C-H distance, Å
CELL0 = (11.7, 14.2, 11.2, 90.0, 105.0, 90.0)  # starting cell shape, Å and degrees
SYMOPS = ("x,y,z", "-x+1/2,y+1/2,-z+1/2", "-x,-y,-z", "x+1/2,-y+1/2,z+1/2")
MARGIN_LIMIT = -0.35  # smallest allowed d - (r_vdW,i + r_vdW,j) between molecules, Å
SEED = 20240605
N_TRIALS = 600  # random orientations tried in the packing search

# heavy atoms of the half-dimer, in this order; "N5p" is N5' (image of N5, not written)
HEAVY = [
    "Cu1",
    "O1",
    "N1",
    "N2",
    "N3",
    "N4",
    "N5",
    "N5p",
    "C1",
    "C2",
    "C3",
    "C4",
    "C5",
    "C6",
    "C7",
    "C8",
    "C9",
    "F1",
    "F2",
    "F3",
]
ROLES = {
    "Cu1": "Cu(II), five-coordinate (square pyramid)",
    "O1": "enolate O of the ketone arm, basal",
    "N1": "imine N (5-aza), basal, trans to N3",
    "N2": "dimethylamino N, basal, trans to O1",
    "N3": "azide N bonded to Cu1 (basal, 2.000 Å)",
    "N4": "central azide N",
    "N5": "azide N bonded to Cu1' (apical on the other Cu, 2.346 Å)",
    "C1": "CF3 carbon",
    "C2": "C-O carbon",
    "C3": "methine C-H",
    "C4": "imine carbon C=N",
    "C5": "methyl on C4",
    "C6": "CH2 bonded to N1",
    "C7": "CH2 bonded to N2",
    "C8": "N-methyl",
    "C9": "N-methyl",
}

BONDS = {  # Å, restraint su 0.005 Å unless in EXACT
    ("Cu1", "O1"): 1.930,
    ("Cu1", "N1"): 1.965,
    ("Cu1", "N2"): 2.060,
    ("Cu1", "N3"): CU_N3,
    ("Cu1", "N5p"): CU_N5,
    ("N3", "N4"): 1.185,
    ("N4", "N5"): 1.160,
    ("O1", "C2"): 1.270,
    ("C2", "C3"): 1.370,
    ("C3", "C4"): 1.420,
    ("C4", "N1"): 1.300,
    ("C1", "C2"): 1.530,
    ("C1", "F1"): 1.335,
    ("C1", "F2"): 1.335,
    ("C1", "F3"): 1.335,
    ("C4", "C5"): 1.505,
    ("N1", "C6"): 1.470,
    ("C6", "C7"): 1.520,
    ("C7", "N2"): 1.485,
    ("N2", "C8"): 1.475,
    ("N2", "C9"): 1.475,
}
EXACT = {("Cu1", "N3"), ("Cu1", "N5p")}

ANGLES = {  # degrees, restraint su 1 degree (3 degrees around Cu and for the azide ends)
    ("O1", "Cu1", "N1"): 93.0,
    ("N1", "Cu1", "N2"): 84.0,
    ("N2", "Cu1", "N3"): 93.0,
    ("N3", "Cu1", "O1"): 90.0,
    ("O1", "Cu1", "N2"): 172.0,
    ("N1", "Cu1", "N3"): 168.0,
    ("N5p", "Cu1", "O1"): 93.0,
    ("N5p", "Cu1", "N1"): 96.0,
    ("N5p", "Cu1", "N2"): 94.0,
    ("N5p", "Cu1", "N3"): 95.0,
    ("Cu1", "O1", "C2"): 124.0,
    ("O1", "C2", "C3"): 129.0,
    ("O1", "C2", "C1"): 113.0,
    ("C3", "C2", "C1"): 118.0,
    ("C2", "C3", "C4"): 125.0,
    ("C3", "C4", "N1"): 122.0,
    ("C3", "C4", "C5"): 117.0,
    ("N1", "C4", "C5"): 121.0,
    ("Cu1", "N1", "C4"): 126.0,
    ("Cu1", "N1", "C6"): 113.0,
    ("C4", "N1", "C6"): 121.0,
    ("N1", "C6", "C7"): 108.0,
    ("C6", "C7", "N2"): 110.0,
    ("Cu1", "N2", "C7"): 106.0,
    ("Cu1", "N2", "C8"): 112.0,
    ("Cu1", "N2", "C9"): 112.0,
    ("C7", "N2", "C8"): 110.0,
    ("C7", "N2", "C9"): 110.0,
    ("C8", "N2", "C9"): 108.0,
    ("C2", "C1", "F1"): 111.5,
    ("C2", "C1", "F2"): 111.5,
    ("C2", "C1", "F3"): 111.5,
    ("F1", "C1", "F2"): 107.4,
    ("F1", "C1", "F3"): 107.4,
    ("F2", "C1", "F3"): 107.4,
    ("N3", "N4", "N5"): 178.0,
    ("Cu1", "N3", "N4"): 125.0,
}
SOFT_ANGLE_ATOMS = {"Cu1"}
PLANE = ["Cu1", "O1", "C2", "C3", "C4", "N1", "C1", "C5", "C6"]  # enaminone chelate

# rough starting coordinates, local frame (Å)
START = {
    "Cu1": (0.0, 0.0, 0.0),
    "O1": (0.0, 1.93, -0.15),
    "N1": (1.96, 0.0, -0.15),
    "N2": (0.215, -2.049, -0.15),
    "N3": (-2.0, 0.0, -0.15),
    "N4": (-2.6, 0.0, 0.85),
    "N5": (-3.3, 0.0, 1.75),
    "N5p": (0.0, 0.0, 2.346),
    "C1": (0.2, 4.2, -0.15),
    "C2": (0.8, 2.9, -0.15),
    "C3": (2.2, 2.35, -0.15),
    "C4": (2.74, 1.04, -0.15),
    "C5": (4.2, 0.8, -0.15),
    "C6": (2.6, -1.25, 0.3),
    "C7": (1.6, -2.6, 0.4),
    "C8": (-0.5, -2.7, 1.0),
    "C9": (-0.4, -2.6, -1.4),
    "F1": (-1.1, 4.3, -0.15),
    "F2": (0.7, 4.9, 0.9),
    "F3": (0.7, 4.9, -1.2),
}


# ---------------------------------------------------------------- small geometry helpers
def unit(v: np.ndarray) -> np.ndarray:
    """The vector scaled to length 1."""
    return v / np.linalg.norm(v)


def angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Angle a-b-c, radians."""
    u, v = unit(a - b), unit(c - b)
    return math.acos(max(-1.0, min(1.0, float(u @ v))))


def torsion(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> float:
    """Dihedral angle a-b-c-d, radians in (-pi, pi]."""
    b0, b1, b2 = a - b, c - b, d - c
    b1 = unit(b1)
    v = b0 - (b0 @ b1) * b1
    w = b2 - (b2 @ b1) * b1
    return math.atan2(float(np.cross(b1, v) @ w), float(v @ w))


def place(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, length: float, bend: float, tors: float
) -> np.ndarray:
    """Atom d with |cd| = length (Å), angle b-c-d = bend and dihedral a-b-c-d = tors (rad)."""
    bc = unit(c - b)
    n = unit(np.cross(b - a, bc))
    m = np.cross(n, bc)
    local = (
        -length * math.cos(bend),
        length * math.sin(bend) * math.cos(tors),
        length * math.sin(bend) * math.sin(tors),
    )
    return c + local[0] * bc + local[1] * m + local[2] * n


# ---------------------------------------------------------------- 1. heavy atoms
def _residuals(x: np.ndarray) -> np.ndarray:
    pos = dict(zip(HEAVY, x.reshape(-1, 3), strict=True))
    pos["Cu1"] = np.zeros(3)
    res = []
    for (i, j), d0 in BONDS.items():
        su = 0.0002 if (i, j) in EXACT else 0.005
        res.append((np.linalg.norm(pos[i] - pos[j]) - d0) / su)
    cu_prime = pos["N5"] + pos["N5p"]  # inversion centre P = (N5 + N5')/2, Cu' = 2P
    res.append((np.linalg.norm(cu_prime) - CU_CU) / 0.0002)
    res.append((math.degrees(angle(pos["N4"], pos["N5"], cu_prime)) - 140.0) / 5.0)
    for (i, j, k), a0 in ANGLES.items():
        su = 3.0 if j in SOFT_ANGLE_ATOMS or (i, j, k) == ("Cu1", "N3", "N4") else 1.0
        res.append((math.degrees(angle(pos[i], pos[j], pos[k])) - a0) / su)
    plane = np.array([pos[n] for n in PLANE])
    centred = plane - plane.mean(axis=0)
    normal = np.linalg.svd(centred)[2][-1]
    res.extend(centred @ normal / 0.01)
    tors = abs(math.degrees(torsion(pos["N1"], pos["C6"], pos["C7"], pos["N2"])))
    res.append((tors - 50.0) / 3.0)
    # fix the orientation: basal plane about xy, N1 about +x
    res.append(pos["N1"][1] / 0.05)
    res.append((pos["N5p"][0] + pos["N5p"][1]) / 0.5)
    return np.array(res)


def build_heavy() -> dict[str, np.ndarray]:
    """Heavy atoms of the half-dimer (and N5') in the local frame, Cu at the origin."""
    x0 = np.array([START[n] for n in HEAVY], dtype=float).ravel()
    fit = least_squares(_residuals, x0, max_nfev=100)
    pos = dict(zip(HEAVY, fit.x.reshape(-1, 3), strict=True))
    pos["Cu1"] = np.zeros(3)
    return pos


# ---------------------------------------------------------------- 2. hydrogen atoms
def _methyl(pos: dict, carbon: str, parent: str, ref: str, offset: float) -> list[np.ndarray]:
    tet = math.radians(109.47)
    return [
        place(pos[ref], pos[parent], pos[carbon], CH, tet, offset + k * 2.0 * math.pi / 3.0)
        for k in range(3)
    ]


def _methylene(pos: dict, carbon: str, a: str, b: str) -> list[np.ndarray]:
    x = pos[carbon]
    bis = unit(unit(x - pos[a]) + unit(x - pos[b]))
    n = unit(np.cross(pos[a] - x, pos[b] - x))
    half = math.radians(109.47) / 2.0
    return [x + CH * (math.cos(half) * bis + s * math.sin(half) * n) for s in (1.0, -1.0)]


def add_hydrogens(pos: dict) -> dict[str, tuple[np.ndarray, str]]:
    """H positions (label -> (xyz, parent)); methyl torsions maximise the smallest H...H."""
    h: dict[str, tuple[np.ndarray, str]] = {}
    x3 = pos["C3"]
    h["H3"] = (x3 + CH * unit(unit(x3 - pos["C2"]) + unit(x3 - pos["C4"])), "C3")
    for carbon, (a, b) in {"C6": ("N1", "C7"), "C7": ("C6", "N2")}.items():
        for tag, xyz in zip("AB", _methylene(pos, carbon, a, b), strict=True):
            h[f"H{carbon[1:]}{tag}"] = (xyz, carbon)
    grid = np.radians(np.arange(0.0, 120.0, 2.0))
    for carbon, parent, ref in (("C5", "C4", "N1"), ("C8", "N2", "Cu1"), ("C9", "N2", "Cu1")):
        others = [v[0] for v in h.values()]
        best, best_d = 0.0, -1.0
        for off in grid:
            trial = _methyl(pos, carbon, parent, ref, off)
            d = min(np.linalg.norm(t - o) for t in trial for o in others)
            if d > best_d + 1e-9:
                best, best_d = off, d
        for tag, xyz in zip("ABC", _methyl(pos, carbon, parent, ref, best), strict=True):
            h[f"H{carbon[1:]}{tag}"] = (xyz, carbon)
    return h


# ---------------------------------------------------------------- 3. packing
def element_of(label: str) -> str:
    """Element symbol of a label (Cu1 -> Cu, F2 -> F, H7A -> H)."""
    return "Cu" if label.startswith("Cu") else label[0]


def _ops() -> tuple[np.ndarray, np.ndarray]:
    rot, tra = [], []
    for op in SYMOPS:
        o = gemmi.Op(op)
        rot.append(np.array(o.rot) // o.DEN)
        tra.append(np.array(o.tran) / o.DEN)
    return np.array(rot), np.array(tra)


def cell_matrix(cell: tuple[float, ...]) -> np.ndarray:
    """Direct basis (columns a, b, c, Cartesian Å) in gemmi's orthogonalisation."""
    return np.array(gemmi.UnitCell(*cell).orth.mat.tolist())


def rotation(angles: np.ndarray) -> np.ndarray:
    """Rotation matrix from a rotation vector (axis * angle, radians)."""
    theta = float(np.linalg.norm(angles))
    if theta < 1e-12:
        return np.eye(3)
    k = angles / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * kx + (1 - math.cos(theta)) * kx @ kx


def _images(frac: np.ndarray, reach: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every image of the asymmetric unit: fractional (n_op, n_shift, n_atom, 3), shift list."""
    rot, tra = _ops()
    r = np.arange(-reach, reach + 1)
    shifts = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    base = np.einsum("kij,nj->kni", rot, frac) + tra[:, None, :]
    return base[:, None, :, :] + shifts[None, :, None, :], shifts


def contact_margins(
    frac: np.ndarray, labels: list[str], cell: tuple[float, ...]
) -> tuple[float, tuple]:
    """Smallest d - (r_i + r_j) over atom pairs of DIFFERENT molecules, and the pair.

    The reference molecule is the dimer made of the asymmetric unit (operation
    x,y,z) and its image by -x,-y,-z, both without lattice shift. Returns
    (margin in Å, (label i, label j, distance in Å, operation, shift)).
    """
    a = cell_matrix(cell)
    img, shifts = _images(frac)
    vdw = np.array([gemmi.Element(element_of(n)).vdw_r for n in labels])
    zero = int(np.flatnonzero((shifts == 0).all(axis=1))[0])
    cart0 = frac @ a.T
    cart = img @ a.T  # (n_op, n_shift, n_atom, 3)
    d = np.linalg.norm(cart0[:, None, None, None, :] - cart[None], axis=-1)
    m = d - (vdw[:, None, None, None] + vdw[None, None, None, :])
    m[:, [0, 2], zero, :] = np.inf  # the reference dimer itself
    i, k, s, j = np.unravel_index(np.argmin(m), m.shape)
    return float(m[i, k, s, j]), (labels[i], labels[j], float(d[i, k, s, j]), int(k), int(s))


def to_fractional(local: dict, centre: np.ndarray, rot: np.ndarray, cell) -> np.ndarray:
    """Fractional coordinates of the local-frame atoms, dimer centre at the origin."""
    cart = (np.array(list(local.values())) - centre) @ rot.T
    return cart @ np.linalg.inv(cell_matrix(cell)).T


def _scaled(scale: float) -> tuple[float, ...]:
    return tuple(round(v * scale, 3) for v in CELL0[:3]) + CELL0[3:]


def pack(local: dict, centre: np.ndarray) -> tuple[tuple[float, ...], np.ndarray, float]:
    """Cell and orientation of the dimer (rotation vector, rad) and the contact margin (Å).

    Orientation: the best of N_TRIALS seeded random rotations, the three best
    polished by Nelder-Mead, maximising the smallest intermolecular margin in
    the starting cell; then the smallest uniform scale (steps of 0.5 %) with
    margin >= MARGIN_LIMIT; the orientation is polished again at that scale and
    the scale search repeated once.
    """
    labels = list(local)
    rng = np.random.default_rng(SEED)
    trials = rng.normal(size=(N_TRIALS, 3))
    trials *= (rng.uniform(0, math.pi, N_TRIALS) / np.linalg.norm(trials, axis=1))[:, None]

    def margin(vec: np.ndarray, cell) -> float:
        frac = to_fractional(local, centre, rotation(vec), cell)
        return contact_margins(frac, labels, cell)[0]

    def polish(vec: np.ndarray, cell) -> np.ndarray:
        res = minimize(
            lambda v: -margin(v, cell),
            vec,
            method="Nelder-Mead",
            options={"xatol": 1e-4, "fatol": 1e-5, "maxiter": 400},
        )
        return res.x if -res.fun >= margin(vec, cell) else vec

    def smallest_scale(vec: np.ndarray) -> float:
        for scale in np.arange(0.80, 1.0001, 0.005):
            if margin(vec, _scaled(scale)) >= MARGIN_LIMIT:
                return float(scale)
        raise RuntimeError("this orientation does not pack even in the starting cell")

    cell = _scaled(1.0)
    scores = [margin(t, cell) for t in trials]
    vec = max(
        (polish(trials[i], cell) for i in np.argsort(scores)[::-1][:3]),
        key=lambda v: margin(v, cell),
    )
    scale = smallest_scale(vec)
    vec = polish(vec, _scaled(scale))
    scale = smallest_scale(vec)
    return _scaled(scale), vec, margin(vec, _scaled(scale))


# ---------------------------------------------------------------- 4. ADPs
def skew(r: np.ndarray) -> np.ndarray:
    """Matrix [r]x with [r]x w = r x w."""
    return np.array([[0, -r[2], r[1]], [r[2], 0, -r[0]], [-r[1], r[0], 0]])


def adps(cart: dict, t_diag, l_diag, cf3_lib: float) -> dict[str, np.ndarray]:
    """Cartesian U (Å²) of the heavy atoms: TL rigid body about the origin + CF3 torsion.

    U = T + [r]x L [r]x^T, with T and L diagonal in the crystal Cartesian frame
    (t_diag Å², l_diag rad²) and r the position relative to the inversion centre;
    the F atoms get, in addition, a libration of cf3_lib rad² about the C2-C1 axis
    through C1 (which keeps the rigid-bond condition along C1-F).
    """
    t, lib = np.diag(t_diag), np.diag(l_diag)
    out = {}
    axis = unit(cart["C1"] - cart["C2"])
    for label, r in cart.items():
        u = t + skew(r) @ lib @ skew(r).T
        if label.startswith("F"):
            w = skew(r - cart["C1"]) @ axis
            u = u + cf3_lib * np.outer(w, w)
        out[label] = u
    return out


# ---------------------------------------------------------------- 5. CIF
HEADER = """\
# chasm built-in example "seed case": a SYNTHETIC azido-bridged Cu(II) dimer,
# Cu2L2(N3)2, L = 1,1,1-trifluoro-7-(dimethylamino)-4-methyl-5-aza-3-hepten-2-onato
# (CF3-C(O-)=CH-C(CH3)=N-CH2-CH2-NMe2), modelled on the complex of the joint
# X-ray / polarised-neutron refinement that chasm starts from. The paper gives
# P21/n, Cu...Cu' = 5.068 A, Cu1-N3 = 2.000 A and Cu1-N5' = 2.346 A and the spin
# populations of Cu1, O1 and N1-N5, but no coordinates: the cell, coordinates
# and ADPs below are MADE UP (tools/build_seed_structure.py, restrained standard
# geometry, neutron C-H = 1.089 A) and are not the published structure.
#
# Atom labels and chemical roles (same roles as in the paper's spin table):
{roles}
#
# The centrosymmetric dimer sits on the inversion centre at the origin; the
# asymmetric unit is one half (Cu, ligand, one azide), Z = 4 Cu per cell.
# Block 1 ({xblock}): X-ray experiment at 10 K (Mo Ka), anisotropic ADPs of a
#   rigid-body TL model plus a CF3 torsional libration; H isotropic,
#   1.2 (CH, CH2) or 1.5 (CH3) x Ueq of the parent atom.
# Block 2 ({nblock}): neutron experiment at 30 K, the SAME cell
#   and coordinates with its own (larger) ADP set, built the same way. Read it
#   with chasm.crystal.read_cif(path, block="{nblock}");
#   read_cif(path) gives the X-ray block (the first one).
# f' and f'' (X-ray block): Cromer-Liberman values from gemmi at Mo Ka.
"""


def _block(
    name: str,
    cell: tuple[float, ...],
    labels: list[str],
    frac: np.ndarray,
    uiso: dict[str, float],
    ucif: dict[str, np.ndarray],
    temp: float,
    probe: str,
    wavelength: float,
    dispersion: dict[str, tuple[float, float]],
) -> str:
    """One CIF data block: cell (Å, deg), symmetry, f'/f'' (e), atoms (U in Å²), aniso loop."""
    lines = [
        f"data_{name}",
        f"_diffrn_ambient_temperature {temp}",
        f"_diffrn_radiation_probe {probe}",
        f"_diffrn_radiation_wavelength {wavelength}",
        "_chemical_formula_sum 'C9 H14 Cu F3 N5 O'",
        "_cell_formula_units_Z 4",
        "_space_group_name_H-M_alt 'P 1 21/n 1'",
        "_space_group_name_Hall '-P 2yn'",
        "_space_group_IT_number 14",
    ]
    for tag, v in zip(("a", "b", "c", "alpha", "beta", "gamma"), cell, strict=True):
        lines.append(f"_cell_{'length' if len(tag) == 1 else 'angle'}_{tag} {v:.3f}")
    lines += ["loop_", "_space_group_symop_operation_xyz"] + [f"'{op}'" for op in SYMOPS]
    if dispersion:
        lines += [
            "loop_",
            "_atom_type_symbol",
            "_atom_type_scat_dispersion_real",
            "_atom_type_scat_dispersion_imag",
        ]
        lines += [f"{el} {fp:.4f} {fpp:.4f}" for el, (fp, fpp) in dispersion.items()]
    lines += [
        "loop_",
        "_atom_site_label",
        "_atom_site_type_symbol",
        "_atom_site_fract_x",
        "_atom_site_fract_y",
        "_atom_site_fract_z",
        "_atom_site_U_iso_or_equiv",
        "_atom_site_adp_type",
        "_atom_site_occupancy",
    ]
    for i, lab in enumerate(labels):
        kind = "Uiso" if lab.startswith("H") else "Uani"
        x, y, z = frac[i]
        lines.append(
            f"{lab:<4} {element_of(lab):<2} {x:10.6f} {y:10.6f} {z:10.6f} {uiso[lab]:.5f} {kind} 1"
        )
    lines += ["loop_", "_atom_site_aniso_label"]
    lines += [f"_atom_site_aniso_U_{ij}" for ij in ("11", "22", "33", "12", "13", "23")]
    for lab in labels:
        if lab in ucif:
            lines.append(f"{lab:<4} " + " ".join(f"{v:9.6f}" for v in ucif[lab]))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- checks and main
def rigid_bond(u: dict, cart: dict, pairs) -> float:
    """Largest Hirshfeld difference |z_A² - z_B²| (Å²) over the pairs."""
    worst = 0.0
    for i, j in pairs:
        e = unit(cart[j] - cart[i])
        worst = max(worst, abs(e @ u[i] @ e - e @ u[j] @ e))
    return worst


def intramolecular_contacts(cart: dict) -> tuple[float, str, str, float]:
    """Smallest d - (r_i + r_j) (Å) in the dimer over atoms four or more bonds apart.

    Bonds: d <= r_cov,i + r_cov,j + 0.4 Å (covalent radii from gemmi). The
    second half of the dimer is the inversion image -r (labels with a prime).
    """
    names = list(cart) + [n + "'" for n in cart]
    xyz = np.array(list(cart.values()))
    xyz = np.vstack([xyz, -xyz])
    els = [element_of(n) for n in names]
    rcov = np.array([gemmi.Element(e).covalent_r for e in els])
    vdw = np.array([gemmi.Element(e).vdw_r for e in els])
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    adj = (d <= rcov[:, None] + rcov[None] + 0.4) & (d > 0)
    near = np.eye(len(names), dtype=int) + adj
    within3 = (near @ near @ near) > 0  # up to three bonds apart (1-2, 1-3, 1-4 pairs)
    m = np.where(within3, np.inf, d - (vdw[:, None] + vdw[None]))
    i, j = np.unravel_index(np.argmin(m), m.shape)
    return float(m[i, j]), names[i], names[j], float(d[i, j])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="CIF file to write")
    args = parser.parse_args(argv)

    pos = build_heavy()
    worst = max(abs(np.linalg.norm(pos[i] - pos[j]) - d) for (i, j), d in BONDS.items())
    print(f"heavy-atom restraints: largest bond deviation {worst:.4f} A")
    centre = 0.5 * (pos["N5"] + pos["N5p"])
    cu_p = 2 * centre
    print(
        f"Cu-N3 {np.linalg.norm(pos['N3']):.4f}  Cu-N5' {np.linalg.norm(pos['N5p']):.4f}  "
        f"Cu...Cu' {np.linalg.norm(cu_p):.4f} A"
    )
    print(
        f"Cu-N3-N4 {math.degrees(angle(np.zeros(3), pos['N3'], pos['N4'])):.1f}, "
        f"N3-N4-N5 {math.degrees(angle(pos['N3'], pos['N4'], pos['N5'])):.1f}, "
        f"N4-N5-Cu' {math.degrees(angle(pos['N4'], pos['N5'], cu_p)):.1f} deg"
    )
    hyd = add_hydrogens(pos)
    local = {n: v for n, v in pos.items() if n != "N5p"}
    local.update({n: v[0] for n, v in hyd.items()})
    cell, vec, margin = pack(local, centre)
    rot = rotation(vec)
    labels = list(local)
    frac = to_fractional(local, centre, rot, cell)
    m, pair = contact_margins(frac, labels, cell)
    a = cell_matrix(cell)
    vol = float(np.linalg.det(a))
    mass = 2 * sum(gemmi.Element(element_of(n)).weight for n in labels)
    print(f"cell {cell}, V = {vol:.1f} A^3, density {mass * 2 / (0.602214076 * vol):.3f} g/cm^3")
    print(
        f"smallest intermolecular d - (r_vdW sum) = {m:.3f} A ({pair[0]}...{pair[1]} "
        f"{pair[2]:.3f} A)"
    )

    cart = {n: a @ frac[i] for i, n in enumerate(labels)}
    intra = intramolecular_contacts(cart)
    print(
        f"smallest intra-dimer d - (r_vdW sum), atoms >= 4 bonds apart = {intra[0]:.3f} A "
        f"({intra[1]}...{intra[2]} {intra[3]:.3f} A)"
    )
    heavy = [n for n in labels if not n.startswith("H")]
    sets = {}
    for tag, t_diag, l_diag, cf3 in (
        ("xray", (0.0042, 0.0048, 0.0052), (1.0e-4, 1.4e-4, 1.8e-4), 0.0032),
        ("neutron", (0.0050, 0.0057, 0.0062), (1.2e-4, 1.7e-4, 2.1e-4), 0.0040),
    ):
        u = adps({n: cart[n] for n in heavy}, t_diag, l_diag, cf3)
        ueqs = {n: float(np.trace(u[n]) / 3) for n in heavy}
        uiso = dict(ueqs)
        for n, (_, parent) in hyd.items():
            factor = 1.5 if parent in ("C5", "C8", "C9") else 1.2
            uiso[n] = factor * ueqs[parent]
        ucif = {n: ucart_to_ucif(u[n], a) for n in heavy}
        bonds = [(i, j) for (i, j) in BONDS if "N5p" not in (i, j)]
        print(
            f"{tag}: Ueq {min(ueqs.values()):.4f} .. {max(ueqs.values()):.4f} A^2, "
            f"largest rigid-bond difference {rigid_bond(u, cart, bonds):.2e} A^2"
        )
        sets[tag] = (uiso, ucif)

    energy = gemmi.hc / 0.71073
    disp = {
        el: gemmi.cromer_liberman(z=gemmi.Element(el).atomic_number, energy=energy)
        for el in ("C", "H", "N", "O", "F", "Cu")
    }
    roles = "\n".join(f"#   {lab:<4} {role}" for lab, role in ROLES.items())
    roles += "\n#   H3 on C3; H5A-C on C5; H6A,B on C6; H7A,B on C7; H8A-C on C8; H9A-C on C9"
    xname, nname = "seed_cu_dimer_xray_10K", "seed_cu_dimer_neutron_30K"
    text = HEADER.format(roles=roles, xblock=xname, nblock=nname) + "\n"
    text += _block(xname, cell, labels, frac, *sets["xray"], 10, "x-ray", 0.71073, disp)
    text += "\n" + _block(nname, cell, labels, frac, *sets["neutron"], 30, "neutron", 0.832, {})
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
