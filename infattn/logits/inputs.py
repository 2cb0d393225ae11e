"""What the estimators take and return: the input covariances and the kernels.

:class:`AttentionInputs` gathers the covariances an attention layer's logits and
values see (built from the ``(nngp, cov1, cov2)`` triples of the public functions
by :func:`attention_inputs`); :class:`StandardAttentionMC` holds the infinite-head
kernels, before the layer's ``ov_std**2`` factor and bias, with their standard
errors and optional replicates.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class AttentionInputs(NamedTuple):
    """Covariances seen by one attention layer, kernel layout.

    ``s``: ``S`` (queries/keys) ``(N1, N2, L, L)`` with its batch diagonals
    ``s_cov1`` ``(N1, L, L)`` and ``s_cov2`` ``(N2, L, L)`` (``None`` when
    ``x2 is x1``: then ``s`` is the full ``(N1, N1, L, L)`` block); ``v``,
    ``v_cov1``, ``v_cov2`` the same for the values; ``t``, ``tv``: the NTKs ``T``
    and ``T_v`` ``(N1, N2, L, L)`` (both ``None`` without NTK); ``mask1`` ``(N1, L)``,
    ``mask2`` ``(N2, L)``: ``True`` at padding keys, or ``None``.
    """

    s: Array
    s_cov1: Array
    s_cov2: Array | None
    v: Array
    v_cov1: Array
    v_cov2: Array | None
    t: Array | None = None
    tv: Array | None = None
    mask1: Array | None = None
    mask2: Array | None = None

    @property
    def joint(self) -> bool:
        """``x2 is x1``: the logits of the whole batch can be drawn jointly."""
        return self.s_cov2 is None

    @property
    def want_ntk(self) -> bool:
        return self.t is not None

    def astype(self, dtype: Any) -> AttentionInputs:
        """The covariances cast to ``dtype`` (the masks stay boolean)."""
        arrays = self[:8]
        cast = [None if x is None else jnp.asarray(x, dtype) for x in arrays]
        return AttentionInputs(*cast, self.mask1, self.mask2)


class StandardAttentionMC(NamedTuple):
    """Infinite-head attention kernels before ``ov_std**2`` scaling and bias.

    ``nngp``: ``(N1, N2, L, L)``; ``cov1``: ``(N1, L, L)``; ``cov2``:
    ``(N2, L, L)`` or ``None`` (``x2 is None``); ``ntk``: ``(N1, N2, L, L)`` or
    ``None`` (not requested). The ``*_se`` fields are the standard errors of
    the estimates, same shapes (zeros for exact parts). ``replicates``: when
    asked for, a :class:`StandardAttentionMC` whose arrays carry a leading axis
    ``R``: replicate ``r`` is the estimate from sub-stream ``r`` of the draws (its
    own ``*_se`` and ``replicates`` are ``None``). ``n_samples``: the number of
    draws used; ``rel_se``: the largest relative standard error over the
    entries (see :func:`infattn.logits.relative_standard_error`; 0 for exact results).
    """

    nngp: Array
    cov1: Array
    cov2: Array | None
    ntk: Array | None
    nngp_se: Array | None
    cov1_se: Array | None
    cov2_se: Array | None
    ntk_se: Array | None
    replicates: StandardAttentionMC | None = None
    n_samples: Any = 0
    rel_se: Any = 0.0


def _unpack(triple: object, name: str) -> tuple[Array, Array, Array | None]:
    if not isinstance(triple, tuple | list) or len(triple) != 3:
        raise TypeError(f"{name}: expected a triple (nngp, cov1, cov2 or None), got {triple!r}")
    k, c1, c2 = triple
    return jnp.asarray(k), jnp.asarray(c1), None if c2 is None else jnp.asarray(c2)


def attention_inputs(
    qk: tuple[Array, Array, Array | None],
    v: tuple[Array, Array, Array | None],
    qk_ntk: Array | None,
    v_ntk: Array | None,
    key_mask1: Array | None,
    key_mask2: Array | None,
) -> AttentionInputs:
    """Check and gather the public functions' arguments (see
    :func:`infattn.logits.standard_attention_mc`); ``key_mask2`` is dropped when
    ``x2 is x1`` (``qk[2]`` ``None``).

    Example:
        >>> k = jnp.ones((2, 2, 3, 3))
        >>> trip = (k, k[0], None)
        >>> attention_inputs(trip, trip, None, None, None, None).joint
        True
    """
    s_k, s_c1, s_c2 = _unpack(qk, "qk")
    v_k, v_c1, v_c2 = _unpack(v, "v")
    if (qk_ntk is None) != (v_ntk is None):
        raise ValueError("qk_ntk and v_ntk: expected both (NTK) or neither, got one of them")
    if (s_c2 is None) != (v_c2 is None):
        raise ValueError("qk and v: expected both or neither cov2 to be None")
    if s_k.ndim != 4:
        raise ValueError(f"qk: expected an nngp of shape (N1, N2, L, L), got shape {s_k.shape}")
    n1, n2, l, l2 = s_k.shape
    if l != l2 or v_k.shape != s_k.shape or s_c1.shape != (n1, l, l):
        raise ValueError(
            f"qk and v: inconsistent shapes: qk nngp {s_k.shape}, v nngp {v_k.shape}, "
            f"qk cov1 {s_c1.shape}"
        )
    if s_c2 is None and n1 != n2:
        raise ValueError(f"qk: with cov2 None the nngp must be (N1, N1, L, L), got {s_k.shape}")
    km1 = None if key_mask1 is None else jnp.asarray(key_mask1, bool)
    km2 = None if key_mask2 is None or s_c2 is None else jnp.asarray(key_mask2, bool)
    t = None if qk_ntk is None else jnp.asarray(qk_ntk)
    tv = None if v_ntk is None else jnp.asarray(v_ntk)
    return AttentionInputs(s_k, s_c1, s_c2, v_k, v_c1, v_c2, t, tv, km1, km2)
