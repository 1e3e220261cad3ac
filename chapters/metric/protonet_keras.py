"""Prototypical Networks (Snell, Swersky & Zemel, NeurIPS 2017) in Keras 3.

Eq. (1): c_k = mean of the embedded support examples of class k.
Eq. (2): p(y = k | x) = softmax_k(-||f(x) - c_k||^2).
See ``protonet_torch.py`` for the full commentary; the names and structure here are the same.
``train_step`` (one Adam step on the query cross-entropy) is ``EpisodicModel``'s.
"""

from __future__ import annotations

import keras
from keras import ops

from common.backbones.conv4_keras import Conv4
from common.episodic_keras import EpisodicModel


def prototypes(embeddings, labels, way):
    """Eq. (1): the mean embedding of each class, (way, D)."""
    one_hot = ops.one_hot(labels, way, dtype=embeddings.dtype)  # (n_support, way)
    return ops.matmul(ops.transpose(one_hot), embeddings) / ops.sum(one_hot, axis=0)[:, None]


def squared_euclidean(a, b):
    """d(a_i, b_j) = ||a_i - b_j||^2 for every pair: (n, D), (m, D) -> (n, m)."""
    return ops.sum(ops.square(a[:, None, :] - b[None, :, :]), axis=-1)


class ProtoNet(EpisodicModel):
    def __init__(self, in_channels: int = 1, encoder: keras.layers.Layer | None = None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder if encoder is not None else Conv4(in_channels)

    def call(self, inputs, training=False):
        """Query logits, (n_query, way): Eq. (2) before the softmax."""
        support_x, support_y, query_x = inputs
        way = ops.cast(ops.max(support_y), "int32") + 1
        # One encoder pass over the whole episode (BatchNorm statistics of support + query).
        embeddings = self.encoder(ops.concatenate([support_x, query_x], axis=0), training=training)
        n_support = ops.shape(support_x)[0]
        support, query = embeddings[:n_support], embeddings[n_support:]
        return -squared_euclidean(query, prototypes(support, support_y, way))
