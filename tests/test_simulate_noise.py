"""Noise models and reflection lists of chasm.simulate."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from chasm.crystal import Atom, Crystal, read_cif
from chasm.io.shelx_hkl import stol
from chasm.simulate import (
    PND_NOISE,
    UND_NOISE,
    XRAY_NOISE,
    FlippingRatioNoise,
    IntensityNoise,
    lowest_angle,
    observe_f2,
    strongest,
    unique_reflections,
)

N_DRAWS = 40000


def _pull_stats(pulls: np.ndarray) -> tuple[float, float]:
    return float(pulls.mean()), float(pulls.std(ddof=1))


def _check_pulls(pulls: np.ndarray) -> None:
    """Mean 0 within 3/sqrt(n) and standard deviation 1 within 2 %."""
    mean, sd = _pull_stats(pulls)
    assert abs(mean) < 3.0 / np.sqrt(pulls.size), mean
    assert abs(sd - 1.0) < 0.02, sd


def _true_f2(rng: np.random.Generator, n: int, top: float) -> np.ndarray:
    """True F² spread over many decades (log-uniform between 0.01 and top), some zero."""
    f2 = 10.0 ** rng.uniform(-2.0, np.log10(top), n)
    f2[::50] = 0.0
    return f2


@pytest.mark.parametrize("noise, top", [(XRAY_NOISE, 1e5), (UND_NOISE, 1e5)])
def test_intensity_pulls(noise, top):
    truth = _true_f2(np.random.default_rng(1), N_DRAWS, top)
    obs, sigma = noise.draw(truth, np.random.default_rng(2))
    _check_pulls((obs - truth) / sigma)


def test_intensity_pulls_with_scale():
    truth = _true_f2(np.random.default_rng(3), N_DRAWS, 1e4)
    k = 37.5
    obs, sigma = observe_f2(truth, k, np.random.default_rng(4))
    _check_pulls((obs - k * truth) / sigma)


def test_intensity_noise_at_one_reflection():
    """Many draws of one reflection scatter with the variance σ² the model gives."""
    noise = IntensityNoise(gain=0.5, background=10.0, relative=0.02)
    truth = np.full(N_DRAWS, 250.0)
    obs, sigma = noise.draw(truth, 5)
    assert np.ptp(sigma) == 0.0
    # counting part (250 + 10) / 0.5 = 520, relative part (0.02 * 250)^2 = 25
    assert sigma[0] ** 2 == pytest.approx(545.0)
    _check_pulls((obs - truth) / sigma)


def test_intensity_noise_limits():
    noise = IntensityNoise(gain=2.0, background=8.0, relative=0.01)
    # no signal: only the background's counting noise
    assert noise.sigma(0.0) == pytest.approx(2.0)
    # very strong reflections: I/σ tends to 1/relative
    big = 1e12
    assert big / noise.sigma(big) == pytest.approx(100.0, rel=1e-5)
    # counting statistics alone: σ grows as sqrt(F²)
    pure = IntensityNoise(gain=4.0, background=0.0, relative=0.0)
    assert pure.sigma([1.0, 4.0, 100.0]) == pytest.approx([0.5, 1.0, 5.0])


def test_scale_does_not_change_signal_to_noise():
    truth = _true_f2(np.random.default_rng(6), 500, 1e4)
    obs1, s1 = observe_f2(truth, 1.0, 11)
    obs7, s7 = observe_f2(truth, 7.0, 11)
    assert np.allclose(obs7, 7.0 * obs1, rtol=1e-14)
    assert np.allclose(s7, 7.0 * s1, rtol=1e-14)


def test_default_high_resolution_signal_to_noise():
    """The X-ray default gives a realistic I/σ (3 to 10) for weak high-angle F² of 10-200 e²."""
    ios = np.array([10.0, 50.0, 200.0]) / XRAY_NOISE.sigma([10.0, 50.0, 200.0])
    assert np.all(np.diff(ios) > 0)
    assert 0.5 < ios[0] < 3.0 and 3.0 < ios[2] < 15.0


def test_flipping_ratio_pulls():
    rng = np.random.default_rng(8)
    truth = rng.uniform(0.7, 1.4, N_DRAWS)
    obs, sigma = PND_NOISE.draw(truth, np.random.default_rng(9))
    assert np.allclose(sigma, PND_NOISE.relative * truth)
    _check_pulls((obs - truth) / sigma)
    floored = FlippingRatioNoise(relative=0.005, floor=0.01)
    obs, sigma = floored.draw(truth, 10)
    assert np.all(sigma >= 0.01)
    _check_pulls((obs - truth) / sigma)
    assert FlippingRatioNoise(relative=0.0, floor=0.003).sigma([0.9, 1.2]) == pytest.approx(0.003)


def test_same_seed_same_data():
    truth = _true_f2(np.random.default_rng(12), 1000, 1e4)
    a = XRAY_NOISE.draw(truth, 2024)[0]
    b = XRAY_NOISE.draw(truth, np.random.default_rng(2024))[0]
    c = XRAY_NOISE.draw(truth, 2025)[0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    ratios = np.linspace(0.8, 1.2, 50)
    assert np.array_equal(PND_NOISE.draw(ratios, 3)[0], PND_NOISE.draw(ratios, 3)[0])
    # one generator used twice gives two different realisations
    rng = np.random.default_rng(4)
    assert not np.array_equal(PND_NOISE.draw(ratios, rng)[0], PND_NOISE.draw(ratios, rng)[0])


def test_bad_parameters():
    with pytest.raises(ValueError):
        IntensityNoise(gain=0.0, background=1.0, relative=0.01)
    with pytest.raises(ValueError):
        XRAY_NOISE.sigma([-1.0])
    with pytest.raises(ValueError):
        FlippingRatioNoise(relative=0.0, floor=0.0)
    with pytest.raises(ValueError):
        PND_NOISE.sigma([0.0])
    with pytest.raises(ValueError):
        observe_f2([1.0], 0.0, 1)


# ----------------------------------------------------------------------------- reflections
BASE = 1000  # larger than any |index| of the tests: one integer code per h


def _class_key(rotations: np.ndarray, hkl: np.ndarray) -> np.ndarray:
    """Largest code of the members ±Rᵀh of each h's Laue-equivalence class."""
    images = np.einsum("kji,nj->kni", rotations, hkl)
    members = np.concatenate([images, -images]) + BASE
    return ((members[..., 0] * 2 * BASE + members[..., 1]) * 2 * BASE + members[..., 2]).max(0)


