"""The declared data-set protocol (issue 18): every kind of data set implements it."""

from __future__ import annotations

import numpy as np
import pytest

from chasm.project.build import build
from chasm.project.project import load_project
from chasm.project.run import run_project
from chasm.refine.dataset import (
    AttachesToStructure,
    DataSet,
    SharesParameters,
    UsesAdpSet,
    adp_set_of,
)
from chasm.refine.flipping_data import FlippingData
from chasm.refine.magnetic_amplitude_data import MagneticAmplitudeData
from chasm.refine.pnd_data import PndData
from chasm.refine.xray_data import UndData, XrayData
from test_project_joint import joint_case  # noqa: F401  (a fixture)

METHODS = ("parameter_names", "initial_values", "bind", "evaluate", "agreement")
CLASSES = (XrayData, UndData, FlippingData, PndData, MagneticAmplitudeData)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_data_set_class_has_the_protocol_methods(cls):
    for name in METHODS:
        assert callable(getattr(cls, name, None)), (cls.__name__, name)
    assert isinstance(cls.kind, str) and isinstance(cls.user_weight, float)


def test_the_joint_case_data_sets_are_data_sets(joint_case):  # noqa: F811
    built = build(load_project(joint_case / "project.toml"))
    kinds = {}
    for d in built.refinement.datasets:
        assert isinstance(d, DataSet), d.name
        assert d.window == (None, None)
        kinds[d.name] = (type(d).__name__, adp_set_of(d), isinstance(d, AttachesToStructure))
    assert kinds["xray"] == ("XrayData", "X", True)
    assert kinds["und"] == ("UndData", "N", True)
    assert kinds["pnd.b1"][0] == "FlippingData" and isinstance(
        built.refinement.datasets[-1], UsesAdpSet
    )


def test_optional_capabilities_are_declared_not_probed():
    class Minimal:
        name, kind, user_weight, window = "m", "xray", 1.0, (None, None)

        def parameter_names(self):
            return []

        def initial_values(self, crystal, models):
            return {}

        def bind(self, crystal, models, names, n_struct):
            pass

        def evaluate(self, p):
            raise NotImplementedError

        def agreement(self, p, n_par=0):
            return {}

    m = Minimal()
    assert isinstance(m, DataSet)
    assert not isinstance(m, AttachesToStructure | SharesParameters | UsesAdpSet)
    assert adp_set_of(m) == "X"
    del Minimal.agreement
    assert not isinstance(m, DataSet)


def test_a_run_leaves_the_data_sets_untouched(joint_case, tmp_path):  # noqa: F811
    """The progress monitor observes evaluations; it does not wrap data sets' methods."""
    out = run_project(joint_case / "project.toml", output=tmp_path, echo=None, report=False)
    ref = out.built.refinement
    assert ref.observers == []
    for d in ref.datasets:
        assert "evaluate" not in vars(d) and d.window == (None, None)
    seen = []
    ref.observers.append(lambda name, p, ev, s: seen.append((name, len(ev.y_obs), s >= 0)))
    ref.run_stage(ref.outcomes[-1].stage)
    names = {d.name for d in ref.datasets}
    assert {n for n, _, _ in seen} == names and all(ok for *_, ok in seen)
    assert np.all([n > 0 for _, n, _ in seen])
