"""The project file: schema, loading and validation.

A project file is TOML; the reference page is ``docs/project-file.md``. Paths
in it are relative to the file's folder. Loading checks every key against
:data:`SCHEMA` (unknown keys and wrong types are errors with the key's path
and line) and returns a :class:`Project`.
"""

from __future__ import annotations

import re
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chasm.errors import InputError
from chasm.project.map_settings import MAP_SCHEMA
from chasm.project.schema import (
    REQUIRED,
    ArrayOf,
    Field,
    Table,
    find_line,
    simulate_schema,
    validate,
)

__all__ = ["SCHEMA", "DATASET_KINDS", "Project", "load_project"]

_NUM = (float,)
_OPT_NUM = (float, type(None))

#: Largest sin(theta)/lambda accepted anywhere (1/A); sub-0.1 A wavelengths are not diffraction.
STOL_MAX = 10.0
#: Largest |h|, |k|, |l| of an ``omit`` entry.
INDEX_MAX = 1000


def _hkl_triple(value: list) -> str | None:
    """Error text for an ``omit`` entry that is not three integer indices."""
    for i, h in enumerate(value):
        if (
            not isinstance(h, list)
            or len(h) != 3
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in h)
        ):
            return f"entry {i} {h!r} is not [h, k, l] (three integers)"
        if max(abs(x) for x in h) > INDEX_MAX:
            return f"entry {i} {h!r}: indices are limited to |h|, |k|, |l| <= {INDEX_MAX}"
        if h == [0, 0, 0]:
            return f"entry {i}: [0, 0, 0] is not a reflection"
    return None


def _patterns(value: list) -> str | None:
    """Error text for a ``same`` group that is neither a string nor a list of strings."""
    for i, g in enumerate(value):
        if isinstance(g, list) and not all(isinstance(x, str) for x in g):
            return f"group {i} {g!r}: expected names or patterns (strings)"
        if isinstance(g, list) and not g:
            return f"group {i} is empty"
    return None


ATOM_SCHEMA = {
    "model": Field((str,), None, ("hc", "iam"), "density model of this atom"),
    "lmax": Field((int,), None, (-1, 0, 1, 2, 3, 4), "highest multipole order"),
    "axes": Field(
        (str,),
        None,
        help="local axes 'atom0 ax1 atom1 atom2 ax2', e.g. 'O1 Z C1 N1 X', or 'cartesian' (the "
        "crystal's Cartesian frame)",
    ),
    "kappa_set": Field((str,), None, help="atoms with the same kappa_set share kappa and kappa'"),
    "pv": Field(_NUM, None, help="starting valence population (electrons)", ge=0.0, le=100.0),
    "kappa": Field(_NUM, None, help="starting kappa", gt=0.0, le=10.0),
    "kappa_prime": Field(_NUM, None, help="starting kappa'", gt=0.0, le=10.0),
    "ride_on": Field((str,), None, help="parent atom of a riding hydrogen"),
    "xh_distance": Field(_NUM, None, help="X-H distance of a riding hydrogen (A)", gt=0.0, le=3.0),
    "split": Field(
        (bool,), None, help="spin-split atom (spin-up and spin-down valence); see model.magnetic"
    ),
    "spin_pv": Field(
        _NUM,
        None,
        help="starting spin monopole Pv(up) - Pv(down) (muB); default 0",
        ge=-100.0,
        le=100.0,
    ),
    "spin": Field(
        (dict,),
        None,
        help="starting spin multipoles (muB), e.g. {P00 = 0.1, P20 = 0.05}",
        item_types=(float,),
        ge=-100.0,
        le=100.0,
    ),
    "u_riding": Field(
        _OPT_NUM,
        None,
        help="hydrogen: Uiso = u_riding x Ueq(parent) as a constraint (1.2, or 1.5 for CH3, OH, "
        "NH3); default from model.h_adp",
    ),
    "uiso_free": Field(
        (bool,),
        False,
        help="hydrogen: one Uiso refined freely, not riding (U_ij of the CIF replaced by "
        "their Ueq)",
    ),
    "share_kappa": Field((bool,), False, help="split atom: one kappa for both spins"),
    "share_kappa_prime": Field((bool,), False, help="split atom: one kappa' for both spins"),
}

