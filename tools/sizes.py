"""Module and function sizes of a package: the "one concept per module" check.

Prints every module's line count (largest first) and every function or method
longer than ``--max-lines`` lines (default 60), with its file and line count,
found with :mod:`ast` (a function's lines run from its ``def`` or first
decorator to its last line, nested functions included). The limit applies to a
function's code: its docstring (teaching text and a doctest ``Example``) is
counted in the ``lines`` column but not against the limit (``code`` column).

Usage::

    python tools/sizes.py [PACKAGE_DIR ...] [--max-lines 60]

``PACKAGE_DIR`` defaults to ``infattn`` next to this script's repository.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]


class Function(NamedTuple):
    """A function over the limit: qualified name, file, first line, length, code length."""

    name: str
    path: str
    line: int
    lines: int
    code: int


def _docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    is_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    if not (is_doc and isinstance(first.value.value, str)):
        return 0
    return first.end_lineno - first.lineno + 1


def modules(roots: list[Path]) -> list[Path]:
    """The ``.py`` files under ``roots`` (symbolic links not followed), sorted."""
    files = set()
    for root in roots:
        files.update(p for p in root.rglob("*.py") if not any(q.is_symlink() for q in p.parents))
    return sorted(files)


def long_functions(path: Path, max_lines: int) -> list[Function]:
    """Functions of ``path`` longer than ``max_lines`` lines, qualified by their parents."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[Function] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    length = child.end_lineno - start + 1
                    code = length - _docstring_lines(child)
                    if code > max_lines:
                        found.append(Function(name, _relative(path), start, length, code))
                name += "."
            visit(child, name)

    visit(tree, "")
    return found


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", type=Path, default=[REPO / "infattn"])
    parser.add_argument("--max-lines", type=int, default=60, help="report functions above this")
    args = parser.parse_args(argv)
    files = modules(args.roots)
    sizes = sorted(((len(p.read_text().splitlines()), _relative(p)) for p in files), reverse=True)
    print(f"modules ({len(sizes)}, {sum(n for n, _ in sizes)} lines), largest first:")
    for n, name in sizes:
        print(f"  {n:6d}  {name}")
    long = [f for p in files for f in long_functions(p, args.max_lines)]
    long.sort(key=lambda f: (-f.code, f.path, f.line))
    print(f"functions over {args.max_lines} lines of code ({len(long)}), longest first:")
    print("    code   lines  function")
    for f in long:
        print(f"  {f.code:6d}  {f.lines:6d}  {f.path}:{f.line}  {f.name}")


if __name__ == "__main__":
    main()
