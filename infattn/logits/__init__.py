"""Gaussian attention logits under standard ``1/sqrt(d)`` scaling.

In the infinite key-width limit the logits of one head are a Gaussian field:

    Cov(G_ac(x), G_bd(x')) = qk_std**2 * S_ab(x, x') * S_cd(x, x'),

``S`` being the covariance the queries and keys see ("Sigma tilde"). In the
infinite-head limit the attention output is a GP with

    nngp(x, x') = E[ zeta(G(x)) V(x, x') zeta(G(x'))^T ],

and the NTK bracket (derivation in ``docs/standard-scaling.md``)

    ntk_ab = E[ zeta(G) (T_v + 2 V) zeta(G')^T ]_ab
             + qk_std**2 E[ (2 S_ab + T_ab) <J_a V J'_b^T, S> + S_ab <J_a V J'_b^T, T> ].

The package estimates both (before the layer's ``ov_std**2`` and bias). One
concept per module:

* :mod:`~infattn.logits.mechanisms`: ``zeta`` itself (:func:`attention_weights`,
  shared with the layers and the finite networks) and :data:`MECHANISMS`;
* :mod:`~infattn.logits.sampling`: exact draws of the logits, jointly over a
  batch (``G_i = A_i Z A_i^T``) or per pair of inputs (conditional factors);
* :mod:`~infattn.logits.integrands`: each draw's nngp and NTK terms in ``O(L^3)``;
* :mod:`~infattn.logits.factored`: the same in factored form, ``O(L^2 r)``, for
  low-rank input kernels (the joint estimator's NTK, chosen by cost);
* :mod:`~infattn.logits.hermite`, :mod:`~infattn.logits.closed_form`: the exact
  expectations of the elementwise mechanisms (:func:`elementwise_attention_exact`,
  ``O(L^4)`` per pair) and the Hermite parts used for variance reduction;
* :mod:`~infattn.logits.chunks`, :mod:`~infattn.logits.joint`,
  :mod:`~infattn.logits.pairwise`: the estimators, as ``prepare``/``step``/``finish``
  over chunks of draws with running moments;
* :mod:`~infattn.logits.driver`: running them chunk by chunk (automatic sample
  size, progress bar, ``Ctrl-C``, sub-streams for replicates);
* :mod:`~infattn.logits.monte_carlo`: :func:`standard_attention_mc`, the entry point;
* :mod:`~infattn.logits.finite_heads`: one layer's step of the finite-head law
  (:func:`finite_head_covariance`).

All arrays are JAX arrays, positions flattened to ``L``; kernels use the
``(N1, N2, L, L)`` layout of :mod:`infattn.kernel`.
"""

from infattn.logits.closed_form import elementwise_attention_exact
from infattn.logits.driver import relative_standard_error
from infattn.logits.finite_heads import finite_head_covariance
from infattn.logits.inputs import AttentionInputs, StandardAttentionMC
from infattn.logits.mechanisms import MECHANISMS, attention_weights, masked_softmax
from infattn.logits.monte_carlo import (
    DEFAULT_MAX_SAMPLES,
    DEFAULT_MC_SAMPLES,
    DEFAULT_TARGET_RSE,
    VARIANCE_REDUCTIONS,
    standard_attention_mc,
)

__all__ = [
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_MC_SAMPLES",
    "DEFAULT_TARGET_RSE",
    "MECHANISMS",
    "VARIANCE_REDUCTIONS",
    "AttentionInputs",
    "StandardAttentionMC",
    "attention_weights",
    "elementwise_attention_exact",
    "finite_head_covariance",
    "masked_softmax",
    "relative_standard_error",
    "standard_attention_mc",
]
