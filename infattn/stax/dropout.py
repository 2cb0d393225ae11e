"""Dropout: keep each activation with probability ``rate``, scaled by ``1 / rate``.

In the infinite-width limit dropout leaves every covariance between *different*
activations unchanged (the two keep masks are independent and ``E[keep / rate] =
1``) and multiplies the variance of each activation by ``E[keep^2] / rate^2 = 1 /
rate``. So the kernel rule multiplies by ``1 / rate`` the entries that pair an
activation with itself: the same example (``cov1``, ``cov2``, and ``nngp``/``ntk``
when ``x2`` is ``x1``) at the same position. ``mode='test'`` is the identity.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from infattn.kernel import Kernel
from infattn.stax.layer import make_layer
from infattn.validation import check_choice

Array = jax.Array


def diagonal_entries(shape: tuple[int, ...], batch_paired: bool) -> np.ndarray:
    """Booleans marking the entries of an interleaved kernel that pair a point with itself.

    ``shape``: ``(N1, N2, s1, s1, s2, s2, ...)`` when ``batch_paired`` (``True`` where
    ``i == j`` and every spatial pair matches), else ``(N, s1, s1, ...)`` (where every
    spatial pair matches).

    Example:
        >>> diagonal_entries((2, 2, 3, 3), True)[0, 0].astype(int).tolist()
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
        >>> bool(diagonal_entries((2, 2, 3, 3), True)[0, 1].any())
        False
    """
    start = 0 if batch_paired else 1
    out = np.ones(shape, dtype=bool)
    for a in range(start, len(shape) - 1, 2):
        index = [1] * len(shape)
        index[a] = shape[a]
        first = np.arange(shape[a]).reshape(index)
        index[a], index[a + 1] = 1, shape[a + 1]
        out &= first == np.arange(shape[a + 1]).reshape(index)
    return out


def _scale_diagonal(x: Array | None, factor: float, batch_paired: bool) -> Array | None:
    if x is None:
        return None
    return jnp.where(diagonal_entries(x.shape, batch_paired), factor * x, x)


def dropout_kernel(k: Kernel, rate: float) -> Kernel:
    """The train-mode kernel rule (see the module docstring); ``k`` without replicates."""
    factor = 1.0 / rate
    same = k.x1_is_x2 and k.nngp.shape[0] == k.nngp.shape[1]
    return k.replace(
        cov1=_scale_diagonal(k.cov1, factor, False),
        cov2=_scale_diagonal(k.cov2, factor, False),
        nngp=_scale_diagonal(k.nngp, factor, True) if same else k.nngp,
        ntk=_scale_diagonal(k.ntk, factor, True) if same else k.ntk,
        is_gaussian=False,
    )


def Dropout(rate: float, mode: str = "train"):
    """Dropout with keep probability ``rate`` (``rate=1`` keeps everything), as neural-tangents.

    ``mode='train'``: ``apply_fn(..., rng=key)`` keeps each entry with probability
    ``rate`` and divides it by ``rate``; the kernel multiplies the variance of each
    activation by ``1 / rate`` (module docstring). ``mode='test'``: the identity.
    ``nngp``/``ntk`` are scaled on their batch diagonal when ``x2`` is ``None`` or
    equal to ``x1`` (a concrete comparison; under ``jit`` only ``x2=None`` counts).

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(4), Dropout(0.5))
        >>> kernel_fn(np.ones((2, 3)), get="nngp").tolist()
        [[2.0, 1.0], [1.0, 2.0]]
    """
    mode = check_choice(mode, ("train", "test"), "mode")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
        raise ValueError(f"rate: expected a keep probability in (0, 1], got {rate!r}")

    def init(rng, input_shape):
        return input_shape, ()

    def apply(params, x, mask, **kwargs):
        if mode == "test":
            return x, mask
        rng = kwargs.get("rng")
        if rng is None:
            raise ValueError("rng: Dropout in mode='train' needs apply_fn(..., rng=key), got None")
        keep = jax.random.bernoulli(rng, rate, x.shape)
        return jnp.where(keep, x / rate, jnp.zeros((), x.dtype)), mask

    def kernel(k):
        return k if mode == "test" else dropout_kernel(k, rate)

    # train: an entry of nngp depends on whether its two examples are one (never tiled)
    name = f"Dropout({rate}, {mode})"
    return make_layer(init, apply, kernel, name, pairwise=mode == "test", positionwise=True)