#: Spin models of a PND-only project (``[model.spin.LABEL]``), see SPIN_SITE_SCHEMA.
SPIN_MODELS = ("moment", "field_moment", "chi_iso", "chi_aniso", "chi_local")


def _number_list(*n: int) -> Callable[[list], str | None]:
    def check(value) -> str | None:
        if isinstance(value, list) and len(value) not in n:
            return f"expected {' or '.join(map(str, n))} numbers, got {len(value)}"
        return None

    return check


SPIN_SITE_SCHEMA = {
    "model": Field(
        (str,),
        REQUIRED,
        SPIN_MODELS,
        "moment: ordered moment (crystal axes, copied by the magnetic group; LABEL.mx/my/mz); "
        "field_moment: a moment along the field on every copy (LABEL.moment); chi_iso: "
        "isotropic susceptibility (LABEL.chi_iso); chi_aniso: susceptibility tensor obeying the "
        "site symmetry, a local tensor on a special position (LABEL.chi11 ...); chi_local: "
        "uniaxial chi about the site's axis (LABEL.chi_par, LABEL.chi_perp)",
    ),
    "axis": Field(
        (list, type(None)),
        None,
        help="chi_local: the axis as a direct-lattice direction [u, v, w] (default: the "
        "site's unique 3-, 4- or 6-fold axis)",
        item_types=(float,),
        ge=-100.0,
        le=100.0,
        check=_number_list(3),
    ),
    "ion": Field(
        (str, type(None)),
        None,
        help="ion of the tabulated <j0>, <j2> (e.g. 'Ho3+'; default: the atom's type symbol)",
    ),
    "lande": Field(
        _NUM,
        2.0,
        help="Lande factor g; the orbital term C2 = 2/g - 1 (g = 2: spin only)",
        gt=0.0,
        le=10.0,
    ),
    "c2": Field(
        _OPT_NUM,
        None,
        help="orbital term C2 of f = <j0> + C2 <j2> (overrides lande)",
        ge=-10.0,
        le=10.0,
    ),
    "kappa": Field(_NUM, 1.0, help="radial expansion kappa of the form factor", gt=0.0, le=10.0),
    "moment": Field(
        (float, list, type(None)),
        None,
        help="start moment (muB): [mx, my, mz] on the crystal axes for 'moment', a number for "
        "'field_moment'",
        item_types=(float,),
        ge=-20.0,
        le=20.0,
        check=_number_list(3),
    ),
    "chi": Field(
        (float, list, type(None)),
        None,
        help="start susceptibility (muB/T): a number for 'chi_iso', [chi11, chi22, chi33, chi12, "
        "chi13, chi23] on the normalised crystal axes for 'chi_aniso', [chi_par, chi_perp] for "
        "'chi_local'",
        item_types=(float,),
        ge=-1000.0,
        le=1000.0,
        check=_number_list(6, 2),
    ),
    # a spin-multipole form factor (cryspy's _atom_rho_multipole model, chasm.neutron.spin_shape)
    "orbital": Field(
        (str, type(None)),
        None,
        help="spin-multipole form factor: the radial orbital of the spin density ('3d', '2p'), "
        "with populations, local_axes and kappa; replaces ion/lande/c2 (<j0> + C2 <j2>)",
    ),
    "orbital_species": Field(
        (str, type(None)),
        None,
        help="with orbital: the wavefunction-databank species of the radial function ('Mn', "
        "'Mn+', 'F-'; default the neutral atom, as cryspy)",
    ),
    "slater_n": Field(
        (list, type(None)),
        None,
        help="with orbital: the radial function as Slater functions r^(n-1) exp(-zeta r) "
        "instead of the databank's: their n",
        item_types=(int,),
        ge=1,
        le=12,
    ),
    "slater_zeta": Field(
        (list, type(None)),
        None,
        help="with slater_n: the exponents zeta (1/bohr)",
        item_types=(float,),
        gt=0.0,
        le=1000.0,
    ),
    "slater_coeff": Field(
        (list, type(None)),
        None,
        help="with slater_n: the coefficients over normalised Slater functions (the orbital "
        "is normalised)",
        item_types=(float,),
        ge=-1000.0,
        le=1000.0,
    ),
    "populations": Field(
        (dict, type(None)),
        None,
        help="with orbital: even-l spin populations P00, P20, P21+ ... P44- of the normalised "
        "density (default P00 = 1: spherical; the moment is the model's)",
        item_types=(float,),
        ge=-20.0,
        le=20.0,
    ),
    "local_axes": Field(
        (str, type(None)),
        None,
        help="with orbital: the populations' frame, 'x u v w, z u v w' (axis letter and a "
        "direct-lattice direction, twice; default the Cartesian axes)",
    ),
}

