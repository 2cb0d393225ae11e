"""Live parity of the top-level API with neural-tangents 0.6.5 (float64, 1e-6).

``empirical_kernel_fn``, ``empirical_ntk_fn``, ``empirical_nngp_fn``, ``empirical_ntk_vp_fn``,
``batch``, ``linearize``, ``taylor_expand`` and ``kernel_fn``'s diagonal layouts on the cases
of ``empirical_grid.py``; the reference outputs come from ``tools/reference/dump_empirical.py``
in ``$INFATTN_REF_DIR``. A missing or stale reference fails the test (never skips) with the
command that regenerates it.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.reference import empirical_grid, parity

HOW_TO_GENERATE = (
    "generate the reference outputs with neural-tangents 0.6.5:\n"
    "    bash tools/reference/setup_env.sh && ${INFATTN_REF_ENV:-.cache/ntref}/bin/python "
    "tools/reference/dump_empirical.py .cache/reference\n(or point INFATTN_REF_DIR at a dump)"
)


@pytest.mark.parametrize("name", [c.name for c in empirical_grid.cases()])
def test_empirical_parity(name: str) -> None:
    import infattn

    case = empirical_grid.get_case(name)
    path = parity.reference_dir() / f"empirical__{name}.npz"
    if not path.exists():
        pytest.fail(f"{path} is missing; {HOW_TO_GENERATE}", pytrace=False)
    with np.load(path) as data:
        ref = {key: data[key] for key in data.files}
    if str(ref.pop("spec")) != case.spec:
        pytest.fail(f"{path} is stale (empirical_grid.py changed); re-{HOW_TO_GENERATE}")
    ours = empirical_grid.evaluate(case, infattn)
    assert set(ours) == set(ref)
    errors = {k: parity.relative_error(ours[k], ref[k]) for k in ours}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= parity.RTOL, f"{name}: relative errors {errors}"
