"""Reduced pull study: the Hansen-Coppens X-ray refinement recovers a known model.

The full study (20 noise realisations to sinθ/λ = 1.1 Å⁻¹) is
``python validation/pull_study.py``, with its figures in docs/validation.md.
Here 3 realisations of the same urea model at sinθ/λ ≤ 1.0 Å⁻¹ (about
n = 3 × 65 = 195 pulls) must still look like draws from N(0, 1).

Bounds, derived from the sample size (seeds are fixed, so the test is
deterministic; the bounds say how unlucky another seed would have to be):

* max |pull| ≤ 4: P(|z| > 4) = 6.3e-5, so for 195 normal pulls the chance of
  one beyond 4 is 1.2 %. A 3-su bound would fail 41 % of seeds
  (1 − 0.9973^195), which is why the issue's "within 3 su" is not asserted
  per pull here (docs/validation.md discusses how to read it).
* |pooled mean| ≤ 0.5: its standard error is 1/sqrt(195) = 0.072 for
  independent pulls; the pulls of one refinement are correlated, which
  can inflate that up to sqrt(65) = 8 times in the worst case of all 65
  fully correlated (0.58), but the full study measured the between-realisation
  error at 0.7 times the naive one, so 0.5 is about 7 standard errors.
* 0.6 ≤ pooled sd ≤ 1.4: the sd of n normal draws has standard error
  1/sqrt(2(n − 1)) = 0.051; ±0.4 is 8 of those, and 4 of the
  between-realisation error of the full study (0.039 for 20 realisations,
  i.e. 0.10 for 3), which includes the correlations.
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validation"))

import pull_study as ps  # noqa: E402

N_REAL, SMAX, SEED = 3, 1.0, 7


@pytest.fixture(scope="module")
def study():
    results = ps.run_study(ps.UREA, N_REAL, SMAX, seed=SEED)
    return results, ps.summarise(results)


def test_every_refinement_converges_and_keeps_the_constraints(study):
    results, _ = study
    for r in results:
        assert r.converged
        assert r.constraint_residual <= 1e-10
        # chi2/N of a correct fit is (N - n)/N on average, sd sqrt(2/N)
        expected = (r.n_obs - len(r.names)) / r.n_obs
        assert abs(r.chi2_per_obs - expected) <= 5 * math.sqrt(2.0 / r.n_obs)


def test_pulls_look_standard_normal(study):
    _, s = study
    assert s.n == N_REAL * len(s.names) >= 150
    assert s.max_abs <= 4.0
    assert abs(s.mean) <= 0.5
    assert 0.6 <= s.sd <= 1.4


def test_the_refinement_moved_the_parameters(study):
    """Guard: the start is tens of su away; a refinement that did nothing fails here."""
    results, _ = study
    for r in results:
        start_rms = np.sqrt(np.mean(r.start_pulls**2))
        final_rms = np.sqrt(np.mean(r.pulls**2))
        assert start_rms > 10.0
        assert final_rms < 2.0
        assert np.max(np.abs(r.estimate - r.start) / r.su) > 20.0


def test_simulated_noise_has_the_stated_sigma():
    sim = ps.simulate(ps.UREA, SMAX)
    assert np.all(sim.sigma > 0)
    z = np.concatenate(
        [(sim.draw(np.random.default_rng(k)).f2 - sim.intensity) / sim.sigma for k in range(20)]
    )
    n = z.size
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.std() - 1.0) < 5 / math.sqrt(2 * n)


def test_true_model_is_neutral_and_site_symmetric():
    sim = ps.simulate(ps.UREA, 0.6)
    refl = sim.draw(np.random.default_rng(0))
    ref, truth = ps.new_refinement(ps.UREA, refl)
    assert np.max(np.abs(ref.all_constraints().residual(truth)), initial=0.0) <= 1e-12
    assert ref.params["C1.P11+"].value == 0.0 and ref.params["N1.P10"].value == 0.0
    # a truth that violates electroneutrality is refused, not silently projected
    h1 = ps.UREA.models["H1"]
    charged = replace(ps.UREA, models={**ps.UREA.models, "H1": (h1[0], h1[1], 0.9, *h1[3:])})
    with pytest.raises(ValueError, match="does not satisfy the constraints"):
        ps.new_refinement(charged, refl)


def test_poisson_quantile():
    from scipy.stats import poisson

    for mu in (0.5, 3.51, 8.6, 40.0):
        k = ps.poisson_upper(mu)
        assert poisson.sf(k, mu) <= 1e-3 < poisson.sf(k - 1, mu)
    assert ps.poisson_upper(3.51) == 11  # P(X > 10) = 1.04e-3, P(X > 11) = 3.0e-4