_COMMON_DATASET = {
    "name": Field(
        (str,),
        REQUIRED,
        help="data-set name, prefix of its parameters (several rcif blocks: NAME.BLOCK)",
    ),
    "file": Field((str,), REQUIRED, help="reflection file, relative to the project file"),
    "user_weight": Field(
        _NUM, 1.0, help="multiplies the data set's term of the score", gt=0.0, le=1e6
    ),
    "smin": Field(_OPT_NUM, None, help="lowest sin(theta)/lambda kept (1/A)", ge=0.0, lt=STOL_MAX),
    "smax": Field(_OPT_NUM, None, help="highest sin(theta)/lambda kept (1/A)", gt=0.0, le=STOL_MAX),
}


def _f2_dataset(neutron: bool) -> dict:
    """Keys of an F² data set (X-ray, or unpolarised neutrons with ``neutron``)."""
    return {
        "format": Field(
            (str,),
            "hklf4",
            ("hklf4", "fixed", "free", "xd"),
            help="file format: hklf4 (SHELX HKLF 4, its layout sniffed), fixed (3I4,2F8.2 as "
            "SHELXL reads it), free (whitespace-separated), xd (XD2016 hkl file, F or F2)",
        ),
        "merge": Field((bool,), True, help="merge equivalent reflections (Laue group)"),
        "merge_rule": Field(
            (str,),
            "sigma",
            ("sigma", "shelxl"),
            "with merge: mean weighted by 1/sigma^2 and sigma = max(internal, external), or "
            "SHELXL's rule (weights I/sigma^2, sigma = max(internal, mean deviation/sqrt(n-1)))",
        ),
        "friedel": Field(
            (bool,),
            True,
            help="with merge: merge Friedel mates too (false: h and -h stay apart unless "
            "centric, as SHELXL's MERG 2 for a non-centrosymmetric structure, and omit "
            "leaves -h in)",
        ),
        "block": Field(
            (str, type(None)),
            None,
            help="file is a SHELXL CIF with embedded reflections (_shelx_hkl_file): its data "
            "block (default: structure.block for the structure's CIF, else the only block "
            "with reflections)",
        ),
        "observable": Field((str,), "F2", ("F2", "F"), help="refine on F2 or |F|"),
        "weights": Field((str,), "sigma", ("sigma", "shelx"), help="1/sigma^2 or SHELX scheme"),
        "shelx_a": Field(_NUM, 0.0, help="a of the SHELX weighting scheme", ge=0.0, le=10.0),
        "shelx_b": Field(_NUM, 0.0, help="b of the SHELX weighting scheme", ge=0.0, le=1e6),
        "extinction": Field(
            (str,),
            "none",
            ("none", "shelx", "bc-gauss", "bc-lorentz"),
            "isotropic extinction: SHELXL EXTI or Becker-Coppens type I",
        ),
        "extinction_start": Field(
            _NUM, 0.0, help="start value (EXTI x, or g in 1/rad)", ge=0.0, le=1e6
        ),
        "path_length": Field(
            _NUM, 100.0, help="mean path length (micrometre), Becker-Coppens", gt=0.0, le=1e5
        ),
        "wavelength": Field(
            _OPT_NUM,
            None,
            help=(
                "neutron wavelength (A); required with extinction"
                if neutron
                else "A; default from the CIF"
            ),
            gt=0.0,
            le=20.0,
        ),
        "min_i_over_sigma": Field(
            _OPT_NUM, None, help="drop reflections with F2/sigma below this", ge=-1e3, le=1e3
        ),
        "omit": Field(
            (list,), [], item_types=(list,), help="[[h, k, l], ...] left out", check=_hkl_triple
        ),
        "adp_set": Field(
            (str,),
            "N" if neutron else "X",
            help="ADP set seen by the data (X: LABEL.U11; other: LABEL.U11.SET)",
        ),
        "simulate": simulate_schema("und" if neutron else "xray"),
    }


