"""List neural-tangents' public names into the reference dump (``names.json``).

Run with the reference environment's python (``tools/reference/dump.py`` calls
:func:`write_names` after the kernels)::

    $INFATTN_REF_ENV/bin/python tools/reference/names.py .cache/reference

``names.json`` maps each public module (``neural_tangents`` and its public
submodules: ``stax``, ``predict``, ``experimental``) to its public names (those of
``dir`` without a leading underscore; neural-tangents 0.6.5 defines no ``__all__``).
``tests/reference/test_names.py`` checks each against infattn and the "Not covered"
list of ``docs/neural-tangents.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

FILE = "names.json"


def public(module: ModuleType) -> list[str]:
    """``module.__all__`` if it has one, else its ``dir`` without private names, sorted."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in dir(module) if not n.startswith("_")]
    return sorted(names)


def public_names(nt: ModuleType) -> dict[str, list[str]]:
    """``{module path: public names}`` for ``nt`` and its public submodules."""
    out = {nt.__name__: public(nt)}
    for name in out[nt.__name__]:
        sub = getattr(nt, name)
        if isinstance(sub, ModuleType) and sub.__name__.startswith(nt.__name__ + "."):
            out[sub.__name__] = public(sub)
    return out


def write_names(outdir: Path, nt: ModuleType) -> Path:
    """Write ``outdir/names.json`` (neural-tangents' version and its public names)."""
    path = outdir / FILE
    record = {"neural_tangents": nt.__version__, "modules": public_names(nt)}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="directory of the reference dump")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import neural_tangents

    args.outdir.mkdir(parents=True, exist_ok=True)
    path = write_names(args.outdir, neural_tangents)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
