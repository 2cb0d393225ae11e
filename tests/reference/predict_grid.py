"""Cases on which ``infattn.predict`` is compared with ``neural_tangents.predict`` 0.6.5.

Imported by both environments (numpy and the standard library only), like
``grid.py``: ``tools/reference/dump_predict.py`` runs :func:`evaluate` with
neural-tangents' ``stax`` and ``predict`` and saves every output;
``tests/reference/test_predict_parity.py`` runs the same calls with infattn's.
The calls are written once, here, so both sides compute the very same things:

* ``gp_inference`` on the three train/test/test-test kernels (nngp, ntk, ntkgp;
  mean and covariance; test and train set),
* ``gradient_descent_mse`` on the NTK (``t`` small, large, an array of both and
  ``None``; train and test outputs from non-zero initial outputs),
* ``gradient_descent_mse_ensemble`` on the model's ``kernel_fn`` (the same ``t``;
  ``x_test`` given and ``None``; ``get`` nngp, ntk and both; with and without
  ``compute_cov``),
* ``max_learning_rate``,
* ``gradient_descent`` (the ODE solver) on the NTK for an MSE and a cross-entropy
  loss, with and without momentum: train and test outputs at an array of times, and
  an ``ODEState`` in and out (momenta given),

plus, for pooled models, ``gp_inference`` and ``gradient_descent_mse`` on a kernel
with explicit output axes (``trace_axes=()``). Infattn's side is given the stored
reference kernels for ``gp_inference`` and ``gradient_descent_mse`` (so those check
the inference alone) and builds its own for the ensemble (model and inference).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import zlib
from typing import Any

import numpy as np

from tests.reference.grid import L, Layer, attention, inverse_quadratic, serial, transformer

_Kernel = collections.namedtuple("Kernel", ("nngp", "ntk"))
N_TRAIN = 6
N_TEST = 4
GETS = ("nngp", "ntk", ("nngp", "ntk"))


@dataclasses.dataclass(frozen=True)
class PredictCase:
    """A model, its inputs and targets, and the regularisation of the inference.

    ``targets``: ``"pooled"`` (``y: (N, K)``), ``"positions"`` (``y: (N, L, K)``,
    an unpooled model) or ``"positions_mid"`` (``y: (N, K, L)`` with
    ``trace_axes=(1,)``).
    """

    name: str
    net: Layer
    length: int
    channels: int
    outputs: int
    targets: str = "pooled"
    mask_constant: float | None = None
    diag_reg: float = 0.0
    diag_reg_absolute_scale: bool = False
    learning_rate: float = 1.0
    ode: bool = False  # also run gradient_descent (the ODE solver; one case per target layout)

    @property
    def seed(self) -> int:
        return zlib.crc32(self.name.encode())

    @property
    def trace_axes(self) -> tuple[int, ...]:
        return (1,) if self.targets == "positions_mid" else (-1,)

    @property
    def spec(self) -> str:
        """Everything that determines the reference outputs (detects stale dumps)."""
        fields = dataclasses.asdict(self)
        fields["net"] = self.net.describe()
        return f"{fields} seed={self.seed} n={N_TRAIN}/{N_TEST}"

    def data(self) -> dict[str, np.ndarray]:
        """Inputs, targets, initial outputs (float64, deterministic)."""
        rng = np.random.RandomState(self.seed)
        x_train = rng.standard_normal((N_TRAIN, self.length, self.channels))
        x_test = rng.standard_normal((N_TEST, self.length, self.channels))
        if self.mask_constant is not None:
            for x, counts in ((x_train, (0, 2, 1, 0, 3, 0)), (x_test, (1, 0, 2, 0))):
                for i, count in enumerate(counts):
                    if count:
                        x[i, self.length - count :] = self.mask_constant
        shape = {
            "pooled": (self.outputs,),
            "positions": (self.length, self.outputs),
            "positions_mid": (self.outputs, self.length),
        }[self.targets]
        return {
            "x_train": x_train,
            "x_test": x_test,
            "y_train": rng.standard_normal((N_TRAIN, *shape)),
            "fx_train_0": 0.3 * rng.standard_normal((N_TRAIN, *shape)),
            "fx_test_0": 0.3 * rng.standard_normal((N_TEST, *shape)),
        }

    def times(self, y_size: int) -> dict[str, Any]:
        """``t`` small (partly trained), large (nearly converged), both, and ``None``."""
        small, large = 0.3 * y_size, 300.0 * y_size
        return {"small": small, "large": large, "array": np.array([small, large]), "inf": None}


def _attn(**kwargs: Any) -> Layer:
    return attention(5, n_heads=2, **kwargs)


def cases() -> list[PredictCase]:
    """The grid: attention models, masked inputs, several outputs, three target layouts."""
    pe = {"pos_emb_type": "SUM", "pos_emb_decay_fn": inverse_quadratic}
    pooled = serial(
        L("Dense", 5),
        _attn(**pe),
        L("LayerNorm"),
        L("Relu"),
        L("Dense", 5, b_std=0.1),
        L("GlobalAvgPool"),
        L("Dense", 3),
    )
    unpooled = serial(
        L("Dense", 5, b_std=0.2), _attn(attention_mechanism="RELU"), L("Relu"), L("Dense", 2)
    )
    block = {"attention_mechanism": "SOFTMAX", "n_heads": 2, **pe}
    return [
        PredictCase("attn_pooled", pooled, length=5, channels=3, outputs=3, ode=True),
        PredictCase(
            "attn_pooled_masked",
            pooled,
            length=5,
            channels=3,
            outputs=3,
            mask_constant=0.0,
            diag_reg=1e-3,
            diag_reg_absolute_scale=True,
        ),
        PredictCase(
            "transformer_masked",
            transformer(1, 5, block),
            length=6,
            channels=3,
            outputs=2,
            mask_constant=-2.5,
            diag_reg=1e-2,
            learning_rate=0.5,
        ),
        PredictCase(
            "attn_positions",
            unpooled,
            length=4,
            channels=3,
            outputs=2,
            targets="positions",
            diag_reg=1e-4,
            ode=True,
        ),
        PredictCase(
            "attn_positions_mid_trace",
            unpooled,
            length=4,
            channels=3,
            outputs=2,
            targets="positions_mid",
            mask_constant=0.0,
            diag_reg=1e-4,
            ode=True,
        ),
    ]


def case_names() -> list[str]:
    return [c.name for c in cases()]


def get_case(name: str) -> PredictCase:
    for case in cases():
        if case.name == name:
            return case
    raise KeyError(f"no predict case named {name!r}; known: {case_names()}")


# --------------------------------------------------------------------------- the calls


def reference_kernels(case: PredictCase, stax: Any) -> dict[str, np.ndarray]:
    """``nngp``/``ntk`` of train-train (``dd``), test-train (``td``), test-test (``tt``)."""
    d = case.data()
    _, _, kernel_fn = case.net.build(stax)
    pairs = {
        "dd": (d["x_train"], None),
        "td": (d["x_test"], d["x_train"]),
        "tt": (d["x_test"], None),
    }
    out = {}
    for key, (x1, x2) in pairs.items():
        k = kernel_fn(x1, x2, ("nngp", "ntk"), mask_constant=case.mask_constant)
        out[f"{key}_nngp"], out[f"{key}_ntk"] = np.asarray(k.nngp), np.asarray(k.ntk)
    return out


def _mse(fx: Any, y: Any) -> Any:
    return 0.5 * ((fx - y) ** 2).mean()


def _cross_entropy(fx: Any, y: Any) -> Any:
    """Cross-entropy of the outputs' softmax against the targets' softmax (soft labels)."""
    import jax  # both environments have their own

    return -(jax.nn.log_softmax(fx) * jax.nn.softmax(y)).mean()


LOSSES = {"mse": _mse, "xent": _cross_entropy}


def _flat(prefix: str, value: Any, out: dict[str, np.ndarray]) -> None:
    """Store a prediction (array, Gaussian, namedtuple or dataclass of them, or tuple)."""
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            if getattr(value, field.name) is not None:
                _flat(f"{prefix}/{field.name}", getattr(value, field.name), out)
    elif hasattr(value, "_fields"):
        for field in value._fields:
            _flat(f"{prefix}/{field}", getattr(value, field), out)
    elif isinstance(value, tuple):
        for i, item in enumerate(value):
            _flat(f"{prefix}/{('train', 'test')[i]}", item, out)
    else:
        out[prefix] = np.asarray(value)


def _get_name(get: Any) -> str:
    return get if isinstance(get, str) else "+".join(get)


def _with_output_axes(k: np.ndarray, outputs: int) -> np.ndarray:
    """``(N1, N2)`` -> ``(N1, N2, K, K)``: ``k`` times a fixed PSD covariance of the outputs."""
    a = np.arange(outputs)
    cov = 0.5 ** np.abs(a[:, None] - a[None, :])
    return np.einsum("ij,ab->ijab", k, cov)


def evaluate(case: PredictCase, stax: Any, predict: Any, kernels: dict[str, np.ndarray]) -> dict:
    """Every prediction of the case, as ``{path: array}``, with this ``stax``/``predict``."""
    d = case.data()
    y, f_dd, f_td = d["y_train"], d["fx_train_0"], d["fx_test_0"]
    reg = {"diag_reg": case.diag_reg, "diag_reg_absolute_scale": case.diag_reg_absolute_scale}
    tr = {"trace_axes": case.trace_axes}
    k = kernels
    out: dict[str, np.ndarray] = {}

    def kernel(kind: str) -> Any:
        return _pair(kernels[f"{kind}_nngp"], kernels[f"{kind}_ntk"])

    gp = predict.gp_inference(kernel("dd"), y, **reg, **tr)
    for get in ("nngp", "ntk", "ntkgp"):
        _flat(f"gp/{get}/test", gp(get, kernel("td")), out)
        _flat(f"gp/{get}/test_cov", gp(get, kernel("td"), kernel("tt")), out)
        _flat(f"gp/{get}/train_cov", gp(get, None, True), out)
    _flat("gp/default/test", gp(None, kernel("td")), out)

    gd = predict.gradient_descent_mse(k["dd_ntk"], y, case.learning_rate, **reg, **tr)
    for name, t in case.times(y.size).items():
        _flat(f"gd/{name}/both", gd(t, f_dd, f_td, k["td_ntk"]), out)
        _flat(f"gd/{name}/train", gd(t, f_dd), out)
        _flat(f"gd/{name}/test_only", gd(t, None, f_td, k["td_ntk"]), out)

    if case.ode:
        _ode(case, predict, k, out)

    if case.targets == "pooled":
        full = {kind: _with_output_axes(k[f"{kind}_ntk"], case.outputs) for kind in ("dd", "td")}
        tt_full = _with_output_axes(k["tt_ntk"], case.outputs)
        gp_full = predict.gp_inference(full["dd"], y, **reg, trace_axes=())
        _flat("full/gp", gp_full("ntkgp", full["td"], tt_full), out)
        gd_full = predict.gradient_descent_mse(full["dd"], y, **reg, trace_axes=())
        _flat("full/gd", gd_full(case.times(y.size)["array"], f_dd, f_td, full["td"]), out)

    _, _, kernel_fn = case.net.build(stax)
    ens = predict.gradient_descent_mse_ensemble(
        kernel_fn,
        d["x_train"],
        y,
        case.learning_rate,
        **reg,
        **tr,
        mask_constant=case.mask_constant,
    )
    for name, t in case.times(y.size).items():
        if name == "large":
            continue  # covered by "array"; each call recomputes the test kernels
        for get in GETS:
            path = f"ens/{name}/{_get_name(get)}"
            _flat(f"{path}/test", ens(t, d["x_test"], get), out)
            _flat(f"{path}/test_cov", ens(t, d["x_test"], get, compute_cov=True), out)
            _flat(f"{path}/train_cov", ens(t, None, get, compute_cov=True), out)

    out["max_lr"] = np.asarray(predict.max_learning_rate(k["dd_ntk"]))
    out["max_lr_momentum"] = np.asarray(
        predict.max_learning_rate(k["dd_ntk"], y_train_size=y.size, momentum=0.9)
    )
    return out


def _ode(case: PredictCase, predict: Any, k: dict[str, np.ndarray], out: dict) -> None:
    """``gradient_descent`` for each loss, plain and with momentum."""
    d = case.data()
    y, f_dd, f_td = d["y_train"], d["fx_train_0"], d["fx_test_0"]
    times = case.times(y.size)
    for name, loss in LOSSES.items():
        for momentum in (None, 0.9):
            gd = predict.gradient_descent(
                loss, k["dd_ntk"], y, case.learning_rate, momentum, trace_axes=case.trace_axes
            )
            path = f"ode/{name}/{momentum}"
            _flat(f"{path}/both", gd(times["array"], f_dd, f_td, k["td_ntk"]), out)
            moments = {} if momentum is None else {"qx_train": 0.1 * y, "qx_test": None}
            state = predict.ODEState(f_dd, f_td, **moments)
            _flat(f"{path}/state", gd(times["small"], state, None, k["td_ntk"]), out)


def _pair(nngp: np.ndarray, ntk: np.ndarray) -> Any:
    """A ``(nngp, ntk)`` namedtuple, as ``kernel_fn(..., ("nngp", "ntk"))`` returns."""
    return _Kernel(nngp, ntk)


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """``max|ours - ref| / max|ref|``; ``inf`` on a shape mismatch or a non-finite difference."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    if ours.shape != ref.shape:
        return math.inf
    diff = float(np.max(np.abs(ours - ref), initial=0.0))
    if not math.isfinite(diff):
        return math.inf
    return diff / max(float(np.max(np.abs(ref), initial=0.0)), 1e-30)
