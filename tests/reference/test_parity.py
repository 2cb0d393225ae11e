"""Live parity with neural-tangents 0.6.5: infattn's kernels on every case of ``grid.py``.

The reference kernels are computed in the pinned environment by ``tools/reference/dump.py``
and read from ``$INFATTN_REF_DIR`` (default ``<repo>/.cache/reference``). A missing or stale
reference makes the test fail (never skip) with the command that regenerates it.
"""

from __future__ import annotations

import pytest

from tests.reference import grid, parity

ISSUE_9_LAYERS = ("convT", "convL", "conv_conv", "resize", "diagdec", "dotgen_pair", "diagsp")
JITTED = tuple(n for n in grid.case_names() if n.startswith(ISSUE_9_LAYERS))
"""Cases also run under ``jax.jit`` (with a traced ``mask_constant``)."""


@pytest.mark.parametrize("name", grid.case_names())
def test_parity(name: str) -> None:
    """nngp, ntk and cov1 agree with NT to a relative error of 1e-6 (float64)."""
    check(name, jit=False)


@pytest.mark.parametrize("name", JITTED)
def test_parity_jitted(name: str) -> None:
    """The same under ``jax.jit``."""
    check(name, jit=True)


def check(name: str, jit: bool) -> None:
    """Compare one case with its stored reference; fail with the errors."""
    from infattn import stax

    case = grid.get_case(name)
    ref, missing = None, ""
    try:
        ref = parity.load_reference(case, parity.reference_dir())
    except parity.ReferenceError as err:
        missing = str(err)
    if ref is None:
        pytest.fail(missing, pytrace=False)
    result = parity.compare(case, ref, stax, jit)
    errors = ", ".join(f"{k}={v:.2e}" for k, v in result.errors.items())
    notes = "; ".join(result.notes)
    assert result.passed(), f"{name}: relative errors {errors} > {parity.RTOL} {notes}\n{case.spec}"
