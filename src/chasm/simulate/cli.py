"""``chasm simulate PROJECT``: write the data files of a project from its model.

:func:`register` adds the subcommand to the ``chasm`` parser; the work is done
by :func:`chasm.simulate.project.simulate_project` (imported when the command
runs, so that ``chasm --help`` stays fast).
"""

from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    """Handler of ``chasm simulate``; returns the exit status (0).

    Errors (:class:`~chasm.errors.InputError`) propagate to the caller, which
    prints them (``chasm.cli.main``: exit status 2).
    """
    from chasm.io.atomic import protect_inputs, refuse_input
    from chasm.project.project import load_project
    from chasm.simulate.project import simulate_project, target_path

    project = load_project(args.project)
    inputs = {
        "project file": project.path,
        "structure file (structure.cif)": project.resolve(project.data["structure"]["cif"]),
    }
    for cfg in project.data["datasets"]:
        if cfg["simulate"]:
            refuse_input(target_path(project, args.output, cfg), inputs)
    with protect_inputs(inputs):
        sim = simulate_project(
            args.project,
            output=args.output,
            seed=args.seed,
            force=args.force,
            echo=None if args.quiet else print,
        )
    if args.quiet:
        for s in sim.sets:
            print(f"wrote {s.path} ({s.name}: {len(s.hkl)} reflections)")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``simulate`` subcommand to ``subparsers`` (of ``argparse``)."""
    p = subparsers.add_parser(
        "simulate",
        help="write the data files of a project's simulate tables from its model",
        description=(
            "For every data set with a [datasets.simulate] table, compute X-ray F2, neutron "
            "F2 or flipping ratios from the project's model (the structure file, a rhoCIF "
            "for multipoles and spins) with seeded noise, and write the data set's file "
            "(HKLF 4 or rcif). Existing files are kept unless --force."
        ),
    )
    p.add_argument("project", help="project file (TOML)")
    p.add_argument(
        "-o",
        "--output",
        help="folder for the data files (default: the project's folder, where refine reads them)",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="run seed of the noise streams (default 0)"
    )
    p.add_argument("--force", action="store_true", help="replace existing data files")
    p.add_argument("-q", "--quiet", action="store_true", help="only the files written")
    p.set_defaults(func=run)
    return p
