"""`chasm init` on the seed example reaches the hand-made project's result (issue 7).

Reduced size of ``validation/seed_init_vs_hand.py`` (X-ray to 0.6 Å⁻¹, 600 UND,
212 flipping ratios): the project chasm writes from the truth CIF and the
simulated files, run as written after filling in the total spin, converges in
every stage and gives the spin populations of the hand-made project within
their su, with the same agreement factors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validation"))

import seed_init_vs_hand as siv  # noqa: E402

pytestmark = pytest.mark.slow  # validation-grade (minutes): CI runs it with -m slow


def test_init_project_matches_the_hand_made_one(tmp_path):
    res = siv.run(tmp_path, smax=0.6, und_count=600)
    text = res["init_text"]
    # kappa' is not refined: fixed at the theory value of each kappa set (O 1.16, N 1.03)
    assert "kappa_prime = 1.16   # GUESSED: theoretical kappa'" in text
    for key in ("hand", "init"):
        stages = res[key]["stages"]
        assert res[key]["converged"], key
        assert all(s["converged"] for s in stages), (key, stages)
    for lab, a, sa, b, sb, d in res["rows"]:
        print(f"{lab}: hand {a:.4f}({sa:.4f}) init {b:.4f}({sb:.4f}) |diff|/su {d:.2f}")
        assert d < 1.0, lab
        assert sb == pytest.approx(sa, rel=0.35), lab
    for name, d in res["hand"]["datasets"].items():
        e = res["init"]["datasets"][name]
        assert e["Rw"] == pytest.approx(d["Rw"], rel=0.1), name
