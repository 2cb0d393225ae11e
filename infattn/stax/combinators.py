"""Combinators: compose layers in series, in parallel, and across branches.

``FanOut(n)`` copies its input into ``n`` branches, ``parallel`` runs one layer
per branch and ``FanInSum`` adds the branches; ``x + f(x)`` is
``serial(FanOut(2), parallel(Identity(), f), FanInSum())``. Kernels of summed
branches add, which is exact when the branches are jointly Gaussian and
independent given the input (each branch has its own weights). Replicates of
Monte Carlo estimates add the same way; a branch without them (closed form)
broadcasts. ``serial``, ``parallel``, ``FanOut`` and ``Identity`` only route:
their children handle replicates, so they are built with
``handles_replicates=True``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from infattn.kernel import Kernel
from infattn.stax.diagonal import fold
from infattn.stax.layer import Parts, make_layer, parts_of
from infattn.stax.layout import Boundary

Layer = tuple[Callable, Callable, Callable]


def serial(*layers: Layer) -> Layer:
    """Layers applied one after the other (``jax.example_libraries.stax.serial``).

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
        >>> kernel_fn(np.ones((2, 3)), get="nngp").shape
        (2, 2)
    """
    parts = [parts_of(layer) for layer in layers]

    def init(rng, input_shape):
        params = []
        for p, key in zip(parts, jax.random.split(rng, len(parts)), strict=True):
            input_shape, param = p.init(key, input_shape)
            params.append(param)
        return input_shape, tuple(params)

    def apply(params, x, mask, **kwargs):
        rng = kwargs.pop("rng", None)
        keys = [None] * len(parts) if rng is None else list(jax.random.split(rng, len(parts)))
        for p, param, key in zip(parts, params, keys, strict=True):
            x, mask = p.apply(param, x, mask, rng=key, **kwargs)
        return x, mask

    def kernel(k):
        for p in parts:
            k = p.kernel(k)
        return k

    return make_layer(
        init,
        apply,
        kernel,
        "serial",
        all(p.pairwise for p in parts),
        handles_replicates=True,
        input_boundary=_first_boundary(parts),
        positionwise=all(p.positionwise for p in parts),
        diagonal=fold([p.diagonal for p in parts], serial=True),
        diagonal_kernels=all(p.diagonal_kernels for p in parts),
    )


def repeat(layer: Layer, n: int) -> Layer:
    """``layer`` composed ``n`` times in a compiled loop (``serial(*[layer] * n)``, one compile).

    Each repetition has its own parameters (stacked on a leading axis ``n``); the
    layer must keep its input's shape, and its kernel its metadata, after the first
    application. ``apply_fn(..., rng=key)`` gives repetition ``i`` the key
    ``fold_in(key, i)``.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> block = stax.serial(stax.Dense(3), stax.Relu())
        >>> x = np.ones((2, 3))
        >>> bool(np.allclose(repeat(block, 3)[2](x, get="nngp"),
        ...                  stax.serial(block, block, block)[2](x, get="nngp")))
        True
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n: expected a non-negative integer, got {n!r}")
    part = parts_of(layer)

    def init(rng, input_shape):
        out_shape, _ = part.init(rng, input_shape)
        if tuple(out_shape) != tuple(input_shape):
            raise ValueError(
                f"layer: repeat needs a layer that keeps the shape {tuple(input_shape)}, it "
                f"gives {tuple(out_shape)}; use serial(*[layer] * n)"
            )
        keys = jax.random.split(rng, n)
        return input_shape, jax.vmap(lambda key: part.init(key, input_shape)[1])(keys)

    def apply(params, x, mask, **kwargs):
        rng = kwargs.pop("rng", None)

        def step(carry, inputs):
            param, i = inputs
            key = None if rng is None else jax.random.fold_in(rng, i)
            return part.apply(param, *carry, rng=key, **kwargs), None

        (x, mask), _ = jax.lax.scan(step, (x, mask), (params, jnp.arange(n)))
        return x, mask

    def kernel(k):
        if n == 0:
            return k
        k = part.kernel(k)
        k, _ = jax.lax.scan(lambda c, _: (part.kernel(c), None), k, None, length=n - 1)
        return k

    return make_layer(
        init,
        apply,
        kernel,
        f"repeat({n})",
        part.pairwise,
        handles_replicates=True,
        input_boundary=part.boundary,
        positionwise=part.positionwise,
        diagonal=fold([part.diagonal] * n, serial=True),
        diagonal_kernels=part.diagonal_kernels,
    )


