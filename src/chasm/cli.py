"""The ``chasm`` command line: thin wrappers over the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from chasm import __version__
from chasm.errors import ChasmError


def _cmd_sf(args: argparse.Namespace) -> int:
    from chasm.scattering.sfcalc import structure_factor_table, write_sf_csv

    table = structure_factor_table(
        args.structure, args.hkl, model=args.model, form_factors=args.form_factors
    )
    write_sf_csv(args.out, table)
    print(f"wrote {len(table['F'])} structure factors to {args.out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from chasm.demo import run_demo

    run_demo(n_show=args.show)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chasm",
        description="Charge And Spin Multipole refinement (X-ray, neutron, polarised neutron).",
    )
    parser.add_argument("--version", action="version", version=f"chasm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run the built-in example")
    p.add_argument("--show", type=int, default=12, help="reflections to list (default 12)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "sf",
        help="structure factors of a CIF structure for the reflections of an HKL file",
        description=(
            "Write h,k,l,stol,F,phase_deg,A,B (stol = sin(theta)/lambda in 1/Angstrom, "
            "F = |F| in electrons, A + iB = F) for every reflection of HKL_FILE, in input order."
        ),
    )
    p.add_argument("structure", help="CIF file (small-molecule or rhoCIF)")
    p.add_argument("hkl", help="SHELX HKLF 4 file (or a file of h k l only)")
    p.add_argument(
        "--model",
        choices=("iam", "hc"),
        default="iam",
        help="independent atoms (default) or Hansen-Coppens pseudo-atoms",
    )
    p.add_argument(
        "--form-factors",
        choices=("it92", "koga"),
        default="it92",
        help="IAM form factors: IT92 Gaussians (default) or Koga RHF free atoms",
    )
    p.add_argument("--out", required=True, help="output CSV file")
    p.set_defaults(func=_cmd_sf)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``chasm`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ChasmError as exc:
        print(f"chasm: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        name = getattr(exc, "filename", None)
        where = f"{name}: " if name else ""
        print(f"chasm: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("chasm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