PND_DATASET = {
    "format": Field((str,), "rcif", ("rcif",), help="cryspy rcif with flipping-ratio blocks"),
    "block": Field(
        (str, type(None)), None, help="flipping-ratio data block (default: every one in the file)"
    ),
    "extinction": Field(
        (str,),
        "file",
        ("file", "on", "off"),
        "sphere extinction: as in the file (on with a model and a radius > 0), on, off",
    ),
    "extinction_model": Field(
        (str, type(None)), None, (None, "gauss", "lorentz"), "mosaic distribution (default: file)"
    ),
    "radius": Field(
        _OPT_NUM,
        None,
        help="start extinction radius (micrometre; default: file)",
        ge=0.0,
        le=1e5,
    ),
    "mosaicity": Field(
        _OPT_NUM, None, help="start mosaicity (cryspy's unit; default: file)", ge=0.0, le=1e7
    ),
    "refine_polarisation": Field((bool,), False, help="add NAME.polarisation (signed P)"),
    "magnetisation_scale": Field((bool,), False, help="add NAME.mscale (start 1)"),
    "lambda_half": Field(
        _NUM,
        0.0,
        help="lambda/2 contamination alpha >= 0: integrated intensity at lambda/2 per unit "
        "|F|2 relative to that at lambda (flux ratio x 1/8 x detector efficiency ratio); 0 = off",
        ge=0.0,
        le=1.0,
    ),
    "refine_lambda_half": Field(
        (bool,), False, help="add NAME.lambda_half (start lambda_half; a stage must free it)"
    ),
    "lambda_half_model": Field(
        (str,),
        "polarised",
        ("polarised", "unpolarised"),
        "lambda/2 neutrons polarised and flipped like those at lambda (extinction at lambda/2), "
        "or unpolarised I(2h) in both channels with the extinction of h (cryspy's); "
        "docs/physics.md",
    ),
    "hydrogen_polarisation": Field(
        (bool, float),
        False,
        help="polarised protons (b = b_c +- 14.56 fm P_H): true = P_H = tanh(mu_p |B| / k_B T) "
        "from temperature and the block's field, a number = P_H itself, false = off",
        ge=-1.0,
        le=1.0,
    ),
    "temperature": Field(
        _OPT_NUM,
        None,
        help="sample temperature (K), needed by hydrogen_polarisation = true",
        gt=0.0,
        le=1e4,
    ),
    "include_excluded": Field(
        (bool,), False, help="keep reflections flagged _diffrn_refln_excluded"
    ),
    "fit": Field(
        (str,),
        "R",
        ("R", "asymmetry"),
        "fit the flipping ratios R, or the asymmetry A = (R-1)/(R+1) with sigma(A) = "
        "sqrt(2) sigma(R) sqrt(R^2+1)/(R+1)^2 (cryspy's _chi2_asymmetry)",
    ),
    "twins": Field(
        (bool,),
        True,
        help="the block's twin domains (_jana_twin; NAME.twin1 ... their fractions, free "
        "them in a stage); false: the first domain alone",
    ),
    "adp_set": Field(
        (str,),
        "N",
        help="ADP set of the nuclear and magnetic structure factors ('X': the X-ray one)",
    ),
    "simulate": simulate_schema("pnd"),
}

#: Keys of each data-set kind (besides the common ones).
DATASET_KINDS = {"xray": _f2_dataset(False), "und": _f2_dataset(True), "pnd": PND_DATASET}

#: Kept for callers of the X-ray-only layout: the full key set of an X-ray data set.
DATASET_SCHEMA = {
    "kind": Field((str,), REQUIRED, tuple(DATASET_KINDS)),
    **_COMMON_DATASET,
    **DATASET_KINDS["xray"],
}

