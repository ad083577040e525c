"""Each default of `chasm init` in turn, on a real data set: what it costs or buys.

Writes the unedited init project for a CIF + HKLF 4 file (urea by default),
then refines it and one edited copy per variant (one default changed each),
and prints one line per variant: R1(all), wR2, GOF, parameters, stages
converged, residual density rms / max / min (e Å⁻³), implausible count, every
non-H κ and κ′ (su in units of the last digit), the populations Pv, the free
H Uiso and the extinction parameter. docs/validation.md ("What the defaults
cost on urea") quotes its output.

Usage::

    python validation/init_defaults_study.py [--case urea|l-alanine] [--data ../shared/data]
        [--out /tmp/init-defaults] [--jobs 2] [VARIANT ...]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _last_stage_add(text: str, pattern: str) -> str:
    """Append ``pattern`` to the free list of the last stage ("all")."""
    i = text.rindex('free = ["*.scale"')
    j = text.index("\n", i)
    return text[: j - 1] + f', "{pattern}"' + text[j - 1 :]


def _kappa_prime_restrained(text: str, sigma: float | None) -> str:
    """Refine κ′ in the last stage, restrained to theory (the commented-out block)."""
    if sigma is not None:
        text = re.sub(
            r"^# (\[\[restraints\]\]|parameter = .*|target = .*|sigma = .*)$",
            r"\1",
            text,
            flags=re.M,
        )
        text = re.sub(r"^sigma = 0.05$", f"sigma = {sigma}", text, flags=re.M)
    return _last_stage_add(text, "@nonH.kappa_prime")


def _h_u(text: str, how: str) -> str:
    """H of the CIF anisotropic: "uij" free U_ij, "riding" 1.2 Ueq, "cif" U_ij fixed."""
    if how == "riding":
        return re.sub(r"^uiso_free = true.*$", "u_riding = 1.2", text, flags=re.M)
    text = re.sub(r"^uiso_free = true.*\n", "", text, flags=re.M)
    if how == "cif":
        text = text.replace(', "@H.U*"', "").replace(
            'free = ["*.scale", "@H.U*"]', 'free = ["*.scale"]'
        )
    return text


def _extinction(text: str, kind: str) -> str:
    text = re.sub(r'^extinction = "\w+".*$', f'extinction = "{kind}"', text, flags=re.M)
    if kind == "none":
        text = text.replace(', "*.extinction"', "")
    return text


def _h_kappa(text: str, k: float) -> str:
    return text.replace("h_kappa = 1.2 ", f"h_kappa = {k} ")


def _h_quadrupole(text: str) -> str:
    text = text.replace("h_lmax = 1 ", "h_lmax = 2 ")
    text = re.sub(r"^(\[model\.atoms\.H\w*\]\n)lmax = 1$", r"\1lmax = 2", text, flags=re.M)
    return text.replace('"@H.P10"', '"@H.P10", "@H.P20"')


VARIANTS = {
    "init": lambda t: t,
    "no extinction": lambda t: _extinction(t, "none"),
    "extinction bc-lorentz": lambda t: _extinction(t, "bc-lorentz"),
    "kappa' restrained 0.05": lambda t: _kappa_prime_restrained(t, 0.05),
    "kappa' restrained 0.02": lambda t: _kappa_prime_restrained(t, 0.02),
    "kappa' free": lambda t: _kappa_prime_restrained(t, None),
    "H kappa 1.16": lambda t: _h_kappa(t, 1.16),
    "H kappa 1.10": lambda t: _h_kappa(t, 1.10),
    "H kappa 1.30": lambda t: _h_kappa(t, 1.30),
    "H no dipole": lambda t: t.replace(', "@H.P10"', ""),
    "H quadrupole": _h_quadrupole,
    "H U_ij free": lambda t: _h_u(t, "uij"),
    "H Uiso riding 1.2": lambda t: _h_u(t, "riding"),
    "H U_ij of the CIF fixed": lambda t: _h_u(t, "cif"),
    "N-H 1.00": lambda t: t.replace("xh_distance = 1.015", "xh_distance = 1.0"),
    "N-H 1.03": lambda t: t.replace("xh_distance = 1.015", "xh_distance = 1.03"),
    "lmax 3": lambda t: re.sub(r"^lmax = 4$", "lmax = 3", t, flags=re.M),
}


def summary(name: str, folder: Path, rc: int) -> str:
    try:
        r = json.loads((folder / "refined" / "result.json").read_text())
    except (OSError, ValueError):
        log = (folder / "refine.log").read_text().strip().splitlines()
        return f"{name:24s} exit {rc}: {log[-1] if log else ''}"
    x = next(iter(r["datasets"].values()))
    conv = sum(bool(s["converged"]) for s in r["stages"])
    P = r["parameters"]

    def su(v):
        return f"({v['su'] * 1000:.0f})" if v["su"] else ""

    ks = " ".join(
        f"{k}={v['value']:.3f}{su(v)}"
        for k, v in P.items()
        if k.split(".")[-1] in ("kappa", "kappa_prime") and not k.startswith("H")
    )
    pv = " ".join(f"{k.split('.')[0]} {v['value']:.2f}" for k, v in P.items() if k.endswith(".Pv"))
    hu = " ".join(
        f"{k}={v['value']:.4f}" for k, v in P.items() if k.startswith("H") and ".U" in k and v["su"]
    )
    ext = " ".join(
        f"{k}={v['value']:.4g}({(v['su'] or 0):.2g})" for k, v in P.items() if "extinction" in k
    )
    rd = r.get("residual_density") or {}
    return (
        f"{name:24s} R1={x['R1']:.4f} wR2={x['wR2']:.4f} GOF={x['gof']:.3f} n={x['n_par']} "
        f"conv={conv}/{len(r['stages'])} rms={rd.get('rms', float('nan')):.4f} "
        f"max/min={rd.get('max', 0):.3f}/{rd.get('min', 0):.3f} "
        f"implausible={len(r['implausible'])} | {ks} | Pv {pv} | {hu} {ext}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="urea", help="folder under DATA/xray with iam.cif, iam.hkl")
    ap.add_argument("--data", default=str(Path(__file__).parents[1] / ".." / "shared" / "data"))
    ap.add_argument("--out", default="/tmp/init-defaults")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("variants", nargs="*", help="names of VARIANTS (default: all)")
    args = ap.parse_args(argv)
    from real_data_sweep import absolute_pythonpath

    absolute_pythonpath()
    src = Path(args.data).resolve() / "xray" / args.case
    out = Path(args.out).resolve() / args.case
    out.mkdir(parents=True, exist_ok=True)
    base = out / "init.toml"
    cmd = ["chasm", "init", str(src / "iam.cif"), "--xray", str(src / "iam.hkl")]
    subprocess.run([*cmd, "-o", str(base), "--force"], check=True, capture_output=True)
    text = base.read_text()
    for key in ("cif", "file"):  # absolute paths: the variants live in subfolders
        text = re.sub(
            rf'^{key} = "([^"]+)"',
            lambda m, k=key: f'{k} = "{(out / m[1]).resolve()}"',
            text,
            flags=re.M,
        )

    def run(name: str) -> str:
        folder = out / re.sub(r"\W+", "_", name).strip("_")
        folder.mkdir(exist_ok=True)
        edited = VARIANTS[name](text)
        if name != "init" and edited == text:
            return f"{name:24s} (no such default in this project)"
        (folder / "project.toml").write_text(edited)
        with (folder / "refine.log").open("w") as log:
            rc = subprocess.run(
                ["chasm", "refine", "project.toml", "--no-report"],
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
            ).returncode
        return summary(name, folder, rc)

    names = args.variants or list(VARIANTS)
    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(run, names):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
