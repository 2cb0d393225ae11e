"""The grid of networks and inputs on which infattn is compared with neural-tangents 0.6.5.

This module is imported by *both* environments: the pinned reference environment
(``tools/reference/dump.py`` runs neural-tangents on it) and the main environment
(``tests/reference/test_parity.py`` runs infattn on it). It therefore imports only
numpy and the standard library, never ``infattn`` nor ``neural_tangents``.

A network is plain data: a tree of :class:`Layer` records naming a ``stax`` function
and its arguments. ``case.build(stax)`` turns the tree into ``(init_fn, apply_fn,
kernel_fn)`` with whichever ``stax`` module is passed in, so both libraries see the
very same architecture. ``case.spec`` is a stable text description used to detect
stale reference dumps.

Every architecture is expanded into four cases: ``x2=None`` or a second batch
(``N1=3``, ``N2=2``), each with and without masked (padded) inputs. Padding fills
trailing positions (row-major over the spatial axes) of some examples with
``mask_constant`` across all channels; no example is ever fully masked.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

N1 = 3
N2 = 2
IMAGE = (3, 4)


# --------------------------------------------------------------------------- decay functions
# Module-level named functions (not lambdas) so that case names and specs are stable.
# They use Python operators only, so they work on numpy arrays, jax arrays and tracers.


def inverse_quadratic(d: Any) -> Any:
    """Positional-embedding decay ``1 / (1 + d^2)``."""
    return 1.0 / (1.0 + d**2)


def exponential(d: Any) -> Any:
    """Positional-embedding decay ``exp(-d / 2)``."""
    return math.exp(-0.5) ** d


# --------------------------------------------------------------------------- layers as data


def _describe(value: Any) -> str:
    """A stable text form of a layer argument (functions by name)."""
    if isinstance(value, Layer):
        return value.describe()
    if callable(value):
        return value.__name__
    if isinstance(value, tuple):
        return "(" + ", ".join(_describe(v) for v in value) + ")"
    return repr(value)


@dataclasses.dataclass(frozen=True)
class Layer:
    """A ``stax`` call as data: ``getattr(stax, name)(*args, **kwargs)``.

    Arguments that are themselves :class:`Layer` records are built first.
    """

    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def build(self, stax: Any) -> Any:
        """Build this layer with the given ``stax`` module."""
        args = [a.build(stax) if isinstance(a, Layer) else a for a in self.args]
        return getattr(stax, self.name)(*args, **dict(self.kwargs))

    def describe(self) -> str:
        """Text form, e.g. ``Dense(4, W_std=1.3)``."""
        parts = [_describe(a) for a in self.args]
        parts += [f"{k}={_describe(v)}" for k, v in self.kwargs]
        return f"{self.name}({', '.join(parts)})"


def L(name: str, *args: Any, **kwargs: Any) -> Layer:
    """Shorthand constructor for :class:`Layer`."""
    return Layer(name, tuple(args), tuple(kwargs.items()))


def serial(*layers: Layer) -> Layer:
    """``stax.serial`` of the given layers."""
    return L("serial", *layers)


def residual(branch: Layer) -> Layer:
    """``x + branch(x)`` via ``FanOut(2)``, ``parallel(Identity(), branch)``, ``FanInSum()``."""
    return serial(L("FanOut", 2), L("parallel", L("Identity"), branch), L("FanInSum"))


def attention(width: int, **kwargs: Any) -> Layer:
    """``GlobalSelfAttention`` with output, key and value widths all ``width``."""
    kwargs.setdefault("n_heads", 1)
    return L("GlobalSelfAttention", n_chan_out=width, n_chan_key=width, n_chan_val=width, **kwargs)


def transformer_block(width: int, attn: dict[str, Any]) -> Layer:
    """Residual attention, LayerNorm, residual Dense-Relu-Dense, LayerNorm."""
    mlp = serial(L("Dense", width, b_std=0.1), L("Relu"), L("Dense", width))
    return serial(
        residual(attention(width, **attn)),
        L("LayerNorm"),
        residual(mlp),
        L("LayerNorm"),
    )


def transformer(depth: int, width: int, attn: dict[str, Any]) -> Layer:
    """Dense embedding, ``depth`` transformer blocks, GlobalAvgPool, Dense(1)."""
    blocks = [transformer_block(width, attn) for _ in range(depth)]
    return serial(L("Dense", width), *blocks, L("GlobalAvgPool"), L("Dense", 1, b_std=0.05))


# --------------------------------------------------------------------------- cases


@dataclasses.dataclass(frozen=True)
class Arch:
    """A network together with the shape of one input example ``spatial + (channels,)``.

    ``masked_net`` (default ``net``) is the network of the masked variants: NT rejects
    positional embeddings on a raw masked input (the input mask is per channel), so those
    variants put a Dense layer in front of the attention.
    """

    name: str
    net: Layer
    spatial: tuple[int, ...]
    channels: int
    mask_constant: float = 0.0
    masked_net: Layer | None = None
    variants: tuple[str, ...] = ()
    """Which of ``VARIANTS`` to expand into (all when empty)."""
    layout: str | None = None
    """Axis order of the inputs, e.g. ``'CNHW'``: a permutation of ``N``, the spatial
    letters ``H``, ``W`` (``H`` alone in 1-D) and ``C`` (``None``: ``N...C``)."""
    graph: str | None = None
    """``'DENSE'`` or ``'SPARSE'``: ``kernel_fn`` gets ``pattern=(p1, p2)``, random graphs
    over all spatial positions (:meth:`Case.kernel_kwargs`); ``None``: no keywords."""
    diagonal_spatial: bool = False
    """``kernel_fn`` gets ``diagonal_spatial=True`` (the kernels' spatial diagonals)."""


VARIANTS = ("x11", "x11_masked", "x12", "x12_masked")


@dataclasses.dataclass(frozen=True)
class Case:
    """One reference computation: a network, inputs and an optional mask constant."""

    name: str
    net: Layer
    spatial: tuple[int, ...]
    channels: int
    with_x2: bool
    mask_constant: float | None
    layout: str | None = None
    graph: str | None = None
    diagonal_spatial: bool = False

    def build(self, stax: Any) -> Any:
        """``(init_fn, apply_fn, kernel_fn)`` of this case's network in ``stax``."""
        return self.net.build(stax)

    @property
    def seed(self) -> int:
        """A seed derived from the case name only (independent of grid order)."""
        return zlib.crc32(self.name.encode())

    @property
    def spec(self) -> str:
        """Stable description of everything that determines the reference kernels."""
        layout = "" if self.layout is None else f" layout={self.layout}"
        graph = "" if self.graph is None else f" graph={self.graph}"
        graph += " diagonal_spatial=True" if self.diagonal_spatial else ""
        return (
            f"{self.net.describe()} | spatial={self.spatial} channels={self.channels} "
            f"x2={self.with_x2} mask_constant={self.mask_constant!r} seed={self.seed}{layout}"
            f"{graph}"
        )

    def kernel_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``kernel_fn``: ``pattern=(p1, p2)`` for graph cases,
        ``diagonal_spatial=True`` when the case asks for it.

        ``'DENSE'``: weighted adjacency ``(n, *spatial, *spatial)``, about half the
        arcs present; ``'SPARSE'``: ``(n, 2 * positions, K, 2)`` integer edges, some
        repeated, the last few with a head of ``-1`` (padding).
        """
        if self.diagonal_spatial:
            return {"diagonal_spatial": True}
        if self.graph is None:
            return {}
        rng = np.random.RandomState(self.seed + 1)
        p1 = self._pattern(rng, N1)
        p2 = self._pattern(rng, N2) if self.with_x2 else p1
        return {"pattern": (p1, p2)}

    def _pattern(self, rng: np.random.RandomState, n: int) -> np.ndarray:
        if self.graph == "DENSE":
            shape = (n, *self.spatial, *self.spatial)
            return rng.standard_normal(shape) * (rng.uniform(size=shape) < 0.5)
        n_edges = 2 * math.prod(self.spatial)
        ends = [rng.randint(0, s, size=(n, n_edges, 2)) for s in self.spatial]
        edges = np.stack(ends, axis=2)  # (n, n_edges, K, 2)
        edges[:, -3:, 0, 1] = -1
        return edges

    def canonical_letters(self) -> str:
        """``N``, the spatial letters and ``C``: the axes of the canonical inputs."""
        if len(self.spatial) > 2:
            raise ValueError(f"{self.name}: layouts are for inputs with at most 2 spatial axes")
        return "N" + "HW"[: len(self.spatial)] + "C"

    def to_layout(self, x: np.ndarray) -> np.ndarray:
        """A canonical ``(n, *spatial, C)`` batch in this case's layout."""
        if self.layout is None:
            return x
        letters = self.canonical_letters()
        return np.ascontiguousarray(np.transpose(x, [letters.index(c) for c in self.layout]))

    def to_canonical(self, x: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_layout`."""
        if self.layout is None:
            return x
        return np.transpose(x, [self.layout.index(c) for c in self.canonical_letters()])

    def inputs(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Deterministic float64 inputs ``(x1, x2)``; ``x2`` is ``None`` unless ``with_x2``."""
        rng = np.random.RandomState(self.seed)
        x1 = self._batch(rng, N1, masked_counts=(0, 2, 1))
        if not self.with_x2:
            return self.to_layout(x1), None
        size = math.prod(self.spatial)
        x2 = self._batch(rng, N2, masked_counts=(size // 2, 0))
        return self.to_layout(x1), self.to_layout(x2)

    def _batch(
        self, rng: np.random.RandomState, n: int, masked_counts: Sequence[int]
    ) -> np.ndarray:
        """``n`` Gaussian examples; trailing positions padded when masking is on."""
        x = rng.standard_normal((n, *self.spatial, self.channels))
        if self.mask_constant is None:
            return x
        flat = x.reshape(n, -1, self.channels)
        for i, count in enumerate(masked_counts):
            if count:
                flat[i, flat.shape[1] - count :, :] = self.mask_constant
        return flat.reshape(x.shape)


def expand(arch: Arch) -> Iterator[Case]:
    """The cases of an architecture: ``x2`` None/given x masked/unmasked (``arch.variants``)."""
    for with_x2 in (False, True):
        for masked in (False, True):
            suffix = ("x12" if with_x2 else "x11") + ("_masked" if masked else "")
            if arch.variants and suffix not in arch.variants:
                continue
            yield Case(
                name=f"{arch.name}__{suffix}",
                net=(arch.masked_net or arch.net) if masked else arch.net,
                spatial=arch.spatial,
                channels=arch.channels,
                with_x2=with_x2,
                mask_constant=arch.mask_constant if masked else None,
                layout=arch.layout,
                graph=arch.graph,
                diagonal_spatial=arch.diagonal_spatial,
            )


# --------------------------------------------------------------------------- architectures


def _seq(length: int, channels: int = 3) -> dict[str, Any]:
    return {"spatial": (length,), "channels": channels}


def _img(channels: int = 3) -> dict[str, Any]:
    return {"spatial": IMAGE, "channels": channels}


def dense_archs() -> list[Arch]:
    """Dense in both parameterisations, with and without bias."""
    standard = {"parameterization": "standard"}
    return [
        Arch("dense_ntk", L("Dense", 4, W_std=1.3), **_seq(5, 3)),
        Arch("dense_ntk_b", L("Dense", 4, W_std=1.3, b_std=0.4), **_seq(6, 4)),
        Arch("dense_standard", L("Dense", 5, W_std=1.2, **standard), **_seq(7, 3)),
        Arch("dense_standard_b", L("Dense", 5, W_std=1.2, b_std=0.3, **standard), **_seq(5, 4)),
        Arch(
            "dense_standard_deep",
            serial(
                L("Dense", 6, b_std=0.2, **standard),
                L("Relu"),
                L("Dense", 3, W_std=1.1, b_std=0.2, **standard),
            ),
            **_seq(6, 3),
            mask_constant=-2.5,
        ),
        Arch("dense_img", L("Dense", 4, W_std=0.9, b_std=0.3), **_img()),
    ]


NONLINEARITIES: dict[str, Layer] = {
    "relu": L("Relu"),
    "leaky_relu": L("LeakyRelu", 0.1),
    "abrelu": L("ABRelu", -0.4, 1.3),
    "abs": L("Abs"),
    "erf": L("Erf"),
    "erf_abc": L("Erf", a=1.2, b=0.6, c=0.3),
    "gelu": L("Gelu"),
}


def elementwise_archs() -> list[Arch]:
    """Every nonlinearity between two Dense layers; a few on images."""
    archs = []
    for i, (name, phi) in enumerate(NONLINEARITIES.items()):
        net = serial(L("Dense", 7, W_std=1.4, b_std=0.3), phi, L("Dense", 3, W_std=0.9, b_std=0.2))
        archs.append(Arch(f"act_{name}", net, **_seq(5 + i % 3, 3 + i % 2)))
    for name in ("relu", "erf", "gelu"):
        net = serial(L("Dense", 5, W_std=1.2, b_std=0.1), NONLINEARITIES[name], L("Dense", 2))
        archs.append(Arch(f"act_{name}_img", net, **_img(), mask_constant=-2.5))
    return archs


def layernorm_archs() -> list[Arch]:
    """LayerNorm (default axis and eps) after Gaussian layers."""
    return [
        Arch("layernorm", serial(L("Dense", 6, b_std=0.5), L("LayerNorm")), **_seq(6, 3)),
        Arch(
            "layernorm_mlp",
            serial(
                L("Dense", 6),
                L("Relu"),
                L("Dense", 4, b_std=0.3),
                L("LayerNorm"),
                L("Relu"),
                L("Dense", 1),
            ),
            **_seq(5, 4),
        ),
        Arch("layernorm_img", serial(L("Dense", 5, W_std=1.5), L("LayerNorm")), **_img()),
    ]


def combinator_archs() -> list[Arch]:
    """serial, parallel, FanOut, FanInSum and Identity."""
    return [
        Arch(
            "residual_relu",
            serial(L("Dense", 5, b_std=0.2), residual(serial(L("Relu"), L("Dense", 5, b_std=0.1)))),
            **_seq(6, 3),
        ),
        Arch(
            "fanout3_layernorm",
            serial(
                L("Dense", 6),
                L("FanOut", 3),
                L(
                    "parallel",
                    L("Dense", 6, W_std=0.8),
                    serial(L("Erf"), L("Dense", 6)),
                    L("Identity"),
                ),
                L("FanInSum"),
                L("LayerNorm"),
            ),
            **_seq(5, 4),
            mask_constant=-2.5,
        ),
        Arch(
            "nested_serial_identity",
            serial(
                serial(L("Dense", 4), L("Relu")),
                serial(
                    L("Dense", 3, b_std=0.3),
                    L("FanOut", 2),
                    L("parallel", L("Identity"), L("Identity")),
                    L("FanInSum"),
                ),
            ),
            **_seq(7, 3),
        ),
        Arch(
            "parallel_on_input",
            serial(
                L("FanOut", 2),
                L("parallel", L("Dense", 3), L("Dense", 3, W_std=0.7, b_std=0.4)),
                L("FanInSum"),
            ),
            **_seq(5, 3),
        ),
    ]


def conv_archs() -> list[Arch]:
    """1-D and 2-D Conv: SAME/VALID, strides, 2 and 3 wide filters (2x2, 3x3 in 2-D)."""
    return [
        Arch("conv1d_valid", L("Conv", 4, (2,), padding="VALID"), **_seq(7, 3)),
        Arch(
            "conv1d_same_strided",
            serial(
                L("Conv", 4, (3,), padding="SAME", b_std=0.2),
                L("Relu"),
                L("Conv", 3, (2,), strides=(2,), padding="VALID"),
            ),
            **_seq(7, 3),
        ),
        Arch(
            "conv1d_standard",
            L(
                "Conv",
                5,
                (3,),
                strides=(2,),
                padding="SAME",
                W_std=1.3,
                parameterization="standard",
            ),
            **_seq(6, 4),
        ),
        Arch(
            "conv1d_pool",
            serial(
                L("Conv", 4, (2,), padding="SAME"),
                L("Relu"),
                L("GlobalAvgPool"),
                L("Dense", 1, b_std=0.1),
            ),
            **_seq(6, 3),
            mask_constant=-2.5,
        ),
        Arch("conv2d_valid", L("Conv", 4, (2, 2), padding="VALID"), **_img()),
        Arch(
            "conv2d_same_strided",
            serial(
                L("Conv", 4, (3, 3), padding="SAME", b_std=0.1),
                L("Erf"),
                L("Conv", 3, (2, 2), strides=(1, 2), padding="VALID"),
            ),
            **_img(),
        ),
        Arch(
            "conv2d_flatten",
            serial(
                L("Conv", 5, (3, 3), strides=(2, 2), padding="SAME"),
                L("Relu"),
                L("Flatten"),
                L("Dense", 1),
            ),
            **_img(),
        ),
        Arch(
            "conv2d_standard_pool",
            serial(
                L("Conv", 4, (2, 2), padding="SAME", b_std=0.2, parameterization="standard"),
                L("Gelu"),
                L("GlobalAvgPool"),
                L("Dense", 2, b_std=0.1),
            ),
            **_img(),
            mask_constant=-2.5,
        ),
        Arch(
            "conv2d_attention",
            serial(
                L("Conv", 6, (2, 2), padding="SAME"),
                attention(6, n_heads=2),
                L("GlobalAvgPool"),
            ),
            **_img(),
        ),
    ]


FILTER_SPECS_2D = tuple("".join(p) for p in itertools.permutations("HWIO"))
FILTER_SPECS_1D = tuple("".join(p) for p in itertools.permutations("HIO"))


def _conv_dn(rhs: str, lhs: str = "NHWC", out: str | None = None, **kwargs: Any) -> Layer:
    """A 2x3 (H x W) filter with strides 1 x 2, listed in the filter spec's order."""
    window, steps = {"H": 2, "W": 3, "D": 2}, {"H": 1, "W": 2, "D": 1}
    spatial = [c for c in rhs if c not in "IO"]
    return L(
        "Conv",
        3,
        tuple(window[c] for c in spatial),
        strides=tuple(steps[c] for c in spatial),
        dimension_numbers=(lhs, rhs, out or lhs),
        **kwargs,
    )


def conv_filter_spec_archs() -> list[Arch]:
    """Every 2-D and 1-D filter spec (``filter_shape``, ``strides`` in its letter order).

    Each spec is one case, rotating through the four variants. neural-tangents
    mis-orders the mask's window when the filter lists W before H (its masks assume
    the input's order), so masked variants use specs with H first; the two specs of
    the original report (``WHIO``, ``IOWH``) get all four variants with a square
    filter in the masked ones.
    """
    archs = []
    h_first = [r for r in FILTER_SPECS_2D if r.index("H") < r.index("W")]
    w_first = [r for r in FILTER_SPECS_2D if r.index("W") < r.index("H")]
    for i, rhs in enumerate(h_first):
        net = serial(_conv_dn(rhs, padding="SAME", b_std=0.2), L("Relu"), L("Dense", 2))
        variant = VARIANTS[1 + 2 * (i % 2)]
        archs.append(Arch(f"conv_dn_{rhs}", net, **_img(), mask_constant=-2.5, variants=(variant,)))
    for i, rhs in enumerate(w_first):
        net = serial(_conv_dn(rhs, padding="VALID" if i % 3 else "SAME"), L("Erf"), L("Flatten"))
        archs.append(Arch(f"conv_dn_{rhs}", net, **_img(), variants=(VARIANTS[2 * (i % 2)],)))
    for rhs in ("WHIO", "IOWH"):
        square = L("Conv", 3, (2, 2), padding="SAME", dimension_numbers=("NHWC", rhs, "NHWC"))
        archs.append(
            Arch(
                f"conv_dn_{rhs}_full",
                serial(_conv_dn(rhs, padding="SAME"), L("Relu"), _conv_dn(rhs)),
                **_img(),
                mask_constant=-2.5,
                masked_net=serial(square, L("Relu"), square),
            )
        )
    for i, rhs in enumerate(FILTER_SPECS_1D):
        net = L(
            "Conv", 3, (3,), strides=(2,), padding="SAME", dimension_numbers=("NHC", rhs, "NHC")
        )
        archs.append(
            Arch(
                f"conv1d_dn_{rhs}",
                net,
                **_seq(7, 2),
                mask_constant=-2.5,
                variants=(VARIANTS[i % 4],),
            )
        )
    return archs


def conv_spatial_order_archs() -> list[Arch]:
    """Input and output specs that order the spatial axes differently (and 3-D)."""
    return [
        Arch(
            "conv_dn_in_WH",
            serial(_conv_dn("HWIO", "NWHC", "NWHC", padding="SAME"), L("Relu"), L("GlobalAvgPool")),
            spatial=(4, 3),
            channels=3,
            mask_constant=-2.5,
            masked_net=serial(
                L("Conv", 3, (2, 2), padding="SAME", dimension_numbers=("NWHC", "HWIO", "NWHC")),
                L("Relu"),
                L("GlobalAvgPool"),
            ),
        ),
        Arch(
            "conv_dn_out_WH",
            serial(
                _conv_dn("HWIO", "NHWC", "NWHC", padding="SAME", b_std=0.1),
                L("Relu"),
                _conv_dn("WHIO", "NWHC", "NHWC"),
            ),
            **_img(),
            mask_constant=-2.5,
        ),
        Arch(
            "conv3d_dn",
            serial(
                _conv_dn("HDWIO", "NDHWC", "NHWDC", padding="SAME"),
                L("Relu"),
                _conv_dn("DHWIO", "NHWDC", "NHWDC"),
            ),
            spatial=(2, 3, 4),
            channels=2,
            variants=("x11", "x12"),
        ),
    ]


LAYOUT_SPECS = ("NCHW", "HWCN", "CNHW", "NHCW", "WHNC", "CWNH", "HNWC", "WCHN")


def _fc_axes(spec: str) -> tuple[int, int]:
    """``(batch_axis, channel_axis)`` of 2-D ``(N, C)`` arrays keeping ``spec``'s N, C order."""
    fc = "".join(c for c in spec if c in "NC")
    return fc.index("N"), fc.index("C")


def _layout_projection(kind: str, spec: str, width: int) -> list[Layer]:
    """From images in ``spec`` to 2-D arrays, as neural-tangents' test networks do."""
    b, c = spec.index("N"), spec.index("C")
    b_fc = _fc_axes(spec)[0]
    if kind == "FLAT":
        return [L("Flatten", b, b_fc)]
    if kind == "POOL":
        return [L("GlobalAvgPool", b, c)]
    attn = attention(width, n_heads=2, b_std=0.1, batch_axis=b, channel_axis=c)
    return [attn, L("Flatten", b, b_fc)]


def layout_archs() -> list[Arch]:
    """Batch and channel axes anywhere (NT's test networks: conv, LayerNorm, projections).

    Each input layout is a permutation of ``NCHW``; the convolutions use it as input
    and output spec, with a filter spec whose spatial letters follow the input's
    (neural-tangents orders masks that way). ``LayerNorm`` normalises the channel axis
    (and H in some), Dense layers after the projection use ``(N, C)`` or ``(C, N)``
    arrays in the order of the image's N and C. Channel axes are given as positive
    numbers in some cases, negative in others. Masked variants only where the batch
    axis precedes the spatial ones: neural-tangents' kernel masks break otherwise.
    """
    archs = []
    projections = ("FLAT", "POOL", "ATTN")
    io = ("IO", "OI")
    for i, spec in enumerate(LAYOUT_SPECS):
        b, c = spec.index("N"), spec.index("C")
        c_arg = c if i % 2 else c - 4
        spatial = "".join(ch for ch in spec if ch in "HW")
        rhs = io[i % 2][0] + spatial + io[i % 2][1] if i % 3 else spatial + io[i % 2]
        norm = ("C",) if i % 2 else ("C", "H")
        b_fc, c_fc = _fc_axes(spec)
        net = serial(
            L("Conv", 4, (2, 2), padding="SAME", b_std=0.1, dimension_numbers=(spec, rhs, spec)),
            L(
                "LayerNorm",
                axis=tuple(spec.index(ch) for ch in norm),
                batch_axis=b,
                channel_axis=c_arg,
            ),
            L("Relu"),
            L("Dense", 4, W_std=1.2, batch_axis=b, channel_axis=c_arg),
            L("Erf"),
            *_layout_projection(projections[i % 3], spec, 4),
            L("Dense", 2, b_std=0.1, batch_axis=b_fc, channel_axis=c_fc),
        )
        variants = (VARIANTS[i % 4], VARIANTS[(i + 1) % 4])
        if b > min(spec.index("H"), spec.index("W")):
            variants = ("x11", "x12")  # NT's masks break with spatial axes before the batch
        archs.append(
            Arch(
                f"layout_{spec}", net, **_img(2), mask_constant=-2.5, variants=variants, layout=spec
            )
        )
    return archs


def layout_small_archs() -> list[Arch]:
    """Positive channel axes meaning the last one, and channels-first 2-D and 1-D inputs."""
    return [
        Arch(
            "layout_nc_positive",
            serial(
                L("Dense", 4, channel_axis=1),
                L("Relu"),
                L("Dense", 1, batch_axis=0, channel_axis=1),
            ),
            spatial=(),
            channels=5,
            variants=("x11", "x12"),
        ),
        Arch(
            "layout_cn",
            serial(
                L("Dense", 4, b_std=0.2, batch_axis=1, channel_axis=0),
                L("Gelu"),
                L("Dense", 2, batch_axis=-1, channel_axis=-2),
            ),
            spatial=(),
            channels=5,
            variants=("x11", "x12"),
            layout="CN",
        ),
        Arch(
            "layout_nhwc_positive",
            serial(
                L("Conv", 3, (2, 2), padding="SAME"),
                L("LayerNorm", axis=3, channel_axis=3),
                L("Dense", 3, channel_axis=3),
                L("Relu"),
                L("GlobalAvgPool", channel_axis=3),
            ),
            **_img(),
            mask_constant=-2.5,
        ),
        Arch(
            "layout_nch_attention",
            serial(
                L("Dense", 4, channel_axis=1),
                attention(4, n_heads=2, pos_emb_type="SUM", channel_axis=1),
                L("GlobalAvgPool", channel_axis=1),
            ),
            **_seq(5),
            mask_constant=0.0,
            layout="NCH",
        ),
        Arch(
            "layout_hcn_conv1d",
            serial(
                L("Conv", 3, (3,), padding="SAME", dimension_numbers=("HCN", "OIH", "NCH")),
                L("Relu"),
                L("Conv", 2, (2,), strides=(2,), dimension_numbers=("NCH", "HIO", "CNH")),
                L("Flatten", batch_axis=1, batch_axis_out=1),
                L("Dense", 1, batch_axis=1, channel_axis=0),
            ),
            **_seq(6),
            mask_constant=-2.5,
            layout="HCN",
        ),
    ]


def pooling_archs() -> list[Arch]:
    """GlobalAvgPool and Flatten on sequences and images."""
    return [
        Arch("pool_avg", serial(L("Dense", 5, b_std=0.3), L("GlobalAvgPool")), **_seq(6, 3)),
        Arch(
            "pool_flatten_dense",
            serial(L("Dense", 5), L("Relu"), L("Flatten"), L("Dense", 2, b_std=0.2)),
            **_seq(5, 4),
        ),
        Arch("pool_flatten_img", serial(L("Dense", 4, b_std=0.2), L("Flatten")), **_img()),
        Arch(
            "pool_avg_img",
            serial(L("Dense", 4), L("Abs"), L("GlobalAvgPool"), L("Dense", 1)),
            **_img(),
            mask_constant=-2.5,
        ),
    ]


def _nchw_pools(circular: bool) -> list[Layer]:
    axes = {"batch_axis": 0, "channel_axis": 1}
    layers = [
        L("Conv", 3, (2, 2), padding="SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")),
        L("Relu"),
        L("AvgPool", (2, 2), None, "SAME", **axes),
    ]
    if circular:
        layers.append(L("SumPool", (2, 1), (1, 1), "CIRCULAR", **axes))
    return [*layers, L("GlobalSumPool", **axes)]


def windowed_pooling_archs() -> list[Arch]:
    """AvgPool and SumPool (VALID, SAME, CIRCULAR, strides, normalize_edges), GlobalSumPool,
    circular convolutions and a small Myrtle-like network."""
    conv = L("Conv", 4, (2, 2), padding="SAME", b_std=0.1)
    return [
        Arch(
            "avgpool_valid",
            serial(conv, L("Relu"), L("AvgPool", (2, 3)), L("Dense", 2)),
            **_img(),
            mask_constant=-2.5,
        ),
        Arch(
            "avgpool_same_edges",
            serial(conv, L("Erf"), L("AvgPool", (2, 2), (2, 1), "SAME", normalize_edges=True)),
            **_img(),
            mask_constant=-2.5,
        ),
        Arch(
            "avgpool_same",
            serial(L("Dense", 3), L("Relu"), L("AvgPool", (3,), (2,), "SAME"), L("Flatten")),
            **_seq(6),
            mask_constant=-2.5,
        ),
        Arch(
            "avgpool_circular",
            serial(
                conv, L("Relu"), L("AvgPool", (2, 3), None, "CIRCULAR"), L("Flatten"), L("Dense", 1)
            ),
            **_img(),
            variants=("x11", "x12"),  # NT cannot mask circular pooling
        ),
        Arch(
            "sumpool_valid_strided",
            serial(
                L("Dense", 3, b_std=0.2), L("Gelu"), L("SumPool", (2,), (2,)), L("GlobalSumPool")
            ),
            **_seq(7),
            mask_constant=-2.5,
        ),
        Arch(
            "sumpool_same_circular",
            serial(
                conv,
                L("Relu"),
                L("SumPool", (2, 2), (1, 2), "SAME"),
                L("Conv", 3, (2, 2), padding="CIRCULAR"),
                L("SumPool", (3, 2), None, "CIRCULAR"),
            ),
            **_img(),
            variants=("x11", "x12"),  # NT cannot mask circular pooling
        ),
        Arch(
            "conv_circular",
            serial(
                L("Conv", 4, (3, 2), strides=(1, 2), padding="CIRCULAR", b_std=0.2),
                L("Relu"),
                L("Conv", 3, (2, 3), padding="CIRCULAR", parameterization="standard"),
            ),
            **_img(),
            mask_constant=-2.5,
        ),
        Arch(
            "conv1d_circular_pool",
            serial(
                L("Conv", 3, (3,), strides=(2,), padding="CIRCULAR"), L("Abs"), L("GlobalSumPool")
            ),
            **_seq(7),
            mask_constant=-2.5,
        ),
        Arch(
            "pool_layout_nchw",
            serial(*_nchw_pools(circular=True)),
            **_img(),
            mask_constant=-2.5,
            masked_net=serial(*_nchw_pools(circular=False)),  # NT cannot mask circular pooling
            layout="NCHW",
        ),
        Arch(
            "myrtle_small",
            serial(
                L("Conv", 4, (3, 3), padding="SAME", W_std=1.4, b_std=0.1),
                L("Relu"),
                L("Conv", 4, (3, 3), padding="SAME", W_std=1.4, b_std=0.1),
                L("Relu"),
                L("AvgPool", (2, 2), (2, 2)),
                L("Conv", 4, (3, 3), padding="SAME", W_std=1.4, b_std=0.1),
                L("Relu"),
                L("AvgPool", (2, 2), (2, 2)),
                L("Flatten"),
                L("Dense", 1, W_std=1.4, b_std=0.1),
            ),
            spatial=(4, 4),
            channels=3,
            variants=("x11", "x12"),
        ),
    ]


MECHANISMS: tuple[tuple[str, bool], ...] = (
    ("SOFTMAX", True),
    ("IDENTITY", True),
    ("ABS", True),
    ("RELU", True),
    ("IDENTITY", False),  # NT has no closed form for the others at 1/sqrt(d) scaling
)

POS_EMBS: dict[str, dict[str, Any]] = {
    "pe_none": {"pos_emb_type": "NONE"},
    "pe_sum": {"pos_emb_type": "SUM"},
    "pe_sum_invquad_val": {
        "pos_emb_type": "SUM",
        "pos_emb_decay_fn": inverse_quadratic,
        "pos_emb_p_norm": 2,
        "W_pos_emb_std": 0.7,
        "val_pos_emb": True,
    },
    "pe_sum_exp_p1": {"pos_emb_type": "SUM", "pos_emb_decay_fn": exponential, "pos_emb_p_norm": 1},
    "pe_concat_val": {"pos_emb_type": "CONCAT", "val_pos_emb": True},
    "pe_concat5_invquad_p1": {
        "pos_emb_type": "CONCAT",
        "n_chan_pos_emb": 5,
        "pos_emb_decay_fn": inverse_quadratic,
        "pos_emb_p_norm": 1,
        "W_pos_emb_std": 1.3,
    },
    "pe_concat2_exp_val": {
        "pos_emb_type": "CONCAT",
        "n_chan_pos_emb": 2,
        "pos_emb_decay_fn": exponential,
        "pos_emb_p_norm": 2,
        "val_pos_emb": True,
    },
}

WEIGHT_STDS: tuple[dict[str, Any], ...] = (
    {"n_heads": 1},
    {
        "n_heads": 3,
        "W_key_std": 1.3,
        "W_query_std": 0.8,
        "W_value_std": 1.1,
        "W_out_std": 0.9,
        "b_std": 0.2,
    },
    {"n_heads": 2, "W_key_std": 0.7, "W_query_std": 1.5, "W_value_std": 0.6, "W_out_std": 1.4},
)


def _attention_net(width: int, attn: dict[str, Any], index: int, raw: bool) -> Layer:
    """Attention on the raw input or after a Dense layer; sometimes followed by Relu-Dense."""
    layers = [] if raw else [L("Dense", width, b_std=0.1)]
    layers.append(attention(width, **attn))
    if index % 4 == 3:
        layers += [L("Relu"), L("Dense", 2)]
    return serial(*layers)


def _attention_arch(name: str, attn: dict[str, Any], index: int, data: dict[str, Any]) -> Arch:
    """Even indices attend to the raw input (masked variants: Dense first if positional)."""
    width = 5 if len(data["spatial"]) == 1 else 4
    raw = index % 2 == 0
    net = _attention_net(width, attn, index, raw)
    masked_net = None
    if raw and attn.get("pos_emb_type", "NONE") != "NONE":
        masked_net = _attention_net(width, attn, index, raw=False)
    mask_constant = 0.0 if len(data["spatial"]) == 1 else -2.5
    return Arch(name, net, **data, mask_constant=mask_constant, masked_net=masked_net)


def _mechanism_name(mechanism: str, linear_scaling: bool) -> str:
    return mechanism.lower() + ("" if linear_scaling else "_sqrt")


def attention_seq_archs() -> list[Arch]:
    """Every mechanism x every positional-embedding setting on sequences."""
    archs = []
    index = 0
    for mechanism, linear in MECHANISMS:
        for pe_name, pe in POS_EMBS.items():
            attn = {
                "attention_mechanism": mechanism,
                "linear_scaling": linear,
                **pe,
                **WEIGHT_STDS[index % len(WEIGHT_STDS)],
            }
            name = f"attn_{_mechanism_name(mechanism, linear)}_{pe_name}"
            archs.append(_attention_arch(name, attn, index, _seq(5 + index % 3, 3 + index % 2)))
            index += 1
    return archs


def attention_img_archs() -> list[Arch]:
    """A selection of attention settings on 3x4 images (spatial axes flattened)."""
    settings = [
        ("SOFTMAX", True, "pe_none"),
        ("SOFTMAX", True, "pe_sum_invquad_val"),
        ("SOFTMAX", True, "pe_concat2_exp_val"),
        ("IDENTITY", False, "pe_none"),
        ("IDENTITY", False, "pe_sum"),
        ("RELU", True, "pe_concat5_invquad_p1"),
        ("ABS", True, "pe_sum_exp_p1"),
        ("IDENTITY", True, "pe_none"),
    ]
    archs = []
    for index, (mechanism, linear, pe_name) in enumerate(settings):
        attn = {
            "attention_mechanism": mechanism,
            "linear_scaling": linear,
            **POS_EMBS[pe_name],
            **WEIGHT_STDS[index % len(WEIGHT_STDS)],
        }
        name = f"attn_img_{_mechanism_name(mechanism, linear)}_{pe_name}"
        archs.append(_attention_arch(name, attn, index, _img()))
    return archs


def transformer_archs() -> list[Arch]:
    """Stacks of 1 to 4 transformer blocks with several attention settings."""
    softmax = {"attention_mechanism": "SOFTMAX", "linear_scaling": True}
    settings: list[tuple[str, int, dict[str, Any], dict[str, Any]]] = [
        ("softmax", 1, {**softmax, "n_heads": 2}, _seq(5, 3)),
        ("softmax_sum_invquad", 2, {**softmax, **POS_EMBS["pe_sum_invquad_val"]}, _seq(6, 3)),
        (
            "identity_sqrt_sum",
            3,
            {"attention_mechanism": "IDENTITY", "linear_scaling": False, **POS_EMBS["pe_sum"]},
            _seq(5, 4),
        ),
        (
            "softmax_sum_invquad_b",
            4,
            {**softmax, "pos_emb_type": "SUM", "pos_emb_decay_fn": inverse_quadratic, "b_std": 0.1},
            _seq(6, 3),
        ),
        (
            "relu_concat_exp",
            2,
            {"attention_mechanism": "RELU", **POS_EMBS["pe_concat2_exp_val"]},
            _seq(5, 3),
        ),
        ("abs", 4, {"attention_mechanism": "ABS", "n_heads": 2}, _seq(5, 3)),
        ("softmax_sum_invquad_img", 2, {**softmax, **POS_EMBS["pe_sum_invquad_val"]}, _img()),
        (
            "identity_concat4",
            3,
            {"attention_mechanism": "IDENTITY", "pos_emb_type": "CONCAT", "n_chan_pos_emb": 4},
            _seq(6, 3),
        ),
    ]
    return [
        Arch(f"transformer{depth}_{name}", transformer(depth, 6, attn), **data)
        for name, depth, attn, data in settings
    ]


# ----------------------------------------------------------------- dropout, fan-in (issue 9)


def _nchw_conv(width: int, **kwargs: Any) -> Layer:
    return L(
        "Conv", width, (2, 2), padding="SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"), **kwargs
    )


def dropout_fan_in_archs() -> list[Arch]:
    """Dropout in both modes; FanInConcat along channels and spatial axes; FanInProd; repeat."""
    pair = L("parallel", L("Dense", 3, W_std=1.5), serial(L("Relu"), L("Dense", 5, b_std=0.2)))
    gaussian_pair = L("parallel", L("Dense", 3), L("Dense", 3, W_std=2.0, b_std=0.3))
    conv_pair = L("parallel", L("Conv", 3, (2, 2), padding="SAME"), L("Conv", 3, (1, 2)))
    block = serial(L("Dense", 4, b_std=0.1), L("Relu"))
    return [
        Arch(
            "repeat_dense_relu",
            serial(L("Dense", 4), L("repeat", block, 3), L("Dense", 2)),
            **_seq(4, 3),
        ),
        Arch(
            "dropout_train",
            serial(L("Dense", 5, b_std=0.1), L("Relu"), L("Dropout", 0.7), L("Dense", 3)),
            **_seq(5, 3),
        ),
        Arch(
            "dropout_test",
            serial(L("Dense", 4), L("Dropout", 0.5, mode="test"), L("Relu"), L("Dense", 2)),
            **_seq(4, 3),
        ),
        Arch(
            "dropout_img_pool",
            serial(
                L("Conv", 4, (2, 2), padding="SAME"),
                L("Erf"),
                L("Dropout", 0.6),
                L("Conv", 3, (2, 2), b_std=0.1),
                L("Dropout", 0.9),
                L("GlobalAvgPool"),
            ),
            **_img(),
            mask_constant=-2.5,
        ),
        Arch(
            "concat_channels",
            serial(L("Dense", 4), L("FanOut", 2), pair, L("FanInConcat"), L("Dense", 2)),
            **_seq(5, 3),
        ),
        Arch(
            "concat_seq_axis",
            serial(
                L("Dense", 4),
                L("FanOut", 2),
                gaussian_pair,
                L("FanInConcat", axis=1),
                L("Relu"),
                L("Conv", 2, (3,), padding="SAME"),
            ),
            **_seq(4, 3),
        ),
        Arch(
            "concat_img_axes",
            serial(
                L("FanOut", 2),
                conv_pair,
                L("FanInConcat", axis=-2),
                L("FanOut", 2),
                L("parallel", L("Conv", 3, (2, 2), padding="SAME"), L("Conv", 3, (2, 1))),
                L("FanInConcat", axis=1),
                L("Relu"),
                L("Flatten"),
            ),
            **_img(),
            mask_constant=-2.5,
        ),
        Arch(
            "concat_nchw_width",
            serial(
                _nchw_conv(3),
                L("FanOut", 2),
                L("parallel", _nchw_conv(3), _nchw_conv(3, W_std=1.5, b_std=0.2)),
                L("FanInConcat", axis=3),
                L("Relu"),
                _nchw_conv(2),
            ),
            **_img(),
            layout="NCHW",
            variants=("x11", "x12"),
        ),
        Arch(
            "fanin_prod",
            serial(
                L("Dense", 4),
                L("FanOut", 3),
                L(
                    "parallel",
                    L("Dense", 3),
                    serial(L("Relu"), L("Dense", 3)),
                    L("Dense", 3, b_std=0.2),
                ),
                L("FanInProd"),
                L("Dense", 2),
            ),
            **_seq(4, 3),
        ),
        Arch(
            "fanin_prod_img",
            serial(
                L("FanOut", 2),
                L(
                    "parallel",
                    L("Conv", 3, (2, 2), padding="SAME"),
                    L("Conv", 3, (1, 3), padding="SAME"),
                ),
                L("FanInProd"),
                L("Conv", 2, (2, 2)),
                L("GlobalAvgPool"),
            ),
            **_img(),
            mask_constant=-2.5,
        ),
    ]


# ----------------------------------------------------------- Index, DotGeneral (issue 9)

_ALL = slice(None)


def index_archs() -> list[Arch]:
    """Index: spatial slices and integers, the batch axis, ``...``, a channels-first layout."""
    conv = L("Conv", 3, (2, 2), padding="SAME")
    nchw = {"dimension_numbers": ("NCHW", "OIHW", "NCHW")}
    return [
        Arch(
            "index_seq",
            serial(L("Dense", 4), L("Relu"), L("Index", (_ALL, slice(1, 4))), L("Dense", 2)),
            **_seq(5, 3),
        ),
        Arch(
            "index_img_batch_row",
            serial(
                conv,
                L("Relu"),
                L("Index", (slice(None, None, 2), _ALL, 1)),
                L("Conv", 2, (2,), b_std=0.1),
                L("GlobalAvgPool"),
            ),
            **_img(),
            mask_constant=-2.5,
        ),
        Arch(
            "index_ellipsis_reverse",
            serial(
                conv, L("Index", (Ellipsis, slice(None, None, -1), _ALL)), L("Erf"), L("Flatten")
            ),
            **_img(),
            mask_constant=-2.5,
        ),
        Arch(
            "index_nchw",
            serial(
                L("Conv", 3, (2, 2), padding="SAME", **nchw),
                L("Index", (_ALL, _ALL, slice(1, None), slice(None, None, 2)), channel_axis=1),
                L("Relu"),
                L("Conv", 2, (2, 1), **nchw),
            ),
            **_img(),
            layout="NCHW",
            variants=("x11", "x12"),
        ),
    ]


def dot_general_archs() -> list[Arch]:
    """DotGeneral: a scalar, contractions, a constant on the left, paired (batch) dimensions."""
    conv = L("Conv", 4, (1, 2), padding="SAME")
    flip = ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.5, 0.0, 1.0))
    return [
        Arch(
            "dotgen_scalar",
            serial(L("Dense", 3), L("Relu"), L("DotGeneral", rhs=2.0), L("Dense", 2)),
            **_seq(4, 3),
        ),
        Arch(
            "dotgen_contract_h",
            serial(
                conv,
                L("Relu"),
                L("DotGeneral", rhs=(1.0, -1.0, 0.5), dimension_numbers=(((1,), (0,)), ((), ()))),
                L("Conv", 2, (2,)),
                L("GlobalAvgPool"),
            ),
            **_img(),
            mask_constant=-2.5,
        ),
        Arch(
            "dotgen_lhs_mix_h",
            serial(
                conv,
                L("Erf"),
                L("DotGeneral", lhs=flip, dimension_numbers=(((1,), (1,)), ((), ()))),
                L("GlobalAvgPool", batch_axis=1),
                L("Dense", 2),
            ),
            **_img(),
            mask_constant=-2.5,
        ),
        Arch(
            "dotgen_paired_h",
            serial(
                conv,
                L("Relu"),
                L(
                    "DotGeneral",
                    rhs=((1.0, 0.5), (-1.0, 2.0), (0.3, 0.0)),
                    dimension_numbers=(((), ()), ((1,), (0,))),
                ),
                L("GlobalSumPool", batch_axis=1, channel_axis=3),
            ),
            **_img(),
            mask_constant=-2.5,
        ),
        Arch(
            "dotgen_contract_w_new_axis",
            serial(
                conv,
                L("Relu"),
                L(
                    "DotGeneral",
                    rhs=((1.0, 0.0), (0.5, -1.0), (0.0, 2.0), (1.0, 1.0)),
                    dimension_numbers=(((2,), (0,)), ((), ())),
                ),
                L("Dense", 3, channel_axis=2),
                L("Relu"),
                L("GlobalAvgPool", channel_axis=2),
            ),
            **_img(),
            mask_constant=-2.5,
        ),
    ]


# ------------------------------------------ ConvTranspose, ConvLocal, ImageResize (issue 9)


def conv_transpose_archs() -> list[Arch]:
    """ConvTranspose: VALID, SAME, CIRCULAR (filters wider and narrower than strides),
    both parameterisations, filter specs and an NCHW input with a reordered output."""
    t = "ConvTranspose"
    return [
        Arch("convT1d_valid", L(t, 4, (3,), strides=(2,), b_std=0.2), **_seq(4, 3)),
        Arch(
            "convT1d_same_deep",
            serial(
                L(t, 4, (2,), padding="SAME", W_std=1.3),
                L("Relu"),
                L(t, 3, (3,), strides=(2,), padding="SAME", parameterization="standard"),
            ),
            **_seq(4, 3),
        ),
        Arch(
            "convT1d_circular",
            serial(
                L(t, 3, (3,), strides=(2,), padding="CIRCULAR", b_std=0.1),
                L("Erf"),
                L(t, 3, (2,), strides=(3,), padding="CIRCULAR"),
            ),
            **_seq(3, 2),
        ),
        Arch("convT2d_valid", L(t, 3, (2, 3), strides=(2, 1), W_std=1.2), **_img()),
        Arch(
            "convT2d_same_standard",
            L(t, 4, (3, 3), strides=(1, 2), padding="SAME", b_std=0.2, parameterization="standard"),
            **_img(),
        ),
        Arch(
            "convT2d_circular",
            serial(
                L(t, 3, (3, 2), strides=(2, 1), padding="CIRCULAR"),
                L("Relu"),
                L(t, 2, (2, 2), padding="CIRCULAR", b_std=0.3),
            ),
            **_img(),
        ),
        Arch(
            "convT2d_filter_spec",
            L(
                t,
                3,
                (3, 2),
                strides=(2, 1),
                padding="SAME",
                dimension_numbers=("NHWC", "WOIH", "NHWC"),
            ),
            **_img(),
        ),
        Arch(
            "convT2d_nchw_out_nwhc",
            L(t, 3, (2, 3), strides=(1, 2), dimension_numbers=("NCHW", "OIHW", "NWHC")),
            **_img(),
            layout="NCHW",
        ),
        Arch(
            "conv_convT_autoencoder",
            serial(
                L("Conv", 4, (2, 2), strides=(2, 2), padding="SAME", b_std=0.1),
                L("Relu"),
                L(t, 3, (2, 2), strides=(2, 2), padding="SAME"),
            ),
            **_img(),
            mask_constant=-2.5,
        ),
    ]


def aggregate_archs() -> list[Arch]:
    """Aggregate: dense and sparse graphs over sequences and images, an NCHW layout."""
    sparse = {"implementation": "SPARSE"}
    nchw = {"dimension_numbers": ("NCHW", "OIHW", "NCHW")}
    return [
        Arch(
            "aggregate_dense_seq",
            serial(
                L("Dense", 4),
                L("Relu"),
                L("Aggregate"),
                L("Dense", 3, b_std=0.1),
                L("Aggregate"),
                L("GlobalSumPool"),
            ),
            **_seq(5, 3),
            graph="DENSE",
        ),
        Arch(
            "aggregate_dense_img",
            serial(
                L("Conv", 3, (2, 2), padding="SAME"),
                L("Aggregate", aggregate_axis=(1, 2)),
                L("Erf"),
                L("Conv", 2, (2, 2)),
            ),
            **_img(),
            mask_constant=-2.5,
            graph="DENSE",
        ),
        Arch(
            "aggregate_dense_nchw",
            serial(
                L("Conv", 3, (2, 2), padding="SAME", **nchw),
                L("Aggregate", channel_axis=1),
                L("Relu"),
                L("Conv", 2, (2, 2), **nchw),
            ),
            **_img(),
            layout="NCHW",
            variants=("x11", "x12"),
            graph="DENSE",
        ),
        Arch(
            "aggregate_sparse_seq",
            serial(
                L("Dense", 4),
                L("Aggregate", **sparse),
                L("Relu"),
                L("Dense", 2),
                L("Aggregate", **sparse),
                L("GlobalAvgPool"),
            ),
            **_seq(5, 3),
            graph="SPARSE",
        ),
        Arch(
            "aggregate_sparse_img",
            serial(
                # not a Conv: NT's SPARSE kernel ignores the reversed spatial axes of a
                # Conv kernel and then disagrees with its own DENSE kernel (and apply_fn)
                L("Dense", 3, b_std=0.1),
                L("Relu"),
                L("Aggregate", **sparse),
                L("Flatten"),
            ),
            **_img(),
            mask_constant=-2.5,
            graph="SPARSE",
        ),
    ]


def conv_local_archs() -> list[Arch]:
    """ConvLocal: VALID, SAME, CIRCULAR, strides, biases, both parameterisations, specs."""
    u = "ConvLocal"
    return [
        Arch("convL1d_valid", serial(L(u, 4, (2,), b_std=0.3), L("Relu")), **_seq(6, 3)),
        Arch(
            "convL1d_same_deep",
            serial(
                L("Conv", 4, (3,), padding="SAME"),
                L("Relu"),
                L(u, 3, (3,), strides=(2,), padding="SAME", b_std=0.1),
                L("Erf"),
                L(u, 2, (2,), W_std=1.3),
                L("Dense", 2),
            ),
            **_seq(7, 3),
        ),
        Arch(
            "convL1d_circular_standard",
            serial(
                L(u, 3, (3,), padding="CIRCULAR", b_std=0.2, parameterization="standard"),
                L("Erf"),
            ),
            **_seq(5, 3),
        ),
        Arch(
            "convL2d_deep",
            serial(
                L(u, 4, (2, 3), strides=(1, 2), padding="SAME", b_std=0.1),
                L("Relu"),
                L(u, 3, (2, 2), parameterization="standard"),
                L("Gelu"),
            ),
            **_img(),
        ),
        Arch(
            "convL2d_circular_pool",
            serial(
                L(u, 4, (3, 3), padding="CIRCULAR"), L("Relu"), L("GlobalAvgPool"), L("Dense", 1)
            ),
            **_img(),
        ),
        Arch(
            "convL2d_nchw_out_nwhc",
            serial(
                L(
                    u,
                    3,
                    (3, 2),
                    strides=(1, 2),
                    padding="SAME",
                    dimension_numbers=("NCHW", "OIWH", "NWHC"),
                ),
                L("Relu"),
            ),
            **_img(),
            layout="NCHW",
            variants=("x11", "x12"),  # NT fails to remask the reordered output
        ),
        Arch(
            "conv_convL_filter_spec",
            serial(
                L("Conv", 3, (2, 2), padding="SAME"),
                L("Gelu"),
                L(u, 3, (2, 2), padding="SAME", dimension_numbers=("NHWC", "IOWH", "NHWC")),
                L("Abs"),
            ),
            **_img(),
            mask_constant=-2.5,
        ),
    ]


def conv_local_diagonal_archs() -> list[Arch]:
    """Networks ending in ConvLocal: neural-tangents returns spatially diagonal kernels."""
    u = "ConvLocal"
    return [
        Arch("convL1d_diag_out", serial(L("Dense", 3), L(u, 4, (2,), b_std=0.3)), **_seq(5, 3)),
        Arch(
            "convL2d_diag_out",
            serial(
                L("Conv", 3, (2, 2), padding="SAME"),
                L("Relu"),
                L(u, 3, (2, 2), padding="SAME", b_std=0.1),
            ),
            **_img(),
        ),
        Arch(
            "convL_avgpool_convL_diag_out",
            serial(
                L(u, 3, (3,), padding="CIRCULAR"),
                L("AvgPool", (2,), padding="SAME"),
                L(u, 2, (2,), strides=(2,), parameterization="standard"),
            ),
            **_seq(6, 3),
        ),
    ]


def diagonal_spatial_archs() -> list[Arch]:
    """``kernel_fn(..., diagonal_spatial=True)`` on convolutional networks (diagonals only)."""
    diag = {"diagonal_spatial": True}
    nchw = {"dimension_numbers": ("NCHW", "OIHW", "NCHW")}
    return [
        Arch(
            "diagsp_conv1d",
            serial(
                L("Conv", 3, (2,), padding="SAME", b_std=0.2),
                L("Relu"),
                L("Conv", 3, (3,), strides=(2,), padding="CIRCULAR", W_std=1.2),
                L("Erf"),
                L("Conv", 2, (2,), parameterization="standard", b_std=0.1),
            ),
            **_seq(7, 3),
            **diag,
        ),
        Arch(
            "diagsp_conv2d_flatten",
            serial(
                L("Conv", 3, (2, 2), padding="SAME"),
                L("Relu"),
                L("Conv", 3, (3, 2), strides=(1, 2), padding="SAME", b_std=0.3),
                L("Gelu"),
                L("Flatten"),
                L("Dense", 2),
            ),
            **_img(),
            mask_constant=-2.5,
            **diag,
        ),
        Arch(
            "diagsp_residual_convL",
            serial(
                L("Conv", 3, (2,), padding="SAME"),
                residual(serial(L("Relu"), L("Conv", 3, (3,), padding="SAME"))),
                L("LayerNorm"),
                L("ConvLocal", 3, (2,), padding="SAME", b_std=0.2),
                L("Relu"),
                L("ConvLocal", 2, (3,), strides=(2,), padding="CIRCULAR"),
            ),
            **_seq(6, 3),
            **diag,
        ),
        Arch(
            "diagsp_conv2d_nchw",
            serial(
                L("Conv", 3, (2, 2), padding="SAME", **nchw),
                L("Relu"),
                L("Conv", 2, (2, 3), padding="VALID", b_std=0.1, **nchw),
            ),
            **_img(),
            layout="NCHW",
            variants=("x11", "x12_masked"),
            **diag,
        ),
    ]


def dot_general_batch_archs() -> list[Arch]:
    """DotGeneral pairing the inputs' batch axis with a constant axis (one slice per example).

    The constant has one slice per example of ``x1``: neural-tangents needs ``x2`` with as
    many examples, so only ``x2=None`` is compared.
    """
    rng = np.random.RandomState(7)
    per_example = tuple(map(tuple, np.round(rng.standard_normal((N1, 2)), 3).tolist()))
    per_position = tuple(
        tuple(map(tuple, row)) for row in np.round(rng.standard_normal((N1, 4, 2)), 3).tolist()
    )
    pair_n = (((), ()), ((0,), (0,)))
    return [
        Arch(
            "dotgen_pair_batch_rhs",
            serial(
                L("Dense", 3, b_std=0.2),
                L("Relu"),
                L("DotGeneral", rhs=per_example, dimension_numbers=pair_n),
                L("Dense", 2, channel_axis=2),
            ),
            **_seq(4, 3),
            variants=("x11", "x11_masked"),
        ),
        Arch(
            "dotgen_pair_batch_lhs_contract_l",
            serial(
                L("Dense", 3),
                L("Erf"),
                L("DotGeneral", lhs=per_position, dimension_numbers=(((1,), (1,)), ((0,), (0,)))),
                L("Dense", 2),
                L("Relu"),
            ),
            **_seq(4, 3),
            variants=("x11", "x11_masked"),
        ),
    ]


def diagonal_decision_archs() -> list[Arch]:
    """ConvLocal next to DotGeneral and Aggregate: whether outputs are spatially diagonal.

    neural-tangents' per-layer rule: a ``DotGeneral`` after ``ConvLocal`` makes the
    kernels spatially full, as does an ``Aggregate`` anywhere. (A ``DotGeneral`` without
    a constant is not compared: neural-tangents returns NaN kernels for it.)
    """
    u = "ConvLocal"
    contract_h = {"rhs": (1.0, -1.0, 0.5), "dimension_numbers": (((1,), (0,)), ((), ()))}
    return [
        Arch(
            "diagdec_convL_dotgen_scalar",
            serial(L("Dense", 3), L(u, 3, (2,), b_std=0.2), L("DotGeneral", rhs=2.0)),
            **_seq(5, 3),
        ),
        Arch(
            "diagdec_convL_dotgen_contract_h",
            serial(L(u, 3, (2, 2), padding="SAME"), L("DotGeneral", **contract_h)),
            **_img(),
        ),
        Arch(
            "diagdec_dotgen_contract_h_convL",
            serial(L("Dense", 3), L("DotGeneral", **contract_h), L(u, 2, (2,))),
            **_img(),
        ),
        Arch(
            "diagdec_dotgen_scalar_convL_diag_out",
            serial(L("Dense", 3), L("DotGeneral", rhs=0.5), L(u, 2, (3,), padding="SAME")),
            **_seq(5, 3),
        ),
        Arch(
            "diagdec_aggregate_convL",
            serial(L("Dense", 3), L("Aggregate"), L(u, 2, (2,), b_std=0.1)),
            **_seq(5, 3),
            graph="DENSE",
        ),
    ]


def image_resize_archs() -> list[Arch]:
    """ImageResize, linear and nearest, up and down, with and without antialiasing.

    A Dense layer comes first: neural-tangents refuses to resize the per-channel mask of
    raw inputs, and gives raw inputs a scalar ``ntk`` of 0.
    """
    r = "ImageResize"

    def arch(name: str, resize: Layer, *rest: Layer, dense: Layer | None = None, **data: Any):
        return Arch(name, serial(dense or L("Dense", 3), resize, *rest), **data)

    return [
        arch("resize1d_linear_up", L(r, (-1, 7, -1), "linear"), **_seq(4, 3)),
        Arch(
            "resize2d_nearest_mlp",
            serial(
                L("Dense", 3, b_std=0.1), L("Relu"), L(r, (-1, 5, 3, -1), "nearest"), L("Dense", 2)
            ),
            **_img(),
        ),
        arch("resize2d_linear_down", L(r, (-1, 2, 3, -1), "linear"), **_img()),
        arch(
            "resize2d_bilinear_no_alias",
            L(r, (-1, 2, 2, -1), "bilinear", antialias=False),
            **_img(),
        ),
        arch(
            "resize2d_nchw",
            L(r, (-1, -1, 6, 2), "linear", channel_axis=1),
            dense=L("Dense", 3, channel_axis=1),
            **_img(),
            layout="NCHW",
        ),
        arch(
            "resize_conv_pool",
            L(r, (-1, 5, 6, -1), "linear"),
            L("Conv", 3, (3, 3), padding="SAME"),
            L("Relu"),
            L("GlobalAvgPool"),
            **_img(),
            mask_constant=-2.5,
        ),
    ]


def architectures() -> list[Arch]:
    """All architectures of the parity grid."""
    return [
        *dense_archs(),
        *elementwise_archs(),
        *layernorm_archs(),
        *combinator_archs(),
        *conv_archs(),
        *conv_filter_spec_archs(),
        *conv_spatial_order_archs(),
        *layout_archs(),
        *layout_small_archs(),
        *pooling_archs(),
        *windowed_pooling_archs(),
        *attention_seq_archs(),
        *attention_img_archs(),
        *transformer_archs(),
        *dropout_fan_in_archs(),
        *index_archs(),
        *dot_general_archs(),
        *aggregate_archs(),
        *conv_transpose_archs(),
        *conv_local_archs(),
        *conv_local_diagonal_archs(),
        *diagonal_spatial_archs(),
        *dot_general_batch_archs(),
        *diagonal_decision_archs(),
        *image_resize_archs(),
    ]


def _all_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for arch in architectures():
        for case in expand(arch):
            if case.name in cases:
                raise ValueError(f"duplicate case name {case.name}")
            cases[case.name] = case
    return cases


CASES: dict[str, Case] = _all_cases()


def case_names() -> list[str]:
    """Names of all cases, in grid order."""
    return list(CASES)


def get_case(name: str) -> Case:
    """The case called ``name``."""
    return CASES[name]


def select(
    substring: str | None = None, predicate: Callable[[Case], bool] | None = None
) -> list[Case]:
    """Cases whose name contains ``substring`` (all if ``None``) and satisfy ``predicate``."""
    return [
        c
        for c in CASES.values()
        if (substring is None or substring in c.name) and (predicate is None or predicate(c))
    ]
