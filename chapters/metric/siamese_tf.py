"""Siamese networks (Koch, Zemel & Salakhutdinov, ICML Deep Learning Workshop 2015) in TensorFlow.

Sec. 3.1: p(x1, x2) = sigma(sum_j alpha_j |f(x1)_j - f(x2)_j| + b), one network f for both twins,
trained with binary cross-entropy on every query x support pair (Sec. 3.2); a query takes the
class of its most similar support example. See ``siamese_torch.py`` for the full commentary (and
why f is the chapter's Conv-4); the names and structure here are the same.
"""

from __future__ import annotations

import tensorflow as tf

from common.backbones.conv4_tf import Conv4
from common.tf_layers import Dense


def pair_logits(query_embeddings, support_embeddings, alpha, bias):
    """Sec. 3.1 before the sigmoid, for every (query, support) pair: (n, D), (m, D) -> (n, m).

    ``alpha`` (D,) and ``bias`` () are the weight and bias of the Dense(D -> 1) head.
    """
    distance = tf.abs(query_embeddings[:, None, :] - support_embeddings[None, :, :])  # (n, m, D)
    return tf.linalg.matvec(distance, alpha) + bias


def class_logits(pair_logits, support_y, way):
    """The one-shot rule generalised to K shots: each class's best pair score, (n_query, way).

    The sigmoid is monotonic, so the most similar support example is the one with the largest
    pre-sigmoid score.
    """
    members = support_y[:, None] == tf.range(way, dtype=support_y.dtype)  # (n_support, way)
    minus_inf = tf.constant(float("-inf"), pair_logits.dtype)
    scores = tf.where(members[None], pair_logits[:, :, None], minus_inf)  # other classes: -inf
    return tf.reduce_max(scores, axis=1)


def pair_loss(pair_logits, support_y, query_y):
    """Sec. 3.2: binary cross-entropy over every (query, support) pair, both kinds weighted equally.

    L = 1/2 * mean_{same pairs} -log p  +  1/2 * mean_{different pairs} -log(1 - p)
    (only 1/N of an N-way episode's pairs are "same"; see ``siamese_torch.py``).
    """
    same = tf.cast(query_y[:, None] == support_y[None, :], pair_logits.dtype)  # the targets
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=same, logits=pair_logits)
    return 0.5 * (tf.reduce_sum(bce * same) / tf.reduce_sum(same)
                  + tf.reduce_sum(bce * (1 - same)) / tf.reduce_sum(1 - same))


class SiameseNet(tf.Module):
    """``embedding_size`` is the encoder's output size: 64 for Conv-4 on 28x28 Omniglot."""

    def __init__(self, in_channels: int = 1, encoder: tf.Module | None = None, embedding_size: int = 64,
                 dtype=tf.float32, seed=None):
        super().__init__()
        # One generator for encoder and head: one seed fixes the whole model.
        rng = tf.random.Generator.from_seed(seed) if isinstance(seed, int) else seed
        self.encoder = encoder if encoder is not None else Conv4(in_channels, dtype=dtype, seed=rng)
        self.head = Dense(embedding_size, 1, dtype=dtype, seed=rng)  # the alpha_j of Sec. 3.1, and a bias

    def episode_pair_logits(self, support_x, query_x, training: bool = False):
        """Every (query, support) pair's score, (n_query, n_support)."""
        # One encoder pass over the whole episode (BatchNorm statistics of support + query).
        embeddings = self.encoder(tf.concat([support_x, query_x], 0), training=training)
        n_support = tf.shape(support_x)[0]
        support, query = embeddings[:n_support], embeddings[n_support:]
        return pair_logits(query, support, self.head.kernel[:, 0], self.head.bias[0])

    def __call__(self, support_x, support_y, query_x, training: bool = False):
        """Query class logits, (n_query, way): for prediction and accuracy."""
        way = tf.reduce_max(support_y) + 1
        return class_logits(self.episode_pair_logits(support_x, query_x, training), support_y, way)

    def episode_loss(self, support_x, support_y, query_x, query_y, training: bool = True):
        """(pair loss, class logits): the learner trains on the first, measures accuracy with the second."""
        way = tf.reduce_max(support_y) + 1
        scores = self.episode_pair_logits(support_x, query_x, training)
        return pair_loss(scores, support_y, query_y), class_logits(scores, support_y, way)
