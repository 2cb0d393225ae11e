"""Shared helpers for the live-parity check against neural-tangents 0.6.5 (main environment).

Used by ``tests/reference/test_parity.py`` and ``tools/reference/report.py``. The reference
kernels are produced in the pinned environment by ``tools/reference/dump.py`` and read
here from ``$INFATTN_REF_DIR`` (default ``<repo>/.cache/reference``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
KERNELS = ("nngp", "ntk", "cov1")
RTOL = 1e-6
TINY = 1e-30

HOW_TO_GENERATE = (
    "generate the reference kernels with neural-tangents 0.6.5:\n"
    "    bash tools/reference/setup_env.sh && "
    "${INFATTN_REF_ENV:-.cache/ntref}/bin/python tools/reference/dump.py .cache/reference\n"
    "(or point INFATTN_REF_DIR at an existing dump)"
)


class ReferenceError(LookupError):
    """The reference dump is missing, incomplete or stale; the message says how to fix it."""


def reference_dir() -> Path:
    """``$INFATTN_REF_DIR`` or ``<repo>/.cache/reference``."""
    env = os.environ.get("INFATTN_REF_DIR")
    return Path(env) if env else REPO / ".cache" / "reference"


def load_reference(case: Any, ref_dir: Path) -> dict[str, np.ndarray]:
    """The stored NT kernels of ``case``; raises :class:`ReferenceError` if missing or stale."""
    if not ref_dir.is_dir():
        raise ReferenceError(f"reference directory {ref_dir} does not exist; {HOW_TO_GENERATE}")
    path = ref_dir / f"{case.name}.npz"
    if not path.exists():
        raise ReferenceError(f"{path} is missing; {HOW_TO_GENERATE}")
    with np.load(path) as data:
        ref = {key: data[key] for key in data.files}
    if str(ref["spec"]) != case.spec:
        raise ReferenceError(
            f"{path} is stale (grid.py changed):\n  stored: {ref['spec']}\n  grid:   {case.spec}\n"
            f"re-{HOW_TO_GENERATE}"
        )
    x1, _ = case.inputs()
    if not np.array_equal(ref["x1"], x1):
        raise ReferenceError(f"{path}: stored inputs differ from grid.py; re-{HOW_TO_GENERATE}")
    return ref


def our_kernels(case: Any, stax: ModuleType, jit: bool = False) -> dict[str, np.ndarray]:
    """infattn's ``nngp``, ``ntk``, ``cov1`` for ``case`` (call with x64 enabled).

    ``jit``: through ``jax.jit(kernel_fn, static_argnames=("get", "diagonal_spatial"))``,
    ``mask_constant`` traced.
    """
    x1, x2 = case.inputs()
    _, _, kernel_fn = case.build(stax)
    if jit:
        import jax

        kernel_fn = jax.jit(kernel_fn, static_argnames=("get", "diagonal_spatial"))
    out = kernel_fn(x1, x2, KERNELS, mask_constant=case.mask_constant, **case.kernel_kwargs())
    values = [getattr(out, key) for key in KERNELS] if hasattr(out, "nngp") else list(out)
    return {key: np.asarray(value) for key, value in zip(KERNELS, values, strict=True)}


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """``max|ours - ref| / max(max|ref|, tiny)``; ``inf`` on a shape mismatch or NaN."""
    if ours.shape != ref.shape:
        return float("inf")
    diff = np.max(np.abs(ours - ref), initial=0.0)
    if not np.isfinite(diff):
        return float("inf")
    return float(diff / max(float(np.max(np.abs(ref), initial=0.0)), TINY))


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Relative errors of one case, plus shape notes when the layouts differ."""

    name: str
    errors: dict[str, float]
    notes: tuple[str, ...] = ()

    @property
    def worst(self) -> float:
        return max(self.errors.values())

    def passed(self, rtol: float = RTOL) -> bool:
        return self.worst <= rtol


def compare(
    case: Any, ref: dict[str, np.ndarray], stax: ModuleType, jit: bool = False
) -> Comparison:
    """Compare infattn with the stored reference for one case (``jit``: see ``our_kernels``)."""
    ours = our_kernels(case, stax, jit)
    errors, notes = {}, []
    for key in KERNELS:
        errors[key] = relative_error(ours[key], ref[key])
        if ours[key].shape != ref[key].shape:
            notes.append(f"{key}: shape {ours[key].shape} != reference {ref[key].shape}")
        elif not np.all(np.isfinite(ours[key])):
            notes.append(f"{key}: non-finite entries")
    return Comparison(case.name, errors, tuple(notes))


def enable_x64() -> bool:
    """Turn on jax float64; returns the previous setting."""
    import jax

    previous = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", True)
    return previous
