""" "Show code": the library calls that reproduce a panel's current state, as Python source.

The model and inputs come from :func:`infattn.explore.model.model_code` (the same
layer specification the panels compute with); each panel adds its calls. Monte
Carlo estimates from this code use other random draws than the explorer's chunks
and agree with them within the standard errors shown.
"""

from __future__ import annotations

from infattn.explore import compute
from infattn.explore.model import Config, model_code, model_spec

PANELS = ("kernel", "convergence", "gaussianity", "three limits", "attention")


class _Name(str):
    """A string whose ``repr`` is itself: a variable name inside generated code."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def factory_code(cfg: Config) -> str:
    """``def factory(n_heads, width)`` building ``cfg``'s model at other heads and widths.

    Example:
      >>> ns = {}
      >>> exec(model_code(Config(width=8)) + factory_code(Config(width=8)), ns)
      >>> len(ns["factory"](2, 16))
      3
    """
    spec = model_spec(cfg, _Name("n_heads"), _Name("width"))
    return f"\n\ndef factory(n_heads, width):\n    return {spec.code(4)}\n"


def _kernel(cfg: Config) -> str:
    return (
        "\nfrom infattn.empirical import monte_carlo_kernel_fn\n\n"
        'k = kernel_fn(x, None, ("nngp", "ntk"))  # analytic: k.nngp, k.ntk (N, N)\n'
        f"mc = monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey({cfg.seed}), "
        f"n_samples={cfg.draws})\n"
        'est = mc(x, None, ("nngp", "ntk"), return_se=True)  # est.mean("nngp"), est.se("nngp")\n'
    )


def _convergence(cfg: Config) -> str:
    widths, heads = compute.sweep_grid(cfg)
    common = f"n_samples={cfg.draws}, key=jax.random.PRNGKey({cfg.seed})"
    text = "\nfrom infattn import limits\n" + factory_code(cfg) + "\n\n"
    text += (
        f"by_width = limits.convergence_sweep(factory, x, heads=({cfg.heads},), "
        f"widths={widths}, {common})\n"
        f"by_heads = limits.convergence_sweep(factory, x, heads={heads}, "
        f"widths=({cfg.width},), {common})\n"
        "print(by_width)\nprint(by_heads)\n"
    )
    if cfg.scaling == "1/d untied":
        text += (
            f"mean, se, fit = limits.attention_collapse(x, {widths}, {common})"
            "  # attention -> uniform\n"
        )
    return text


def _laws(cfg: Config, kurtosis: bool) -> str:
    n = compute.n_output_draws(cfg)
    text = (
        "\nfrom infattn import diagnostics, limits\n\n"
        f"key = jax.random.PRNGKey({cfg.seed})\n"
        f"y = limits.sample_outputs(init_fn, apply_fn, x, {n}, key).reshape({n}, -1)"
        "  # finite networks\n"
        f"law = limits.sample_finite_head_outputs(kernel_fn, x, {n}, key).reshape({n}, -1)"
        f"  # infinite width, {cfg.heads} heads\n"
        'gp_var = kernel_fn(x, None, "nngp")[0, 0]  # the GP: N(0, gp_var) for input 0\n'
        "print(diagnostics.gaussianity_report(y, reference=law))\n"
    )
    if kurtosis:
        hs = compute.kurtosis_heads(cfg)
        text += factory_code(cfg) + "\n\n"
        text += (
            "samples = {\n"
            f"    h: limits.sample_outputs(*factory(h, {cfg.width})[:2], x, {n}, key)"
            f".reshape({n}, -1)[:, :1]\n"
            f"    for h in {hs}\n"
            "}\n"
            "print(diagnostics.kurtosis_vs_heads(samples))  # excess kurtosis ~ 1/H\n"
        )
    return text


def _attention(cfg: Config) -> str:
    if cfg.pos_emb == "NONE":
        return "\n# no positional embedding: R = I\n"
    decay = "decay" if cfg.decay != "none" else "None"
    return (
        "\nfrom infattn.stax import positional\n\n"
        f"R = positional.covariance((x.shape[1],), 2, {decay})  # (L, L)\n"
    )


def panel_code(cfg: Config, panel: str) -> str:
    """The code for ``panel`` (one of :data:`PANELS`) at ``cfg``.

    Example:
      >>> "convergence_sweep" in panel_code(Config(), "convergence")
      True
    """
    if panel not in PANELS:
        raise ValueError(f"panel: expected one of {PANELS}, got {panel!r}")
    extra = {
        "kernel": lambda: _kernel(cfg),
        "convergence": lambda: _convergence(cfg),
        "gaussianity": lambda: _laws(cfg, True),
        "three limits": lambda: _laws(cfg, False),
        "attention": lambda: _attention(cfg),
    }[panel]()
    return model_code(cfg) + extra