def parallel(*layers: Layer) -> Layer:
    """One layer per branch: a list of inputs maps to a list of outputs.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> branches = stax.parallel(stax.Identity(), stax.Dense(3))
        >>> _, _, kernel_fn = stax.serial(stax.FanOut(2), branches)
        >>> [k.shape for k in kernel_fn(np.ones((2, 3)), get="nngp")]
        [(2, 2), (2, 2)]
    """
    parts = [parts_of(layer) for layer in layers]

    def init(rng, input_shapes):
        _check_branches(input_shapes, len(parts), "input_shape")
        keys = jax.random.split(rng, len(parts))
        out = [p.init(key, s) for p, key, s in zip(parts, keys, input_shapes, strict=True)]
        return [o[0] for o in out], tuple(o[1] for o in out)

    def apply(params, xs, masks, **kwargs):
        _check_branches(xs, len(parts), "inputs")
        masks = [None] * len(xs) if masks is None else masks
        rng = kwargs.pop("rng", None)
        keys = [None] * len(parts) if rng is None else list(jax.random.split(rng, len(parts)))
        out = [
            p.apply(w, x, m, rng=key, **kwargs)
            for p, w, x, m, key in zip(parts, params, xs, masks, keys, strict=True)
        ]
        return [o[0] for o in out], [o[1] for o in out]

    def kernel(ks):
        _check_branches(ks, len(parts), "kernel")
        return [p.kernel(k) for p, k in zip(parts, ks, strict=True)]

    return make_layer(
        init,
        apply,
        kernel,
        "parallel",
        all(p.pairwise for p in parts),
        handles_replicates=True,
        input_boundary=_first_boundary(parts),
        positionwise=all(p.positionwise for p in parts),
        diagonal=fold([p.diagonal for p in parts], serial=False),
        diagonal_kernels=all(p.diagonal_kernels for p in parts),
    )


def FanOut(num: int) -> Layer:
    """Copy the input into ``num`` branches.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> len(stax.FanOut(3)[2](np.ones((2, 3))))
        3
    """
    if not isinstance(num, int) or num < 1:
        raise ValueError(f"num: expected a positive integer, got {num!r}")

    def init(rng, input_shape):
        return [input_shape] * num, ()

    def apply(params, x, mask, **kwargs):
        return [x] * num, [mask] * num

    def kernel(k):
        if k.law_key is None:
            return [k] * num
        # finite-head law: each branch draws its own heads (see Kernel.law_key)
        return [k.replace(law_key=jax.random.fold_in(k.law_key, i)) for i in range(num)]

    return make_layer(init, apply, kernel, "FanOut", handles_replicates=True, positionwise=True)


def and_masks(masks: Sequence[jax.Array | None]) -> jax.Array | None:
    """Positions padded in every branch that has a mask (``None``: no branch has one).

    Example:
        >>> and_masks([jnp.array([True, True]), None, jnp.array([False, True])]).tolist()
        [False, True]
    """
    present = [m for m in masks if m is not None]
    return functools.reduce(jnp.logical_and, present) if present else None


def FanInSum() -> Layer:
    """Sum the branches; their kernels add (each branch must be Gaussian).

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> branches = stax.parallel(stax.Identity(), stax.Dense(3))
        >>> _, _, kernel_fn = stax.serial(stax.Dense(3), stax.FanOut(2), branches, stax.FanInSum())
        >>> float(kernel_fn(np.ones((1, 3)), get="nngp")[0, 0])  # x + f(x): 1 + 1
        2.0
    """

    def init(rng, input_shapes):
        shapes = {tuple(s) for s in input_shapes}
        if len(shapes) != 1:
            raise ValueError(f"input_shape: FanInSum needs equal branch shapes, got {input_shapes}")
        return tuple(input_shapes[0]), ()

    def apply(params, xs, masks, **kwargs):
        return sum(xs[1:], xs[0]), and_masks(masks or [])

    def kernel(ks):
        if len(ks) > 1 and not all(k.is_gaussian for k in ks):
            raise ValueError(
                "FanInSum: every branch must be Gaussian (end in Dense, Conv, attention or "
                f"LayerNorm after them); got is_gaussian={[k.is_gaussian for k in ks]}"
            )
        return _sum_kernels(ks)

    return make_layer(init, apply, kernel, "FanInSum", positionwise=True)


def _sum_kernels(ks: Sequence[Kernel]) -> Kernel:
    def add(name):
        mats = [getattr(k, name) for k in ks]
        return None if any(m is None for m in mats) else sum(mats[1:], mats[0])

    return ks[0].replace(
        nngp=add("nngp"),
        ntk=add("ntk"),
        cov1=add("cov1"),
        cov2=add("cov2"),
        mask1=and_masks([k.mask1 for k in ks]),
        mask2=and_masks([k.mask2 for k in ks]),
        is_gaussian=all(k.is_gaussian for k in ks),
    )


def Identity() -> Layer:
    """The identity layer.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> float(stax.Identity()[2](np.ones((1, 4)), get="nngp")[0, 0])
        1.0
    """

    def init(rng, input_shape):
        return input_shape, ()

    def apply(params, x, mask, **kwargs):
        return x, mask

    def kernel(k):
        return k

    return make_layer(init, apply, kernel, "Identity", handles_replicates=True, positionwise=True)


def _first_boundary(parts: Sequence[Parts]) -> Boundary | None:
    """The input layout a sequence of layers requires: that of the first that has one.

    Layers without requirements (nonlinearities, routing) keep their input's layout,
    so the first requirement is that of the whole sequence (neural-tangents' rule).
    """
    return next((p.boundary for p in parts if p.boundary is not None), None)


def _check_branches(items, n: int, name: str) -> None:
    if not isinstance(items, list | tuple) or len(items) != n:
        raise ValueError(f"{name}: parallel with {n} layers needs a list of {n} branches")
