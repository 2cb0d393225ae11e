"""The ``infattn`` console command: one subcommand per module in :mod:`infattn.commands`.

Each subcommand module defines ``NAME`` (the subcommand), ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. ``infattn demo`` (also
``python -m infattn``) prints an attention network's analytic kernels next to a
finite network's Monte Carlo estimate; ``infattn lab`` starts JupyterLab on the
notebooks (``--app``: the explorer as a Voila web app).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, imported lazily so `infattn --help` stays fast and optional
# dependencies load only for the command that needs them.
COMMANDS = ("demo", "experiment", "figures", "kernels", "lab")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``infattn`` command, with every subcommand.

    Example:
      >>> build_parser().parse_args(["demo", "--draws", "8"]).draws
      8
    """
    parser = argparse.ArgumentParser(prog="infattn", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"infattn.commands.{name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``infattn`` with ``argv`` (default: the process arguments); returns the exit code."""
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
