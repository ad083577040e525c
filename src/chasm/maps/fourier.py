"""Fourier syntheses on a grid, residual (difference) maps and their peaks.

Conventions
-----------
chasm's structure factor (:mod:`chasm.scattering.engine`) is

    F(h) = Σ_j Σ_(R,t) f_j T_j exp[+2πi h·(R x_j + t)],

so the density it belongs to is the synthesis

    ρ(x) = (1/V) Σ_h F(h) exp(−2πi h·x),

summed over the full sphere of reflections (h and −h). A map here is that
sum with some coefficients C(h) in place of F(h); with C in electrons, ρ is in
e/Å³. The sign of the exponent is what makes the peaks of an Fc map sit on the
atoms (tested).

Symmetry of the coefficients. For an operation (S, u) of the group, the
engine's sum over the operations (R, t) runs over the products
(S R, S t + u) as well, which gives

    F(Sᵀ h) = F(h) exp(−2πi h·u),

i.e. the reflection k = Sᵀ h (in row form k = h S) has the coefficient of h
times ``exp(-2πi h·u)``, with the translation dotted into the *original*
index h. :func:`expand_to_p1` applies this to every operation, and, for the
Friedel mates, ``C(−k) = conj(C(k))`` (the condition for a real map). Where
several values reach the same index (a reflection on a symmetry element, a
list that holds equivalent reflections, both Friedel mates of anomalous
data) their mean is kept, which is the projection of the coefficients onto
the symmetric, Hermitian ones: a systematically absent reflection averages
to zero, and for anomalous data the map is the real part of the synthesis.

Scale of residual maps. :func:`residual_map` takes ``f_obs`` as |Fo| on the
scale of the data file and a factor ``scale`` such that f_obs ≈ scale·|Fc|.
When a refinement scales intensities, F²_obs ≈ k |Fc|², pass
``scale = sqrt(k)`` (or f_obs already divided by sqrt(k) and ``scale=1``).
The coefficients are (f_obs/scale − |Fc|) exp(iφc), in electrons on the
absolute scale of Fc, so the map is in e/Å³.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from chasm.blas import blas_threads

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from chasm.crystal.structure import Crystal

__all__ = [
    "FourierMap",
    "MapStats",
    "Peak",
    "expand_to_p1",
    "fc_map",
    "fo_map",
    "fourier_grid",
    "grid_shape",
    "half_sphere",
    "nearest_atom",
    "peaks",
    "residual_map",
    "residual_peaks_table",
    "synthesis_fft",
]

TWO_PI = 2.0 * np.pi

# The plane sum's products ((n_u, m) by (m, n_v), a few ms each) run on one
# OpenBLAS thread: on a busy 2-core machine a second BLAS thread that is not
# scheduled stalls each product by up to a time slice (measured at load 3: the
# demo's 76 x 76 residual plane 1.44 s with 2 threads, 0.19 s with one).

# offsets of the 3x3x3 neighbourhood and the least-squares quadratic through it
_OFFSETS = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
_DESIGN = np.column_stack(
    [
        np.ones(27),
        _OFFSETS,
        _OFFSETS**2,
        _OFFSETS[:, 0] * _OFFSETS[:, 1],
        _OFFSETS[:, 0] * _OFFSETS[:, 2],
        _OFFSETS[:, 1] * _OFFSETS[:, 2],
    ]
)
_FIT = np.linalg.pinv(_DESIGN)  # (10, 27)


# --------------------------------------------------------------------------- coefficients
def _radians(turns: np.ndarray) -> np.ndarray:
    """2π (t − round(t)) in place: the same angle, reduced to [−π, π] (cos/sin are faster there)."""
    turns -= np.rint(turns)
    turns *= TWO_PI
    return turns


def _encode(hkl: np.ndarray) -> tuple[np.ndarray, int]:
    """One int64 per index triple (for fast grouping)."""
    m = int(np.max(np.abs(hkl), initial=0)) + 1
    w = 2 * m + 1
    shifted = hkl.astype(np.int64) + m
    return (shifted[:, 0] * w + shifted[:, 1]) * w + shifted[:, 2], m


def expand_to_p1(crystal, hkl, coeffs, friedel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients of a list of reflections -> every equivalent reflection in P1.

    Parameters
    ----------
    crystal : Crystal
        Supplies the operations (R, t), x' = R x + t.
    hkl : array_like of int, shape (n, 3)
        Miller indices, typically the unique reflections (any subset is fine).
    coeffs : array_like of complex, shape (n,)
        Coefficient of each reflection (electrons for a map in e/Å³).
    friedel : bool
        Add the Friedel mates with conjugate coefficients, C(−h) = conj(C(h)),
        so that the synthesis is real. False keeps only the symmetry
        equivalents (h and −h then stay independent).

    Returns
    -------
    hkl_p1 : ndarray of int, shape (m, 3)
        Every distinct index reached, sorted.
    coeffs_p1 : ndarray of complex, shape (m,)
        ``C(Sᵀ h) = C(h) exp(−2πi h·u)`` for each operation (S, u) (module
        docstring); the mean where several values reach the same index.
    """
    h = np.asarray(hkl, dtype=int).reshape(-1, 3)
    c = np.asarray(coeffs, dtype=complex).reshape(-1)
    if len(c) != len(h):
        raise ValueError(f"{len(h)} reflections but {len(c)} coefficients")
    rot, trans = crystal.rotations, crystal.translations
    keys = np.einsum("nj,oji->oni", h, rot).reshape(-1, 3)  # k = h S (row form)
    values = (c[None, :] * np.exp(-1j * TWO_PI * (trans @ h.T))).reshape(-1)
    if friedel:
        keys = np.concatenate([keys, -keys])
        values = np.concatenate([values, np.conj(values)])
    code, _ = _encode(keys)
    _, first, group = np.unique(code, return_index=True, return_inverse=True)
    group = group.reshape(-1)
    counts = np.bincount(group)
    mean = (
        np.bincount(group, weights=values.real) + 1j * np.bincount(group, weights=values.imag)
    ) / counts
    return keys[first], mean


