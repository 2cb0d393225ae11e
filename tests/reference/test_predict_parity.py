"""Live parity of ``infattn.predict`` with ``neural_tangents.predict`` 0.6.5 (float64, 1e-6).

The reference outputs are computed in the pinned environment by
``tools/reference/dump_predict.py`` and read from ``$INFATTN_REF_DIR``. A missing or
stale reference fails the test (never skips) with the command that regenerates it.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.reference import parity, predict_grid

HOW_TO_GENERATE = (
    "generate the reference predictions with neural-tangents 0.6.5:\n"
    "    bash tools/reference/setup_env.sh && ${INFATTN_REF_ENV:-.cache/ntref}/bin/python "
    "tools/reference/dump_predict.py .cache/reference\n(or point INFATTN_REF_DIR at a dump)"
)


def load(case: predict_grid.PredictCase) -> dict[str, np.ndarray]:
    path = parity.reference_dir() / f"predict__{case.name}.npz"
    if not path.exists():
        pytest.fail(f"{path} is missing; {HOW_TO_GENERATE}", pytrace=False)
    with np.load(path) as data:
        ref = {key: data[key] for key in data.files}
    if str(ref["spec"]) != case.spec:
        pytest.fail(f"{path} is stale (predict_grid.py changed); re-{HOW_TO_GENERATE}")
    return ref


@pytest.mark.parametrize("name", predict_grid.case_names())
def test_predict_parity(name: str) -> None:
    """Every prediction (gp_inference, gradient_descent_mse, the ensemble, max_learning_rate)
    agrees with NT to a relative error of 1e-6; gp_inference and gradient_descent_mse are
    given NT's kernels, the ensemble builds infattn's own from the model."""
    from infattn import predict, stax

    case = predict_grid.get_case(name)
    ref = load(case)
    kernels = {k.removeprefix("kernel:"): v for k, v in ref.items() if k.startswith("kernel:")}
    ours = predict_grid.evaluate(case, stax, predict, kernels)
    expected = {k.removeprefix("out:") for k in ref if k.startswith("out:")}
    assert set(ours) == expected, f"outputs differ: {sorted(set(ours) ^ expected)}"
    errors = {path: predict_grid.relative_error(ours[path], ref[f"out:{path}"]) for path in ours}
    worst = sorted(errors.items(), key=lambda item: -item[1])[:5]
    assert worst[0][1] <= parity.RTOL, f"{name}: worst relative errors {worst}"


@pytest.mark.parametrize("name", predict_grid.case_names())
def test_predict_case_kernels(name: str) -> None:
    """infattn's kernels of the case's model equal NT's stored ones (what the ensemble uses)."""
    from infattn import stax

    case = predict_grid.get_case(name)
    ref = load(case)
    ours = predict_grid.reference_kernels(case, stax)
    for key, value in ours.items():
        err = predict_grid.relative_error(value, ref[f"kernel:{key}"])
        assert err <= parity.RTOL, f"{name}: kernel {key} relative error {err:.2e}"
