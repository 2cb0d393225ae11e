"""Data sets for kernel experiments, and safe readers of untrusted archives.

* :func:`load_digits`: scikit-learn's 8x8 digits on a fixed 1000/797 split, as
  images or as sequences of rows.
* :func:`trend_sequences`, :func:`phase_sequences`: synthetic sequence tasks
  (variable lengths with padding; a 1-D family of inputs for plots).
* :func:`load_cifar10`: CIFAR-10 from ``cifar-10-python.tar.gz``.
* :func:`load_imdb`: IMDb reviews from ``aclImdb_v1.tar.gz`` as padded GloVe
  sequences (:func:`embed_padded` does the same for any sentences).

Every loader returns a :class:`Dataset`. Archives are MD5-checked, read in place
and never trusted (:mod:`infattn.data.archive`, :mod:`infattn.data.safe_pickle`).
scikit-learn and GloVe (the ``data`` extra) are imported only when used.
"""

from infattn.data.archive import ChecksumError, UnsafeArchiveError
from infattn.data.cifar10 import load_cifar10
from infattn.data.dataset import Dataset, one_hot, standardize
from infattn.data.digits import load_digits
from infattn.data.imdb import load_imdb
from infattn.data.safe_pickle import UnsafePickleError
from infattn.data.synthetic import phase_sequences, trend_sequences
from infattn.data.text import embed_padded, tokenize

__all__ = [
    "ChecksumError",
    "Dataset",
    "UnsafeArchiveError",
    "UnsafePickleError",
    "embed_padded",
    "load_cifar10",
    "load_digits",
    "load_imdb",
    "one_hot",
    "phase_sequences",
    "standardize",
    "tokenize",
    "trend_sequences",
]
