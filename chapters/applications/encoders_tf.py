"""The text encoders of ``encoders.py`` in TensorFlow: a Proto-CNN and a bag of embeddings.

Same names and structure as ``encoders_torch.py`` (see it for the commentary): each encoder is a
``function(params, tokens, prefix)`` of a parameter dict and a ``tf.Module`` holding the variables
under their canonical names; ``TextClassifier`` is the network MAML adapts. :func:`lookup` is
``tf.gather`` with a dense gradient (``common.tf_layers.dense_gather``), as PyTorch's.
"""

from __future__ import annotations

import tensorflow as tf

from chapters.applications.encoders import (EMBEDDING_STD, FILTERS, POSITION_DIM, WINDOW, WORD_DIM, check_encoder,
                                           embedding_size, token_size)
from chapters.optimization.networks_tf import Conv4Classifier
from common.data.text import PAD
from common.tf_layers import Dense, _generator, dense, dense_gather


def lookup(table, ids):
    """Rows ``ids`` of ``table`` (any shape of ids), with a dense gradient, as PyTorch's."""
    return dense_gather(table, ids)


class Embedding(tf.Module):
    """A table of ``count`` vectors of ``size``, N(0, EMBEDDING_STD²) at the start."""

    def __init__(self, count: int, size: int, dtype=tf.float32, seed=None):
        super().__init__()
        self.embeddings = tf.Variable(_generator(seed).normal((count, size), stddev=EMBEDDING_STD, dtype=dtype),
                                      name="embeddings")


class Conv1D(tf.Module):
    """A 1-D convolution, kernel (width, in, out), initialised uniform in ±1/sqrt(width · in)."""

    def __init__(self, width: int, in_channels: int, out_channels: int, dtype=tf.float32, seed=None):
        super().__init__()
        rng, bound = _generator(seed), 1 / (width * in_channels) ** 0.5
        self.kernel = tf.Variable(rng.uniform((width, in_channels, out_channels), -bound, bound, dtype=dtype),
                                  name="kernel")
        self.bias = tf.Variable(rng.uniform((out_channels,), -bound, bound, dtype=dtype), name="bias")


def conv1d(x, kernel, bias):
    """(N, L, in) -> (N, L, out) with "same" padding (an odd window: (width - 1) / 2 on each side)."""
    return tf.nn.conv1d(x, kernel, stride=1, padding="SAME") + bias


class TextCNN(tf.Module):
    """f(x) = max over positions of ReLU(conv(word ⊕ head-position ⊕ tail-position embeddings))."""

    def __init__(self, vocabulary_size: int, positions: int = 0, word_dim: int = WORD_DIM,
                 position_dim: int = POSITION_DIM, filters: int = FILTERS, window: int = WINDOW,
                 dtype=tf.float32, seed=None):
        super().__init__()
        rng = _generator(seed)
        self.positions, self.size = positions, filters
        self.words = Embedding(vocabulary_size, word_dim, dtype, rng)
        if positions:
            self.head_positions = Embedding(positions, position_dim, dtype, rng)
            self.tail_positions = Embedding(positions, position_dim, dtype, rng)
        self.conv = Conv1D(window, token_size(positions, word_dim, position_dim), filters, dtype, rng)

    def params(self) -> dict:
        names = ["words"] + (["head_positions", "tail_positions"] if self.positions else [])
        params = {f"{name}.embeddings": getattr(self, name).embeddings for name in names}
        return {**params, "conv.kernel": self.conv.kernel, "conv.bias": self.conv.bias}

    def function(self, params: dict, tokens, prefix: str = ""):
        """f_θ(tokens), (N, filters), with θ read from ``params[prefix + canonical name]``."""
        tokens = tf.cast(tokens, tf.int32)
        x = lookup(params[prefix + "words.embeddings"], tokens[..., 0])
        if self.positions:
            x = tf.concat([x, lookup(params[prefix + "head_positions.embeddings"], tokens[..., 1]),
                           lookup(params[prefix + "tail_positions.embeddings"], tokens[..., 2])], axis=-1)
        h = tf.nn.relu(conv1d(x, params[prefix + "conv.kernel"], params[prefix + "conv.bias"]))
        return tf.reduce_max(h, axis=1)  # max-pool over the sentence

    def __call__(self, tokens, training: bool = False):
        return self.function(self.params(), tokens)


class BagOfEmbeddings(tf.Module):
    """f(x) = the mean word embedding of x's tokens, padding left out (positions ignored)."""

    def __init__(self, vocabulary_size: int, positions: int = 0, word_dim: int = WORD_DIM,
                 dtype=tf.float32, seed=None):
        super().__init__()
        self.size = word_dim
        self.words = Embedding(vocabulary_size, word_dim, dtype, seed)

    def params(self) -> dict:
        return {"words.embeddings": self.words.embeddings}

    def function(self, params: dict, tokens, prefix: str = ""):
        words = tf.cast(tokens[..., 0], tf.int32)
        x = lookup(params[prefix + "words.embeddings"], words)
        mask = tf.cast(words != PAD, x.dtype)[..., None]
        return tf.reduce_sum(x * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1)

    def __call__(self, tokens, training: bool = False):
        return self.function(self.params(), tokens)


def build_encoder(encoder: str, vocabulary_size: int, positions: int = 0, dtype=tf.float32, seed=None):
    """``"cnn"`` or ``"bag"`` (``encoders.ENCODERS``) for a vocabulary and a number of position ids."""
    check_encoder(encoder)
    return (TextCNN if encoder == "cnn" else BagOfEmbeddings)(vocabulary_size, positions, dtype=dtype, seed=seed)


class TextClassifier(tf.Module):
    """MAML's network on text: an encoder and a linear head to ``way`` logits, as a function of θ."""

    metric_name = "accuracy"

    def __init__(self, way: int, encoder: str, vocabulary_size: int, positions: int = 0, dtype=tf.float32,
                 seed=None):
        super().__init__()
        rng = _generator(seed)
        self.encoder = build_encoder(encoder, vocabulary_size, positions, dtype, rng)
        self.head = Dense(embedding_size(encoder), way, dtype=dtype, seed=rng)

    def params(self) -> dict:
        params = {f"encoder.{name}": v for name, v in self.encoder.params().items()}
        return {**params, "head.kernel": self.head.kernel, "head.bias": self.head.bias}

    def forward(self, params: dict, x, reference=None):
        """Logits (N, way). ``reference`` is ignored: no BatchNorm, so nothing flows between examples."""
        return dense(self.encoder.function(params, x, "encoder."), params["head.kernel"], params["head.bias"])

    # The image classifier's cross-entropy and accuracy: a classifier's loss does not depend on its input.
    loss, metric = Conv4Classifier.loss, Conv4Classifier.metric

    def __call__(self, x, reference=None):
        return self.forward(self.params(), x, reference)