STAGE_SCHEMA = {
    "name": Field((str,), REQUIRED, help="shown on every cycle line"),
    "free": Field((list,), REQUIRED, item_types=(str,), help="parameter patterns refined"),
    "fix": Field((list,), [], item_types=(str,), help="patterns fixed again"),
    "data": Field(
        (list, type(None)),
        None,
        item_types=(str,),
        help="data sets fitted in this stage (names, or a pnd entry's name for all its blocks; "
        "default all)",
    ),
    "smin": Field(
        _OPT_NUM, None, help="stage resolution window, sin(theta)/lambda (1/A)", ge=0.0, lt=10.0
    ),
    "smax": Field(
        _OPT_NUM, None, help="stage resolution window, sin(theta)/lambda (1/A)", gt=0.0, le=10.0
    ),
    "max_cycles": Field(
        (int, type(None)), None, help="overrides refinement.max_cycles", ge=1, le=100000
    ),
    "tol": Field(_OPT_NUM, None, help="overrides refinement.tol", gt=0.0, le=1e3),
}

SCHEMA = {
    "title": Field((str,), "", help="free text shown in the listing"),
    "output": Field((str,), "chasm-output", help="output folder, relative to the project file"),
    "structure": {
        "cif": Field((str,), REQUIRED, help="structure CIF, relative to the project file"),
        "block": Field((str, type(None)), None, help="CIF data block (default: first)"),
    },
    "model": {
        "default": Field((str,), "hc", ("hc", "iam"), "model of atoms without an entry"),
        "form_factors": Field((str,), "it92", ("it92", "koga"), help="IAM atoms"),
        "lmax": Field((int,), 4, (-1, 0, 1, 2, 3, 4), help="non-H atoms"),
        "h_lmax": Field((int,), 1, (-1, 0, 1, 2), help="hydrogen atoms"),
        "h_kappa": Field(
            _NUM, 1.2, help="kappa and kappa' of H (fixed by default)", gt=0.0, le=10.0
        ),
        "kappa_sets": Field(
            (str,),
            "element",
            ("element", "environment", "atom"),
            "default sharing of kappa, kappa': same element, same element and neighbours, none",
        ),
        "riding_h": Field((bool,), True, help="H ride on their parent at neutron X-H distances"),
        "h_adp": Field(
            (str,),
            "free",
            ("free", "riding"),
            "isotropic H: Uiso refined freely, or riding on the parent's Ueq (1.2 / 1.5 x Ueq "
            "by the SHELXL convention; u_riding per atom overrides)",
        ),
        "magnetic": Field(
            (list,), [], item_types=(str,), help="labels of spin-split atoms (as split = true)"
        ),
        "basis": Field(
            (str,),
            "chargespin",
            ("chargespin", "updown"),
            "split-atom populations: charge LABEL.Pv + spin LABEL.Pv.spin, or LABEL.Pv.up/.dn",
        ),
        "atoms": Table(ATOM_SCHEMA),
        "spin": Table(
            SPIN_SITE_SCHEMA,
            help="PND-only spin model of the magnetic atoms (structure from a cryspy rcif)",
        ),
        "conventions": Field(
            (str,),
            "chasm",
            ("chasm", "cryspy"),
            "neutron constants: chasm's (periodictable b and <jl>, p = 2.69542 fm/muB) or "
            "cryspy's (Sears 1992 b, its <j0>/<j2> coefficients, p = 2.695 fm/muB)",
        ),
    },
    "datasets": ArrayOf(
        _COMMON_DATASET,
        key="kind",
        variants=DATASET_KINDS,
        key_help="xray (F2), und (unpolarised neutron F2), pnd (flipping ratios)",
    ),
    "constraints": {
        "electroneutrality": Field((bool,), True, help="charge of the asymmetric unit fixed"),
        "charge": Field(
            _NUM,
            0.0,
            help="charge of the asymmetric unit (electroneutrality)",
            ge=-1000.0,
            le=1000.0,
        ),
        "total_spin": Field(
            (float, str, type(None)),
            None,
            help="total spin of the asymmetric unit (muB = unpaired electrons) over the split "
            "atoms; a string is an unfilled placeholder and stops the run",
            ge=-1000.0,
            le=1000.0,
        ),
        "same": Field(
            (list,),
            [],
            item_types=(list, str),
            help="groups of parameters (names/patterns) sharing one value",
            check=_patterns,
        ),
        "equal": ArrayOf(
            {
                "a": Field((str,), REQUIRED, help="patterns, paired in order with b"),
                "b": Field((str,), REQUIRED, help="patterns, e.g. a = 'N1.U*', b = 'N2.U*'"),
            }
        ),
        "linear": ArrayOf(
            {
                "terms": Field(
                    (dict,),
                    REQUIRED,
                    help="{name = coefficient, ...}",
                    item_types=(float,),
                    ge=-1e6,
                    le=1e6,
                ),
                "value": Field(
                    _NUM, 0.0, help="right-hand side: sum coefficient*p = value", ge=-1e6, le=1e6
                ),
                "description": Field((str, type(None)), None, help="text for the listing"),
            }
        ),
    },
    "restraints": ArrayOf(
        {
            "parameter": Field((str,), REQUIRED, help="name or pattern (each match restrained)"),
            "target": Field(_NUM, REQUIRED, help="target value", ge=-1e6, le=1e6),
            "sigma": Field(
                _NUM, REQUIRED, help="standard deviation of the restraint", gt=0.0, le=1e6
            ),
        }
    ),
    "similarity": ArrayOf(
        {
            "atoms": Field(
                (list,), REQUIRED, item_types=(str,), help="labels of chemically equivalent atoms"
            ),
            "parameters": Field(
                (list,),
                ["P*"],
                item_types=(str,),
                help="population fields restrained to the group mean, e.g. ['P*', 'kappa']",
            ),
            "sigma": Field(_NUM, REQUIRED, help="sigma of each restraint (units of the parameter)"),
        },
        help="similarity restraints between equivalent atoms, in their local frames",
    ),
    "local_symmetry": ArrayOf(
        {
            "atom": Field((str,), REQUIRED, help="label of an atom with a local mirror"),
            "symmetry": Field(
                (str,),
                "mirror",
                ("mirror",),
                "mirror: the local xz plane (planar sp2 atom); every P_lm- restrained to 0",
            ),
            "sigma": Field(_NUM, REQUIRED, help="sigma of each restraint (electrons)"),
        },
        help="populations a local symmetry makes zero, restrained to zero",
    ),
    "refinement": {
        "score": Field((str,), "unit", ("unit", "nlog", "log"), "combination of data sets"),
        "tol": Field(_NUM, 0.01, help="converged when max |shift|/su < tol", gt=0.0, le=1e3),
        "max_cycles": Field((int,), 30, help="per stage", ge=1, le=100000),
        "max_shift_su": Field(_OPT_NUM, None, help="shift limiter, in su", gt=0.0, le=1e6),
        "correlation_threshold": Field(_NUM, 0.9, help="|rho| listed above this", gt=0.0, le=1.0),
    },
    "stages": ArrayOf(STAGE_SCHEMA),
    "maps": ArrayOf(MAP_SCHEMA, help="planes and fields the report draws (docs/maps.md)"),
}


