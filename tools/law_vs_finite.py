"""The finite-head law against wide finite networks: kurtosis and an energy two-sample test.

Two models, each drawn three ways at ``X`` (N=2 inputs, L=3 positions): finite networks
of width 256 across initialisations (:func:`infattn.limits.sample_outputs`), the
infinite-width law with the heads kept (:func:`infattn.limits.sample_finite_head_outputs`)
and the Gaussian process of ``kernel_fn``'s nngp (the infinite-head limit):

* ``one_layer(h)``: one standard-scaling SOFTMAX attention layer with ``h`` heads;
* ``prenorm_stack()``: two pre-LayerNorm residual blocks ``x + Attn(LN(x))``,
  ``x + MLP(LN(x))`` with 2-head standard-scaling RELU attention, after a Dense embedding.
  RELU, because with SOFTMAX this stack's law has an excess kurtosis of only 0.02-0.17
  (LayerNorm fixes the scale the values enter with and softmax rows sum to one, so little
  scale mixing reaches the output), too close to Gaussian to test anything.

:func:`compare` gives each coordinate's excess kurtosis (finite and law, bootstrap SEs)
and energy tests law vs finite (should not reject) and GP vs finite (should, so the test
has power). ``tests/test_finite_head_law.py`` runs it at CI sizes; this script at full size:

    python tools/law_vs_finite.py --n-samples 4000
"""

from __future__ import annotations

import argparse
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from infattn import diagnostics, limits, stax

WIDTH = 256
# (N, L, C), float32 whether or not x64 is enabled (tests enable it)
X = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (2, 3, 4), jnp.float32))


def _attention(n_heads: int, n_chan_out: int, width: int, **kwargs) -> tuple:
    return stax.GlobalSelfAttention(
        n_chan_out, width, width, n_heads=n_heads, linear_scaling=False, mc_samples=4096, **kwargs
    )


def one_layer(n_heads: int, width: int = WIDTH) -> tuple:
    """One SOFTMAX attention layer (key/value width ``width`` per head), one output channel."""
    return _attention(n_heads, 1, width, W_key_std=1.5, W_query_std=1.5, b_std=0.1)


def _residual(*layers: tuple) -> tuple:
    branch = stax.serial(*layers)
    return stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), branch), stax.FanInSum())


def prenorm_stack(width: int = WIDTH, mechanism: str = "RELU") -> tuple:
    """Dense embedding, twice ``x + Attn(LN(x))`` (2 heads) and ``x + MLP(LN(x))``, readout."""
    blocks = []
    for _ in range(2):
        attention = _attention(2, width, width, W_out_std=2.0, attention_mechanism=mechanism)
        mlp = (stax.Dense(width), stax.Relu(), stax.Dense(width, W_std=0.5))
        blocks += [_residual(stax.LayerNorm(), attention), _residual(stax.LayerNorm(), *mlp)]
    return stax.serial(stax.Dense(width, W_std=0.3), *blocks, stax.Dense(1))


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Per coordinate ``(N * L,)``: excess kurtosis of finite networks and of the law with
    bootstrap SEs; energy statistic and p-value of law vs finite and of GP vs finite."""

    kurtosis_finite: np.ndarray
    kurtosis_finite_se: np.ndarray
    kurtosis_law: np.ndarray
    kurtosis_law_se: np.ndarray
    energy_law: diagnostics.Outcome
    energy_gp: diagnostics.Outcome

    def kurtosis_z(self) -> np.ndarray:
        """``(law - finite) / combined SE`` per coordinate."""
        diff = self.kurtosis_law - self.kurtosis_finite
        return diff / np.hypot(self.kurtosis_law_se, self.kurtosis_finite_se)

    def lines(self) -> list[str]:
        """The figures, one line each."""
        fmt = lambda a: " ".join(f"{v:6.2f}" for v in a)  # noqa: E731
        return [
            f"kurtosis finite {fmt(self.kurtosis_finite)}  (SE {fmt(self.kurtosis_finite_se)})",
            f"kurtosis law    {fmt(self.kurtosis_law)}  (SE {fmt(self.kurtosis_law_se)})",
            f"z law-finite    {fmt(self.kurtosis_z())}",
            f"energy law vs finite: {float(self.energy_law.statistic):.2f}, "
            f"p = {float(self.energy_law.p_value):.3f}",
            f"energy GP  vs finite: {float(self.energy_gp.statistic):.2f}, "
            f"p = {float(self.energy_gp.p_value):.3f}",
        ]


def compare(model: tuple, n_samples: int, seed: int = 0, n_perm: int = 199) -> Comparison:
    """Draws ``n_samples`` each of finite networks, the law and the GP at ``X``."""
    init_fn, apply_fn, kernel_fn = model
    k_fin, k_law, k_gp = jax.random.split(jax.random.PRNGKey(seed), 3)
    finite = limits.sample_outputs(init_fn, apply_fn, X, n_samples, k_fin)
    law = limits.sample_finite_head_outputs(kernel_fn, X, n_samples, k_law)
    finite, law = (np.asarray(a).reshape(n_samples, -1) for a in (finite, law))
    nngp = np.asarray(kernel_fn(X, get="nngp")).transpose(0, 2, 1, 3)
    nngp = nngp.reshape(finite.shape[1], -1)
    gp = jax.random.multivariate_normal(k_gp, jnp.zeros(len(nngp)), nngp, (n_samples,))
    m_fin, m_law = (
        diagnostics.skew_kurtosis(a, se="bootstrap", n_boot=200, seed=seed) for a in (finite, law)
    )
    return Comparison(
        m_fin.excess_kurtosis,
        m_fin.excess_kurtosis_se,
        m_law.excess_kurtosis,
        m_law.excess_kurtosis_se,
        diagnostics.energy_two_sample(law, finite, n_perm=n_perm, seed=seed),
        diagnostics.energy_two_sample(np.asarray(gp), finite, n_perm=n_perm, seed=seed),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    models = {f"one SOFTMAX layer, H={h}": one_layer(h) for h in (1, 2)}
    models["pre-LN stack, two 2-head layers"] = prenorm_stack()
    for name, model in models.items():
        print(f"{name} (width {WIDTH}, {args.n_samples} draws each)", flush=True)
        for line in compare(model, args.n_samples, args.seed).lines():
            print("  " + line, flush=True)


if __name__ == "__main__":
    main()
