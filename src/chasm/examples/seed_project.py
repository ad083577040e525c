"""The built-in example as a project: truth model as rhoCIF plus a project file to simulate.

:func:`write_seed_project` writes, into a folder,

* ``truth.cif``: the true model of :mod:`chasm.examples.seed`
  (:func:`~chasm.examples.seed.truth_models`: split Cu1, O1, N1–N5 with the
  published spin populations, Cu d(x²−y²) charge and spin multipoles, the
  30 K neutron ADP set ``N``) as rhoCIF with chasm's spin extension
  (:func:`chasm.io.rhocif.write_rhocif`);
* ``project.toml``: the same model layout (lmax 4, H dipoles, the Cu frame
  ``N5 Z Cu1 O1 X``, one κ and κ′ per atom and for both spins, no riding H),
  the three data sets of :func:`chasm.examples.seed.simulate` with their
  ``simulate`` tables (X-ray to sinθ/λ = 1 Å⁻¹ on the scale 0.85; 2000
  lowest-angle UND reflections to 0.8 Å⁻¹ on the scale 1.9; 212 flipping
  ratios chosen as the example does, 5 T along 0.3a + b + 0.2c, 0.84 Å,
  P = −0.9, e = 0.95; the noise models of :mod:`chasm.simulate.noise`) and
  the stages of :func:`chasm.examples.seed.route` written as patterns.

``chasm simulate project.toml`` then writes ``xray.hkl``, ``und.hkl`` and
``pnd.rcif`` and ``chasm refine project.toml`` refines the start model
against them. The calculated values are those of
:func:`chasm.examples.seed.simulate` for the same reflections (the same model
through the project's builder). The noise models are the same; the streams
are one generator per data set here, one for all three there, so the X-ray
noise is the same numbers (data set 0 with run seed 0 draws from
``default_rng([0, 0])``, numpy's stream of ``default_rng(0)``, which the
example draws its X-ray noise from first) and the UND and PND noise differ.
"""

from __future__ import annotations

from pathlib import Path

from chasm.errors import InputError
from chasm.examples.seed import (
    CU_AXES,
    FIELD,
    PND_WAVELENGTH,
    SCALES,
    SPIN_POPULATIONS,
    UND_WAVELENGTH,
    XRAY_WAVELENGTH,
    neutron_adps,
    seed_crystal,
    truth_models,
)
from chasm.io.atomic import write_text_atomic
from chasm.io.rhocif import write_rhocif

__all__ = ["write_seed_project", "seed_project_text", "TRUTH_CIF", "PROJECT_FILE"]

TRUTH_CIF = "truth.cif"
PROJECT_FILE = "project.toml"

#: Charge multipoles l = 1..4 (one dot: not the spin populations of split atoms).
_CHARGE_MULTIPOLES = '"*.P[1-4]0", "*.P[1-4][1-4][+-]"'
_SPIN = '"*.Pv.spin", "Cu1.P[24]*.spin"'
_XRAY = '"xray.scale", "@nonH.x", "@nonH.y", "@nonH.z", "@nonH.U*"'