@dataclass
class Project:
    """A validated project file.

    Attributes
    ----------
    path : Path
        The project file.
    data : dict
        Validated content with defaults filled in.
    """

    path: Path
    data: dict

    @property
    def folder(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        """A path of the project file made absolute (relative to its folder).

        A relative path is resolved (symbolic links and ``..`` followed), so
        that messages name ``/data/x.cif``, not ``/work/p/../../data/x.cif``.
        """
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.folder / p).resolve()

    @property
    def output(self) -> Path:
        return self.resolve(self.data["output"])


#: Largest project file read (bytes); a project file is a page of text.
MAX_PROJECT_BYTES = 4 * 2**20


def read_project_text(path: Path) -> str:
    """The text of a project file: a regular file of UTF-8 (with or without BOM).

    Raises
    ------
    InputError
        Not found, not a regular file (a folder, FIFO or device), larger than
        :data:`MAX_PROJECT_BYTES`, UTF-16, or a byte that is not UTF-8 (named
        by line, column and byte offset).
    """
    src = str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError("project file not found", src) from None
    except OSError as exc:
        raise InputError(f"cannot read the project file: {exc.strerror or exc}", src) from None
    if not stat.S_ISREG(st.st_mode):
        what = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise InputError(f"the project file is {what}; give a TOML file", src)
    if st.st_size > MAX_PROJECT_BYTES:
        raise InputError(
            f"{st.st_size} bytes is too large for a project file "
            f"(at most {MAX_PROJECT_BYTES}); is this the right file?",
            src,
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the project file: {exc.strerror or exc}", src) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("the file is UTF-16; save it as UTF-8 (TOML files are UTF-8)", src)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(
            f"byte 0x{data[exc.start]:02x} at column {column} (offset {exc.start}) is not "
            "UTF-8; save the file as UTF-8 (TOML files are UTF-8; a latin-1 editor "
            "setting writes such bytes for accented letters)",
            src,
            line,
        ) from None


