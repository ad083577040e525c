"""A PND-only project: the structure and data of a cryspy rcif, a spin model from the file.

A project whose ``[model.spin.LABEL]`` tables are not empty is a
polarised-neutron-only refinement: the nuclear structure (positions, neutron
ADPs, scattering lengths of ``model.conventions``) comes from the crystal block
of the rcif named by ``structure.cif`` and stays fixed, each magnetic atom has
the spin model of its table (:data:`~chasm.project.project.SPIN_SITE_SCHEMA`),
and every ``pnd`` data set is a :class:`~chasm.refine.pnd_data.PndData` per
flipping-ratio block. Parameters:

========================  ==========================================  ===========
model                     parameters                                  unit
========================  ==========================================  ===========
``moment``                ``LABEL.mx``, ``.my``, ``.mz`` (those free   μB
                          under the magnetic site group)
``field_moment``          ``LABEL.moment`` (along the field)           μB
``chi_iso``               ``LABEL.chi_iso``                            μB/T
``chi_aniso``             ``LABEL.chi11`` ... (free under the site     μB/T
                          symmetry, cryspy's rule)
``orbital`` (any model)   ``LABEL.kappa`` (the radial function's κ)   1
========================  ==========================================  ===========

and per data set ``NAME.extinction_radius``, ``NAME.mosaicity`` (extinction
on), ``NAME.polarisation``, ``NAME.lambda_half``, ``NAME.twin1`` ... (twin
fractions); a stage frees what it names. :func:`build_pnd` returns the same
:class:`~chasm.project.build.Built` as the joint route, so ``chasm refine``
runs it unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chasm.crystal.structure import parse_type_symbol
from chasm.density.model import SphericalAtom
from chasm.errors import InputError
from chasm.neutron.conventions import conventions
from chasm.neutron.dorbital_site import OrbitalFormFactor
from chasm.neutron.magnetic_ff import c2_from_lande, ion_form_factor
from chasm.neutron.rcif import PndCrystal, PndFile, read_rcif
from chasm.neutron.rcif_sites import rcif_crystal
from chasm.neutron.spin_shape import (
    SpinShape,
    frame_from_text,
    population_vector,
    slater_form_factor,
)
from chasm.project.project import Project
from chasm.project.schema import find_line
from chasm.refine.pnd_data import PndData, PndOptions, PndSpinModel, SpinSite

__all__ = ["is_pnd_only", "build_pnd", "rcif_structure", "spin_sites"]


def is_pnd_only(project: Project) -> bool:
    """True when the project has a PND-only spin model (``[model.spin.LABEL]`` tables)."""
    return bool(project.data["model"]["spin"])


def _text(project: Project) -> str | None:
    try:
        return project.path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None


def rcif_structure(project: Project) -> tuple[PndFile, PndCrystal]:
    """The rcif of ``structure.cif`` and its crystal block (``structure.block`` or the only one).

    Raises
    ------
    InputError
        Missing file, not an rcif with a crystal block, unknown or ambiguous block.
    """
    src = str(project.path)
    d = project.data["structure"]
    path = project.resolve(d["cif"])
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "not found"
        raise InputError(f"structure.cif: structure file {what}: {path}", src)
    pnd = read_rcif(path)
    if not pnd.crystals:
        raise InputError(
            f"structure.cif: {path.name} has no crystal block (_cell_length_a); a PND-only model "
            "(model.spin) takes its structure from a cryspy rcif",
            src,
            find_line(_text(project), "structure.cif"),
        )
    name = d["block"]
    if name is None and len(pnd.crystals) > 1:
        raise InputError(
            f"structure.block: {path.name} has {len(pnd.crystals)} crystal blocks "
            f"({', '.join(c.name for c in pnd.crystals)}); name one",
            src,
        )
    if name is not None and not any(c.name.lower() == name.lower() for c in pnd.crystals):
        raise InputError(
            f"structure.block: no crystal block {name!r} in {path.name} "
            f"(crystal blocks: {', '.join(c.name for c in pnd.crystals)})",
            src,
            find_line(_text(project), "structure.block"),
        )
    return pnd, pnd.crystal(name)


def spin_sites(
    project: Project, block: PndCrystal, labels: list[str], crystal=None
) -> list[SpinSite]:
    """One :class:`SpinSite` per ``[model.spin.LABEL]`` table, in atom order.

    Raises
    ------
    InputError
        Unknown label, an ion without a magnetic form factor, a start value of
        the wrong shape for the model; naming the key and its line.
    """
    src = str(project.path)
    text = _text(project)
    cfg_all = project.data["model"]["spin"]
    tables = conventions(project.data["model"]["conventions"]).form_factors or {}
    for label in cfg_all:
        if label not in labels:
            raise InputError(
                f"model.spin.{label}: no atom {label!r} in the structure "
                f"(atoms: {', '.join(labels)})",
                src,
                find_line(text, f"model.spin.{label}"),
            )
    types = {a.label: a.type_symbol for a in block.atoms}
    out = []
    for label in [x for x in labels if x in cfg_all]:
        cfg = cfg_all[label]
        where = f"model.spin.{label}"
        if cfg["orbital"] is not None or any(cfg[k] is not None for k in _SHAPE_KEYS):
            shape = _spin_shape(project, cfg, where, types[label], crystal, text)
            common = {"label": label, "table": shape.table, "kappa": shape.kappa, "shape": shape}
            out.append(_site(common, cfg, where, src, text))
            continue
        ion = cfg["ion"] or types[label]
        try:
            table = tables.get(ion) or ion_form_factor(ion)
        except InputError as exc:
            key = f"{where}.ion" if cfg["ion"] else where
            raise InputError(
                f"{key}: {exc.message}; give the ion with a tabulated form factor "
                "(ion = 'Mn2+', ...)",
                src,
                find_line(text, key),
            ) from None
        c2 = cfg["c2"] if cfg["c2"] is not None else c2_from_lande(cfg["lande"])
        common = {"label": label, "table": table, "c2": float(c2), "kappa": float(cfg["kappa"])}
        out.append(_site(common, cfg, where, src, text))
    return out


#: keys of a spin-multipole form factor besides ``orbital``
_SHAPE_KEYS = (
    "orbital_species",
    "slater_n",
    "slater_zeta",
    "slater_coeff",
    "populations",
    "local_axes",
)


def _spin_shape(project: Project, cfg: dict, where: str, type_symbol: str, crystal, text):
    """The :class:`~chasm.neutron.spin_shape.SpinShape` of ``[model.spin.LABEL]`` with ``orbital``.

    Raises
    ------
    InputError
        A shape key without ``orbital``, ion or c2 given with it, Slater lists
        of different lengths, an unknown databank species or orbital, an unknown
        population name, a bad ``local_axes``; naming the key and its line.
    """
    src = str(project.path)

    def fail(key: str, message: str) -> InputError:
        full = f"{where}.{key}"
        line = find_line(text, full) or find_line(text, where)
        return InputError(f"{full}: {message}", src, line)

    if cfg["orbital"] is None:
        key = next(k for k in _SHAPE_KEYS if cfg[k] is not None)
        raise fail(key, "needs orbital = '3d' (or '2p' ...): the spin-multipole model")
    for key in ("ion", "c2"):
        if cfg[key] is not None:
            raise fail(key, "the spin-multipole model (orbital) has its own form factor; delete it")
    slater = [cfg[k] for k in ("slater_n", "slater_zeta", "slater_coeff")]
    element = parse_type_symbol(type_symbol)[0]
    step = "orbital"
    try:
        if any(x is not None for x in slater):
            step = "slater_n"
            if any(x is None for x in slater) or len({len(x) for x in slater}) != 1:
                raise InputError("give slater_n, slater_zeta and slater_coeff, equally long")
            if cfg["orbital_species"] is not None:
                raise InputError("not with orbital_species (the radial function is given)")
            table = slater_form_factor(element, cfg["orbital"], *slater)
        else:
            step = "orbital_species" if cfg["orbital_species"] else "orbital"
            symbol, charge = parse_type_symbol(cfg["orbital_species"] or element)
            table = OrbitalFormFactor.from_databank(symbol, cfg["orbital"], charge)
        step = "populations"
        populations = population_vector(cfg["populations"] or {"P00": 1.0})
        frame = np.eye(3)
        if cfg["local_axes"] is not None:
            step = "local_axes"
            frame = frame_from_text(crystal, cfg["local_axes"])
    except InputError as exc:
        raise fail(step, exc.message) from None
    return SpinShape(table, populations, frame, float(cfg["kappa"]))


def _site(common: dict, cfg: dict, where: str, src: str, text) -> SpinSite:
    """The :class:`SpinSite` of one ``[model.spin.LABEL]`` table's model and start values."""
    model, moment, chi = cfg["model"], cfg["moment"], cfg["chi"]

    def bad(key: str, need: str) -> InputError:
        return InputError(
            f"{where}.{key}: model = {model!r} needs {need}",
            src,
            find_line(text, f"{where}.{key}") or find_line(text, where),
        )

    if cfg["axis"] is not None and model != "chi_local":
        raise bad("axis", "no axis (only chi_local has one)")
    if model in ("field_moment", "moment") and chi is not None:
        raise bad("chi", "no chi (it is a moment model)")
    if model.startswith("chi") and moment is not None:
        raise bad("moment", "no moment (it is a susceptibility model)")
    if model == "moment":
        if moment is not None and not isinstance(moment, list):
            raise bad("moment", "[mx, my, mz] (muB, crystal axes)")
        return SpinSite(**common, vector=np.array(moment or [0.0, 0.0, 0.0]))
    if model == "field_moment":
        if isinstance(moment, list):
            raise bad("moment", "one number (muB along the field)")
        return SpinSite(**common, moment=float(moment or 0.0))
    if model == "chi_iso":
        if isinstance(chi, list):
            raise bad("chi", "one number (muB/T)")
        iso = float(chi or 0.0)
        return SpinSite(**common, chi=[iso, iso, iso, 0, 0, 0], isotropic=True)
    if model == "chi_local":
        if chi is not None and not (isinstance(chi, list) and len(chi) == 2):
            raise bad("chi", "[chi_par, chi_perp] (muB/T)")
        return SpinSite(**common, chi_local=tuple(chi or [0.0, 0.0]), axis=cfg["axis"])
    if chi is not None and not (isinstance(chi, list) and len(chi) == 6):
        raise bad("chi", "[chi11, chi22, chi33, chi12, chi13, chi23] (muB/T)")
    return SpinSite(**common, chi=np.array(chi or [0.0] * 6))