def _q(values) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def seed_project_text(
    xray_smax: float = 1.0,
    und_count: int = 2000,
    pnd_count: int = 212,
    noise: bool = True,
    layout: str = "free",
) -> str:
    """The project file of the example (see the module docstring).

    Parameters
    ----------
    xray_smax : float
        sinθ/λ limit of the X-ray data (Å⁻¹).
    und_count, pnd_count : int
        Numbers of UND reflections (lowest angle, sinθ/λ <= 0.8 Å⁻¹) and of
        flipping ratios (sinθ/λ <= 0.6 Å⁻¹).
    noise : bool
        False: the data files hold the calculated values (with the σ of the model).
    layout : {"free", "fixed"}
        HKLF 4 layout of the X-ray and UND files.
    """
    magnetic = list(SPIN_POPULATIONS)
    total = round(sum(SPIN_POPULATIONS.values()), 9)
    flag = "true" if noise else "false"
    atoms = []
    for label in magnetic:
        atoms += ["", f"[model.atoms.{label}]"]
        if label == "Cu1":
            atoms.append(f'axes = "{CU_AXES}"              # z to the apical azide N, x to O1')
        atoms += ["share_kappa = true", "share_kappa_prime = true"]
    return f"""# The built-in example (chasm.examples.seed) as a project: simulate, then refine.
#   chasm simulate project.toml      writes xray.hkl, und.hkl, pnd.rcif from truth.cif
#   chasm refine project.toml        refines the start model against them
title = "Seed case: azido-bridged Cu(II) dimer, simulated"
output = "refined"

[structure]
cif = "{TRUTH_CIF}"                # the true model (rhoCIF, split atoms, neutron ADPs)

[model]
lmax = 4
h_lmax = 1
kappa_sets = "atom"              # one kappa and kappa' per atom (as the example's route)
riding_h = false                 # H stay where the structure has them
basis = "chargespin"
magnetic = {_q(magnetic)}
{chr(10).join(atoms)}

[[datasets]]
name = "xray"
kind = "xray"
file = "xray.hkl"
wavelength = {XRAY_WAVELENGTH}

[datasets.simulate]              # Mo K-alpha, 10 K
smax = {float(xray_smax)!r}
scale = {SCALES["xray"]}
noise = {flag}
layout = "{layout}"
seed = 0

[[datasets]]
name = "und"
kind = "und"
file = "und.hkl"
wavelength = {UND_WAVELENGTH}

[datasets.simulate]              # 30 K neutron ADPs
smax = 0.8
count = {int(und_count)}
select = "lowest"
scale = {SCALES["und"]}
noise = {flag}
layout = "{layout}"
seed = 1

[[datasets]]
name = "pnd"
kind = "pnd"
file = "pnd.rcif"
extinction = "off"

[datasets.simulate]              # flipping ratios
smax = 0.6
count = {int(pnd_count)}
select = "contrast"
wavelength = {PND_WAVELENGTH}
field = {FIELD}
field_direction = [0.3, 1.0, 0.2]
polarisation = -0.9
efficiency = 0.95
noise = {flag}
seed = 2

[constraints]
electroneutrality = true
total_spin = {total!r}                # sum of the published spin populations (muB)

[[stages]]
name = "a: scale"
free = ["xray.scale"]
data = ["xray"]

[[stages]]
name = "a: structure"
free = [{_XRAY}]
fix = ["*.N"]
data = ["xray"]

[[stages]]
name = "a: multipoles"
free = [{_XRAY}, "*.Pv", {_CHARGE_MULTIPOLES}, "@nonH.kappa"]
fix = ["*.N"]
data = ["xray"]

[[stages]]
name = "b: neutron ADPs"
free = ["und.scale", "*.U*.N"]
data = ["und"]

[[stages]]
name = "b: PND spin"
free = [{_SPIN}]
data = ["pnd"]

[[stages]]
name = "d: joint"
free = [{_XRAY}, "*.Pv", {_CHARGE_MULTIPOLES}, "@nonH.kappa", "und.scale", "*.U*.N", {_SPIN}]
"""


def write_seed_project(folder, force: bool = False, **options) -> Path:
    """Write ``truth.cif`` and ``project.toml`` of the example into ``folder``.

    Parameters
    ----------
    folder : str or Path
        Created if missing.
    force : bool
        Replace existing files (otherwise an existing file is an error).
    **options
        Passed to :func:`seed_project_text` (``xray_smax``, ``und_count``,
        ``pnd_count``, ``noise``, ``layout``).

    Returns
    -------
    Path
        The project file.

    Raises
    ------
    InputError
        A file exists and ``force`` is not set.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cif, project = folder / TRUTH_CIF, folder / PROJECT_FILE
    for f in (cif, project):
        if f.exists() and not force:
            raise InputError(
                f"{f} exists; replace it with --force (force=True in Python) "
                "or choose another folder"
            )
    text = seed_project_text(**options)
    crystal = seed_crystal()
    write_rhocif(
        cif,
        crystal,
        truth_models(crystal),
        adp_sets={"N": neutron_adps(crystal)},
        extra={"_chasm_example": "seed_truth"},
    )
    write_text_atomic(project, text)
    return project
