"""From a validated project to a ready-to-run :class:`~chasm.refine.refinement.Refinement`.

Pattern selectors in stages, constraints and restraints: besides exact names
and shell-style globs (``C1.P2*``, ``*.kappa``; see
:meth:`chasm.refine.parameters.Parameters.select`), a token may start with an
element group, ``@H.Uiso`` (every atom of element H) or ``@nonH.U*`` (every
atom that is not hydrogen), e.g. ``@O.P[1-9]*``.
"""

from __future__ import annotations

from dataclasses import dataclass

from chasm.crystal.cif import read_cif
from chasm.density.databank import spherical_atom
from chasm.density.frames import LocalAxes
from chasm.density.model import HansenCoppensAtom, SphericalAtom
from chasm.errors import InputError
from chasm.io.shelx_hkl import merge, read_hkl4
from chasm.project.autobuild import HYDROGENS, choose_atom
from chasm.project.project import ATOM_SCHEMA, Project
from chasm.refine.constraints import LinearConstraints
from chasm.refine.parameters import Parameters, UnknownNameError
from chasm.refine.problem import SolverOptions
from chasm.refine.refinement import Refinement, Stage
from chasm.refine.riding import RidingHydrogen, place_riding
from chasm.refine.symmetry_constraints import electroneutrality, equal_constraints, same_value
from chasm.refine.xray_data import XrayData, XrayOptions

__all__ = ["Built", "build", "expand", "build_models"]


@dataclass
class Built:
    """Everything a run needs."""

    project: Project
    crystal: object
    models: list
    riders: list
    refinement: Refinement
    stages: list[Stage]
    kappa_sets: dict[str, list[str]]


def _group_labels(crystal, group: str) -> list[str]:
    if group == "nonH":
        return [a.label for a in crystal.atoms if a.element not in HYDROGENS]
    return [a.label for a in crystal.atoms if a.element == group]


def expand(params: Parameters, crystal, patterns, where: str) -> list[str]:
    """Resolve patterns (with ``@element.`` selectors) to parameter names.

    Raises
    ------
    InputError
        A token that matches nothing, naming ``where`` (e.g. ``stages[2].free``).
    """
    tokens = [patterns] if isinstance(patterns, str) else list(patterns)
    out: list[str] = []
    for token in tokens:
        for part in [t.strip() for t in token.split(",") if t.strip()]:
            if part.startswith("@"):
                group, _, rest = part[1:].partition(".")
                labels = _group_labels(crystal, group)
                if not rest or not labels:
                    raise InputError(
                        f"{where}: selector {part!r} selects no atom "
                        "(use @ELEMENT.field or @nonH.field, e.g. @H.Uiso)"
                    )
                hits = []
                for lab in labels:
                    try:
                        hits += params.select(f"{lab}.{rest}")
                    except UnknownNameError:
                        pass
                if not hits:
                    raise InputError(f"{where}: pattern {part!r} matches no parameter")
            else:
                try:
                    hits = params.select(part)
                except UnknownNameError as exc:
                    raise InputError(f"{where}: {exc.args[0]}") from None
            out += [h for h in hits if h not in out]
    return out


def build_models(project: Project, crystal):
    """Density models, riding hydrogens and κ sets from the [model] table."""
    m = project.data["model"]
    atoms_cfg = m["atoms"]
    labels = [a.label for a in crystal.atoms]
    for lab in atoms_cfg:
        if lab not in labels:
            raise InputError(
                f"model.atoms.{lab}: no atom {lab!r} in the structure (atoms: {', '.join(labels)})",
                str(project.path),
            )
    models, riders, sets = [], [], {}
    for i, atom in enumerate(crystal.atoms):
        cfg = atoms_cfg.get(atom.label) or {k: f.default for k, f in ATOM_SCHEMA.items()}
        is_h = atom.element in HYDROGENS
        kind = cfg["model"] or m["default"]
        auto = choose_atom(
            crystal,
            i,
            h_lmax=m["h_lmax"],
            lmax=m["lmax"],
            kappa_sets="element" if m["kappa_sets"] == "atom" else m["kappa_sets"],
        )
        if m["riding_h"] and is_h:
            parent = cfg["ride_on"] or auto.parent
            dist = cfg["xh_distance"] or auto.xh_distance
            if parent is None or dist is None:
                raise InputError(
                    f"model.atoms.{atom.label}: riding hydrogen needs 'ride_on' and "
                    "'xh_distance' (no bonded parent with a standard distance found)",
                    str(project.path),
                )
            riders.append(RidingHydrogen(atom.label, parent, float(dist)))
        if kind == "iam":
            models.append(SphericalAtom(atom.element, m["form_factors"]))
            continue
        lmax = cfg["lmax"] if cfg["lmax"] is not None else auto.lmax
        axes = LocalAxes.from_text(cfg["axes"]) if cfg["axes"] else auto.axes
        frame = axes.matrix(crystal, i) if axes is not None else None
        sp = spherical_atom(atom.element)
        model = HansenCoppensAtom(
            atom.element,
            pv=float(sp.n_valence),
            lmax=lmax,
            axes=axes,
            **({"frame": frame} if frame is not None else {}),
        )
        if is_h:
            model.kappa = model.kappa_prime = m["h_kappa"]
        for key in ("pv", "kappa", "kappa_prime"):
            if cfg[key] is not None:
                setattr(model, key, cfg[key])
        models.append(model)
        key = cfg["kappa_set"] or (atom.label if m["kappa_sets"] == "atom" else auto.kappa_set)
        sets.setdefault(key, []).append(atom.label)
    return models, riders, sets


