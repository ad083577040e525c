"""``chasm init X.rcif``: a PND-only project from a cryspy rcif alone.

The rcif gives everything: the structure (its crystal block), the magnetic
atoms with their model, and the flipping-ratio blocks (UB, P, e, field, λ,
λ/2, extinction, twins). The project written refers to the rcif for both the
structure and the data, computes with ``conventions = "cryspy"`` (the file's
own constants), and frees what cryspy refined: cryspy writes a refined value
with its su in parentheses (``3.3290(88)``), a fixed one without.

Magnetic atoms, in this order of evidence:

1. a row of ``_atom_site_susceptibility`` (``Ciso`` -> ``chi_iso``, ``Cani``
   -> ``chi_aniso``, a tensor obeying the site symmetry);
2. a row of ``_atom_site_moment`` (``moment``: an ordered moment copied by the
   magnetic group);
3. without either loop, chemistry: every ion with an open 3d, 4d, 5d, 4f or 5f
   shell at its formal charge (type symbol; without a charge the usual one:
   3+ for a lanthanide, 2+ for a d metal), rare earths included; as
   ``chi_iso`` from 0.1 μB/T (a moment along the field) in a paramagnetic
   group, as ``moment`` from zero in a magnetic group with time reversal.

The ion of the form factor, Landé factor and κ come from ``_atom_site_scat``
(the atom's type symbol when the row lacks one, as cryspy does); a chemistry
guess takes the free-ion g_J of Hund's rules for an f ion (the orbital term
C2 = 2/g_J − 1) and g = 2 for a d ion. Everything chosen is listed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import periodictable

from chasm.crystal.structure import parse_type_symbol
from chasm.errors import InputError
from chasm.neutron.magnetic_ff import DIVALENT_LANTHANIDES, MAGNETIC_SHELLS, hund_moment
from chasm.neutron.rcif import PndFile, RcifBlock, read_rcif
from chasm.neutron.rcif_sites import is_dummy

__all__ = ["is_rcif", "pnd_project_text", "open_shell", "guess_magnetic"]


def is_rcif(path) -> bool:
    """True for a cryspy rcif: the ``.rcif`` suffix, or a text with flipping ratios."""
    path = Path(path)
    if path.suffix.lower() == ".rcif":
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(2_000_000).lower()
    except OSError:
        return False
    return "_diffrn_refln_fr" in head and "_setup_wavelength" in head


def open_shell(type_symbol: str) -> tuple[str, int, int, float] | None:
    """(shell name, l, electrons, g_J) of an ion's open d or f shell, or None.

    The charge of the type symbol (``'Ho3+'``), or the usual one when it has
    none (3+ for 4f/5f, 2+ for d metals; Sm, Eu, Tm, Yb also 3+).
    """
    try:
        element, charge = parse_type_symbol(type_symbol)
        z = int(periodictable.elements.symbol(element).number)
    except (ValueError, AttributeError):
        return None
    names = {(21, 2): "3d", (39, 2): "4d", (72, 2): "5d", (57, 3): "4f", (89, 3): "5f"}
    for first, last, l_shell, core, charges in MAGNETIC_SHELLS:
        if not first <= z <= last:
            continue
        q = charge or (3 if l_shell == 3 or element in DIVALENT_LANTHANIDES else charges[0])
        n = z - core - q
        if 0 < n < 2 * (2 * l_shell + 1):
            spin, orbital, j, gj = hund_moment(l_shell, n)
            g = 2.0 if l_shell == 2 or j == 0 else gj / j
            return names[(first, l_shell)], l_shell, n, g
        return None
    return None


def _marked(tok) -> bool:
    """cryspy's mark of a refined value: its su in parentheses."""
    return tok is not None and "(" in tok.text


def _crystal_block(pnd: PndFile, name: str) -> RcifBlock:
    return next(b for b in pnd.blocks if b.name == name and "_cell_length_a" in b.items)


def _block_of(pnd: PndFile, data) -> RcifBlock:
    """The parsed block of a flipping-ratio data set."""
    return next(b for b in pnd.blocks if b.name == data.name and b.has("_diffrn_refln_fr"))


def _loop_tokens(block: RcifBlock, prefix: str, label: str) -> dict[str, object]:
    """Tag -> token of the row of ``label`` in the loop of ``prefix``_label."""
    loop = block.find_loop(f"{prefix}_label")
    if loop is None:
        return {}
    labels = [t.text for t in loop.column(f"{prefix}_label")]
    if label not in labels:
        return {}
    row = loop.rows[labels.index(label)]
    return dict(zip(loop.tags, row, strict=True))


