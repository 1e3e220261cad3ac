"""The text encoders of ``encoders.py`` in Keras 3: a Proto-CNN and a bag of embeddings.

Same names and structure as ``encoders_torch.py`` (see it for the commentary): each encoder is a
``function(params, tokens, prefix)`` of a parameter dict and a layer holding its weights under the
canonical names; ``TextClassifier`` is the network MAML adapts. As in ``encoders_tf.py``, the
embedding lookup has a dense gradient (``common.tf_layers.dense_gather``: the book's Keras code runs
on the TensorFlow backend).
"""

from __future__ import annotations

import keras
from keras import ops

from chapters.applications.encoders import (EMBEDDING_STD, FILTERS, POSITION_DIM, WINDOW, WORD_DIM, check_encoder,
                                           embedding_size, token_size)
from chapters.optimization.networks_keras import Conv4Classifier, dense, torch_like_uniform
from common.data.text import PAD
from common.tf_layers import dense_gather


def lookup(table, ids):
    """Rows ``ids`` of ``table`` (any shape of ids), with a dense gradient, as PyTorch's."""
    return dense_gather(table, ids)


class Embedding(keras.layers.Layer):
    """A table of ``count`` vectors of ``size``, N(0, EMBEDDING_STD²) at the start."""

    def __init__(self, count: int, size: int, **kwargs):
        super().__init__(**kwargs)
        self.embeddings = self.add_weight(shape=(count, size), name="embeddings",
                                          initializer=keras.initializers.RandomNormal(stddev=EMBEDDING_STD))
        self.built = True


class Conv1D(keras.layers.Layer):
    """A 1-D convolution, kernel (width, in, out), initialised uniform in ±1/sqrt(width · in)."""

    def __init__(self, width: int, in_channels: int, out_channels: int, **kwargs):
        super().__init__(**kwargs)
        fan_in = width * in_channels
        self.kernel = self.add_weight(shape=(width, in_channels, out_channels), name="kernel",
                                      initializer=torch_like_uniform(fan_in))
        self.bias = self.add_weight(shape=(out_channels,), name="bias", initializer=torch_like_uniform(fan_in))
        self.built = True


def conv1d(x, kernel, bias):
    """(N, L, in) -> (N, L, out) with "same" padding (an odd window: (width - 1) / 2 on each side)."""
    return ops.conv(x, kernel, strides=1, padding="same", data_format="channels_last") + bias


class TextCNN(keras.layers.Layer):
    """f(x) = max over positions of ReLU(conv(word ⊕ head-position ⊕ tail-position embeddings))."""

    def __init__(self, vocabulary_size: int, positions: int = 0, word_dim: int = WORD_DIM,
                 position_dim: int = POSITION_DIM, filters: int = FILTERS, window: int = WINDOW, **kwargs):
        super().__init__(**kwargs)
        self.positions, self.size = positions, filters
        self.words = Embedding(vocabulary_size, word_dim)
        if positions:
            self.head_positions = Embedding(positions, position_dim)
            self.tail_positions = Embedding(positions, position_dim)
        self.conv = Conv1D(window, token_size(positions, word_dim, position_dim), filters)
        self.built = True

    def params(self) -> dict:
        names = ["words"] + (["head_positions", "tail_positions"] if self.positions else [])
        params = {f"{name}.embeddings": getattr(self, name).embeddings for name in names}
        return {**params, "conv.kernel": self.conv.kernel, "conv.bias": self.conv.bias}

    def function(self, params: dict, tokens, prefix: str = ""):
        """f_θ(tokens), (N, filters), with θ read from ``params[prefix + canonical name]``."""
        tokens = ops.cast(tokens, "int32")
        x = lookup(params[prefix + "words.embeddings"], tokens[..., 0])
        if self.positions:
            x = ops.concatenate([x, lookup(params[prefix + "head_positions.embeddings"], tokens[..., 1]),
                                 lookup(params[prefix + "tail_positions.embeddings"], tokens[..., 2])], axis=-1)
        h = ops.relu(conv1d(x, params[prefix + "conv.kernel"], params[prefix + "conv.bias"]))
        return ops.max(h, axis=1)  # max-pool over the sentence

    def call(self, tokens, training=False):
        return self.function(self.params(), tokens)


class BagOfEmbeddings(keras.layers.Layer):
    """f(x) = the mean word embedding of x's tokens, padding left out (positions ignored)."""

    def __init__(self, vocabulary_size: int, positions: int = 0, word_dim: int = WORD_DIM, **kwargs):
        super().__init__(**kwargs)
        self.size = word_dim
        self.words = Embedding(vocabulary_size, word_dim)
        self.built = True

    def params(self) -> dict:
        return {"words.embeddings": self.words.embeddings}

    def function(self, params: dict, tokens, prefix: str = ""):
        words = ops.cast(tokens[..., 0], "int32")
        x = lookup(params[prefix + "words.embeddings"], words)
        mask = ops.cast(words != PAD, x.dtype)[..., None]
        return ops.sum(x * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1)

    def call(self, tokens, training=False):
        return self.function(self.params(), tokens)


def build_encoder(encoder: str, vocabulary_size: int, positions: int = 0) -> keras.layers.Layer:
    """``"cnn"`` or ``"bag"`` (``encoders.ENCODERS``) for a vocabulary and a number of position ids."""
    check_encoder(encoder)
    return (TextCNN if encoder == "cnn" else BagOfEmbeddings)(vocabulary_size, positions)


class TextClassifier(keras.layers.Layer):
    """MAML's network on text: an encoder and a linear head to ``way`` logits, as a function of θ."""

    metric_name = "accuracy"

    def __init__(self, way: int, encoder: str, vocabulary_size: int, positions: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.encoder = build_encoder(encoder, vocabulary_size, positions)
        self.head = dense(way, embedding_size(encoder))
        self.built = True

    def params(self) -> dict:
        params = {f"encoder.{name}": v for name, v in self.encoder.params().items()}
        return {**params, "head.kernel": self.head.kernel, "head.bias": self.head.bias}

    def forward(self, params: dict, x, reference=None):
        """Logits (N, way). ``reference`` is ignored: no BatchNorm, so nothing flows between examples."""
        return ops.matmul(self.encoder.function(params, x, "encoder."), params["head.kernel"]) + params["head.bias"]

    # The image classifier's cross-entropy and accuracy: a classifier's loss does not depend on its input.
    loss, metric = Conv4Classifier.loss, Conv4Classifier.metric

    def call(self, x):
        return self.forward(self.params(), x)