def _dataset(project: Project, crystal, cfg: dict):
    path = project.resolve(cfg["file"])
    if not path.is_file():
        raise InputError(f"datasets: file of {cfg['name']!r} not found: {path}", str(project.path))
    refl = read_hkl4(path)
    if cfg["merge"]:
        refl = merge(refl, crystal)[0]
    opts = XrayOptions(
        observable=cfg["observable"],
        weights=cfg["weights"],
        shelx_a=cfg["shelx_a"],
        shelx_b=cfg["shelx_b"],
        extinction=cfg["extinction"],
        extinction_start=cfg["extinction_start"],
        path_length=cfg["path_length"],
        wavelength=cfg["wavelength"],
        smin=cfg["smin"],
        smax=cfg["smax"],
        min_i_over_sigma=cfg["min_i_over_sigma"],
        omit=[tuple(h) for h in cfg["omit"]],
    )
    data = XrayData(cfg["name"], refl, crystal, opts)
    data.user_weight = cfg["user_weight"]
    return data


def build(project: Project) -> Built:
    """Read the structure and data, build models, constraints, restraints and stages."""
    d = project.data
    src = str(project.path)
    cif = project.resolve(d["structure"]["cif"])
    crystal = read_cif(cif, d["structure"]["block"])
    models, riders, sets = build_models(project, crystal)
    if riders:
        place_riding(crystal, riders)
    datasets = [_dataset(project, crystal, cfg) for cfg in d["datasets"]]
    r = d["refinement"]
    options = SolverOptions(
        tol=r["tol"],
        max_cycles=r["max_cycles"],
        max_shift_su=r["max_shift_su"],
        correlation_threshold=r["correlation_threshold"],
    )
    ref = Refinement(crystal, models, datasets, riders=riders, scheme=r["score"], options=options)
    p = ref.params
    for labels in sets.values():
        if len(labels) > 1:
            for field in ("kappa", "kappa_prime"):
                ref.add_constraints(same_value(p, [f"{lab}.{field}" for lab in labels]))
    c = d["constraints"]
    if c["electroneutrality"] and any(isinstance(m, HansenCoppensAtom) for m in models):
        ref.add_constraints(electroneutrality(crystal, models, p, charge=c["charge"]))
    for i, group in enumerate(c["same"]):
        names = expand(p, crystal, group, f"constraints.same[{i}]")
        if len(names) < 2:
            raise InputError(
                f"constraints.same[{i}]: {group!r} selects fewer than 2 parameters", src
            )
        ref.add_constraints(same_value(p, names))
    for i, pair in enumerate(c["equal"]):
        a = expand(p, crystal, pair["a"], f"constraints.equal[{i}].a")
        b = expand(p, crystal, pair["b"], f"constraints.equal[{i}].b")
        ref.add_constraints(equal_constraints(p, a, b))
    for i, row in enumerate(c["linear"]):
        lc = LinearConstraints(p)
        try:
            lc.add({k: float(v) for k, v in row["terms"].items()}, row["value"], row["description"])
        except (UnknownNameError, ValueError, TypeError) as exc:
            raise InputError(f"constraints.linear[{i}]: {exc}", src) from None
        ref.add_constraints(lc)
    for i, rs in enumerate(d["restraints"]):
        for name in expand(p, crystal, rs["parameter"], f"restraints[{i}].parameter"):
            ref.add_restraint(name, rs["target"], rs["sigma"])
    stages = []
    for i, s in enumerate(d["stages"]):
        free = expand(p, crystal, s["free"], f"stages[{i}].free ({s['name']})")
        fix = expand(p, crystal, s["fix"], f"stages[{i}].fix ({s['name']})") if s["fix"] else []
        stages.append(Stage(s["name"], free, fix, s["smin"], s["smax"], s["max_cycles"], s["tol"]))
    return Built(project, crystal, models, riders, ref, stages, sets)
