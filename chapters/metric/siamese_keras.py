"""Siamese networks (Koch, Zemel & Salakhutdinov, ICML Deep Learning Workshop 2015) in Keras 3.

Sec. 3.1: p(x1, x2) = sigma(sum_j alpha_j |f(x1)_j - f(x2)_j| + b), one network f for both twins,
trained with binary cross-entropy on every query x support pair (Sec. 3.2); a query takes the
class of its most similar support example. See ``siamese_torch.py`` for the full commentary (and
why f is the chapter's Conv-4); the names and structure here are the same.
``EpisodicModel.train_step`` trains on :meth:`SiameseNet.episode_loss` because the model defines one.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from common.backbones.conv4_keras import Conv4, torch_like_init
from common.episodic_keras import EpisodicModel


def pair_logits(query_embeddings, support_embeddings, alpha, bias):
    """Sec. 3.1 before the sigmoid, for every (query, support) pair: (n, D), (m, D) -> (n, m).

    ``alpha`` (D,) and ``bias`` () are the weight and bias of the Dense(D -> 1) head.
    """
    distance = ops.abs(query_embeddings[:, None, :] - support_embeddings[None, :, :])  # (n, m, D)
    return ops.matmul(distance, alpha) + bias


def class_logits(pair_logits, support_y, way):
    """The one-shot rule generalised to K shots: each class's best pair score, (n_query, way).

    The sigmoid is monotonic, so the most similar support example is the one with the largest
    pre-sigmoid score.
    """
    members = ops.equal(support_y[:, None], ops.arange(way, dtype=support_y.dtype))  # (n_support, way)
    scores = ops.where(members[None], pair_logits[:, :, None], float("-inf"))  # other classes: -inf
    return ops.max(scores, axis=1)


def pair_loss(pair_logits, support_y, query_y):
    """Sec. 3.2: binary cross-entropy over every (query, support) pair, both kinds weighted equally.

    L = 1/2 * mean_{same pairs} -log p  +  1/2 * mean_{different pairs} -log(1 - p)
    (only 1/N of an N-way episode's pairs are "same"; see ``siamese_torch.py``).
    """
    same = ops.cast(ops.equal(query_y[:, None], support_y[None, :]), pair_logits.dtype)  # the targets
    bce = ops.binary_crossentropy(same, pair_logits, from_logits=True)  # element-wise, no reduction
    return 0.5 * (ops.sum(bce * same) / ops.sum(same) + ops.sum(bce * (1 - same)) / ops.sum(1 - same))


class SiameseNet(EpisodicModel):
    """``embedding_size`` is the encoder's output size: 64 for Conv-4 on 28x28 Omniglot."""

    def __init__(self, in_channels: int = 1, encoder: keras.layers.Layer | None = None,
                 embedding_size: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder if encoder is not None else Conv4(in_channels)
        # The alpha_j of Sec. 3.1, and a bias, initialised as PyTorch's nn.Linear. We read its
        # kernel directly rather than calling the layer, so build it here: Keras would otherwise
        # create the weights on the first call, which never comes.
        bound = 1 / math.sqrt(embedding_size)
        self.head = keras.layers.Dense(1, kernel_initializer=torch_like_init(),
                                       bias_initializer=keras.initializers.RandomUniform(-bound, bound))
        self.head.build((None, embedding_size))

    def episode_pair_logits(self, support_x, query_x, training=False):
        """Every (query, support) pair's score, (n_query, n_support)."""
        # One encoder pass over the whole episode (BatchNorm statistics of support + query).
        embeddings = self.encoder(ops.concatenate([support_x, query_x], axis=0), training=training)
        n_support = ops.shape(support_x)[0]
        support, query = embeddings[:n_support], embeddings[n_support:]
        return pair_logits(query, support, self.head.kernel[:, 0], self.head.bias[0])

    def call(self, inputs, training=False):
        """Query class logits, (n_query, way): for prediction and accuracy."""
        support_x, support_y, query_x = inputs
        way = ops.cast(ops.max(support_y), "int32") + 1
        return class_logits(self.episode_pair_logits(support_x, query_x, training), support_y, way)

    def episode_loss(self, support_x, support_y, query_x, query_y, training=True):
        """(pair loss, class logits): the learner trains on the first, measures accuracy with the second."""
        way = ops.cast(ops.max(support_y), "int32") + 1
        scores = self.episode_pair_logits(support_x, query_x, training)
        return pair_loss(scores, support_y, query_y), class_logits(scores, support_y, way)