def half_sphere(hkl, coeffs) -> tuple[np.ndarray, np.ndarray]:
    """Fold a list of reflections onto a half sphere, for the real part of a synthesis.

    Since Re[C exp(+iθ)] = Re[conj(C) exp(−iθ)], the real part of
    Σ_h C(h) exp(−2πi h·x) is unchanged when a reflection h is replaced by −h
    with the conjugate coefficient. Every h whose first non-zero index is
    negative is flipped so, and coefficients reaching the same index are
    summed: Re Σ_h C(h) e^(−2πi h·x) = Re Σ_k C'(k) e^(−2πi k·x) exactly,
    with half the terms for a list that holds both Friedel mates. This holds
    for any coefficients (Hermitian or not), since the maps are real parts.

    Parameters
    ----------
    hkl : array_like of int, shape (n, 3)
    coeffs : array_like of complex, shape (n,)

    Returns
    -------
    hkl_half : ndarray of int, shape (m, 3)
        Distinct indices, each with its first non-zero component positive
        (and (0, 0, 0) if present), sorted.
    coeffs_half : ndarray of complex, shape (m,)
        C'(k) = Σ_(h = k) C(h) + Σ_(h = −k) conj(C(h)).
    """
    h = np.asarray(hkl, dtype=np.int64).reshape(-1, 3)
    c = np.asarray(coeffs, dtype=complex).reshape(-1)
    if len(h) == 0:
        return h.copy(), c.copy()
    lead = np.where(h[:, 0] != 0, h[:, 0], np.where(h[:, 1] != 0, h[:, 1], h[:, 2]))
    flip = lead < 0
    k = np.where(flip[:, None], -h, h)
    c = np.where(flip, np.conj(c), c)
    code, _ = _encode(k)
    _, first, group = np.unique(code, return_index=True, return_inverse=True)
    group = group.reshape(-1)
    total = np.bincount(group, weights=c.real) + 1j * np.bincount(group, weights=c.imag)
    return k[first], total