def _check_windows(data: dict, src: str, text: str) -> None:
    """smin < smax wherever both are given (data sets, stages, simulate tables)."""
    tables = [(f"datasets[{i}]", d) for i, d in enumerate(data["datasets"])]
    tables += [(f"datasets[{i}].simulate", d["simulate"]) for i, d in enumerate(data["datasets"])]
    tables += [(f"stages[{i}]", s) for i, s in enumerate(data["stages"])]
    for where, t in tables:
        if t and t.get("smin") is not None and t.get("smax") is not None:
            if not t["smin"] < t["smax"]:
                raise InputError(
                    f"{where}.smin: {t['smin']:g} is not below smax = {t['smax']:g} "
                    "(sin(theta)/lambda window, 1/A); nothing would be left",
                    src,
                    find_line(text, f"{where}.smin"),
                )


def load_project(path: str | Path) -> Project:
    """Read and validate a project file.

    Raises
    ------
    InputError
        Missing file, TOML syntax error (with line), unknown key, wrong type,
        no data set or no stage.
    """
    path = Path(path)
    text = read_project_text(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(m.group(1)) if m else None
        raise InputError(f"TOML syntax error: {exc}", str(path), line) from None
    except (RecursionError, ValueError, MemoryError) as exc:
        raise InputError(
            f"the TOML reader cannot handle this file ({type(exc).__name__}: "
            f"{str(exc)[:80]}): numbers of thousands of digits or nesting too deep",
            str(path),
        ) from None
    data = validate(raw, SCHEMA, str(path), text)
    _check_windows(data, str(path), text)
    if not data["datasets"]:
        raise InputError("no data set: add a [[datasets]] table", str(path))
    if not data["stages"]:
        raise InputError("no refinement stage: add [[stages]] tables", str(path))
    names = [d["name"] for d in data["datasets"]]
    if len(set(names)) != len(names):
        raise InputError(f"data-set names must be unique, got {names}", str(path))
    for i, name in enumerate(names):
        if not name or any(c in name for c in " ,*?[]@"):
            raise InputError(
                f"datasets[{i}].name: {name!r} cannot be a parameter prefix "
                "(no spaces, commas, glob characters or @)",
                str(path),
                find_line(text, f"datasets[{i}].name"),
            )
    for i, d in enumerate(data["datasets"]):
        a = d.get("adp_set")
        if not a or any(c in a for c in " .,*?[]@"):
            raise InputError(
                f"datasets[{i}].adp_set: invalid ADP set name {a!r} (e.g. 'X' or 'N')",
                str(path),
                find_line(text, f"datasets[{i}].adp_set"),
            )
    spin = data["constraints"]["total_spin"]
    if isinstance(spin, str):
        raise InputError(
            f"constraints.total_spin: placeholder {spin!r} left in the file; give the number of "
            "unpaired electrons per asymmetric unit (muB), e.g. 1.0 for one Cu2+ per "
            "asymmetric unit, or delete the key for no total-spin constraint",
            str(path),
            find_line(text, "constraints.total_spin"),
        )
    for key in ("restraints", "similarity", "local_symmetry"):
        for i, rs in enumerate(data[key]):
            if not rs["sigma"] > 0:
                raise InputError(
                    f"{key}[{i}].sigma: must be > 0, got {rs['sigma']:g}; give the standard "
                    "deviation of the restraint (e.g. 0.01)",
                    str(path),
                    find_line(text, f"{key}[{i}].sigma"),
                )
    for i, st in enumerate(data["stages"]):
        if st["data"] is not None and not st["data"]:
            raise InputError(
                f"stages[{i}].data: empty list; name the data sets or delete the key (all)",
                str(path),
                find_line(text, f"stages[{i}].data"),
            )
    return Project(path.resolve(), data)