def guess_magnetic(pnd: PndFile, crystal_name: str | None = None) -> tuple[dict, list[str]]:
    """The spin table of every magnetic atom and one line per choice (module docstring).

    Returns
    -------
    sites : dict label -> dict
        Keys of ``[model.spin.LABEL]`` (model, ion, lande, kappa, moment/chi)
        plus ``"free"``: the components cryspy refined (``"chi11"``, ``"mz"``...).
    why : list of str
    """
    cryst = pnd.crystal(crystal_name)
    block = _crystal_block(pnd, cryst.name)
    magnetic_group = cryst.time_reversal is not None and bool(np.any(cryst.time_reversal < 0))
    sites: dict[str, dict] = {}
    why: list[str] = []
    for atom in cryst.atoms:
        lab = atom.label
        scat = cryst.scattering.get(lab)
        base = {
            "ion": scat.type_symbol if scat else atom.type_symbol,
            "lande": scat.lande if scat else 2.0,
            "kappa": scat.kappa if scat else 1.0,
        }
        if lab in cryst.susceptibility:
            sus = cryst.susceptibility[lab]
            toks = _loop_tokens(block, "_atom_site_susceptibility", lab)
            iso = sus.chi_type.lower() == "ciso"
            names = ("11", "22", "33", "12", "13", "23")
            marked = [n for n in names if _marked(toks.get(f"_atom_site_susceptibility_chi_{n}"))]
            if iso:
                entry = {"model": "chi_iso", "chi": float(sus.chi[0])}
                entry["free"] = ["chi_iso"] if marked else []
            else:
                entry = {"model": "chi_aniso", "chi": [float(x) for x in sus.chi]}
                entry["free"] = [f"chi{n}" for n in marked]
            sites[lab] = {**base, **entry, "source": "file"}
            why.append(
                f"{lab}: {entry['model']} from the file's _atom_site_susceptibility "
                f"({sus.chi_type}), ion {base['ion']}, Lande {base['lande']:g}"
            )
        elif lab in cryst.moments:
            toks = _loop_tokens(block, "_atom_site_moment", lab)
            marked = [
                f"m{c}" for c in "xyz" if _marked(toks.get(f"_atom_site_moment_crystalaxis_{c}"))
            ]
            sites[lab] = {
                **base,
                "model": "moment",
                "moment": [float(x) for x in cryst.moments[lab]],
                "free": marked,
                "source": "file",
            }
            why.append(
                f"{lab}: ordered moment from the file's _atom_site_moment "
                f"({', '.join(f'{x:g}' for x in cryst.moments[lab])} muB), ion {base['ion']}"
            )
    for lab, entry in sites.items():
        if lab in cryst.multipoles:
            why.append(_add_spin_multipoles(cryst, block, lab, entry))
    unused = [lab for lab in cryst.multipoles if lab not in sites]
    if unused:
        why.append(
            f"_atom_rho_multipole rows of {', '.join(unused)} not used: no moment or "
            "susceptibility on those atoms (their spin density would scatter nothing)"
        )
    if sites:
        return sites, why
    for atom in cryst.atoms:
        if is_dummy(atom.type_symbol):
            continue
        shell = open_shell(atom.type_symbol)
        if shell is None:
            continue
        name, l_shell, n, g = shell
        ion = atom.type_symbol
        if parse_type_symbol(ion)[1] == 0:
            q = 3 if l_shell == 3 else 2
            ion = f"{parse_type_symbol(ion)[0]}{q}+"
        entry = {"ion": ion, "lande": round(g, 6), "kappa": 1.0, "free": None, "source": "chem"}
        if magnetic_group:
            entry.update(model="moment", moment=[0.0, 0.0, 0.0])
        else:
            entry.update(model="chi_iso", chi=0.1)
        sites[atom.label] = entry
        why.append(
            f"{atom.label}: {ion} has an open {name} shell ({name}{n}): {entry['model']}, "
            f"Lande {g:.4g} (chemistry: the file has no susceptibility or moment loop)"
        )
    return sites, why


def _uvw(v) -> str:
    """A direction as ``u v w`` (rounded to 1e-10: differences of coordinates)."""
    return " ".join(_fmt(x) for x in np.round(np.asarray(v, dtype=float), 10) + 0.0)


