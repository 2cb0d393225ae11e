"""Wide finite networks converge to ``kernel_fn``: Monte Carlo NNGP and NTK within 5%.

Each attention variant with a closed form is drawn at key/value width 512 with
16 heads; the relative Frobenius error of the empirical NNGP and NTK against the
analytic kernels must be below 5%. The NNGP needs many samples (each draw gives
one per output channel, so that network has 16 output channels); the NTK is checked
on a network with one output channel fed 16-channel inputs directly, which keeps
the Jacobians affordable (the kernels do not depend on the output width). The
Monte Carlo standard error of each distance is printed with its assertion.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from infattn import stax
from infattn.empirical import monte_carlo_kernel_fn

PAD = -1e3
WIDTH, HEADS, EMBED, NNGP_DRAWS, NTK_DRAWS = 512, 16, 256, 512, 64


def decay(d):
    return 1.0 / (1.0 + d**2)


CASES = {
    "softmax": dict(attention_mechanism="SOFTMAX"),
    "softmax-sum-decay": dict(
        attention_mechanism="SOFTMAX", pos_emb_type="SUM", pos_emb_decay_fn=decay, val_pos_emb=True
    ),
    "identity": dict(attention_mechanism="IDENTITY", W_query_std=0.8),
    "abs-concat": dict(attention_mechanism="ABS", pos_emb_type="CONCAT", n_chan_pos_emb=2),
    "relu-sum": dict(attention_mechanism="RELU", pos_emb_type="SUM", b_std=0.3),
    "identity-standard": dict(
        attention_mechanism="IDENTITY",
        linear_scaling=False,
        pos_emb_type="SUM",
        pos_emb_decay_fn=decay,
    ),
    "softmax-masked": dict(attention_mechanism="SOFTMAX", pos_emb_type="SUM", masked=True),
}


def relative_error(estimate, se, exact):
    """``||mean - exact|| / ||exact||`` and the standard error of the numerator."""
    diff = np.asarray(estimate) - np.asarray(exact)
    norm = np.linalg.norm(diff)
    # delta method: d||diff|| = <diff, d mean> / ||diff||
    se_norm = np.sqrt(np.sum((diff * np.asarray(se)) ** 2)) / max(norm, 1e-300)
    return norm / np.linalg.norm(exact), se_norm / np.linalg.norm(exact)


def check(
    name: str,
    kind: str,
    x: np.ndarray,
    embed: int | None,
    n_out: int,
    draws: int,
    apply_kwargs: dict,
    kwargs: dict,
) -> None:
    layers = [] if embed is None else [stax.Dense(embed, W_std=1.2, b_std=0.1)]
    init_fn, apply_fn, kernel_fn = stax.serial(
        *layers, stax.GlobalSelfAttention(n_out, WIDTH, WIDTH, HEADS, **kwargs)
    )
    exact = kernel_fn(x, None, kind, **apply_kwargs)
    mc = monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(1), draws, vmap_axes=0)
    est = mc(x, None, kind, return_se=True, **apply_kwargs)
    err, se = relative_error(est.mean(kind), est.se(kind), exact)
    assert err < 0.05, f"{name} {kind}: relative Frobenius error {err:.4f} (MC SE {se:.4f})"


def inputs(channels: int, masked: bool) -> tuple[np.ndarray, dict]:
    x = np.random.default_rng(0).standard_normal((2, 4, channels))
    if not masked:
        return x, {}
    x[1, 3:] = PAD
    return x, {"mask_constant": PAD}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_monte_carlo_nngp(name):
    """A Dense embedding, then attention; 16 output channels x 512 draws (channels of
    one draw share its attention matrix, so draws, not channels, carry the sample size)."""
    kwargs = dict(CASES[name])
    x, apply_kwargs = inputs(3, kwargs.pop("masked", False))
    check(name, "nngp", x, EMBED, 16, NNGP_DRAWS, apply_kwargs, kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_monte_carlo_ntk(name):
    """Cases without embeddings: attention on 16-channel inputs (exact input
    covariance, cheap Jacobians), 64 draws; tied 1/d attention has deterministic
    logits in the limit so one wide draw is already close, standard scaling keeps
    random logits per head and gets 4x the draws. Positional embeddings have as many
    channels as the attention's inputs (SUM), so those cases need a wide (256) Dense
    embedding for R to converge; their NTK concentrates, and 16 draws suffice (64
    under standard scaling).
    """
    kwargs = dict(CASES[name])
    masked = kwargs.pop("masked", False)
    standard = kwargs.get("linear_scaling", True) is False
    if kwargs.get("pos_emb_type", "NONE") != "NONE":
        x, apply_kwargs = inputs(3, masked)
        check(name, "ntk", x, EMBED, 1, 16 * (4 if standard else 1), apply_kwargs, kwargs)
        return
    x, apply_kwargs = inputs(16, masked)
    check(name, "ntk", x, None, 1, NTK_DRAWS * (4 if standard else 1), apply_kwargs, kwargs)