def _blocks(project: Project, cfg: dict, i: int, path, pnd: PndFile):
    blocks = pnd.datasets
    if not blocks:
        raise InputError(
            f"datasets[{i}].file: no flipping-ratio block in {path}", str(project.path)
        )
    if cfg["block"] is None:
        return blocks
    chosen = [b for b in blocks if b.name.lower() == cfg["block"].lower()]
    if not chosen:
        raise InputError(
            f"datasets[{i}].block: no flipping-ratio block {cfg['block']!r} in {path} "
            f"(blocks: {', '.join(b.name for b in blocks)})",
            str(project.path),
        )
    return chosen


def _datasets(project: Project, spin: PndSpinModel, cache: dict) -> tuple[list, dict, list[str]]:
    """PndData of every ``pnd`` entry, the entries' block names, and notes.

    ``cache`` maps resolved paths to rcif files already read (the structure's).
    """
    src = str(project.path)
    out, entries, notes = [], {}, []
    for i, cfg in enumerate(project.data["datasets"]):
        if cfg["kind"] != "pnd":
            raise InputError(
                f"datasets[{i}] ({cfg['name']}): kind = {cfg['kind']!r}, but the project has a "
                "PND-only spin model (model.spin) that fits flipping ratios only",
                src,
            )
        path = project.resolve(cfg["file"])
        if not path.is_file():
            what = "is not a regular file" if path.exists() else "not found"
            raise InputError(f"datasets[{i}].file: file of {cfg['name']!r} {what}: {path}", src)
        key = path.resolve()
        if key not in cache:
            cache[key] = read_rcif(path)
        blocks = _blocks(project, cfg, i, path, cache[key])
        ext = {"file": None, "on": True, "off": False}[cfg["extinction"]]
        names = []
        for block in blocks:
            name = cfg["name"] if len(blocks) == 1 else f"{cfg['name']}.{block.name}"
            if block.lambda_half and not cfg["lambda_half"]:
                notes.append(
                    f"{name}: the file gives the lambda/2 ratio {block.lambda_half:g} "
                    f"(_setup_ratio_lambda/2) but datasets[{i}].lambda_half = 0 leaves it out; "
                    "set lambda_half and lambda_half_model = 'unpolarised' to compute as cryspy"
                )
            opts = PndOptions.from_config(cfg, ext, twins=cfg["twins"])
            try:
                data = PndData(name, block, spin, opts)
            except InputError as exc:
                raise InputError(f"datasets[{i}] ({path.name}): {exc.message}", src) from None
            data.user_weight = cfg["user_weight"]
            out.append(data)
            names.append(name)
        entries[cfg["name"]] = names
    return out, entries, notes