def _brute_force_unique(crystal, smax: float) -> set:
    """Keys of the Laue-equivalence classes of non-absent h with 0 < s <= smax.

    Every h in a box that holds the sphere (|h_i| <= 2 smax |a_i|); absent
    when some operation (R, t) with Rᵀh = h has h·t non-integer; h and all
    ±Rᵀh merged into one class.
    """
    reach = np.floor(2.0 * smax * np.linalg.norm(crystal.A, axis=0)).astype(int)
    axes = [np.arange(-r, r + 1) for r in reach]
    h = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    s = stol(h, crystal)
    h = h[(s > 0) & (s <= smax)]
    images = np.einsum("kji,nj->kni", crystal.rotations, h)
    fixed = np.all(images == h[None], axis=-1)
    phase = np.einsum("ni,ki->kn", h, crystal.translations)
    absent = np.any(fixed & (np.abs(phase - np.round(phase)) > 1e-6), axis=0)
    return set(_class_key(crystal.rotations, h[~absent]).tolist())


def _seed():
    return read_cif(resources.files("chasm.examples") / "seed_cu_dimer.cif")


def _crystals():
    atom = [Atom("C1", "C", [0.1, 0.2, 0.3], uiso=0.01)]
    return [
        ("seed P21/n", _seed(), 0.61),
        (
            "I 41/a (centred, 4/m)",
            Crystal.from_parts((7.1, 7.1, 15.3, 90, 90, 90), "I 41/a", atom),
            0.73,
        ),
        (
            "P 61 2 2 (6/mmm, screw)",
            Crystal.from_parts((6.3, 6.3, 9.7, 90, 90, 120), "P 61 2 2", atom),
            0.66,
        ),
        (
            "F d -3 m (cubic, F)",
            Crystal.from_parts((9.2, 9.2, 9.2, 90, 90, 90), "F d -3 m", atom),
            0.81,
        ),
    ]


@pytest.mark.parametrize("name, crystal, smax", _crystals(), ids=[c[0] for c in _crystals()])
def test_unique_reflections_match_brute_force(name, crystal, smax):
    hkl = unique_reflections(crystal, smax)
    keys = _brute_force_unique(crystal, smax)
    assert len(hkl) == len(keys), name
    mine = _class_key(crystal.rotations, hkl)
    assert len(set(mine.tolist())) == len(hkl)  # no two equivalent
    assert set(mine.tolist()) == keys  # the same classes, none absent
    s = stol(hkl, crystal)
    assert np.all(np.diff(s) >= -1e-12) and s.max() <= smax and s.min() > 0


def test_unique_reflections_shell():
    crystal = _seed()
    inner = unique_reflections(crystal, 0.3)
    shell = unique_reflections(crystal, 0.5, smin=0.3)
    assert len(inner) + len(shell) == len(unique_reflections(crystal, 0.5))
    assert stol(shell, crystal).min() > 0.3


def test_pnd_subsets():
    crystal = _seed()
    hkl = unique_reflections(crystal, 0.5)
    low = lowest_angle(hkl, crystal, 40)
    rest = np.array([h for h in hkl.tolist() if h not in low.tolist()])
    assert len(low) == 40 and len(rest) == len(hkl) - 40
    assert stol(low, crystal).max() <= stol(rest, crystal).min()
    amplitude = np.random.default_rng(0).normal(size=len(hkl)) + 1j * 0.1
    top = strongest(hkl, amplitude, 25)
    rows = [hkl.tolist().index(h) for h in top.tolist()]
    chosen = np.abs(amplitude[rows])
    assert np.all(np.diff(chosen) <= 0)
    others = np.delete(np.abs(amplitude), rows)
    assert chosen.min() >= others.max()
    assert len(strongest(hkl, amplitude, 10**6)) == len(hkl)
