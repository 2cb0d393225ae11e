"""``python -m infattn [ARGS]``: the demo (``infattn demo``), or any ``infattn`` subcommand."""

from __future__ import annotations

import sys

from infattn.cli import COMMANDS, main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv = ["demo", *argv]  # `python -m infattn --draws 8` keeps working
    sys.exit(main(argv))