def _add_spin_multipoles(cryst, block: RcifBlock, lab: str, entry: dict) -> str:
    """Put the file's ``_atom_rho_multipole`` model of ``lab`` into its spin entry; the note.

    Raises
    ------
    InputError
        A non-zero odd-l population, or an orbital the databank lacks (file and line).
    """
    from chasm.neutron.dorbital_site import OrbitalFormFactor
    from chasm.neutron.spin_shape import populations_from_cryspy

    rho = cryst.multipoles[lab]
    where = "_atom_rho_multipole_"
    try:
        pops = populations_from_cryspy(rho.populations, where)
        element = parse_type_symbol(rho.type_symbol)[0]
        OrbitalFormFactor.from_databank(element, rho.orbital)
    except InputError as exc:
        raise InputError(f"atom {lab}: {exc.message}", cryst.path, rho.line) from None
    entry.update(orbital=rho.orbital, orbital_species=element, kappa=rho.kappa)
    toks = _loop_tokens(block, "_atom_rho_multipole_atom", lab)
    if _marked(toks.get("_atom_rho_multipole_kappa")):  # cryspy refined it (value with an su)
        entry["free"] = [*(entry.get("free") or []), "kappa"]
    entry["populations"] = {k: v for k, v in pops.items() if v != 0.0 or k == "P00"}
    axes = cryst.local_axes.get(lab)
    text = (
        "the Cartesian axes (the file gives no _atom_local_axes row; cryspy then leaves the "
        "multipole loop out and uses _atom_site_scat)"
    )
    if axes is not None:
        xyz = {a.label: a.xyz for a in cryst.atoms}
        v1 = xyz[axes.atom0] - xyz[lab]
        v2 = xyz[axes.atom2] - xyz[axes.atom1]
        entry["local_axes"] = f"{axes.ax1} {_uvw(v1)}, {axes.ax2} {_uvw(v2)}"
        text = f"local axes '{entry['local_axes']}' (_atom_local_axes, line {axes.line})"
    aspherical = [k for k, v in pops.items() if k != "P00" and v != 0.0]
    note = (
        f"{lab}: the file's spin-multipole form factor (_atom_rho_multipole, line {rho.line}): "
        f"{element} {rho.orbital} from chasm's databank (Koga, neutral atom; cryspy uses "
        f"Clementi-Roetti's: ratios of MnF2 move by up to 0.7 %, docs/validation.md; "
        f"slater_n/zeta/coeff give another), kappa {rho.kappa:g}, "
        + ", ".join(f"{k} {v:g}" for k, v in entry["populations"].items())
        + f", {text}"
    )
    if aspherical:
        note += (
            "; cryspy applies the local frame transposed (its P22 acts as chasm's -P22 when x "
            "is along [110]): compare aspherical populations with care (docs/validation.md)"
        )
    return note


def _parameter_names(cryst, sites: dict) -> dict[str, list[str]]:
    """The spin parameters each site's model will have (site symmetry applied)."""
    from chasm.neutron.magnetic_ff import IonFormFactor
    from chasm.neutron.rcif_sites import rcif_crystal
    from chasm.refine.pnd_data import SpinSite, moment_site_columns, site_columns

    crystal, _ = rcif_crystal(cryst, {a.type_symbol: 1.0 for a in cryst.atoms})
    table = IonFormFactor("none", (0.0,) * 7, None, None)  # shapes do not matter here
    out = {}
    for lab, s in sites.items():
        index = crystal.atom_index(lab)
        if s["model"] == "moment":
            site = SpinSite(lab, table, vector=s["moment"])
            cols = moment_site_columns(crystal, index, site, cryst.time_reversal)
        elif s["model"] == "chi_iso":
            cols = site_columns(crystal, index, SpinSite(lab, table, chi=[0] * 6, isotropic=True))
        else:
            cols = site_columns(crystal, index, SpinSite(lab, table, chi=s["chi"]))
        out[lab] = [c[0] for c in cols]
    return out