def build_pnd(project: Project):
    """The :class:`~chasm.project.build.Built` of a PND-only project (module docstring)."""
    from chasm.project.build import (
        Built,
        add_user_constraints,
        conventions_note,
        expand,
        stage_data,
    )
    from chasm.project.restraints import add_restraints
    from chasm.refine.problem import SolverOptions
    from chasm.refine.refinement import Refinement, Stage

    d = project.data
    src = str(project.path)
    text = _text(project)
    pnd, block = rcif_structure(project)
    c = conventions(d["model"]["conventions"])
    crystal, b = rcif_crystal(block, c.b_overrides)
    labels = [a.label for a in crystal.atoms]
    sites = spin_sites(project, block, labels, crystal)
    try:
        spin = PndSpinModel(crystal, b, sites, c.p, block.time_reversal)
    except InputError as exc:
        if exc.message.startswith("model.spin."):  # names its key already
            key = exc.message.split(":")[0]
            line = find_line(text, key) or find_line(text, key.rsplit(".", 1)[0])
            raise InputError(exc.message, src, line) from None
        raise InputError(f"model.spin: {exc.message}", src, find_line(text, "model.spin")) from None
    if d["model"]["atoms"]:
        first = next(iter(d["model"]["atoms"]))
        raise InputError(
            f"model.atoms.{first}: a PND-only project (model.spin) has no density model per "
            "atom; delete the [model.atoms.*] tables",
            src,
            find_line(text, f"model.atoms.{first}"),
        )
    if d["constraints"]["total_spin"] is not None:
        raise InputError(
            "constraints.total_spin: a PND-only spin model has no spin populations to constrain; "
            "delete the key",
            src,
            find_line(text, "constraints.total_spin"),
        )
    cache = {Path(pnd.path).resolve(): pnd}
    datasets, entries, notes = _datasets(project, spin, cache)
    notes = [n for n in [conventions_note(project)] if n] + notes
    models = [SphericalAtom(a.element) for a in crystal.atoms]
    r = d["refinement"]
    options = SolverOptions(
        tol=r["tol"],
        max_cycles=r["max_cycles"],
        max_shift_su=r["max_shift_su"],
        correlation_threshold=r["correlation_threshold"],
    )
    ref = Refinement(crystal, models, datasets, scheme=r["score"], options=options)
    p = ref.params
    add_user_constraints(ref, crystal, d["constraints"], src)
    add_restraints(project, crystal, models, ref, expand, [])
    names = [x.name for x in datasets]
    stages = []
    for i, s in enumerate(d["stages"]):
        free = expand(p, crystal, s["free"], f"stages[{i}].free ({s['name']})")
        fix = expand(p, crystal, s["fix"], f"stages[{i}].fix ({s['name']})") if s["fix"] else []
        data = stage_data(entries, names, s, i, src)
        stages.append(
            Stage(s["name"], free, fix, s["smin"], s["smax"], s["max_cycles"], s["tol"], data)
        )
    return Built(project, crystal, models, [], ref, stages, {}, entries, [], notes, [])
