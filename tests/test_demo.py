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
