"""A data set the model misses (GOF above MISFIT_GOF) is named in the warnings."""

from types import SimpleNamespace

from chasm.project.outputs import MISFIT_GOF, warnings_for


def _built():
    refinement = SimpleNamespace(params=[])
    project = SimpleNamespace(data={"refinement": {"correlation_threshold": 0.9}})
    return SimpleNamespace(refinement=refinement, project=project)


def _result(gofs: dict[str, tuple[str, float]]) -> dict:
    sets = {n: {"kind": k, "gof": g, "factor": 1.0} for n, (k, g) in gofs.items()}
    return {"correlations": [], "datasets": sets, "stages": []}


def test_flipping_ratio_sets_above_the_limit_are_named_once():
    result = _result({"a": ("pnd", 13.3), "b": ("pnd", 22.8), "c": ("pnd", 1.1)})
    said = [w for w in warnings_for(_built(), result) if "does not describe" in w]
    assert len(said) == 1
    assert "a (GOF 13.300), b (GOF 22.800)" in said[0] and "c (" not in said[0]
    assert "aspherical" in said[0]


def test_no_misfit_warning_at_or_below_the_limit():
    result = _result({"xray": ("xray", MISFIT_GOF), "und": ("und", 1.0)})
    assert not [w for w in warnings_for(_built(), result) if "does not describe" in w]


def test_xray_misfit_names_other_cures():
    said = warnings_for(_built(), _result({"xray": ("xray", 4.0)}))
    assert any("data set xray (GOF 4.000)" in w and "extinction" in w for w in said)