# --------------------------------------------------------------------------- grid
def _smooth_at_least(n: int, factor: int) -> int:
    """Smallest m >= n, a multiple of ``factor``, whose prime factors are 2, 3, 5."""
    m = max(int(n), 1)
    m = -(-m // factor) * factor
    while True:
        rest = m
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m
        m += factor


def grid_shape(crystal, hkl=None, spacing: float = 0.1) -> tuple[int, int, int]:
    """Grid for a synthesis: step <= ``spacing`` Å along each cell edge.

    Each size is also larger than 2|h_i|max (no aliasing of the reflections in
    ``hkl``), a multiple of the denominators of the translations along that
    axis, equal for axes that the rotations mix (so that the operations map
    grid points onto grid points), and a product of 2, 3 and 5 (fast FFT).

    Parameters
    ----------
    crystal : Crystal
    hkl : array_like of int, shape (n, 3), optional
        Reflections the grid must hold; pass the P1 list (from
        :func:`expand_to_p1`), since a rotation can move an index to another axis.
    spacing : float
        Largest grid step, Å.
    """
    lengths = np.array(crystal.cell.parameters[:3], dtype=float)
    need = np.ceil(lengths / float(spacing) - 1e-9).astype(int)
    if hkl is not None and len(hkl):
        hmax = np.max(np.abs(np.asarray(hkl, dtype=int).reshape(-1, 3)), axis=0)
        need = np.maximum(need, 2 * hmax + 1)
    factor = np.ones(3, dtype=int)
    for t in crystal.translations:
        for i in range(3):
            den = Fraction(float(t[i])).limit_denominator(24).denominator
            factor[i] = math.lcm(int(factor[i]), den)
    # axes mixed by a rotation share one size (union-find over three items)
    parent = [0, 1, 2]

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for r in crystal.rotations:
        for i in range(3):
            for j in range(3):
                if i != j and r[i, j] != 0:
                    parent[root(i)] = root(j)
    shape = [0, 0, 0]
    for i in range(3):
        members = [j for j in range(3) if root(j) == root(i)]
        f = math.lcm(*[int(factor[j]) for j in members])
        shape[i] = _smooth_at_least(max(int(need[j]) for j in members), f)
    return tuple(shape)


@dataclass
class MapStats:
    """Summary of the grid values of a map, e/Å³.

    Attributes
    ----------
    min, max : float
        Extreme grid values.
    mean : float
        Mean over the cell (F(000)/V for a synthesis that includes F(000)).
    rms : float
        Root-mean-square deviation from the mean (the "sigma" of the map).
    """

    min: float
    max: float
    mean: float
    rms: float


@dataclass(eq=False)
class FourierMap:
    """A Fourier synthesis sampled on a grid over the unit cell.

    Attributes
    ----------
    values : ndarray, shape (nx, ny, nz)
        ρ at the fractional points (i/nx, j/ny, k/nz), e/Å³ for coefficients
        in electrons.
    crystal : Crystal
        Cell and symmetry.
    hkl : ndarray of int, shape (m, 3)
        The P1 (full-sphere) reflections of the synthesis.
    coeffs : ndarray of complex, shape (m,)
        Their coefficients; ``evaluate`` sums them directly.

    Notes
    -----
    The exact evaluations use these reflections folded onto a half sphere,
    computed once and kept while ``hkl`` and ``coeffs`` are the same arrays:
    assign new arrays to change the synthesis (those made by
    :func:`fourier_grid` are read-only).
    """

    values: np.ndarray
    crystal: object
    hkl: np.ndarray
    coeffs: np.ndarray
    _half_cache: tuple | None = field(default=None, init=False, repr=False)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Grid shape (nx, ny, nz)."""
        return tuple(int(n) for n in self.values.shape)

    @property
    def steps(self) -> np.ndarray:
        """Grid step along a, b, c, Å."""
        return np.array(self.crystal.cell.parameters[:3], dtype=float) / np.array(self.grid)

    def grid_fractional(self, index) -> np.ndarray:
        """Fractional coordinates (..., 3) of grid indices (..., 3)."""
        return np.asarray(index, dtype=float) / np.array(self.grid, dtype=float)

    def _half(self) -> tuple[np.ndarray, np.ndarray]:
        """The stored reflections folded onto a half sphere (cached; see :func:`half_sphere`)."""
        cache = self._half_cache
        if cache is None or cache[0] is not self.hkl or cache[1] is not self.coeffs:
            cache = self._half_cache = (self.hkl, self.coeffs, *half_sphere(self.hkl, self.coeffs))
        return cache[2], cache[3]

    def evaluate(self, frac_points, block: int = 4_000_000) -> np.ndarray:
        """ρ at arbitrary points by direct summation of the stored coefficients (exact).

        The reflections are first folded onto a half sphere (:func:`half_sphere`),
        and the real part is summed in real arithmetic, cos θ·Re C + sin θ·Im C.

        Parameters
        ----------
        frac_points : array_like, shape (..., 3)
            Fractional coordinates.
        block : int
            Points x reflections handled at once (bounds the memory).

        Returns
        -------
        ndarray, shape (...)
            e/Å³.
        """
        x = np.asarray(frac_points, dtype=float)
        shape = x.shape[:-1]
        x = x.reshape(-1, 3)
        x = x - np.floor(x)  # h integer: the phases are periodic, smaller arguments round less
        out = np.empty(len(x))
        h, c = self._half()
        h = h.astype(float)
        step = max(1, block // max(len(h), 1))
        for i0 in range(0, len(x), step):
            theta = _radians(x[i0 : i0 + step] @ h.T)
            out[i0 : i0 + step] = np.cos(theta) @ c.real + np.sin(theta) @ c.imag
        return out.reshape(shape) / self.crystal.volume

    def evaluate_plane(self, origin, du, dv, u, v, block: int = 8192) -> np.ndarray:
        """ρ on the plane mesh x_ij = origin + u_i du + v_j dv by separable phases (exact).

        Since exp(−2πi h·x_ij) = exp(−2πi h·origin) exp(−2πi u_i h·du)
        exp(−2πi v_j h·dv), the map is one table of phases per direction and
        a matrix product: ρ_ij = Re Σ_h P_ih Q_jh with P_ih = exp(−2πi u_i h·du)
        and Q_jh = C_h exp(−2πi h·origin) exp(−2πi v_j h·dv), summed in real
        arithmetic over the half sphere (:func:`half_sphere`). The cost is
        (n_u + n_v) m exponentials and 4 n_u n_v m flops instead of n_u n_v m
        exponentials for the point-by-point sum.

        Parameters
        ----------
        origin, du, dv : array_like, shape (3,)
            Fractional coordinates of the mesh origin and of the two mesh
            directions (any lengths, not necessarily grid-aligned).
        u, v : array_like, shape (n_u,) and (n_v,)
            Mesh coordinates along ``du`` and ``dv`` (any values).
        block : int
            Reflections handled at once (bounds the memory:
            16 (n_u + n_v) block bytes).

        Returns
        -------
        ndarray, shape (n_u, n_v)
            e/Å³.
        """
        o = np.asarray(origin, dtype=float).reshape(3)
        o = o - np.floor(o)
        du = np.asarray(du, dtype=float).reshape(3)
        dv = np.asarray(dv, dtype=float).reshape(3)
        u = np.asarray(u, dtype=float).reshape(-1)
        v = np.asarray(v, dtype=float).reshape(-1)
        h, c = self._half()
        h = h.astype(float)
        out = np.zeros((len(u), len(v)))
        block = max(1, int(block))
        with blas_threads(1):  # see the note at TWO_PI
            self._plane_sum(out, h, c, o, du, dv, u, v, block)
        return out / self.crystal.volume

    @staticmethod
    def _plane_sum(out, h, c, o, du, dv, u, v, block: int) -> None:
        """Add Re Σ_h P_ih Q_jh over reflection blocks to ``out`` (:meth:`evaluate_plane`)."""
        for k0 in range(0, len(h), block):
            hk, ck = h[k0 : k0 + block], c[k0 : k0 + block]
            # Q_hj = C_h exp(−iφ_hj), φ = 2π h·(origin + v_j dv), in real arithmetic, (m, n_v)
            phi = _radians((hk @ o)[:, None] + (hk @ dv)[:, None] * v[None, :])
            cos_p, sin_p = np.cos(phi), np.sin(phi)
            cr, ci = ck.real[:, None], ck.imag[:, None]
            q_re = cr * cos_p + ci * sin_p
            q_im = ci * cos_p - cr * sin_p
            theta = _radians(u[:, None] * (hk @ du)[None, :])  # (n_u, m)
            # Re[(cos θ − i sin θ)(Q_re + i Q_im)] = cos θ Q_re + sin θ Q_im
            out += np.cos(theta) @ q_re
            out += np.sin(theta) @ q_im

    def derivatives(self, frac: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """ρ, its gradient and Hessian with respect to fractional coordinates at one point.

        Returns
        -------
        value : float
            e/Å³.
        gradient : ndarray, shape (3,)
            ∂ρ/∂x_i, e/Å³ per cell fraction.
        hessian : ndarray, shape (3, 3)
            ∂²ρ/∂x_i∂x_j.
        """
        h, c = self._half()
        h = h.astype(float)
        x = np.asarray(frac, dtype=float)
        term = c * np.exp(-1j * _radians(h @ (x - np.floor(x))))
        v = self.crystal.volume
        value = term.sum().real / v
        gradient = ((-1j * TWO_PI) * (h.T @ term)).real / v
        hessian = (-(TWO_PI**2) * np.einsum("ni,nj,n->ij", h, h, term)).real / v
        return float(value), gradient, hessian

    def value_at(self, frac_points) -> np.ndarray:
        """ρ at arbitrary points by trilinear interpolation of the grid (fast, approximate).

        Parameters
        ----------
        frac_points : array_like, shape (..., 3)
            Fractional coordinates (any cell; the grid is periodic).

        Returns
        -------
        ndarray, shape (...)
            e/Å³.
        """
        x = np.asarray(frac_points, dtype=float)
        n = np.array(self.grid)
        g = x * n
        i0 = np.floor(g).astype(int)
        w = g - i0
        out = np.zeros(x.shape[:-1])
        for corner in np.ndindex(2, 2, 2):
            c = np.array(corner)
            idx = (i0 + c) % n
            weight = np.prod(np.where(c == 1, w, 1.0 - w), axis=-1)
            out += weight * self.values[idx[..., 0], idx[..., 1], idx[..., 2]]
        return out

    def stats(self) -> MapStats:
        """Minimum, maximum, mean and rms deviation of the grid values (e/Å³)."""
        v = self.values
        mean = float(v.mean())
        return MapStats(
            min=float(v.min()),
            max=float(v.max()),
            mean=mean,
            rms=float(np.sqrt(np.mean((v - mean) ** 2))),
        )


def fourier_grid(
    crystal, hkl, coeffs, grid=None, spacing: float = 0.1, friedel: bool = True
) -> FourierMap:
    """Synthesis ρ(x) = (1/V) Σ_h C(h) exp(−2πi h·x) over the full sphere, on a grid.

    Parameters
    ----------
    crystal : Crystal
    hkl : array_like of int, shape (n, 3)
        Reflections (unique or not; expanded with :func:`expand_to_p1`).
        Include (0, 0, 0) to give the map its mean F(000)/V.
    coeffs : array_like of complex, shape (n,)
        Coefficients in electrons.
    grid : tuple of 3 int, optional
        Grid shape; by default :func:`grid_shape` for ``spacing``.
    spacing : float
        Largest grid step in Å when ``grid`` is not given.
    friedel : bool
        Passed to :func:`expand_to_p1`; the map is the real part of the sum.

    Returns
    -------
    FourierMap
        Values in e/Å³.

    Raises
    ------
    ValueError
        If an explicit grid is too coarse for the reflections (n_i <= 2|h_i|max),
        which would alias them.
    """
    hkl_p1, c_p1 = expand_to_p1(crystal, hkl, coeffs, friedel=friedel)
    if grid is None:
        shape = grid_shape(crystal, hkl_p1, spacing)
    else:
        shape = tuple(int(n) for n in grid)
        hmax = np.max(np.abs(hkl_p1), axis=0, initial=0)
        if len(shape) != 3 or any(n <= 2 * m for n, m in zip(shape, hmax, strict=True)):
            raise ValueError(
                f"grid {shape} is too coarse for |h|max = {tuple(int(m) for m in hmax)}: "
                "each size must exceed 2|h|max"
            )
    values = synthesis_fft(hkl_p1, c_p1, shape) / crystal.volume
    hkl_p1.flags.writeable = False  # FourierMap keeps a folded copy (see its Notes)
    c_p1.flags.writeable = False
    return FourierMap(values=values, crystal=crystal, hkl=hkl_p1, coeffs=c_p1)


def synthesis_fft(hkl, coeffs, shape) -> np.ndarray:
    """Re Σ_h C(h) exp(−2πi h·j/n) at every grid point j of a grid of this shape, by a real FFT.

    The coefficients are folded onto a half sphere (:func:`half_sphere`) and
    spread back as the Hermitian spectrum H(k) = C'(k)/2, H(−k) = conj C'(k)/2
    (H(0) = Re C'(0)), whose synthesis is real and equals the real part asked
    for; numpy's inverse real FFT of conj(H) over the half spectrum
    (last index 0..n3/2) times the number of points is that synthesis. This is
    half the work of a complex FFT and holds for any coefficients.

    Parameters
    ----------
    hkl : array_like of int, shape (n, 3)
        Reflections; each |h_i| < n_i / 2 (no aliasing).
    coeffs : array_like of complex, shape (n,)
    shape : tuple of 3 int

    Returns
    -------
    ndarray, shape ``shape``
        The sum (no 1/V factor).
    """
    shape = tuple(int(n) for n in shape)
    k, c = half_sphere(hkl, coeffs)
    zero = np.all(k == 0, axis=1)
    c0 = float(np.sum(c[zero].real))
    k, c = k[~zero], c[~zero]
    keys = np.concatenate([k, -k]) % np.array(shape)
    spec = np.concatenate([np.conj(c), c]) * 0.5  # conj(H) at k and at −k
    half = keys[:, 2] <= shape[2] // 2
    box = np.zeros((shape[0], shape[1], shape[2] // 2 + 1), dtype=complex)
    box[keys[half, 0], keys[half, 1], keys[half, 2]] = spec[half]
    box[0, 0, 0] += c0
    return np.fft.irfftn(box, s=shape, axes=(0, 1, 2)) * float(np.prod(shape))


# --------------------------------------------------------------------------- map types
def _resolution_mask(crystal, hkl: np.ndarray, smax: float | None) -> np.ndarray:
    if smax is None:
        return np.ones(len(hkl), dtype=bool)
    s = 0.5 * np.linalg.norm(hkl.astype(float) @ crystal.B.T, axis=1)
    return s <= smax


def _map_from(crystal, hkl, coeffs, smax, spacing, grid) -> FourierMap:
    h = np.asarray(hkl, dtype=int).reshape(-1, 3)
    keep = _resolution_mask(crystal, h, smax)
    return fourier_grid(crystal, h[keep], np.asarray(coeffs)[keep], grid=grid, spacing=spacing)


def residual_map(
    crystal: Crystal,
    hkl: ArrayLike,
    f_obs: ArrayLike,
    f_calc_complex: ArrayLike,
    scale: float = 1.0,
    smax: float | None = None,
    spacing: float = 0.1,
    grid: tuple[int, int, int] | None = None,
) -> FourierMap:
    """Difference (residual) density with coefficients (Fo/scale − |Fc|) exp(iφc).

    Parameters
    ----------
    crystal : Crystal
    hkl : array_like of int, shape (n, 3)
        The measured reflections (unique, e.g. merged; F(000) is not used).
    f_obs : array_like, shape (n,)
        |Fo| on the scale of the data, electrons·scale (e.g. sqrt(max(F², 0))).
    f_calc_complex : array_like of complex, shape (n,)
        Fc on the absolute scale, electrons (the engine's F).
    scale : float
        F scale with f_obs ≈ scale·|Fc|; for an intensity scale k
        (F²_obs ≈ k |Fc|²) pass sqrt(k). Use 1 when f_obs is already divided.
    smax : float, optional
        Resolution cut-off sinθ/λ, Å⁻¹ (reflections beyond it are left out).
    spacing : float
        Largest grid step, Å.
    grid : tuple of 3 int, optional
        Explicit grid shape.

    Returns
    -------
    FourierMap
        Δρ in e/Å³ (mean zero).
    """
    fc = np.asarray(f_calc_complex, dtype=complex).reshape(-1)
    fo = np.asarray(f_obs, dtype=float).reshape(-1) / float(scale)
    return _map_from(crystal, hkl, (fo - np.abs(fc)) * _phase(fc), smax, spacing, grid)


def fo_map(
    crystal, hkl, f_obs, f_calc_complex, scale: float = 1.0, smax=None, spacing=0.1, grid=None
) -> FourierMap:
    """Observed density with coefficients (Fo/scale) exp(iφc); arguments as :func:`residual_map`."""
    fc = np.asarray(f_calc_complex, dtype=complex).reshape(-1)
    fo = np.asarray(f_obs, dtype=float).reshape(-1) / float(scale)
    return _map_from(crystal, hkl, fo * _phase(fc), smax, spacing, grid)


def fc_map(crystal, hkl, f_calc_complex, smax=None, spacing=0.1, grid=None) -> FourierMap:
    """Model density with coefficients Fc (electrons); include (0, 0, 0) for the absolute level."""
    return _map_from(crystal, hkl, f_calc_complex, smax, spacing, grid)


def _phase(fc: np.ndarray) -> np.ndarray:
    """exp(iφ) of Fc (1 where Fc = 0, e.g. a systematic absence)."""
    mag = np.abs(fc)
    return np.where(mag > 0, fc / np.where(mag > 0, mag, 1.0), 1.0)


# --------------------------------------------------------------------------- peaks
@dataclass
class Peak:
    """A local extremum of a map.

    Attributes
    ----------
    frac : ndarray, shape (3,)
        Fractional position (in [0, 1)).
    cart : ndarray, shape (3,)
        Cartesian position, Å.
    height : float
        Map value at the refined position, e/Å³ (negative for a hole).
    atom : str or None
        Label of the nearest atom (any symmetry image); None without atoms.
    distance : float
        Distance to that atom image, Å (NaN without atoms).
    """

    frac: np.ndarray
    cart: np.ndarray
    height: float
    atom: str | None
    distance: float


def _images(crystal, frac: np.ndarray) -> np.ndarray:
    """Symmetry images R x + t of one point, (n_ops, 3)."""
    return crystal.rotations @ frac + crystal.translations


def _min_image_distance(crystal, frac: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Shortest distance (Å) from ``frac`` to each of ``points`` (..., 3) over lattice shifts."""
    d = points - frac
    d = d - np.round(d)
    cart = (d[..., None, :] + _OFFSETS) @ crystal.A.T
    return np.min(np.linalg.norm(cart, axis=-1), axis=-1)


def nearest_atom(crystal, frac) -> tuple[str | None, float]:
    """Label of the atom with the nearest symmetry image to a point, and the distance in Å."""
    if not crystal.atoms:
        return None, math.nan
    x = np.array([a.xyz for a in crystal.atoms], dtype=float)
    images = np.einsum("oij,aj->oai", crystal.rotations, x) + crystal.translations[:, None, :]
    dist = _min_image_distance(crystal, np.asarray(frac, dtype=float), images)  # (o, a)
    per_atom = dist.min(axis=0)
    k = int(np.argmin(per_atom))
    return crystal.atoms[k].label, float(per_atom[k])


def _canonical_image(crystal, atoms: Crystal, frac: np.ndarray) -> np.ndarray:
    """The symmetry image of a point nearest to an atom of the asymmetric unit, in [0, 1).

    Equivalent grid points of a map have equal values to rounding, so which
    image a peak search meets first is chance; this choice is not (ties: the
    lexicographically smallest image).
    """
    images = np.array([_wrap(x) for x in _images(crystal, frac)])
    if not atoms.atoms:
        return images[np.lexsort(images.T[::-1])[0]]
    x = np.array([a.xyz for a in atoms.atoms], dtype=float)
    dist = _min_image_distance(atoms, images[:, None, :], x[None, :, :]).min(axis=1)
    order = np.lexsort((*images.T[::-1], np.round(dist, 6)))
    return images[order[0]]


def _wrap(frac: np.ndarray) -> np.ndarray:
    """Fractional coordinates in [0, 1), with values within 1e-9 of an integer set to it."""
    nearest = np.round(frac)
    return np.where(np.abs(frac - nearest) < 1e-9, nearest, frac) % 1.0


def _local_extrema(values: np.ndarray, sign: float) -> np.ndarray:
    """Grid indices (m, 3) where sign·ρ >= all 26 periodic neighbours and sign·ρ > 0."""
    v = sign * values
    mask = v > 0
    for off in _OFFSETS:
        if not off.any():
            continue
        mask &= v >= np.roll(v, tuple(-off), axis=(0, 1, 2))
    return np.argwhere(mask)


def _quadratic_refine(values: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, float]:
    """Offset (grid units) and value of the extremum of the quadratic fitted to 3x3x3 points."""
    n = np.array(values.shape)
    idx = (index + _OFFSETS) % n
    b = _FIT @ values[idx[:, 0], idx[:, 1], idx[:, 2]]
    g = b[1:4]
    hess = np.array(
        [[2 * b[4], b[7], b[8]], [b[7], 2 * b[5], b[9]], [b[8], b[9], 2 * b[6]]], dtype=float
    )
    try:
        delta = -np.linalg.solve(hess, g)
    except np.linalg.LinAlgError:
        delta = np.zeros(3)
    if not np.all(np.abs(delta) <= 1.0):
        delta = np.zeros(3)
        return delta, float(values[tuple(index)])
    return delta, float(b[0] + g @ delta + 0.5 * delta @ hess @ delta)


def _newton_refine(fmap: FourierMap, frac: np.ndarray, sign: float, limit: float):
    """Extremum of the exact series near ``frac`` (Newton steps, each at most ``limit``)."""
    x = frac.copy()
    for _ in range(8):
        _, grad, hess = fmap.derivatives(x)
        if np.any(np.linalg.eigvalsh(sign * hess) >= 0):
            break  # not a clean extremum here: keep the last point
        step = -np.linalg.solve(hess, grad)
        if np.max(np.abs(step)) > limit:
            break
        x = x + step
        if np.max(np.abs(step)) < 1e-9:
            break
    value = float(fmap.evaluate(x))
    return x, value


def peaks(
    fmap: FourierMap,
    n: int = 10,
    min_height: float | None = None,
    crystal: Crystal | None = None,
    kind: str = "both",
    exact: bool = False,
) -> list[Peak]:
    """Highest maxima and deepest minima of a map, one per symmetry-equivalent set.

    Candidates are grid points not lower (not higher, for minima) than their 26
    periodic neighbours. Each is refined by the extremum of the least-squares
    quadratic through its 3x3x3 neighbourhood (or, with ``exact``, further by
    Newton steps on the Fourier series itself). A candidate is dropped when it
    lies within 1.5 grid steps of a symmetry image of a peak already kept.

    Parameters
    ----------
    fmap : FourierMap
    n : int
        Number of maxima and number of minima to return.
    min_height : float, optional
        Keep only extrema with |height| >= this, e/Å³.
    crystal : Crystal, optional
        Atoms for the nearest-atom column (default: the map's crystal).
    kind : {"both", "positive", "negative"}
        Which extrema.
    exact : bool
        Refine positions and heights on the exact Fourier series.

    Returns
    -------
    list of Peak
        Maxima by decreasing height, then minima by increasing height.
    """
    if kind not in ("both", "positive", "negative"):
        raise ValueError(f"kind must be 'both', 'positive' or 'negative', not {kind!r}")
    crystal = fmap.crystal if crystal is None else crystal
    shape = np.array(fmap.grid)
    tolerance = 1.5 * float(np.max(fmap.steps))
    signs = {"both": (1.0, -1.0), "positive": (1.0,), "negative": (-1.0,)}[kind]
    found: list[Peak] = []
    for sign in signs:
        cand = _local_extrema(fmap.values, sign)
        heights = fmap.values[cand[:, 0], cand[:, 1], cand[:, 2]]
        kept: list[np.ndarray] = []
        refined = []
        for k in np.argsort(-sign * heights):
            if len(refined) >= n:
                break
            delta, height = _quadratic_refine(fmap.values, cand[k])
            frac = (cand[k] + delta) / shape
            if exact:
                frac, height = _newton_refine(fmap, frac, sign, 1.0 / float(np.min(shape)))
            frac = _wrap(frac)
            if min_height is not None and sign * height < min_height:
                continue
            if kept:
                images = _images(fmap.crystal, frac)
                dist = _min_image_distance(fmap.crystal, np.array(kept)[:, None, :], images)
                if np.min(dist) < tolerance:
                    continue
            kept.append(frac)
            refined.append((frac, height))
        refined.sort(key=lambda p: -sign * p[1])
        for frac, height in refined:
            frac = _canonical_image(fmap.crystal, crystal, frac)
            label, dist = nearest_atom(crystal, frac)
            found.append(Peak(frac, crystal.frac_to_cart(frac), height, label, dist))
    return found


def residual_peaks_table(peak_list: list[Peak]) -> str:
    """Fixed-width listing: number, height e/Å³, fractional x y z, nearest atom, distance Å."""
    lines = [
        f"{'#':>3} {'height':>8} {'x':>8} {'y':>8} {'z':>8}  {'atom':<8} {'d/Å':>6}",
    ]
    for k, p in enumerate(peak_list, start=1):
        atom = p.atom if p.atom is not None else "-"
        dist = f"{p.distance:6.3f}" if math.isfinite(p.distance) else f"{'-':>6}"
        x, y, z = p.frac
        lines.append(f"{k:>3} {p.height:8.3f} {x:8.4f} {y:8.4f} {z:8.4f}  {atom:<8} {dist}")
    return "\n".join(lines) + "\n"
