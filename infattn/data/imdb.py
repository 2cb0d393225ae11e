"""IMDb movie reviews (``aclImdb_v1.tar.gz``) as padded GloVe sequences.

The archive holds ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` (25000
reviews per split, half positive). It is checked against its published MD5 and
read in place (:mod:`infattn.data.archive`); no file is extracted. A fixed
``RandomState(0)`` permutation of each split (sorted by member name) picks the
first ``n_train`` / ``n_test`` reviews; they are tokenised, restricted to the
``vocab_size`` most frequent training tokens known to GloVe, truncated or padded
to ``length`` and embedded with GloVe 50-d (:mod:`infattn.data.text`). Needs the
``data`` extra.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from infattn.data import archive
from infattn.data.dataset import Dataset, take
from infattn.data.glove import load_glove
from infattn.data.text import Vocabulary, embed_padded, tokenize

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
FILENAME = "aclImdb_v1.tar.gz"
CLASSES = ("negative", "positive")
SPLIT_SEED = 0
_REVIEW = re.compile(r"^aclImdb/(train|test)/(pos|neg)/\d+_\d+\.txt$")


def default_path() -> Path:
    """``$INFATTN_DATA/aclImdb_v1.tar.gz`` (default folder ``~/.cache/infattn``)."""
    return Path(os.environ.get("INFATTN_DATA", "~/.cache/infattn")).expanduser() / FILENAME


def read_reviews(path: str | os.PathLike) -> dict[str, list[tuple[str, int]]]:
    """``{"train": [(text, label), ...], "test": [...]}`` sorted by member name.

    Label 1 is positive. Reads the archive in place; unsafe members raise.
    """
    reviews: dict[str, list[tuple[str, str, int]]] = {"train": [], "test": []}
    for name, content in archive.regular_members(path, lambda n: _REVIEW.match(n) is not None):
        split, polarity = _REVIEW.match(name).groups()
        text = content.decode("utf-8", errors="replace")
        reviews[split].append((name, text, int(polarity == "pos")))
    return {split: [(t, y) for _, t, y in sorted(items)] for split, items in reviews.items()}


def _subset(items: list[tuple[str, int]], n: int | None, what: str) -> list[tuple[str, int]]:
    if not items:
        raise ValueError(f"{what}: the archive has no reviews for this split")
    order = np.random.RandomState(SPLIT_SEED).permutation(len(items))
    return [items[i] for i in order[: take(n, len(items), what)]]


def load_imdb(
    path: str | os.PathLike | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    *,
    length: int = 200,
    vocab_size: int | None = 20000,
    mask_constant: float = 0.0,
    verify: bool = True,
    download: bool = False,
) -> Dataset:
    """IMDb sentiment: ``x`` ``(N, length, 50)`` GloVe sequences, padding = ``mask_constant``.

    ``path``: the archive (default :func:`default_path`); ``verify=False`` skips
    the MD5 check; ``download=True`` fetches a missing archive (then checks it).
    """
    glove = load_glove()  # fail early, before reading a large archive, if the extra is missing
    path = archive.locate(
        default_path() if path is None else path,
        url=URL,
        digest=MD5,
        what="IMDb archive (aclImdb_v1.tar.gz)",
        download=download,
        verify=verify,
        skip_hint="--skip-checksum (verify=False)",
    )
    reviews = read_reviews(path)
    train = _subset(reviews["train"], n_train, "n_train")
    test = _subset(reviews["test"], n_test, "n_test")
    train_tokens = [tokenize(text) for text, _ in train]
    test_tokens = [tokenize(text) for text, _ in test]
    vocab = Vocabulary.build(train_tokens, glove, vocab_size)

    def encode(docs: list[list[str]]) -> np.ndarray:
        return embed_padded([vocab.keep(d) for d in docs], length, mask_constant, glove)

    return Dataset.from_labels(
        "imdb",
        (
            (encode(train_tokens), np.array([y for _, y in train])),
            (encode(test_tokens), np.array([y for _, y in test])),
        ),
        CLASSES,
        mask_constant=mask_constant,
        description=f"IMDb reviews, GloVe 50-d, length {length}, vocabulary {len(vocab.tokens)}",
    )
