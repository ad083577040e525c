"""The ``chasm`` command line: thin wrappers over the library."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from collections.abc import Sequence

from chasm import __version__
from chasm.errors import ChasmError

#: Exit status of a run stopped by Ctrl-C (SIGINT), as a shell reports it.
INTERRUPTED = 130
#: Exit status of a run stopped by SIGTERM (kill), as a shell reports it.
TERMINATED = 143


class _Terminated(BaseException):
    """SIGTERM: unwinds the stack so that temporary files and locks are cleaned up."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


def _cmd_sf(args: argparse.Namespace) -> int:
    from chasm.io.atomic import protect_inputs, refuse_input
    from chasm.scattering.sfcalc import structure_factor_table, write_sf_csv

    inputs = {"structure file": args.structure, "reflection file": args.hkl}
    refuse_input(args.out, inputs)
    table = structure_factor_table(
        args.structure, args.hkl, model=args.model, form_factors=args.form_factors
    )
    refuse_input(args.out, inputs)  # again: it may have appeared meanwhile
    with protect_inputs(inputs):
        write_sf_csv(args.out, table)
    print(f"wrote {len(table['F'])} structure factors to {args.out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from chasm.demo import run_demo

    if args.write_project:
        from chasm.examples.seed_project import write_seed_project

        sizes = {} if args.full else {"xray_smax": 0.7, "und_count": 1000}
        path = write_seed_project(args.write_project, force=args.force, **sizes)
        print(
            f"wrote {path} and {path.parent / 'truth.cif'}; next: chasm simulate {path}, "
            f"then chasm refine {path}"
        )
        return 0
    run_demo(output=args.output, full=args.full, seed_value=args.seed)
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from chasm.io.atomic import protect_inputs, refuse_input
    from chasm.project.init import TOTAL_SPIN_PLACEHOLDER, write_project

    magnetic = None
    if args.magnetic:
        magnetic = [x.strip() for m in args.magnetic for x in m.split(",") if x.strip()]
    inputs = {"structure file": args.structure}
    for kind in ("xray", "und", "pnd"):
        for i, name in enumerate(getattr(args, kind) or []):
            inputs[f"--{kind} file {i + 1}"] = name
    refuse_input(args.out, inputs)
    with protect_inputs(inputs):
        res = write_project(
            args.out,
            args.structure,
            xray=args.xray or [],
            force=args.force,
            h_lmax=args.h_lmax,
            kappa_sets=args.kappa_sets,
            und=args.und or [],
            pnd=args.pnd or [],
            magnetic=magnetic,
            total_spin=args.total_spin,
            block=args.block,
            multipoles=args.multipoles,
        )
    print(f"wrote {args.out}")
    if res.sources:
        print("taken from:")
        for line in res.sources:
            print(f"  - {line}")
    if TOTAL_SPIN_PLACEHOLDER in res.text:
        print("fill in constraints.total_spin (marked CHECK) before running")
    print("guessed (check them in the file):")
    for g in res.guesses:
        print(f"  - {g}")
    found = [x[len("# WARNING: ") :] for x in res.text.splitlines() if x.startswith("# WARNING: ")]
    if found:
        print(f"warnings ({len(found)}):")
        for w in found:
            print(f"  - {w}")
    return 0


def _cmd_refine(args: argparse.Namespace) -> int:
    from chasm.project.run import run_project
    from chasm.report.report import write_report

    def echo(line: str) -> None:
        print(line, flush=True)  # a line per cycle also through a pipe (tee, a log)

    out = run_project(
        args.project,
        output=args.output,
        echo=None if args.quiet else echo,
        stages=args.stage or None,
        report=None if args.no_report else write_report,
        resume=args.resume,
        verbose=args.verbose,
        progress=not args.quiet,
    )
    final = out.result
    for name, d in final["datasets"].items():
        figures = "  ".join(
            f"{key}={d[key]:.4f}" for key in ("R1", "wR2", "Rw", "gof") if d.get(key) is not None
        )
        print(f"{name}: {figures} ({d['n_obs']} observations, {d['n_par']} parameters)")
    if out.warnings:
        print(f"warnings ({len(out.warnings)}):")
        for w in out.warnings:
            print(f"  - {w}")
    print(f"results in {out.output}", flush=True)
    if out.interrupted:
        again = ["chasm", "refine", args.project, "--resume"]
        if args.output:
            again += ["--output", args.output]
        for s in args.stage or []:
            again += ["--stage", s]
        at = out.stopped_at
        print(
            f"chasm: interrupted in stage {at['stage']} after cycle {at['cycle']}; the last "
            f"accepted model is in {out.output}; continue with: {shlex.join(again)}",
            file=sys.stderr,
        )
        return INTERRUPTED
    return 0 if final["converged"] else 1


def _cmd_cv(args: argparse.Namespace) -> int:
    from chasm.cv.command import run_cv_command

    return run_cv_command(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chasm.io.atomic import protect_inputs
    from chasm.project.observed import observed_refinement
    from chasm.report.report import write_report

    folder = Path(args.folder)
    inputs = {"result file": folder / "result.json", "model file": folder / "model.cif"}
    with protect_inputs(inputs):
        # the measurements (residual map, residual analysis): the project of result.json again
        observed, note = observed_refinement(folder)
        files = write_report(
            args.folder,
            maps=not args.no_maps,
            progress=True,
            observed=observed,
            extra_notes=[note] if note else None,
        )
    print(f"wrote {files['html']} and {files['md']}")
    return 0


def _cmd_map(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chasm.io.atomic import protect_inputs
    from chasm.report.figures import plot_map

    contours = args.contours
    if contours is not None and contours not in ("log", "linear"):
        try:
            contours = float(contours)
        except ValueError:
            from chasm.errors import InputError

            raise InputError(
                f"--contours {contours!r}: give a step such as 0.1, or 'log' or 'linear'"
            ) from None
    folder = Path(args.result)
    inputs = {"result file": folder / "result.json", "model file": folder / "model.cif"}
    with protect_inputs(inputs):
        path, drawing, mplane = plot_map(
            args.result,
            args.plane,
            args.kind,
            args.output,
            extent=args.extent,
            step=args.step,
            contours=contours,
        )
    if not args.quiet:
        print(f"{mplane.name}: {len(drawing.atoms)} atoms drawn; {drawing.caption}")
    print(f"wrote {path}")
    return 0


def _cmd_properties(args: argparse.Namespace) -> int:
    from chasm.topology.analysis import summary_lines, write_properties

    path = write_properties(
        args.folder,
        topology_on=args.topology,
        grid_step=args.grid_step,
        basins=args.basins,
        basin_step=args.basin_step,
        random_seeds=args.random_seeds,
        esp=args.esp,
        esp_step=args.esp_step,
        molecule=args.molecule,
        laplacian_plane=args.laplacian_plane,
    )
    print("\n".join(summary_lines(path)))
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chasm",
        description="Charge And Spin Multipole refinement (X-ray, neutron, polarised neutron).",
    )
    parser.add_argument("--version", action="version", version=f"chasm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "demo",
        help="simulate and refine the built-in example (Cu(II) dimer, X-ray + UND + PND)",
    )
    p.add_argument(
        "-o", "--output", default="chasm-demo", help="output folder (default chasm-demo)"
    )
    p.add_argument("--full", action="store_true", help="published data sizes (slower)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument(
        "--write-project",
        metavar="DIR",
        help="instead of running: write the example as a project into DIR (truth.cif, the "
        "true model as rhoCIF, and project.toml with simulate tables and the stages a-d), "
        "for chasm simulate and chasm refine; --full for the published data sizes",
    )
    p.add_argument("--force", action="store_true", help="with --write-project: replace files")
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
    p.add_argument("-o", "--output", "--out", dest="out", required=True, help="output CSV file")
    p.set_defaults(func=_cmd_sf)

    p = sub.add_parser("init", help="write a project file for a structure and its data")
    p.add_argument(
        "structure",
        help="CIF file of the structure, or a cryspy rcif alone (structure, magnetic atoms and "
        "flipping ratios: a PND-only project)",
    )
    p.add_argument("--xray", action="append", help="X-ray HKLF 4 file (repeatable)")
    p.add_argument(
        "--und", action="append", help="unpolarised neutron HKLF 4 file of F2 (repeatable)"
    )
    p.add_argument("--pnd", action="append", help="flipping ratios, cryspy rcif file (repeatable)")
    p.add_argument(
        "--magnetic",
        action="append",
        help="spin-split atoms, e.g. Cu1,N1,O1 (default with --pnd: transition metals "
        "and their bonded neighbours)",
    )
    p.add_argument(
        "--total-spin",
        type=float,
        metavar="MU_B",
        help="unpaired electrons per asymmetric unit (muB, from magnetisation data) for the "
        "total-spin constraint of a joint project; without it the file holds a placeholder",
    )
    p.add_argument(
        "-o", "--output", "--out", dest="out", default="project.toml", help="project file to write"
    )
    p.add_argument(
        "--h-lmax",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="multipole level of H atoms (default 1)",
    )
    p.add_argument(
        "--kappa-sets",
        default="element",
        choices=("element", "environment", "atom"),
        help="which atoms share kappa and kappa' (default: same element)",
    )
    p.add_argument("--block", help="data block of the CIF (default: the one with reflections)")
    p.add_argument(
        "--multipoles",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--multipoles: a multipole project even for data below sin(theta)/lambda 0.8 1/A "
        "or a disordered structure; --no-multipoles: spherical atoms (IAM) only",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing project file")
    p.set_defaults(func=_cmd_init)

    from chasm.simulate.cli import register as register_simulate

    register_simulate(sub)

    p = sub.add_parser("refine", help="run the refinement described by a project file")
    p.add_argument("project", help="project file (TOML)")
    p.add_argument("-o", "--output", help="output folder (default: the project's 'output')")
    p.add_argument("--stage", action="append", help="run only this stage (repeatable)")
    talk = p.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_true", help="no line per cycle")
    talk.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="per cycle also N, chi2, score factor and gradient share of every data set, "
        "and the time in evaluations vs solve",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from the output folder's checkpoint.json "
        "(completed stages are skipped)",
    )
    p.add_argument("--no-report", action="store_true", help="do not write report.html/.md")
    p.set_defaults(func=_cmd_refine)

    p = sub.add_parser(
        "cv", help="k-fold cross-validation of a project (R_free, parameter spread over folds)"
    )
    p.add_argument("project", nargs="?", help="project file (TOML)")
    p.add_argument("--folds", type=int, default=10, help="number of folds k (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds (default 0)")
    p.add_argument("--stages", nargs="+", help="run only these stages (default: all)")
    p.add_argument(
        "--compare", nargs="+", metavar="PROJECT", help="rank several projects on the same folds"
    )
    p.add_argument(
        "--bootstrap", type=int, metavar="B", help="bootstrap su's from B resampled refinements"
    )
    p.add_argument("--scheduler", help="a running Dask scheduler, tcp://HOST:PORT")
    p.add_argument("--workers", type=int, help="run the folds on a local Dask cluster of N workers")
    p.add_argument("-o", "--output", help="output folder (default: the project's output/cv)")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per fold, no table")
    p.set_defaults(func=_cmd_cv)

    p = sub.add_parser("report", help="write report.html and report.md for a result folder")
    p.add_argument("folder", help="output folder of 'chasm refine' (result.json, model.cif)")
    p.add_argument("--no-maps", action="store_true", help="tables only")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "map",
        help="draw a map of a refined model on a plane (deformation, spin, residual, ...)",
        description=(
            "Draw one field of a result folder on a plane to a PNG, SVG or PDF file. "
            "PLANE: three atoms 'Cu1,O1,N1' (symmetry images 'O1@-x+1,-y,-z'), "
            "'normal(Cu1;0,0,1)' or 'normal(Cu1;N1)', 'hkl(Ca1;1,1,0)', or the "
            "least-squares plane 'lsq(C1,C2,C3,C4)'. Contours: 0.05 e/A3 for deformation "
            "and residual maps, +-0.01*2^n muB/A3 for spin (docs/maps.md)."
        ),
    )
    p.add_argument("result", help="output folder of 'chasm refine' (model.cif, result.json)")
    p.add_argument("--plane", required=True, help="the plane, e.g. Cu1,O1,N1 (see above)")
    p.add_argument(
        "--kind",
        default="deformation",
        help="deformation (default), spin, residual, laplacian or static; residual reads "
        "the data files of the project that result.json names",
    )
    p.add_argument(
        "-o",
        "--output",
        "--out",
        dest="output",
        help="file .png, .svg or .pdf (default RESULT/KIND_PLANE.png)",
    )
    p.add_argument("--extent", type=float, help="side of the map, A (default from the atoms)")
    p.add_argument("--step", type=float, help="mesh step, A (default 0.05)")
    p.add_argument(
        "--contours",
        help="linear contour step (e.g. 0.1), or 'log' or 'linear' (default per kind)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the file written")
    p.set_defaults(func=_cmd_map)

    p = sub.add_parser("properties", help="topology of the refined density -> properties.json")
    p.add_argument("folder", help="output folder of 'chasm refine' (model.cif)")
    p.add_argument("--topology", action="store_true", help="critical points, BCPs, bond paths")
    p.add_argument("--grid-step", type=float, default=0.0, help="extra seed grid step, A (0: none)")
    p.add_argument("--random-seeds", type=int, default=0, help="extra random CP seeds (0)")
    p.add_argument("--basins", action="store_true", help="QTAIM basin charges on a grid")
    p.add_argument("--basin-step", type=float, default=0.1, help="basin grid step, A (0.1)")
    p.add_argument(
        "--esp", action="store_true", help="electrostatic potential, EFG at nuclei, cubes"
    )
    p.add_argument("--esp-step", type=float, default=0.25, help="ESP grid step, A (0.25)")
    p.add_argument("--molecule", help="with --esp: dipole of the molecule containing this atom")
    p.add_argument(
        "--laplacian-plane", metavar="A,B,C", help="Laplacian map through three atoms (png)"
    )
    p.set_defaults(func=_cmd_properties)
    for name, command in sub.choices.items():  # one style: a description and an example each
        command.formatter_class = _HelpFormatter
        if not command.description:
            helps = {a.dest: a.help for a in sub._choices_actions}
            text = helps.get(name) or ""
            command.description = text[:1].upper() + text[1:] + "."  # keep "Cu(II)", "X-ray"
        if name in EXAMPLES and not command.epilog:
            command.epilog = "example:\n  " + "\n  ".join(EXAMPLES[name])
    return parser


class _HelpFormatter(argparse.HelpFormatter):
    """Wrapped descriptions, examples kept line by line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("example:"):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


#: One worked example per subcommand, shown at the end of its --help.
EXAMPLES = {
    "demo": ["chasm demo -o chasm-demo            # then open chasm-demo/report.html"],
    "sf": ["chasm sf iam.cif iam.hkl -o sf.csv"],
    "init": [
        "chasm init final.cif                 # a SHELXL CIF with its reflections embedded",
        "chasm init iam.cif --xray iam.hkl -o project.toml",
        "chasm init ho2ti2o7.rcif                # polarised neutrons: all from the cryspy rcif",
    ],
    "simulate": ["chasm simulate project.toml         # writes the data files the project names"],
    "refine": [
        "chasm refine project.toml -o refined",
        "chasm refine project.toml -o refined --resume   # after Ctrl-C: on from the last cycle",
    ],
    "cv": [
        "chasm cv project.toml --folds 10",
        "chasm cv --compare lmax3.toml lmax4.toml --folds 5",
    ],
    "report": ["chasm report refined                # report.html and report.md again"],
    "map": [
        "chasm map refined --plane Cu1,O1,N1 -o cu.png",
        "chasm map refined --plane 'lsq(Cu1,O1,N1,H1)' --kind residual -o residual.svg",
    ],
    "properties": [
        "chasm properties refined --topology --basins",
        "chasm properties refined --esp --molecule O1",
    ],
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``chasm`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.func(args) or 0)
    except _Terminated:
        print("chasm: terminated (SIGTERM)", file=sys.stderr)
        return TERMINATED
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
        return INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