def _check_form_factors(cryst, sites: dict, path: str) -> None:
    """Every chosen ion has a tabulated form factor (cryspy's table or periodictable's).

    Raises
    ------
    InputError
        Naming the rcif line of the ion (its ``_atom_site_scat`` row, else the atom).
    """
    from chasm.neutron.conventions import conventions
    from chasm.neutron.magnetic_ff import ion_form_factor

    tables = conventions("cryspy").form_factors
    for lab, s in sites.items():
        if s["ion"] in tables or s.get("orbital"):
            continue
        try:
            ion_form_factor(s["ion"])
        except InputError as exc:
            scat = cryst.scattering.get(lab)
            line = scat.line if scat else next(a.line for a in cryst.atoms if a.label == lab)
            raise InputError(
                f"atom {lab}: {exc.message}; give an ion with a tabulated <j0> in "
                "_atom_site_scat_type_symbol",
                path,
                line,
            ) from None


def _fmt(x: float) -> str:
    return np.format_float_positional(float(x), unique=True, trim="0")


def _q(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _given_sites(cryst, sites: dict, magnetic: list[str], path: str) -> tuple[dict, list[str]]:
    """The sites of ``--magnetic``: the guess's entry when there is one, else a default."""
    labels = [a.label for a in cryst.atoms]
    magnetic_group = cryst.time_reversal is not None and bool(np.any(cryst.time_reversal < 0))
    out, why = {}, []
    for lab in magnetic:
        if lab not in labels:
            raise InputError(
                f"--magnetic: no atom {lab!r} in the structure (atoms: {', '.join(labels)})", path
            )
        if lab in sites:
            out[lab] = sites[lab]
            why.append(f"{lab}: given (--magnetic), {sites[lab]['model']} as in the file")
            continue
        atom = cryst.atoms[labels.index(lab)]
        scat = cryst.scattering.get(lab)
        shell = open_shell(atom.type_symbol)
        entry = {
            "ion": scat.type_symbol if scat else atom.type_symbol,
            "lande": scat.lande if scat else (round(shell[3], 6) if shell else 2.0),
            "kappa": scat.kappa if scat else 1.0,
            "free": None,
            "source": "given",
        }
        entry.update(
            {"model": "moment", "moment": [0.0, 0.0, 0.0]}
            if magnetic_group
            else {"model": "chi_iso", "chi": 0.1}
        )
        out[lab] = entry
        why.append(f"{lab}: given (--magnetic), {entry['model']}, ion {entry['ion']}")
    return out, why


def _shape_lines(s: dict) -> list[str]:
    """Project lines of a spin-multipole form factor (:func:`_add_spin_multipoles`)."""
    pops = ", ".join(
        f"{_q(k) if k[-1] in '+-' else k} = {_fmt(v)}" for k, v in s["populations"].items()
    )
    out = [
        f"orbital = {_q(s['orbital'])}   # spin-multipole form factor (_atom_rho_multipole)",
        f"orbital_species = {_q(s['orbital_species'])}   # radial function: chasm's databank "
        "(cryspy: Clementi-Roetti; slater_n/zeta/coeff give any)",
        f"kappa = {_fmt(s['kappa'])}",
        f"populations = {{{pops}}}   # even-l P_lm of the normalised spin density",
    ]
    if s.get("local_axes"):
        out.append(f"local_axes = {_q(s['local_axes'])}   # axis, direct-lattice direction")
    return out


def pnd_project_text(
    rcif,
    project_path="project.toml",
    output: str = "refined",
    block: str | None = None,
    magnetic: list[str] | None = None,
):
    """The text of a PND-only project for a cryspy rcif, what was taken and what guessed.

    Returns
    -------
    InitResult

    Raises
    ------
    InputError
        No crystal block, no flipping-ratio block, several crystal blocks and
        no ``block``, no magnetic atom found.
    """
    from chasm.project.init import InitResult

    rcif = Path(rcif)
    folder = Path(project_path).resolve().parent
    try:
        rel = os.path.relpath(rcif.resolve(), folder)
    except ValueError:
        rel = str(rcif.resolve())
    pnd = read_rcif(rcif)
    if not pnd.crystals:
        raise InputError(
            "no crystal block (_cell_length_a) in the rcif: give the structure CIF and the "
            "rcif with --pnd",
            str(rcif),
        )
    if not pnd.datasets:
        more = (
            f" (it holds {len(pnd.intensity_sets)} unpolarised intensity block(s), "
            "_diffrn_refln_intensity, which a PND-only project does not fit)"
            if pnd.intensity_sets
            else ""
        )
        raise InputError(f"no flipping-ratio block (_diffrn_refln_fr) in the rcif{more}", str(rcif))
    if block is None and len(pnd.crystals) > 1:
        raise InputError(
            f"{len(pnd.crystals)} crystal blocks ({', '.join(c.name for c in pnd.crystals)}): "
            "choose one with --block",
            str(rcif),
        )
    cryst = pnd.crystal(block)
    sites, why = guess_magnetic(pnd, cryst.name)
    if magnetic:
        sites, why = _given_sites(cryst, sites, list(magnetic), str(rcif))
    _check_form_factors(cryst, sites, str(rcif))
    if not sites:
        raise InputError(
            "no magnetic atom: the file has no susceptibility or moment loop and no ion with an "
            "open d or f shell; write [model.spin.LABEL] tables yourself (docs/project-file.md)",
            str(rcif),
        )
    n_real = sum(not is_dummy(a.type_symbol) for a in cryst.atoms)
    data = [d for d in pnd.datasets if d.phase is None or d.phase.lower() == cryst.name.lower()]
    data = data or pnd.datasets
    sources = [
        f"structure: {rcif.name}, data_{cryst.name} ({n_real} atoms"
        + (
            f", {len(cryst.atoms) - n_real} dummy atoms left out)"
            if n_real < len(cryst.atoms)
            else ")"
        ),
        *[
            f"flipping ratios: {rcif.name}, data_{d.name} ({len(d.hkl)} ratios, line {d.line})"
            for d in data
        ],
    ]
    guesses = ["magnetic atoms: " + "; ".join(why)]
    L = [
        "# chasm project file (TOML), written by `chasm init` from a cryspy rcif.",
        "# Reference of every key: docs/project-file.md. Paths are relative to this file.",
        "# A PND-only refinement: the nuclear structure of the rcif is fixed; the spin model",
        "# of [model.spin.*] and the data-set parameters the stages name are refined.",
        "",
        f"title = {_q(cryst.name)}",
        f"output = {_q(output)}",
        "",
        "[structure]",
        f"cif = {_q(rel)}   # the rcif's crystal block: positions, ADPs, magnetic group",
    ]
    if len(pnd.crystals) > 1 or block is not None:
        L.append(f"block = {_q(cryst.name)}")
    L += [
        "",
        "[model]",
        'conventions = "cryspy"   # GUESSED: the file is cryspy\'s: its scattering lengths, '
        "<j0>/<j2> and p ('chasm': chasm's own, docs/physics.md)",
        "",
    ]
    guesses.append(
        "model.conventions = 'cryspy' (cryspy's constants; 'chasm' moves ratios of real files "
        "by up to 37 %)"
    )
    for lab, s in sites.items():
        tag = {"file": "from the file", "given": "given (--magnetic)"}.get(
            s["source"], "GUESSED (chemistry)"
        )
        L += [f"[model.spin.{lab}]", f"model = {_q(s['model'])}   # {tag}"]
        if s.get("orbital"):
            L += _shape_lines(s)
        else:
            L.append(f"ion = {_q(s['ion'])}   # form factor <j0> + C2 <j2>")
            L.append(f"lande = {_fmt(s['lande'])}   # C2 = 2/g - 1")
            L.append(f"kappa = {_fmt(s['kappa'])}")
        if s["model"] == "moment":
            L.append("moment = [" + ", ".join(_fmt(x) for x in s["moment"]) + "]   # muB, a b c")
        elif s["model"] == "chi_iso":
            L.append(f"chi = {_fmt(s['chi'])}   # muB/T")
        else:
            L.append(
                "chi = [" + ", ".join(_fmt(x) for x in s["chi"]) + "]   # muB/T: 11 22 33 12 13 23"
            )
        L.append("")
    free_spin, free_data = [], []
    params = _parameter_names(cryst, sites)
    for lab, s in sites.items():
        marked = [f"{lab}.{n}" for n in (s["free"] or [])]
        # what cryspy marked among the model's parameters (a component that follows the
        # others by symmetry is not one); nothing marked (or a guess): all of them, but not
        # the kappa of a spin-multipole form factor (free only when the file marks it)
        allowed = params[lab] + ([f"{lab}.kappa"] if s.get("orbital") else [])
        names = [n for n in marked if n in allowed] or params[lab]
        free_spin += names
    for d in data:
        name = "pnd" if len(data) == 1 else f"pnd.{d.name}"
        blk = _block_of(pnd, d)
        it = blk.items
        if d.extinction_model and d.radius > 0:
            if _marked(it.get("_extinction_radius")):
                free_data.append(f"{name}.extinction_radius")
            if _marked(it.get("_extinction_mosaicity")):
                free_data.append(f"{name}.mosaicity")
        if d.twins:
            loop = blk.find_loop("_jana_twin_fraction")
            for j, tok in enumerate(loop.column("_jana_twin_fraction"), start=1):
                if _marked(tok):
                    free_data.append(f"{name}.twin{j}")
        if _marked(it.get("_diffrn_radiation_polarization")):
            free_data.append(f"{name}.polarisation")
        half = it.get("_setup_ratio_lambdaover2") or it.get("_setup_ratio_lambda/2")
        if _marked(half):
            free_data.append(f"{name}.lambda_half")
    refine_p = any(x.endswith(".polarisation") for x in free_data)
    refine_half = any(x.endswith(".lambda_half") for x in free_data)
    half = [d.lambda_half for d in data if d.lambda_half]
    L += [
        "[[datasets]]",
        'name = "pnd"' + ("   # one data set per block: pnd.BLOCK" if len(data) > 1 else ""),
        'kind = "pnd"',
        f"file = {_q(rel)}",
        'format = "rcif"',
    ]
    if len(data) < len(pnd.datasets):
        L.append(f"block = {_q(data[0].name)}")
    for d in data:
        ext = f"{d.extinction_model}, radius {d.radius:g} um" if d.radius > 0 else "none"
        L += [
            f"# block {d.name}: {len(d.hkl)} ratios, wavelength {d.wavelength:g} A, field "
            f"{d.field:g} T, P {d.polarisation:+g}, e {d.efficiency:g}, UB {d.ub_type}, "
            f"extinction {ext}"
            + (f", {len(d.twins)} twin domain(s)" if d.twins else "")
            + (f", lambda/2 ratio {d.lambda_half:g}" if d.lambda_half else "")
            + (", cryspy fitted the asymmetry (R-1)/(R+1)" if d.asymmetry else "")
        ]
        sources.append(
            f"block {d.name}: UB ({d.ub_type}), P {d.polarisation:+g}, e {d.efficiency:g}, "
            f"field {d.field:g} T, wavelength {d.wavelength:g} A, extinction {ext}"
            + (f", twins {len(d.twins)}" if d.twins else "")
            + (f", lambda/2 {d.lambda_half:g}" if d.lambda_half else "")
        )
    L.append('extinction = "file"      # sphere extinction as in the file')
    over2 = [d.name for d in data if _block_of(pnd, d).items.get("_setup_ratio_lambdaover2")]
    if over2:
        guesses.append(
            f"lambda/2: blocks {', '.join(over2)} write _setup_ratio_lambdaover2, which chasm "
            "reads but cryspy's own reader ignores (it reads _setup_ratio_lambda/2): cryspy "
            "computed this file without lambda/2"
        )
    if half:
        if len(set(half)) > 1:
            guesses.append(
                f"lambda/2: the blocks give {sorted(set(half))}; the project takes {half[0]:g} "
                "for all (one value per data-set entry: split the entry to differ)"
            )
        L += [
            f"lambda_half = {_fmt(half[0])}   # the file's _setup_ratio_lambdaover2",
            'lambda_half_model = "unpolarised"   # cryspy\'s lambda/2 model (docs/physics.md)',
        ]
    if refine_p:
        L.append("refine_polarisation = true")
    if refine_half:
        L.append("refine_lambda_half = true")
    if any(d.asymmetry for d in data):
        L.append('fit = "asymmetry"   # the file\'s _chi2_asymmetry: cryspy fits (R-1)/(R+1)')
        guesses.append("fit: the asymmetry (R-1)/(R+1), as the file's _chi2_asymmetry")
    if any(d.twins for d in data):
        L.append("twins = true             # the file's twin domains (_jana_twin)")
    L += [
        "",
        "[constraints]",
        "electroneutrality = false",
        "",
        "[refinement]",
        'score = "unit"',
        "tol = 0.001         # converged when max |shift|/su < tol",
        "max_cycles = 50",
        "",
        "# Free: what cryspy refined in this file (values written with an su), or every",
        "# spin component when nothing is marked.",
        "[[stages]]",
        'name = "spin"',
        "free = [" + ", ".join(_q(x) for x in free_spin + free_data) + "]",
    ]
    guesses.append("strategy: one stage 'spin' freeing " + ", ".join(free_spin + free_data))
    return InitResult("\n".join(L) + "\n", guesses, sources)
