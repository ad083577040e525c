"""The ``electrostatics`` block of ``properties.json`` (``chasm properties --esp``)."""

from __future__ import annotations

import time
from pathlib import Path

from chasm.density.radial import BOHR
from chasm.topology.dipole import dipole_moment
from chasm.topology.electrostatics import PotentialField, nuclear_field_gradients
from chasm.topology.isosurface import ISO_AU, esp_on_isodensity, plot_isosurface, write_cubes

__all__ = ["CONVENTION", "electrostatics_dict"]

CONVENTION = (
    "periodic potential of nuclei and static multipole electron density, Ewald split; "
    "the F(000) (k = 0) term left out: cell average 0, any net cell charge cancelled by a "
    "uniform background; at a nucleus its own charge is left out"
)


def electrostatics_dict(
    crystal,
    models,
    folder: Path,
    esp_step: float = 0.25,
    molecule: str | None = None,
    names=None,
    cov=None,
    su_note: str = "",
) -> dict:
    """Potential and field gradient at the nuclei, the isodensity surface, a dipole.

    Writes ``density.cube``, ``esp.cube`` and ``esp_surface.png`` into ``folder``.
    """
    t0 = time.perf_counter()
    pot = PotentialField(crystal, models)
    nuclei = nuclear_field_gradients(crystal, models, field=pot)
    surf = esp_on_isodensity(crystal, models, esp_step, ISO_AU, field=pot)
    files = write_cubes(folder, crystal, surf)
    files["picture"] = plot_isosurface(Path(folder) / "esp_surface.png", surf)
    out = {
        "convention": CONVENTION,
        "units": {
            "potential": "e/A (1 e/A = 14.3996 V = 0.529177 hartree/e = 332.06 kcal/mol)",
            "field": "e/A^2",
            "field gradient": "e/A^3 (Vzz_au in atomic units, 1 e/A^3 = 0.148185 au); "
            "traceless (the contact term -4 pi rho(0)/3 on the diagonal removed)",
            "dipole": "e A and debye",
        },
        "ewald_sigma_A": pot.sigma,
        "net_cell_charge_e": round(pot.net_charge, 6),
        "nuclei": nuclei,
        "isovalue_au": ISO_AU,
        "isovalue_e_per_A3": ISO_AU / BOHR**3,
        "grid_step_A": esp_step,
        "grid_shape": list(surf.grid.shape),
        "isodensity_surface": surf.stats(),
        "files": {k: Path(v).name for k, v in files.items()},
        "notes": [
            "potential and field gradient of the static model (no thermal smearing); "
            "the field gradient at a nucleus is from valence, multipoles, the atom's own core "
            "and every other atom and nucleus; its own spherical density adds only the "
            "(removed) trace"
        ],
    }
    if abs(pot.net_charge) > 1e-3:
        out["notes"].append(
            f"the model's cell carries a net charge of {pot.net_charge:+.4f} e (its populations "
            "are not neutral); the potential is that of the cell plus a uniform background "
            "cancelling it"
        )
    if molecule is not None:
        out["dipole"] = dipole_moment(crystal, models, molecule, names, cov)
        if names is not None and su_note:
            out["notes"].append(f"dipole su: {su_note}; positions held fixed")
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out
