"""Parity cases for the top-level API: empirical kernels, NTK-vector products, batch, linearize,
taylor_expand.

Imported by both environments (``tools/reference/dump_empirical.py`` with
neural-tangents 0.6.5, ``tests/reference/test_empirical_parity.py`` with infattn);
needs numpy and jax only. The finite networks are pure jax functions of an explicit
parameter dict, since the two libraries store ``stax`` parameters differently; ``batch``
is also checked on an analytic ``stax`` kernel built from :mod:`grid` records.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import numpy as np

from tests.reference.grid import L, residual, serial

N1, N2, LENGTH, CHANNELS, WIDTH, OUT = 4, 2, 3, 3, 5, 2
BATCHED_NET = serial(L("Dense", 4, b_std=0.1), L("Relu"), L("Dropout", 0.6), L("Dense", 2))
CONV_NET = serial(L("Conv", 4, (2,), padding="SAME"), L("Erf"), L("Conv", 2, (3,), padding="SAME"))
RESIDUAL_NET = serial(
    L("Dense", 4),
    residual(serial(L("Erf"), L("Dense", 4))),
    L("LayerNorm"),
    L("Gelu"),
    L("Dense", 2),
)
"""Position-wise: ``diagonal_spatial=True`` is computed per position in infattn."""
MASK_CONSTANT = -2.5


def mlp(params: dict, x: Any, **kwargs: Any) -> Any:
    """``(N, L, C) -> (N, L, OUT)``: tokenwise ``tanh`` layer then a linear read-out."""
    import jax.numpy as jnp

    hidden = jnp.tanh(x @ params["w1"] + params["b1"])
    return hidden @ params["w2"]


def mixing(params: dict, x: Any, **kwargs: Any) -> Any:
    """``(N, L, C) -> (N, OUT)``: positions mixed by a learned matrix, ``sin``, pooled."""
    import jax.numpy as jnp

    h = jnp.sin(jnp.einsum("ab,nbc->nac", params["mix"], x) @ params["w1"])
    return jnp.mean(h, axis=1) @ params["w2"]


@dataclasses.dataclass(frozen=True)
class EmpiricalCase:
    name: str
    fn: Any
    trace_axes: tuple[int, ...] = (-1,)
    diagonal_axes: tuple[int, ...] = ()
    implementation: int = 1
    vmap_axes: Any = None
    with_x2: bool = True

    @property
    def seed(self) -> int:
        return zlib.crc32(self.name.encode())

    @property
    def spec(self) -> str:
        return (
            f"{self.fn.__name__} trace={self.trace_axes} diag={self.diagonal_axes} "
            f"impl={self.implementation} vmap={self.vmap_axes} x2={self.with_x2} "
            f"net={BATCHED_NET.describe()} {CONV_NET.describe()} {RESIDUAL_NET.describe()} "
            f"seed={self.seed} ntk_vp"
        )

    def data(self) -> dict[str, Any]:
        """Inputs ``x1``, ``x2`` (or ``None``), parameters, shifted parameters and cotangents
        of ``fn(params, x2)`` (float64)."""
        rng = np.random.RandomState(self.seed)
        params = {
            "w1": rng.standard_normal((CHANNELS, WIDTH)) / np.sqrt(CHANNELS),
            "b1": 0.1 * rng.standard_normal(WIDTH),
            "w2": rng.standard_normal((WIDTH, OUT)) / np.sqrt(WIDTH),
            "mix": rng.standard_normal((LENGTH, LENGTH)) / np.sqrt(LENGTH),
        }
        shifted = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}
        x1 = rng.standard_normal((N1, LENGTH, CHANNELS))
        x2 = rng.standard_normal((N2, LENGTH, CHANNELS)) if self.with_x2 else None
        out_shape = (N1 if x2 is None else N2, *((LENGTH,) if self.fn is mlp else ()), OUT)
        cotangents = rng.standard_normal(out_shape)
        return {"x1": x1, "x2": x2, "params": params, "shifted": shifted, "cotangents": cotangents}


def cases() -> list[EmpiricalCase]:
    """Every output layout and NTK implementation, ``x2`` given and ``None``."""
    out = []
    for impl in (1, 2):  # NT 0.6.5 raises on 3 (STRUCTURED_DERIVATIVES) on its pinned jax
        for with_x2 in (True, False):
            tag = f"impl{impl}_{'x12' if with_x2 else 'x11'}"
            out += [
                EmpiricalCase(f"mlp_{tag}", mlp, implementation=impl, with_x2=with_x2),
                EmpiricalCase(f"mixing_{tag}", mixing, implementation=impl, with_x2=with_x2),
            ]
    out += [
        EmpiricalCase("mlp_untraced", mlp, trace_axes=()),
        EmpiricalCase("mlp_diag_positions", mlp, diagonal_axes=(1,), vmap_axes=0),
        EmpiricalCase("mlp_trace_all", mlp, trace_axes=(1, 2), vmap_axes=0, with_x2=False),
        EmpiricalCase("mixing_diag_batch", mixing, diagonal_axes=(0,), with_x2=False),
    ]
    return out


def evaluate(case: EmpiricalCase, lib: Any) -> dict[str, np.ndarray]:
    """Every output of ``lib`` (``neural_tangents`` or ``infattn``) for ``case``, as numpy."""
    d = case.data()
    x1, x2, params = d["x1"], d["x2"], d["params"]
    axes = {"trace_axes": case.trace_axes, "diagonal_axes": case.diagonal_axes}
    ntk_args = {**axes, "vmap_axes": case.vmap_axes, "implementation": case.implementation}
    kernel_fn = lib.empirical_kernel_fn(case.fn, **ntk_args)
    both = kernel_fn(x1, x2, None, params)
    out = {
        "kernel_nngp": both.nngp,
        "kernel_ntk": both.ntk,
        "ntk_fn": lib.empirical_ntk_fn(case.fn, **ntk_args)(x1, x2, params),
        "nngp_fn": lib.empirical_nngp_fn(case.fn, **axes)(x1, x2, params),
        "linearize": lib.linearize(case.fn, params)(d["shifted"], x1),
        "taylor3": lib.taylor_expand(case.fn, params, 3)(d["shifted"], x1),
        "ntk_vp": lib.empirical_ntk_vp_fn(case.fn, x1, x2, params)(d["cotangents"]),
    }
    if not case.diagonal_axes:
        out["batch_empirical"] = lib.batch(kernel_fn, 2)(x1, x2, "ntk", params)
        _, _, analytic = BATCHED_NET.build(lib.stax)
        batched = lib.batch(analytic, 2)(x1, x2, ("nngp", "ntk"))
        out["batch_nngp"], out["batch_ntk"] = batched.nngp, batched.ntk
        out |= _diagonal_layouts(lib, x1, x2)
    return {k: np.asarray(v) for k, v in out.items()}


def _diagonal_layouts(lib: Any, x1: Any, x2: Any) -> dict[str, Any]:
    """``kernel_fn(..., diagonal_batch=False)`` and ``diagonal_spatial=True`` outputs.

    The residual net also on inputs with trailing positions padded (``MASK_CONSTANT``).
    """
    fields = ("nngp", "ntk", "cov1", "cov2")
    x1m, x2m = np.array(x1), None if x2 is None else np.array(x2)
    x1m[1, -1:] = MASK_CONSTANT
    if x2m is not None:
        x2m[0, -2:] = MASK_CONSTANT
    nets = [("dense", BATCHED_NET, {}), ("conv", CONV_NET, {}), ("residual", RESIDUAL_NET, {})]
    nets.append(("residual_masked", RESIDUAL_NET, {"mask_constant": MASK_CONSTANT}))
    out = {}
    for name, net, mask in nets:
        _, _, kernel_fn = net.build(lib.stax)
        a, b = (x1m, x2m) if mask else (x1, x2)
        for tag, kw in (
            ("full_batch", {"diagonal_batch": False}),
            ("diag_spatial", {"diagonal_spatial": True}),
            ("both", {"diagonal_batch": False, "diagonal_spatial": True}),
        ):
            k = kernel_fn(a, b, fields, **kw, **mask)
            for f in fields:
                if getattr(k, f) is not None:
                    out[f"{tag}_{name}_{f}"] = getattr(k, f)
    return out


def get_case(name: str) -> EmpiricalCase:
    return {c.name: c for c in cases()}[name]
