"""From a validated project to a ready-to-run :class:`~chasm.refine.refinement.Refinement`.

Pattern selectors in stages, constraints and restraints: besides exact names
and shell-style globs (``C1.P2*``, ``*.kappa``, ``*.spin``, ``Cu1.P*.up``,
``*.U*.N``; see :meth:`chasm.refine.parameters.Parameters.select`), a token
may start with an atom group, ``@H.Uiso`` (every atom of element H),
``@nonH.U*`` (every atom that is not hydrogen) or ``@split.P*.spin`` (every
spin-split atom), e.g. ``@O.P[1-9]*``. A ``*`` also crosses dots:
``@nonH.U*`` matches ``C1.U11`` and ``C1.U11.N``.

Joint refinements: atoms named in ``model.magnetic`` or with ``split = true``
become :class:`~chasm.density.model.SplitAtom` (spin-up and spin-down
valence, :meth:`SplitAtom.from_charge_and_spin` of the atom's charge model),
data sets of kind ``und`` become :class:`~chasm.refine.xray_data.UndData` and
each flipping-ratio block of a ``pnd`` entry a
:class:`~chasm.refine.flipping_data.FlippingData`. The charge constraint is
:meth:`StructureModel.charge_constraint` (split atoms counted as
Pv↑ + Pv↓ + P00↑ + P00↓), ``total_spin`` adds
:meth:`StructureModel.spin_constraint`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from chasm.crystal.cif import read_cif
from chasm.crystal.structure import Crystal
from chasm.density.databank import spherical_atom
from chasm.density.frames import LocalAxes
from chasm.density.harmonics import lm_labels
from chasm.density.model import AtomModel, HansenCoppensAtom, SphericalAtom, SplitAtom
from chasm.errors import InputError
from chasm.io.shelx_cif import choose_block, embedded_reflections, is_shelx_cif, merge_shelxl
from chasm.io.shelx_hkl import merge, read_reflections
from chasm.neutron.conventions import conventions
from chasm.project.autobuild import HYDROGENS, choose_atom
from chasm.project.checks import check_charge, check_f2_data, check_total_spin
from chasm.project.project import ATOM_SCHEMA, Project
from chasm.project.restraints import add_restraints
from chasm.project.schema import find_line
from chasm.refine.constraints import LinearConstraints
from chasm.refine.dataset import DataSet, adp_set_of
from chasm.refine.parameters import Parameters, UnknownNameError
from chasm.refine.problem import SolverOptions
from chasm.refine.refinement import Refinement, Stage
from chasm.refine.riding import RidingHydrogen, place_riding
from chasm.refine.riding_adp import riding_uiso, uiso_factor
from chasm.refine.symmetry_constraints import equal_constraints, same_value
from chasm.refine.xray_data import UndData, XrayData, XrayOptions

__all__ = ["Built", "build", "expand", "build_models"]


@dataclass(slots=True)
class Built:
    """Everything a run needs (slots: nothing is attached to it after construction)."""

    project: Project
    crystal: Crystal
    models: list[AtomModel]
    riders: list[RidingHydrogen]
    refinement: Refinement
    stages: list[Stage]
    kappa_sets: dict[str, list[str]]
    entries: dict[str, list[str]] = field(default_factory=dict)
    split: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Doubts of :mod:`chasm.project.checks` on the data and the model (listed as warnings).
    checks: list[str] = field(default_factory=list)

    @property
    def kinds(self) -> dict[str, str]:
        """Data-set name -> kind (xray, und, pnd)."""
        return {d.name: d.kind for d in self.refinement.datasets}


def _group_labels(crystal, group: str, split: Sequence[str] = ()) -> list[str]:
    if group == "nonH":
        return [a.label for a in crystal.atoms if a.element not in HYDROGENS]
    if group == "split":
        return list(split)
    return [a.label for a in crystal.atoms if a.element == group]


def add_user_constraints(
    ref: Refinement, crystal, constraints: dict, src: str | None, split: Sequence[str] = ()
) -> None:
    """The project's ``constraints.same``, ``.equal`` and ``.linear`` entries, added to ``ref``.

    Shared by the joint builder and the PND-only one (:mod:`chasm.project.pnd_build`).

    Raises
    ------
    InputError
        A group selecting fewer than two parameters, an unknown name, a bad row.
    """
    p = ref.params
    for i, group in enumerate(constraints["same"]):
        names_i = expand(p, crystal, group, f"constraints.same[{i}]", split)
        if len(names_i) < 2:
            raise InputError(
                f"constraints.same[{i}]: {group!r} selects fewer than 2 parameters", src
            )
        ref.add_constraints(same_value(p, names_i))
    for i, pair in enumerate(constraints["equal"]):
        a = expand(p, crystal, pair["a"], f"constraints.equal[{i}].a", split)
        b = expand(p, crystal, pair["b"], f"constraints.equal[{i}].b", split)
        ref.add_constraints(equal_constraints(p, a, b))
    for i, row in enumerate(constraints["linear"]):
        lc = LinearConstraints(p)
        try:
            lc.add({k: float(v) for k, v in row["terms"].items()}, row["value"], row["description"])
        except (UnknownNameError, ValueError, TypeError) as exc:
            raise InputError(f"constraints.linear[{i}]: {exc}", src) from None
        ref.add_constraints(lc)


def expand(
    params: Parameters, crystal, patterns, where: str, split: Sequence[str] = ()
) -> list[str]:
    """Resolve patterns (with ``@element.``, ``@nonH.``, ``@split.`` selectors) to names.

    ``split`` lists the labels of the spin-split atoms (the ``@split`` group).

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
                labels = _group_labels(crystal, group, split)
                if not rest or not labels:
                    raise InputError(
                        f"{where}: selector {part!r} selects no atom "
                        "(use @ELEMENT.field, @nonH.field or @split.field, e.g. @H.Uiso)"
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


def split_labels(project: Project, crystal) -> list[str]:
    """Labels of the spin-split atoms (``model.magnetic`` and ``split = true``), in atom order."""
    m = project.data["model"]
    labels = [a.label for a in crystal.atoms]
    src = str(project.path)
    for i, lab in enumerate(m["magnetic"]):
        if lab not in labels:
            raise InputError(
                f"model.magnetic[{i}]: no atom {lab!r} in the structure "
                f"(atoms: {', '.join(labels)})",
                src,
            )
    out = []
    for lab in labels:
        cfg = m["atoms"].get(lab, {})
        flag = cfg.get("split")
        if flag is False and lab in m["magnetic"]:
            raise InputError(
                f"model.atoms.{lab}.split: false, but {lab} is listed in model.magnetic", src
            )
        if flag or lab in m["magnetic"]:
            out.append(lab)
    return out


def _spin_start(project: Project, label: str, cfg: dict, lmax: int):
    """Starting spin populations (Pv, P_lm) of a split atom from its table."""
    labels = lm_labels(lmax) if lmax >= 0 else []
    plm = [0.0] * len(labels)
    for key, value in (cfg["spin"] or {}).items():
        where = f"model.atoms.{label}.spin.{key}"
        name = key[1:] if key.startswith("P") else None
        if name not in labels:
            raise InputError(
                f"{where}: not a multipole of this atom (lmax {lmax}: "
                f"{', '.join('P' + x for x in labels) or 'none'})",
                str(project.path),
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{where}: expected a number, got {value!r}", str(project.path))
        plm[labels.index(name)] = float(value)
    return float(cfg["spin_pv"] or 0.0), plm


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
    split = set(split_labels(project, crystal))
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
        if atom.label not in split:
            for key in ("spin_pv", "spin"):
                if cfg[key] is not None:
                    raise InputError(
                        f"model.atoms.{atom.label}.{key}: only for split atoms "
                        "(set split = true or list the atom in model.magnetic)",
                        str(project.path),
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
            if atom.label in split:
                raise InputError(
                    f"model.atoms.{atom.label}: a split (magnetic) atom needs the "
                    "Hansen-Coppens model, not 'iam'",
                    str(project.path),
                )
            models.append(SphericalAtom(atom.element, m["form_factors"]))
            continue
        lmax = cfg["lmax"] if cfg["lmax"] is not None else auto.lmax
        try:
            if cfg["axes"] and cfg["axes"].strip().lower() == "cartesian":
                axes = None  # the crystal's Cartesian frame
            else:
                axes = LocalAxes.from_text(cfg["axes"]) if cfg["axes"] else auto.axes
            frame = axes.matrix(crystal, i) if axes is not None else None
        except InputError as exc:  # name the key, and the frame init would choose
            hint = (
                f"; chasm init would write axes = {auto.axes.as_text()!r}"
                if auto.axes is not None and cfg["axes"]
                else ""
            )
            raise InputError(
                f"model.atoms.{atom.label}.axes: {exc.message}{hint}",
                str(project.path),
                find_line(_text(project), f"model.atoms.{atom.label}.axes"),
            ) from None
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
        if atom.label in split:
            spin_pv, spin_plm = _spin_start(project, atom.label, cfg, lmax)
            model = SplitAtom.from_charge_and_spin(
                model,
                spin_pv,
                spin_plm,
                share_kappa=cfg["share_kappa"],
                share_kappa_prime=cfg["share_kappa_prime"],
            )
        models.append(model)
        key = cfg["kappa_set"] or (atom.label if m["kappa_sets"] == "atom" else auto.kappa_set)
        sets.setdefault(key, []).append(atom.label)
    return models, riders, sets


def _set_spin(m: SplitAtom, spin_pv: float, spin_plm) -> None:
    """Give a split atom new spin populations, keeping its charge populations."""
    c_pv, c_plm = m.up.pv + m.dn.pv, m.up.plm + m.dn.plm
    m.up.pv, m.dn.pv = 0.5 * (c_pv + spin_pv), 0.5 * (c_pv - spin_pv)
    m.up.plm, m.dn.plm = 0.5 * (c_plm + spin_plm), 0.5 * (c_plm - spin_plm)


def match_total_spin(crystal: Crystal, models: Sequence[AtomModel], total: float) -> str | None:
    """Scale the starting spin populations so that the total-spin constraint holds.

    The sum is Σ_j m_j (Pv↑ − Pv↓ + P00↑ − P00↓) over the split atoms, m_j =
    occupancy / |site group| (as :meth:`StructureModel.spin_constraint`).
    Every spin population is multiplied by total / sum, so the shape of the
    starting spin density is kept; with a zero sum the whole spin goes into
    the monopole of the first split atom. Without this a stage that keeps the
    spin fixed (an X-ray stage) could not satisfy the constraint.

    Returns
    -------
    str or None
        What was changed (for the listing), None if nothing was needed.
    """
    split = [(i, m) for i, m in enumerate(models) if m.carries_spin]
    weights = [crystal.atoms[i].occupancy / len(crystal.site_symmetry(i)) for i, _ in split]
    now = sum(
        w * (m.spin_pv + (m.spin_plm[0] if m.lmax >= 0 else 0.0))
        for w, (_, m) in zip(weights, split, strict=True)
    )
    if abs(now - total) <= 1e-12 * max(1.0, abs(total)):
        return None
    if abs(now) > 1e-12:
        k = total / now
        for _, m in split:
            _set_spin(m, k * m.spin_pv, k * m.spin_plm)
        return f"starting spin populations scaled by {k:.6g} to match total_spin = {total:g} muB"
    i, m = split[0]
    _set_spin(m, total / weights[0], m.spin_plm)
    return (
        f"starting spin monopole of {crystal.atoms[i].label} set to {total / weights[0]:.6g} muB "
        f"to match total_spin = {total:g} muB"
    )


def _kappa_groups(params: Parameters, labels: list[str], field_name: str) -> list[list[str]]:
    """Names to tie for one κ set and one of kappa / kappa_prime.

    Atoms whose parameter is ``LABEL.kappa`` (unsplit, or split with a shared
    κ) form one group; split atoms with a κ per spin tie their ``.up`` and
    their ``.dn`` values separately (κ↑ with κ↑, κ↓ with κ↓).
    """
    plain, up, dn = [], [], []
    for lab in labels:
        name = f"{lab}.{field_name}"
        if name in params:
            plain.append(name)
        elif f"{name}.up" in params:
            up.append(f"{name}.up")
            dn.append(f"{name}.dn")
    return [g for g in (plain, up, dn) if len(g) > 1]


def riding_uiso_pairs(project: Project, crystal, riders) -> list[tuple[str, str, float]]:
    """(H, parent, f) of the isotropic H whose Uiso rides on the parent (``h_adp``, ``u_riding``).

    The H Uiso is set to f · Ueq(parent) here, so that the constraint holds at
    the start. Anisotropic H (U_ij in the CIF) are left alone unless their
    table gives ``u_riding`` (they are made isotropic and ride) or ``uiso_free``
    (made isotropic, Uiso = Ueq of the CIF's U_ij, refined freely).
    """
    from chasm.crystal.adp import ueq

    m = project.data["model"]
    parents = {r.h: r.parent for r in riders}
    n_h: dict[str, int] = {}
    for par in parents.values():
        n_h[par] = n_h.get(par, 0) + 1
    out = []
    for atom in crystal.atoms:
        cfg = m["atoms"].get(atom.label) or {}
        factor = cfg.get("u_riding")
        if cfg.get("uiso_free") and factor is None:  # isotropic, refined freely
            if atom.u_aniso is not None:
                atom.uiso, atom.u_aniso = float(ueq(atom.u_aniso, crystal.cell)), None
            continue
        if atom.element not in HYDROGENS or (atom.u_aniso is not None and factor is None):
            continue
        atom.u_aniso = None  # an anisotropic H with u_riding becomes isotropic
        if factor is None and m["h_adp"] != "riding":
            continue
        parent = cfg.get("ride_on") or parents.get(atom.label)
        if parent is None:
            raise InputError(
                f"model.atoms.{atom.label}.u_riding: no parent atom (set ride_on)",
                str(project.path),
            )
        ip = crystal.atom_index(parent)
        if factor is None:
            factor = uiso_factor(crystal, ip, n_h.get(parent, 0))
        if not factor > 0:
            raise InputError(
                f"model.atoms.{atom.label}.u_riding: must be > 0 (1.2 or 1.5), got {factor:g}",
                str(project.path),
            )
        pa = crystal.atoms[ip]
        u_par = ueq(pa.u_aniso, crystal.cell) if pa.u_aniso is not None else pa.uiso
        atom.uiso = float(factor) * float(u_par)
        out.append((atom.label, parent, float(factor)))
    return out


def _data_file(project: Project, cfg: dict, i: int):
    """The data file of ``datasets[i]``, absolute; an InputError if it does not exist."""
    path = project.resolve(cfg["file"])
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "not found"
        raise InputError(
            f"datasets[{i}].file: file of {cfg['name']!r} {what}: {path}", str(project.path)
        )
    return path


def _f2_dataset(
    project: Project, crystal: Crystal, cfg: dict, i: int
) -> tuple[list[DataSet], list[str]]:
    """An X-ray or unpolarised-neutron data set from an HKLF 4 file, and the doubts on its data."""
    src = str(project.path)
    path = _data_file(project, cfg, i)
    neutron = cfg["kind"] == "und"
    if neutron and cfg["extinction"] != "none" and cfg["wavelength"] is None:
        raise InputError(
            f"datasets[{i}].wavelength: required with extinction for unpolarised neutron data "
            "(the CIF's wavelength is the X-ray one)",
            src,
        )
    if is_shelx_cif(path):  # a SHELXL/olex2 CIF carrying its reflections
        block = cfg["block"]
        if (
            block is None
            and path.resolve() == project.resolve(project.data["structure"]["cif"]).resolve()
        ):
            block = project.data["structure"]["block"]
        refl = embedded_reflections(path, choose_block(path, block))
    else:
        layout = {"hklf4": "auto"}.get(cfg["format"], cfg["format"])
        refl = read_reflections(path, layout, cell=crystal.cell)
    # refusals and warnings (absences, duplicates, degenerate sigma, indices) on the raw data
    _, found = check_f2_data(refl, crystal, f"datasets[{i}] ({cfg['name']})", cfg["merge"])
    if cfg["merge"]:
        rule = merge_shelxl if cfg["merge_rule"] == "shelxl" else merge
        refl = rule(refl, crystal, friedel=cfg["friedel"])[0]
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
        omit_friedel=cfg["friedel"],
    )
    cls = UndData if neutron else XrayData
    data = cls(cfg["name"], refl, crystal, opts, adp_set=cfg["adp_set"])
    data.user_weight = cfg["user_weight"]
    return [data], found


def _pnd_datasets(
    project: Project, crystal: Crystal, cfg: dict, i: int
) -> tuple[list[DataSet], list[str]]:
    """One FlippingData per flipping-ratio block of an rcif (or the named ``block``), and doubts."""
    from chasm.neutron.rcif import read_rcif
    from chasm.refine.flipping_data import FlippingData
    from chasm.refine.pnd_data import PndOptions

    src = str(project.path)
    path = _data_file(project, cfg, i)
    pnd = read_rcif(path)
    blocks = pnd.datasets
    if not blocks:
        raise InputError(f"datasets[{i}].file: no flipping-ratio block in {path}", src)
    if cfg["block"] is not None:
        chosen = [b for b in blocks if b.name.lower() == cfg["block"].lower()]
        if not chosen:
            raise InputError(
                f"datasets[{i}].block: no flipping-ratio block {cfg['block']!r} in {path} "
                f"(blocks: {', '.join(b.name for b in blocks)})",
                src,
            )
        blocks = chosen
    ext = {"file": None, "on": True, "off": False}[cfg["extinction"]]
    out: list[DataSet] = []
    checks: list[str] = []
    for block in blocks:
        name = cfg["name"] if len(blocks) == 1 else f"{cfg['name']}.{block.name}"
        opts = PndOptions.from_config(cfg, ext, twins=cfg["twins"])
        try:
            data = FlippingData(
                name,
                block,
                crystal,
                opts,
                adp_set=cfg["adp_set"],
                p=conventions(project.data["model"]["conventions"]).p,
                magnetisation_scale=cfg["magnetisation_scale"],
            )
        except InputError as exc:
            raise InputError(f"datasets[{i}] ({path.name}): {exc.message}", src) from None
        data.user_weight = cfg["user_weight"]
        if block.lambda_half and not cfg["lambda_half"]:  # never ignored without a word
            checks.append(
                f"{name}: the file gives the lambda/2 ratio {block.lambda_half:g} "
                f"(_setup_ratio_lambda/2) but datasets[{i}].lambda_half = 0 leaves it out; "
                "set lambda_half (and lambda_half_model = 'unpolarised' for cryspy's model)"
            )
        out.append(data)
    return out, checks


def _structure_model(crystal, models, datasets, model: dict):
    """The refinement's structure model, with the scattering lengths of ``model.conventions``."""
    from chasm.refine.structure_model import StructureModel

    b = conventions(model["conventions"]).b_overrides
    elements = {a.element for a in crystal.atoms}
    sets = [adp_set_of(x) for x in datasets]
    return StructureModel(
        crystal,
        models,
        adp_sets=[s for s in dict.fromkeys(sets) if s != "X"],
        basis=model["basis"],
        scattering_lengths={e: b[e] for e in elements if e in b},
    )


def conventions_note(project: Project) -> str | None:
    """One line when a cryspy rcif is refined with chasm's own constants."""
    if project.data["model"]["conventions"] != "chasm":
        return None
    if not any(cfg["kind"] == "pnd" for cfg in project.data["datasets"]):
        return None
    return (
        "model.conventions = 'chasm': the rcif files are cryspy's, whose constants differ "
        "(Sears 1992 b, <j2> coefficients, p = 2.695 fm/muB) and move single ratios of real "
        "files by up to 37 % (docs/physics.md); model.conventions = 'cryspy' computes as cryspy"
    )


def stage_data(
    built_entries: dict[str, list[str]], names: list[str], s: dict, i: int, src: str
) -> list[str] | None:
    """The data sets stage i fits (``s["data"]``: set names or entry names), None: all."""
    if s["data"] is None:
        return None
    out: list[str] = []
    for token in s["data"]:
        if token in names:
            hits = [token]
        elif token in built_entries:
            hits = built_entries[token]
        else:
            raise InputError(
                f"stages[{i}].data ({s['name']}): {token!r} is not a data set "
                f"(data sets: {', '.join(names)})",
                src,
            )
        out += [h for h in hits if h not in out]
    return out


def symmetrise_special_positions(crystal) -> list[str]:
    """Put atoms on special positions exactly on their site symmetry.

    CIF values are rounded to their su (``0.037(12) 0.037(12) ... 0.019(6)`` for
    U11 = U22 = 2 U12 on a 3-fold axis), so the exact site-symmetry constraints of
    the refinement do not hold for the values read: the position is replaced by
    the mean of its images under the site group and U* by the mean of R U* Rᵀ.
    Returns the labels changed by more than rounding (1e-12).
    """
    from chasm.crystal.adp import matrix_to_u6, u6_to_matrix, ucif_to_ustar, ustar_to_ucif

    changed = []
    for i, atom in enumerate(crystal.atoms):
        ops = crystal.site_symmetry(i)
        if len(ops) <= 1:
            continue
        x = np.asarray(atom.xyz, float)
        images = []
        for k in ops:
            y = crystal.rotations[k] @ x + crystal.translations[k]
            images.append(y - np.round(y - x))
        new_x = np.mean(images, axis=0)
        moved = float(np.max(np.abs(new_x - x)))
        atom.xyz = new_x
        if atom.u_aniso is not None:
            u = u6_to_matrix(ucif_to_ustar(atom.u_aniso, crystal.cell))
            avg = np.mean([crystal.rotations[k] @ u @ crystal.rotations[k].T for k in ops], axis=0)
            new_u = ustar_to_ucif(matrix_to_u6(avg), crystal.cell)
            moved = max(moved, float(np.max(np.abs(new_u - np.asarray(atom.u_aniso)))))
            atom.u_aniso = new_u
        if moved > 1e-12:
            changed.append(atom.label)
    return changed


def build(project: Project) -> Built:
    """Read the structure and data, build models, constraints, restraints and stages.

    A project with a PND-only spin model (``[model.spin.LABEL]``) is built by
    :func:`chasm.project.pnd_build.build_pnd`.
    """
    from chasm.project.pnd_build import build_pnd, is_pnd_only

    if is_pnd_only(project):
        return build_pnd(project)
    d = project.data
    src = str(project.path)
    cif = project.resolve(d["structure"]["cif"])
    if not cif.is_file():
        what = "is not a regular file" if cif.exists() else "not found"
        raise InputError(f"structure.cif: structure file {what}: {cif}", src)
    from chasm.project.pnd_init import is_rcif

    if is_rcif(cif):  # a cryspy rcif: its crystal block (chasm.project.pnd_build)
        from chasm.neutron.rcif_sites import rcif_crystal
        from chasm.project.pnd_build import rcif_structure

        crystal = rcif_crystal(rcif_structure(project)[1])[0]
    else:
        crystal = read_cif(cif, d["structure"]["block"])
    symmetrise_special_positions(crystal)
    models, riders, sets = build_models(project, crystal)
    split = [a.label for a, m in zip(crystal.atoms, models, strict=True) if m.carries_spin]
    if riders:
        place_riding(crystal, riders)
    riding_u = riding_uiso_pairs(project, crystal, riders)
    datasets: list[DataSet] = []
    entries: dict[str, list[str]] = {}
    checks: list[str] = []  # doubts on the data, per data set in file order
    for i, cfg in enumerate(d["datasets"]):
        if cfg["kind"] == "pnd":
            if not split:
                raise InputError(
                    f"datasets[{i}] ({cfg['name']}): flipping ratios need a spin density: "
                    "list the magnetic atoms in model.magnetic (or split = true per atom)",
                    src,
                )
            new, found = _pnd_datasets(project, crystal, cfg, i)
        else:
            new, found = _f2_dataset(project, crystal, cfg, i)
        entries[cfg["name"]] = [x.name for x in new]
        datasets += new
        checks += found
    names = [x.name for x in datasets]
    if len(set(names)) != len(names):
        raise InputError(f"datasets: data-set names are not unique: {names}", src)
    c = d["constraints"]
    notes = [n for n in [conventions_note(project)] if n]
    text = _text(project)
    if c["total_spin"] is not None:
        if not split:
            raise InputError(
                "constraints.total_spin: no split atom carries spin; list the magnetic atoms "
                "in model.magnetic",
                src,
            )
        line = find_line(text, "constraints.total_spin")
        check_total_spin(crystal, models, float(c["total_spin"]), src, line)
        note = match_total_spin(crystal, models, float(c["total_spin"]))
        if note:
            notes.append(note)
    hc = any(m.has_valence for m in models)
    if c["electroneutrality"] and hc:
        line = find_line(text, "constraints.charge")
        check_charge(crystal, models, float(c["charge"]), src, line)
    r = d["refinement"]
    options = SolverOptions(
        tol=r["tol"],
        max_cycles=r["max_cycles"],
        max_shift_su=r["max_shift_su"],
        correlation_threshold=r["correlation_threshold"],
    )
    ref = Refinement(
        crystal,
        models,
        datasets,
        riders=riders,
        scheme=r["score"],
        options=options,
        structure=_structure_model(crystal, models, datasets, d["model"]),
    )
    p = ref.params
    for labels in sets.values():
        if len(labels) > 1:
            for field_name in ("kappa", "kappa_prime"):
                for group in _kappa_groups(p, labels, field_name):
                    ref.add_constraints(same_value(p, group))
    if c["electroneutrality"] and hc:
        ref.add_constraints(ref.structure.charge_constraint(p, charge=c["charge"]))
    if c["total_spin"] is not None:
        ref.add_constraints(ref.structure.spin_constraint(p, float(c["total_spin"])))
    add_user_constraints(ref, crystal, c, src, split)
    if riding_u:
        ref.add_constraints(riding_uiso(crystal, p, riding_u))
        ref.followers += [f"{h}.Uiso" for h, _, _ in riding_u]
    add_restraints(project, crystal, models, ref, expand, split)
    stages = []
    for i, s in enumerate(d["stages"]):
        free = expand(p, crystal, s["free"], f"stages[{i}].free ({s['name']})", split)
        fix = (
            expand(p, crystal, s["fix"], f"stages[{i}].fix ({s['name']})", split)
            if s["fix"]
            else []
        )
        data = stage_data(entries, names, s, i, src)
        stages.append(
            Stage(s["name"], free, fix, s["smin"], s["smax"], s["max_cycles"], s["tol"], data)
        )
    return Built(project, crystal, models, riders, ref, stages, sets, entries, split, notes, checks)


def _text(project: Project) -> str | None:
    """The project file's text (for line numbers in messages), None if unreadable."""
    try:
        return project.path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
