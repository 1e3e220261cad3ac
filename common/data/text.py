"""Sentences as arrays: tokenisation, a vocabulary, and the text form of :class:`FewShotDataset`.

A few-shot text episode is drawn exactly as an image episode: N classes, K support and Q query
examples of each. Only the examples differ. A sentence becomes a fixed-length row of integer *token
ids*, written once here and read by PyTorch, TensorFlow and Keras alike:

    "hugh grant marries for the first time"  ->  [412, 3310, 9, 17, 2, 88, 61, 0, 0, ...]

* :func:`tokenize` splits lower-cased text into words and punctuation marks.
* :class:`Vocabulary` numbers the words of the **meta-training classes only** (id 0 pads a short
  sentence, id 1 stands for every word it does not know). Built from the test classes too, it
  would carry a trace of them into the model, the leak few-shot evaluation exists to rule out.
* :class:`TextDataset` is a :class:`FewShotDataset` whose ``images`` are int32 token arrays
  ``(classes, examples, length, channels)``: one channel (the word ids) for text classification,
  three for relation classification, where channels 1 and 2 give each token's position relative
  to the head and the tail entity (Zeng et al. 2014; FewRel's Proto-CNN, Han et al. 2018). The
  episode sampler, the fixed evaluation episodes and the framework adapters take it unchanged.

Words outside the vocabulary map to ``UNK``; longer texts are cut at ``length`` tokens.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from common.data.base import FewShotDataset
from common.errors import CorruptDataError

PAD, UNK = 0, 1  # the two reserved ids: padding after a sentence's end, and an unknown word
RESERVED = ("<pad>", "<unk>")
TOKEN = re.compile(r"[a-z0-9]+(?:['.][a-z0-9]+)*|[^\sa-z0-9]")  # words (u.s., don't), else one symbol


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: ``"U.S. launches probe, China won't"`` ->
    ``["u.s", ".", "launches", "probe", ",", "china", "won't"]`` (a word may hold inner dots and
    apostrophes; a final dot is a mark of its own, as it ends most sentences)."""
    return TOKEN.findall(text.lower())


@dataclass(frozen=True)
class Vocabulary:
    """Word <-> id. ``words[i]`` is the word of id i; ids 0 and 1 are ``<pad>`` and ``<unk>``."""

    words: tuple[str, ...]

    @classmethod
    def build(cls, texts: Iterable[Sequence[str]], min_count: int = 2) -> "Vocabulary":
        """The words that occur at least ``min_count`` times in ``texts`` (token lists), most
        frequent first (ties in alphabetical order), so the same texts give the same ids."""
        counts = Counter(token for tokens in texts for token in tokens)
        kept = sorted((word for word, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls(RESERVED + tuple(kept))

    def __len__(self) -> int:
        return len(self.words)

    def ids(self, tokens: Sequence[str]) -> list[int]:
        index = self._index
        return [index.get(token, UNK) for token in tokens]

    @property
    def _index(self) -> dict:
        index = self.__dict__.get("_cached_index")
        if index is None:
            index = {word: i for i, word in enumerate(self.words)}
            object.__setattr__(self, "_cached_index", index)
        return index

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Token ids back to words, padding dropped (unknown words come back as ``<unk>``)."""
        return [self.words[i] for i in ids if i != PAD]


def encode(tokens: Sequence[str], vocabulary: Vocabulary, length: int) -> np.ndarray:
    """One text as ``length`` int32 token ids: cut at ``length``, padded with ``PAD``."""
    row = np.full(length, PAD, dtype=np.int32)
    ids = vocabulary.ids(tokens[:length])
    row[:len(ids)] = ids
    return row


def relative_positions(length: int, entity: int) -> np.ndarray:
    """Each position's offset from token ``entity``, shifted to be an id: ``i - entity + length``,
    in 1 .. 2*length - 1 (0 only for an entity beyond the text, which we never make)."""
    return (np.arange(length) - entity + length).astype(np.int32)


@dataclass(frozen=True, repr=False)
class TextDataset(FewShotDataset):
    """A split of a text data set: ``images`` holds int32 token ids ``(classes, examples, length,
    channels)`` (the name is the shared interface's; they are no images).

    Attributes beyond :class:`FewShotDataset`'s:
        vocabulary: the meta-training classes' :class:`Vocabulary` (the same for every split).
        positions: the number of position ids a channel of relative positions can hold (2 * length),
            0 for plain text classification.
    """

    vocabulary: Vocabulary = Vocabulary(RESERVED)
    positions: int = 0

    def __post_init__(self):
        tokens = self.images
        if tokens.ndim != 4 or tokens.dtype != np.int32:
            raise ValueError(f"text tokens must be int32 (classes, examples, length, channels), got "
                             f"{tokens.dtype} {tokens.shape}")
        if len(self.class_names) != len(tokens):
            raise ValueError(f"{len(self.class_names)} class names for {len(tokens)} classes")
        if tokens.size and (tokens[..., 0].min() < 0 or tokens[..., 0].max() >= len(self.vocabulary)):
            raise CorruptDataError(f"{self.name}/{self.split}: token ids outside the vocabulary of "
                                   f"{len(self.vocabulary)} words")

    @property
    def length(self) -> int:
        """Tokens per example (texts are cut or padded to it)."""
        return self.images.shape[2]

    def text(self, example: np.ndarray) -> str:
        """One example's token ids (``(length, channels)``) back to words, for reading an episode."""
        return " ".join(self.vocabulary.decode(np.asarray(example)[:, 0]))

    def __repr__(self) -> str:
        n_classes, examples, length, channels = self.images.shape
        return (f"TextDataset({self.name}/{self.split}: {n_classes} classes x {examples} examples, "
                f"{length} tokens x {channels} channel{'s' if channels > 1 else ''}, "
                f"vocabulary of {len(self.vocabulary):,} words)")
