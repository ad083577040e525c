"""Simulated data sets of a project file (``chasm simulate PROJECT``).

Every data set of the project that has a ``simulate`` table gets its data file
(the data set's ``file``) written from the project's model, in the format the
data set's reader takes: HKLF 4 for ``xray`` and ``und`` (F² and σ(F²)), a
cryspy rcif flipping-ratio block for ``pnd``. The keys of the table are in
``docs/project-file.md`` (section "Simulation").

The model
---------
The project is built by the same builder as ``chasm refine``
(:func:`chasm.project.build.build`): atoms, density models, local frames,
split atoms, riding hydrogens, ADP sets, data-set objects. The calculated
values are those the refinement's data-set objects compute
(:class:`~chasm.refine.xray_data.XrayData`, :class:`~chasm.refine.xray_data.UndData`,
:class:`~chasm.refine.flipping_data.FlippingData`) at the *true* parameters:

* positions, X-ray ADPs and occupancies as the builder has them (read from the
  structure CIF, riding hydrogens placed);
* the density parameters (Pv, κ, P_lm, κ' and, of split atoms, the spin
  populations) and the neutron ADP set ``N`` from the structure file when it
  is a rhoCIF (:mod:`chasm.io.rhocif`, spin extension and neutron ADPs
  included): a file written by ``chasm refine`` or by
  :func:`chasm.examples.seed_project.write_seed_project` is a model to
  simulate from. The file's local frames must be the project's (same
  ``axes``), and every non-zero population of the file must be a parameter of
  the project's model (same lmax or lower, same split atoms and κ sharing);
  otherwise the run stops naming the atom. Parameters the file does not give
  keep the project's starting values (a plain CIF: the neutral spherical
  starting model; neutron ADPs: a copy of the X-ray ones);
* data-set parameters: ``NAME.scale`` = the table's ``scale``; extinction
  parameters at their starting values (``extinction_start``; for flipping
  ratios the data set's ``extinction_model``, ``radius`` and ``mosaicity``
  are written into the file); flipping ratios with the table's wavelength,
  field, polarisation P and flipper efficiency e.

The data set's cut-offs, ``omit``, ``min_i_over_sigma`` and merging are
refinement options: they do not change what is simulated.

Reflections
-----------
The candidates are the Laue-unique, non-absent reflections with
smin < sinθ/λ <= smax (:func:`chasm.simulate.noise.unique_reflections`). With
``count`` a subset is kept (:func:`~chasm.simulate.noise.lowest_angle`,
:func:`~chasm.simulate.noise.strongest` by calculated F²; flipping ratios:
``contrast``, the largest |R − 1| among the stronger half of the candidates by
|F_N| (what the built-in example measures), ``strongest`` (largest |R − 1|) or
``lowest``); files list the reflections in order of increasing sinθ/λ.

Noise
-----
F²: the counting-statistics model of :class:`chasm.simulate.noise.IntensityNoise`
with the table's gain, background and relative error on the absolute scale,
σ evaluated on the true F² (extinction included), data on the scale k:
F²_obs = k (F²_true + σ N(0, 1)), σ_obs = k σ. Flipping ratios:
:class:`~chasm.simulate.noise.FlippingRatioNoise`, σ(R) = sqrt((r R)² + floor²).
With ``noise = false`` the files hold the calculated values with the σ of the
model. Data set i (0-based, file order) draws from
``numpy.random.default_rng([run_seed, seed_i])``, run_seed the ``seed``
argument (``--seed``, default 0) and seed_i the table's ``seed`` (default i):
the same project and seeds give the same files, bit for bit. (numpy drops
trailing zero words of the entropy: ``[N, 0]`` is the stream of
``default_rng(N)``.)

Files
-----
A data file is written relative to the project's folder (or to ``output``),
atomically, only after every data set has been computed; an existing file is
an error unless ``force``.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chasm.crystal.cif import read_cif
from chasm.data.reflections import Reflections, stol
from chasm.density.model import HansenCoppensAtom, SplitAtom
from chasm.errors import InputError
from chasm.io.shelx_hkl import write_hkl4
from chasm.neutron.geometry import busing_levy_b, cryspy_to_chasm_rotation
from chasm.neutron.rcif import PndDataset, write_flipping_rcif
from chasm.project.build import Built, build
from chasm.project.project import STAGE_SCHEMA, Project, load_project
from chasm.project.schema import REQUIRED, find_line
from chasm.simulate.noise import (
    FlippingRatioNoise,
    IntensityNoise,
    lowest_angle,
    observe_f2,
    strongest,
    unique_reflections,
)

__all__ = [
    "SimulatedSet",
    "Simulation",
    "simulate_project",
    "ub_for_field",
    "truth_values",
    "target_path",
]

#: Parameter kinds that the builder takes from the structure CIF (not overlaid).
_STRUCTURE_KINDS = frozenset(
    ["x", "y", "z", "occ", "Uiso", "U11", "U22", "U33", "U12", "U13", "U23"]
)


@dataclass
class SimulatedSet:
    """One simulated data set.

    Attributes
    ----------
    name, kind : str
        Data-set name and kind (``xray``, ``und``, ``pnd``).
    path : Path
        The file written.
    hkl : ndarray (n, 3) int
    calc : ndarray (n,)
        Calculated values without noise: F² on the data scale (e² or fm² times
        ``scale``, extinction included) or flipping ratios.
    obs, sigma : ndarray (n,)
        What the file holds.
    seed : list of int
        The entropy of the noise stream, ``[run_seed, seed_i]``.
    """

    name: str
    kind: str
    path: Path
    hkl: np.ndarray
    calc: np.ndarray
    obs: np.ndarray
    sigma: np.ndarray
    seed: list[int]

    @property
    def pulls(self) -> np.ndarray:
        """(obs − calc)/σ, standard normal with noise, zero without."""
        return (self.obs - self.calc) / self.sigma


@dataclass
class Simulation:
    """What :func:`simulate_project` wrote."""

    sets: list[SimulatedSet]
    truth: str

    @property
    def files(self) -> list[Path]:
        return [s.path for s in self.sets]


# ---------------------------------------------------------------------- geometry
def ub_for_field(crystal, direction) -> np.ndarray:
    """A CCSL UB matrix whose field axis (laboratory Z) is a given crystal direction.

    :func:`chasm.neutron.geometry.field_direction` of the result (positive
    field) is the unit vector along u a + v b + w c.

    Parameters
    ----------
    crystal : Crystal
        Cell (``A``: columns a, b, c; ``B``: a*, b*, c*, chasm's Cartesian frame).
    direction : array_like (3,)
        [u, v, w], direct-lattice components (any length but zero).

    Returns
    -------
    ndarray (3, 3)
        UB = U B_BL with U a rotation (lab ← cryspy crystal frame) and B_BL the
        Busing–Levy matrix of the cell (Å⁻¹).
    """
    e = np.asarray(crystal.A, dtype=float) @ np.asarray(direction, dtype=float).reshape(3)
    norm = np.linalg.norm(e)
    if not norm > 0:
        raise ValueError("the field direction must not be zero")
    b = np.asarray(crystal.B, dtype=float)
    z = cryspy_to_chasm_rotation(b).T @ (e / norm)  # the field in cryspy's crystal frame
    helper = np.eye(3)[int(np.argmin(np.abs(z)))]
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.array([x, y, z]) @ busing_levy_b(b)


# ---------------------------------------------------------------------- the truth
def truth_values(built: Built) -> tuple[dict[str, float], str]:
    """Values of the structure file for the built model's density and neutron-ADP parameters.

    Parameters
    ----------
    built : Built
        The project built by :func:`chasm.project.build.build`.

    Returns
    -------
    values : dict
        Parameter name -> value (names of ``built.refinement.params``).
    description : str
        What the structure file gave (for the listing).

    Raises
    ------
    InputError
        A local frame of the file differs from the project's, or a non-zero
        population of the file is not a parameter of the project's model.
    """
    from chasm.io.rhocif import read_rhocif, read_rhocif_adp_sets
    from chasm.refine.structure_model import StructureModel

    project = built.project
    src = str(project.path)
    cif = project.resolve(project.data["structure"]["cif"])
    block = project.data["structure"]["block"]
    crystal, models = read_rhocif(cif, block)
    adp = read_rhocif_adp_sets(cif, block)
    density = [(i, m) for i, m in enumerate(models) if isinstance(m, HansenCoppensAtom | SplitAtom)]
    for i, m in density:
        mine = built.models[i]
        label = crystal.atoms[i].label
        if not isinstance(mine, HansenCoppensAtom | SplitAtom):
            raise InputError(
                f"model.atoms.{label}: the structure file {cif.name} gives {label} a multipole "
                "model but the project makes it a spherical (iam) atom",
                src,
            )
        if mine.lmax >= 1 and m.lmax >= 1 and not np.allclose(mine.frame, m.frame, atol=1e-6):
            raise InputError(
                f"model.atoms.{label}.axes: the local frame of {label} in {cif.name} is not the "
                "project's; the multipole populations would mean something else (give the "
                "file's axes in the project)",
                src,
            )
    sm = StructureModel(crystal, models, adp_sets=adp, basis=built.refinement.structure.basis)
    params = built.refinement.params
    out, missing = {}, []
    for name, value in zip(sm.names, sm.values(), strict=True):
        kind = name.split(".")[1]
        if kind in _STRUCTURE_KINDS and not name.endswith(".N"):
            continue
        if name in params:
            out[name] = float(value)
        elif kind.startswith("P") and value != 0.0:
            missing.append(f"{name} = {value:g}")
    if missing:
        raise InputError(
            f"the structure file {cif.name} gives {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}, not parameters of the project's model "
            "(lmax, split atoms, share_kappa?)",
            src,
        )
    n_split = sum(isinstance(m, SplitAtom) for _, m in density)
    if density:
        text = f"{cif.name}: density parameters of {len(density)} atoms ({n_split} split)"
    else:
        text = f"{cif.name}: no multipole model in the file, the project's starting model"
    text += ", neutron ADP set N" if adp else ""
    return out, text


# ---------------------------------------------------------------------- checks
class _Checker:
    """Value checks of the simulate tables, with the key's path and line."""

    def __init__(self, project: Project):
        self.src = str(project.path)
        self.text = project.path.read_text(encoding="utf-8")

    def error(self, i: int, key: str, message: str) -> InputError:
        path = f"datasets[{i}].simulate.{key}" if key else f"datasets[{i}]"
        return InputError(f"{path}: {message}", self.src, find_line(self.text, path))

    def check(self, i: int, cfg: dict) -> None:
        t = cfg["simulate"]
        positive = ["smax"] + (["wavelength", "field"] if cfg["kind"] == "pnd" else [])
        positive += ["scale", "gain"] if cfg["kind"] != "pnd" else []
        for key in positive:
            if not t[key] > 0:
                raise self.error(i, key, f"must be positive, got {t[key]!r}")
        for key in ("smin", "relative", "background", "floor"):
            if key in t and t[key] < 0:
                raise self.error(i, key, f"must not be negative, got {t[key]!r}")
        if t["smin"] >= t["smax"]:
            raise self.error(i, "smin", f"must be below smax = {t['smax']:g}")
        if t["count"] is not None and t["count"] < 1:
            raise self.error(i, "count", f"must be at least 1, got {t['count']}")
        if t["seed"] is not None and t["seed"] < 0:
            raise self.error(i, "seed", f"must not be negative, got {t['seed']}")
        if cfg["kind"] != "pnd":
            return
        if t["relative"] == 0 and t["floor"] == 0:
            raise self.error(i, "relative", "relative and floor are both 0: sigma(R) would be 0")
        if len(t["field_direction"]) != 3 or not any(t["field_direction"]):
            raise self.error(i, "field_direction", "give three numbers [u, v, w], not all zero")
        if not 0 < abs(t["polarisation"]) <= 1:
            raise self.error(i, "polarisation", f"|P| must be in (0, 1], got {t['polarisation']}")
        if not 0.5 <= t["efficiency"] <= 1:
            raise self.error(i, "efficiency", f"must be in [0.5, 1], got {t['efficiency']}")


# ---------------------------------------------------------------------- the probe project
def _placeholder_files(folder: Path, crystal, i: int, cfg: dict) -> tuple[dict, np.ndarray]:
    """Write the candidate reflections with dummy values; the probe's data-set table."""
    t = cfg["simulate"]
    hkl = unique_reflections(crystal, t["smax"], t["smin"])
    probe = dict(cfg, smin=None, smax=None)
    ones = np.ones(len(hkl))
    if cfg["kind"] == "pnd":
        path = folder / f"{i}.rcif"
        write_flipping_rcif(path, [_pnd_block(cfg, crystal, hkl, ones, ones)])
        probe.update(include_excluded=True, block=None)
    else:
        path = folder / f"{i}.hkl"
        write_hkl4(path, Reflections(hkl, ones, ones), "free")
        probe.update(merge=False, observable="F2", weights="sigma", min_i_over_sigma=None, omit=[])
    probe["file"] = str(path)
    return probe, hkl


def _pnd_block(cfg: dict, crystal, hkl, fr, sigma) -> PndDataset:
    """The flipping-ratio block of a pnd data set: the experiment of its simulate table,
    the data set's extinction settings (written only with an ``extinction_model``)."""
    t = cfg["simulate"]
    n = len(hkl)
    return PndDataset(
        name=cfg["block"] or cfg["name"],
        wavelength=t["wavelength"],
        field=t["field"],
        polarisation=t["polarisation"],
        efficiency=t["efficiency"],
        ub=ub_for_field(crystal, t["field_direction"]),
        ub_type="CCSL",
        extinction_model=cfg["extinction_model"],
        mosaicity=float(cfg["mosaicity"] or 0.0),
        radius=float(cfg["radius"] or 0.0),
        phase=None,
        hkl=np.asarray(hkl, dtype=int),
        fr=np.asarray(fr, dtype=float),
        fr_sigma=np.asarray(sigma, dtype=float),
        fr_calc=None,
        excluded=np.zeros(n, dtype=bool),
        lines=np.arange(n),
    )


def _probe_project(project: Project, datasets: list[dict]) -> Project:
    """The project with only the simulated data sets and one stage freeing everything.

    Stages, restraints and the ``same``/``equal``/``linear`` constraints refer to
    data sets and do not change the model; they are left out.
    """
    data = copy.deepcopy(project.data)
    data["datasets"] = datasets
    stage = {k: (None if f.default is REQUIRED else f.default) for k, f in STAGE_SCHEMA.items()}
    stage.update(name="simulate", free=["*"], fix=[])
    data["stages"] = [stage]
    data["restraints"] = []
    data["similarity"] = []
    data["local_symmetry"] = []
    data["constraints"].update(same=[], equal=[], linear=[])
    return Project(project.path, data)


# ---------------------------------------------------------------------- selection and noise
def _select(
    t: dict, kind: str, hkl: np.ndarray, crystal, calc: np.ndarray, f_n: np.ndarray | None = None
) -> np.ndarray:
    """Indices (increasing sinθ/λ order) of the reflections kept by ``count``/``select``."""
    n = t["count"]
    if n is None or n >= len(hkl):
        return np.arange(len(hkl))
    if t["select"] == "lowest":
        picked = lowest_angle(hkl, crystal, n)
    elif kind != "pnd":
        picked = strongest(hkl, calc, n)
    else:  # the built-in example's rule (chasm.examples.seed.simulate) with "contrast"
        contrast = np.abs(calc - 1.0)
        if t["select"] == "contrast":
            contrast = np.where(f_n >= np.median(f_n), contrast, -1.0)
        picked = hkl[np.argsort(-contrast, kind="stable")[:n]]
    row = {h: k for k, h in enumerate(map(tuple, hkl.tolist()))}
    return np.sort([row[h] for h in map(tuple, picked.tolist())])


def _noisy(
    t: dict, kind: str, calc: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(observed, σ) on the data's scale."""
    if kind == "pnd":
        model = FlippingRatioNoise(t["relative"], t["floor"])
        if t["noise"]:
            return model.draw(calc, rng)
        return calc.copy(), model.sigma(calc)
    model = IntensityNoise(t["gain"], t["background"], t["relative"])
    k = t["scale"]
    if t["noise"]:
        return observe_f2(calc / k, k, rng, model)
    return calc.copy(), k * model.sigma(calc / k)


# ---------------------------------------------------------------------- the run
def target_path(project: Project, output: str | Path | None, cfg: dict) -> Path:
    """Where the data file of a data-set table goes (absolute ``file`` as given)."""
    p = Path(cfg["file"]).expanduser()
    if p.is_absolute():
        return p
    return (Path(output) / p) if output is not None else project.resolve(cfg["file"])


def _simulate_sets(
    project: Project,
    todo: list[tuple[int, dict]],
    targets: list[Path],
    crystal,
    checker: _Checker,
    run_seed: int,
) -> tuple[list[SimulatedSet], str]:
    """Build the probe project, set the truth, calculate, select, add noise (nothing written)."""
    with tempfile.TemporaryDirectory(prefix="chasm-simulate-") as tmp:
        probes, candidates = [], []
        for i, cfg in todo:
            probe, hkl = _placeholder_files(Path(tmp), crystal, i, cfg)
            if len(hkl) == 0:
                raise checker.error(
                    i, "smax", "no reflection with smin < sin(theta)/lambda <= smax"
                )
            probes.append(probe)
            candidates.append(hkl)
        built = build(_probe_project(project, probes))
    ref = built.refinement
    values, truth = truth_values(built)
    params = ref.params
    for name, value in values.items():
        params[name].value = value
    for _, cfg in todo:
        if cfg["kind"] != "pnd":
            params[f"{cfg['name']}.scale"].value = cfg["simulate"]["scale"]
    p = params.values.copy()
    ref.set_values(p)
    sets = {d.name: d for d in ref.datasets}
    out = []
    for (i, cfg), hkl, target in zip(todo, candidates, targets, strict=True):
        t = cfg["simulate"]
        d = sets[built.entries[cfg["name"]][0]]
        f_n = None
        if cfg["kind"] == "pnd":
            order_ok = np.array_equal(d.hkl, hkl)
            calc = d.ratios(p)
            f_n = np.abs(d.structure_factors(p)[1])
        else:
            order_ok = np.array_equal(d.reflections.hkl, hkl)
            calc = d.calculate(p, jacobian=False)[2]
        if not order_ok:  # the probe keeps every reflection in file order
            raise RuntimeError(f"data set {d.name}: reflections were reordered or dropped")
        keep = _select(t, cfg["kind"], hkl, crystal, calc, f_n)
        entropy = [run_seed, i if t["seed"] is None else int(t["seed"])]
        obs, sigma = _noisy(t, cfg["kind"], calc[keep], np.random.default_rng(entropy))
        out.append(
            SimulatedSet(
                cfg["name"], cfg["kind"], target, hkl[keep], calc[keep], obs, sigma, entropy
            )
        )
    return out, truth


def simulate_project(
    path,
    output: str | Path | None = None,
    seed: int | None = None,
    force: bool = False,
    echo: Callable[[str], None] | None = print,
) -> Simulation:
    """Write the data files of every data set of a project that has a ``simulate`` table.

    Parameters
    ----------
    path : str or Path
        Project file (TOML).
    output : str or Path, optional
        Folder the data files' relative paths start from (default: the
        project's folder, where ``chasm refine`` reads them).
    seed : int, optional
        Run seed (default 0): the noise of data set i comes from
        ``numpy.random.default_rng([seed, seed_i])`` (module docstring).
    force : bool
        Replace existing data files.
    echo : callable or None
        Receives one line per data set (None: silent).

    Returns
    -------
    Simulation
        The data sets written (reflections, calculated values, observations, σ).

    Raises
    ------
    InputError
        No data set with a simulate table, a bad value in one (key path and
        line), an existing file without ``force``, a model the structure file
        does not fit (see :func:`truth_values`), no reflection in the range.
    """
    say = echo or (lambda s: None)
    run_seed = 0 if seed is None else int(seed)
    project = load_project(path)
    src = str(project.path)
    if run_seed < 0:
        raise InputError(f"the run seed must not be negative, got {run_seed}", src)
    todo = [(i, cfg) for i, cfg in enumerate(project.data["datasets"]) if cfg["simulate"]]
    if not todo:
        raise InputError(
            "no data set has a simulate table; add [datasets.simulate] under a [[datasets]] "
            "entry (docs/project-file.md, Simulation)",
            src,
        )
    checker = _Checker(project)
    targets: dict[Path, str] = {}
    for i, cfg in todo:
        checker.check(i, cfg)
        target = target_path(project, output, cfg).resolve()
        if target in targets:
            raise checker.error(i, "", f"file {target} is also the file of {targets[target]!r}")
        targets[target] = cfg["name"]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise InputError(
            f"data file{'s' if len(existing) > 1 else ''} {', '.join(existing)} "
            f"exist{'' if len(existing) > 1 else 's'}; use --force to replace them",
            src,
        )
    crystal = read_cif(
        project.resolve(project.data["structure"]["cif"]), project.data["structure"]["block"]
    )
    out, truth = _simulate_sets(project, todo, list(targets), crystal, checker, run_seed)
    for (_, cfg), s in zip(todo, out, strict=True):
        s.path.parent.mkdir(parents=True, exist_ok=True)
        if s.kind == "pnd":
            write_flipping_rcif(s.path, [_pnd_block(cfg, crystal, s.hkl, s.obs, s.sigma)])
        else:
            write_hkl4(s.path, Reflections(s.hkl, s.obs, s.sigma), cfg["simulate"]["layout"])
        say(_summary(s, cfg, crystal))
    say(f"model: {truth}")
    return Simulation(out, truth)


def _summary(s: SimulatedSet, cfg: dict, crystal) -> str:
    t = cfg["simulate"]
    smax = float(stol(s.hkl, crystal).max()) if len(s.hkl) else 0.0
    what = (
        f"median R {np.median(s.obs):.4f}, median |R-1|/sigma "
        f"{np.median(np.abs(s.obs - 1) / s.sigma):.2f}"
        if s.kind == "pnd"
        else f"scale {t['scale']:g}, median F2/sigma {np.median(s.obs / s.sigma):.2f}"
    )
    noise = f"seed {s.seed}" if t["noise"] else "no noise"
    return (
        f"{s.name} ({s.kind}): {len(s.hkl)} reflections up to sin(theta)/lambda "
        f"{smax:.3f} 1/A, {what}, {noise} -> {s.path}"
    )
