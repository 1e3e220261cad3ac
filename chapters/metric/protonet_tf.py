"""Prototypical Networks (Snell, Swersky & Zemel, NeurIPS 2017) in TensorFlow.

Eq. (1): c_k = mean of the embedded support examples of class k.
Eq. (2): p(y = k | x) = softmax_k(-||f(x) - c_k||^2).
See ``protonet_torch.py`` for the full commentary; the names and structure here are the same.
"""

from __future__ import annotations

import tensorflow as tf

from common.backbones.conv4_tf import Conv4


def prototypes(embeddings, labels, way):
    """Eq. (1): the mean embedding of each class, (way, D)."""
    sums = tf.math.unsorted_segment_sum(embeddings, labels, way)
    counts = tf.math.unsorted_segment_sum(tf.ones_like(labels, embeddings.dtype), labels, way)
    return sums / counts[:, None]


def squared_euclidean(a, b):
    """d(a_i, b_j) = ||a_i - b_j||^2 for every pair: (n, D), (m, D) -> (n, m)."""
    return tf.reduce_sum(tf.square(a[:, None, :] - b[None, :, :]), axis=-1)


class ProtoNet(tf.Module):
    def __init__(self, in_channels: int = 1, encoder: tf.Module | None = None, dtype=tf.float32, seed=None):
        super().__init__()
        self.encoder = encoder if encoder is not None else Conv4(in_channels, dtype=dtype, seed=seed)

    def __call__(self, support_x, support_y, query_x, training: bool = False):
        """Query logits, (n_query, way): Eq. (2) before the softmax."""
        way = tf.reduce_max(support_y) + 1
        # One encoder pass over the whole episode (BatchNorm statistics of support + query).
        embeddings = self.encoder(tf.concat([support_x, query_x], 0), training=training)
        n_support = tf.shape(support_x)[0]
        support, query = embeddings[:n_support], embeddings[n_support:]
        return -squared_euclidean(query, prototypes(support, support_y, way))
