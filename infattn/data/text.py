"""Text to padded embedding sequences: tokenise, vocabulary, pad/truncate, GloVe.

A sentence becomes ``(length, 50)``: the GloVe vectors of its first ``length``
in-vocabulary tokens, then padding positions holding ``mask_constant`` in every
channel (pass the same ``mask_constant`` to ``kernel_fn`` / ``apply_fn``).
Tokens outside the vocabulary are dropped, never replaced by a made-up vector.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Iterable, Sequence

import numpy as np

from infattn.data.glove import DIM, GloVe, load_glove

_CLITIC = re.compile(r"n't\b|'(?:s|re|ve|ll|d|m)\b")
_TOKEN = re.compile(r"n't|'[a-z]+|[a-z0-9]+(?:[-.][a-z0-9]+)*|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-case tokens the way GloVe's vocabulary splits them (``n't``, ``'s``, marks).

    Example:
      >>> tokenize("It wasn't bad!<br />Really.")
      ['it', 'was', "n't", 'bad', '!', 'really', '.']
    """
    text = text.lower().replace("<br />", " ")
    text = _CLITIC.sub(lambda m: " " + m.group(0), text)
    return _TOKEN.findall(text)


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The tokens kept: the most frequent ones of a corpus that have a GloVe vector."""

    tokens: frozenset[str]

    @classmethod
    def build(cls, corpus: Iterable[Sequence[str]], glove: GloVe, size: int | None) -> Vocabulary:
        """The ``size`` most frequent tokens of ``corpus`` known to GloVe (all if ``None``).

        Example:
          >>> v = Vocabulary.build([["a", "a", "zzqx", "b"]], load_glove(), size=1)
          >>> sorted(v.tokens)
          ['a']
        """
        counts = collections.Counter(t for doc in corpus for t in doc if t in glove.index)
        ranked = sorted(counts, key=lambda t: (-counts[t], t))
        return cls(frozenset(ranked if size is None else ranked[:size]))

    def keep(self, tokens: Iterable[str]) -> list[str]:
        return [t for t in tokens if t in self.tokens]


def embed_padded(
    docs: Sequence[Sequence[str]],
    length: int,
    mask_constant: float = 0.0,
    glove: GloVe | None = None,
) -> np.ndarray:
    """``(N, length, 50)``: each token list embedded, truncated, padded with ``mask_constant``.

    Tokens without a GloVe vector are dropped first.

    Example:
      >>> x = embed_padded([["good", "film"], ["bad"]], length=3)
      >>> x.shape, bool((x[1, 1:] == 0.0).all()), bool((x[0, 1] == 0.0).any())
      ((2, 3, 50), True, False)
    """
    glove = load_glove() if glove is None else glove
    x = np.full((len(docs), length, DIM), mask_constant, dtype=np.float64)
    real = np.zeros((len(docs), length), dtype=bool)
    for i, doc in enumerate(docs):
        vectors = glove.embed(doc)[:length]
        x[i, : len(vectors)] = vectors
        real[i, : len(vectors)] = True
    if np.any(np.all(x[real] == mask_constant, axis=-1)):
        raise ValueError(f"mask_constant={mask_constant} equals a word vector; choose another")
    return x
