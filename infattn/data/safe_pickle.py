"""A restricted unpickler for the CIFAR-10 python batches: data, never code.

A pickle is a program: loading one with :mod:`pickle` can call any importable
function (``os.system`` included). The CIFAR-10 batches hold only dicts, lists,
byte strings, ints and uint8 numpy arrays, written by Python 2's ``cPickle``
(protocol 2). :func:`loads` accepts exactly the globals such files name, the
numpy array reconstructor ``numpy.core.multiarray._reconstruct`` (and its
numpy-2 name), ``numpy.ndarray`` and ``numpy.dtype`` (plain numeric dtypes), and
refuses anything else with :class:`UnsafePickleError` *before* calling it.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for something a CIFAR-10 batch never holds; nothing was run."""


def _reconstruct(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    """The empty array that a pickled ndarray's state is then loaded into."""
    if cls is not np.ndarray or tuple(shape) != (0,):
        raise UnsafePickleError(
            f"refusing ndarray reconstruction with class {cls!r} and shape {shape!r}; "
            "a CIFAR-10 batch pickles plain ndarrays as _reconstruct(ndarray, (0,), b'b')"
        )
    return np.empty((0,), np.dtype(dtype.decode() if isinstance(dtype, bytes) else dtype))


def _dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """A plain numeric dtype; object and structured dtypes are refused."""
    spec = spec.decode() if isinstance(spec, bytes) else spec
    if not isinstance(spec, str):
        raise UnsafePickleError(f"refusing dtype specification {spec!r}: expected a type code")
    dt = np.dtype(spec)
    if dt.hasobject or dt.fields is not None or dt.kind not in "biuf":
        raise UnsafePickleError(f"refusing dtype {dt}: only numeric dtypes hold pixel data")
    return dt


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
}


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise UnsafePickleError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch holds only dicts, lists, "
                "bytes, ints and numpy arrays (this file is not one, or was tampered with)"
            )
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing persistent id {pid!r}")


def loads(data: bytes) -> Any:
    """Unpickle ``data`` (Python 2 strings as ``bytes``), allowing only the globals above.

    Example:
      >>> loads(b"\\x80\\x02}q\\x00U\\x06labelsq\\x01]q\\x02(K\\x03K\\x07es.")
      {b'labels': [3, 7]}
      >>> loads(b"cos\\nsystem\\n(S'echo hi'\\ntR.")  # doctest: +IGNORE_EXCEPTION_DETAIL
      Traceback (most recent call last):
      UnsafePickleError: refusing to load os.system
    """
    return _Restricted(io.BytesIO(data), encoding="bytes").load()
