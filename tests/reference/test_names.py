"""Every public name of neural-tangents 0.6.5 exists in infattn or is listed as not covered.

NT's names are dumped in the pinned environment (``tools/reference/names.py``, called by
``tools/reference/dump.py``) into ``$INFATTN_REF_DIR/names.json``. A name ``stax.Dense``
(relative to ``neural_tangents``) is covered when ``infattn.stax.Dense`` exists; otherwise
the "Not covered" section of ``docs/neural-tangents.md`` must list it (or its module, e.g.
``experimental``) in backticks, followed by a colon and the reason.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.reference import parity

DOC = parity.REPO / "docs" / "neural-tangents.md"
MIN_REASON_WORDS = 5


def nt_names(ref_dir: Path) -> dict[str, bool]:
    """NT's public names relative to ``neural_tangents`` (``stax.Dense``, ``batch``), each
    mapped to whether it is a module (``stax``)."""
    path = ref_dir / "names.json"
    if not path.exists():
        pytest.fail(f"{path} is missing; {parity.HOW_TO_GENERATE}", pytrace=False)
    modules = json.loads(path.read_text())["modules"]
    out = {}
    for module, names in modules.items():
        prefix = module.removeprefix("neural_tangents").lstrip(".")
        for n in names:
            out[f"{prefix}.{n}" if prefix else n] = f"{module}.{n}" in modules
    return out


def not_covered(doc: str) -> dict[str, str]:
    """``{name: reason}`` from the bullets of the doc's "Not covered" section.

    A bullet lists names in backticks, then ``:`` (outside backticks) and the reason.
    """
    section = doc.split("## Not covered", 1)[1].split("\n## ", 1)[0]
    bullets = re.split(r"\n(?=\* )", section)
    out = {}
    for bullet in (b for b in bullets if b.startswith("* ")):
        names, reason = _split_at_colon(" ".join(bullet[2:].split()))
        for name in re.findall(r"`([^`]+)`", names):
            out[name] = reason
    return out


def _split_at_colon(text: str) -> tuple[str, str]:
    """``text`` split at its first ``:`` outside backticks (``(text, '')`` if none)."""
    inside = False
    for i, ch in enumerate(text):
        inside ^= ch == "`"
        if ch == ":" and not inside:
            return text[:i], text[i + 1 :].strip()
    return text, ""


def in_infattn(name: str, is_module: bool) -> bool:
    """Whether ``infattn.<name>`` exists (``stax.Dense`` -> ``infattn.stax.Dense``) and is
    a module exactly when NT's is (infattn's module ``stax.layer`` is not NT's decorator)."""
    *module, attr = name.split(".")
    try:
        obj: Any = importlib.import_module(".".join(["infattn", *module]))
    except ImportError:
        return False
    return hasattr(obj, attr) and isinstance(getattr(obj, attr), ModuleType) == is_module


def listed(name: str, absent: dict[str, str]) -> str | None:
    """The doc's entry for ``name`` or for a module containing it."""
    parts = name.split(".")
    return next(
        (absent[p] for i in range(len(parts), 0, -1) if (p := ".".join(parts[:i])) in absent), None
    )


def test_every_nt_name_is_in_infattn_or_not_covered_with_a_reason() -> None:
    names = nt_names(parity.reference_dir())
    absent = not_covered(DOC.read_text())
    missing = [n for n, m in names.items() if not in_infattn(n, m) and listed(n, absent) is None]
    assert not missing, f"NT names neither in infattn nor in {DOC.name}'s Not covered: {missing}"
    short = {n: r for n, r in absent.items() if len(r.split()) < MIN_REASON_WORDS}
    assert not short, f"Not covered entries without a reason: {short}"


def test_not_covered_lists_only_nt_names_absent_from_infattn() -> None:
    names = nt_names(parity.reference_dir())
    absent = not_covered(DOC.read_text())
    stale = [n for n in absent if n in names and in_infattn(n, names[n])]
    unknown = [n for n in absent if n not in names]
    assert not stale, f"listed as not covered but present in infattn: {stale}"
    assert not unknown, f"listed as not covered but not a neural-tangents name: {unknown}"


def test_not_covered_parser() -> None:
    doc = (
        "## Not covered\n\n* `a.B`, `c` (`c.d`):\n  reason here.\n* `e`: other\n\n## Next\n* `f`: x"
    )
    assert not_covered(doc) == {
        "a.B": "reason here.",
        "c": "reason here.",
        "c.d": "reason here.",
        "e": "other",
    }
