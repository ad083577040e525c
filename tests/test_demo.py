"""`chasm demo` explains itself and keeps what it has done when interrupted (issue 19)."""

from __future__ import annotations

import pytest

from chasm.demo import run_demo
from chasm.io.rhocif import read_rhocif
from chasm.refine.refinement import Refinement


@pytest.mark.slow
def test_ctrl_c_keeps_the_stages_done(tmp_path, monkeypatch):
    real = Refinement.run_stage
    done = []

    def stage_then_interrupt(self, stage, *args, **kw):
        if done:
            raise KeyboardInterrupt
        done.append(stage.name)
        return real(self, stage, *args, **kw)

    monkeypatch.setattr(Refinement, "run_stage", stage_then_interrupt)
    said = []
    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path, xray_smax=0.45, und_count=200, maps=False, echo=said.append)
    crystal, _ = read_rhocif(tmp_path / "model.cif")
    assert len(crystal.atoms) > 20
    table = (tmp_path / "table1.txt").read_text()
    assert done[0][:2] in table and "interrupted" in table
    assert any(s.startswith("interrupted: the model after 1 finished stage") for s in said)
    header = "\n".join(said[:3])
    assert "Deutsch et al." in header and "SIMULATED" in header


def test_demo_plane_is_cu1_o1_n1_centred_on_cu1():
    """The demo's one map plane: 6 x 6 Å, mesh 0.08 Å, Cu1 at the centre, O1 along +u."""
    import numpy as np

    from chasm.demo import demo_plane
    from chasm.examples import seed

    crystal = seed.seed_crystal()
    mp = demo_plane(crystal)
    plane = mp.plane
    xyz = {a.label: crystal.frac_to_cart(np.asarray(a.xyz)) for a in crystal.atoms}
    assert np.allclose(plane.origin, xyz["Cu1"])
    assert tuple(plane.size) == (6.0, 6.0) and plane.step == 0.08 and plane.shape == (76, 76)
    d = xyz["O1"] - xyz["Cu1"]
    assert np.allclose(plane.e1, d / np.linalg.norm(d))
    assert abs((xyz["N1"] - xyz["Cu1"]) @ plane.normal) < 1e-9
    assert mp.name == "plane Cu1-O1-N1, centred on Cu1"


@pytest.mark.slow
def test_demo_draws_each_map_once(tmp_path, monkeypatch):
    """The report draws the demo's maps (deformation, spin, residual) on the Cu1-O1-N1
    plane, one figure each; the demo draws none of its own and lists the report's files."""
    from chasm.maps import plot

    drawn = []
    real = plot.plane_figure

    def counting(plane, values, *args, **kw):
        drawn.append((plane.shape, kw.get("kind"), kw.get("title")))
        return real(plane, values, *args, **kw)

    monkeypatch.setattr(plot, "plane_figure", counting)
    said = []
    out = run_demo(tmp_path, xray_smax=0.6, und_count=1000, echo=said.append)
    assert [k for _, k, _ in drawn] == ["deformation", "spin", "residual"]
    assert all(shape == (76, 76) and "Cu1-O1-N1, centred on Cu1" in t for shape, _, t in drawn)
    maps = sorted(p.name for p in tmp_path.glob("*.png") if not p.name.startswith("diag_"))
    assert maps == ["report_deformation.png", "report_residual.png", "report_spin.png"]
    assert [p.name for p in out["files"]] == [
        "model.cif",
        "table1.txt",
        "report.html",
        "report.md",
        "report_deformation.png",
        "report_spin.png",
        "report_residual.png",
    ]
    wrote = next(s for s in said if s.lstrip().startswith("wrote "))
    assert all(str(p) in wrote for p in out["files"])
