"""Matching Networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, NeurIPS 2016) in Keras 3.

Eq. (1): ŷ = sum_i a(x̂, x_i) y_i, a vote of the one-hot support labels; Eq. (2): a(x̂, x_i) =
softmax_i(c(f(x̂), g(x_i))), c the cosine similarity or one of its labelled deviations. With
``fce=True`` g and f read the whole support set through LSTMs. See ``matching_torch.py`` for the
full commentary and equations; the names and structure here are the same.
``train_step`` (one Adam step on the query cross-entropy) is ``EpisodicModel``'s.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from chapters.metric import matching
from chapters.metric.matching import DISTANCES, EPSILON  # noqa: F401 (DISTANCES: what MatchingNet accepts)
from chapters.metric.protonet_keras import squared_euclidean
from common.backbones.conv4_keras import Conv4
from common.episodic_keras import EpisodicModel


def unit_length(x):
    """Each row divided by its length, x_i / |x_i|, (n, D)."""
    return x / ops.sqrt(ops.sum(x * x, axis=-1, keepdims=True) + EPSILON)


def cosine_similarity(a, b):
    """c(a_i, b_j) = a_i . b_j / (|a_i| |b_j|) for every pair: (n, D), (m, D) -> (n, m)."""
    return ops.matmul(unit_length(a), ops.transpose(unit_length(b)))


# Each of matching.DISTANCES, computed here; matching.similarity chooses and scales.
MEASURES = {
    "cosine": cosine_similarity,
    "squared_euclidean": lambda query, support: -squared_euclidean(query, support),
    # |f(x̂)| c(f(x̂), g(x_i)) = f(x̂) . g(x_i) / |g(x_i)|: only the support is normalised.
    "cosine_times_query_norm": lambda query, support: ops.matmul(query, ops.transpose(unit_length(support))),
}


def similarity(query_embeddings, support_embeddings, scale: float = 1.0, distance: str = "cosine"):
    """What Eq. (2) puts inside its softmax, (n_query, n_support): see ``matching.similarity``."""
    return matching.similarity(MEASURES, query_embeddings, support_embeddings, scale, distance)


def attention(query_embeddings, support_embeddings, scale: float = 1.0, distance: str = "cosine"):
    """Eq. (2): a(x̂, x_i), a softmax over the support set of ``similarity``, (n_query, n_support)."""
    return ops.softmax(similarity(query_embeddings, support_embeddings, scale, distance), axis=1)


def label_distribution(weights, support_y, way):
    """Eq. (1): ŷ = sum_i a(x̂, x_i) y_i with one-hot y_i, (n_query, way); each row sums to 1."""
    return ops.matmul(weights, ops.one_hot(support_y, way, dtype=weights.dtype))


def log_label_distribution(similarities, support_y, way):
    """log ŷ of Eqs. (1)-(2) in one step, (n_query, way): logsumexp_{i: y_i = c} s_i - logsumexp_i s_i,
    without forming the attention weights, which can underflow (see matching_torch.py)."""
    members = ops.equal(support_y[:, None], ops.arange(way, dtype=support_y.dtype))  # (n_support, way)
    per_class = ops.where(members[None], similarities[:, :, None], float("-inf"))  # other classes: -inf
    return ops.logsumexp(per_class, axis=1) - ops.logsumexp(similarities, axis=1, keepdims=True)


def torch_like_lstm(units: int) -> dict:
    """PyTorch's LSTM initialisation, every weight uniform in +-1/sqrt(units), no forget-gate bias
    of 1 (Keras' default is Glorot, orthogonal and unit_forget_bias). One initializer object per
    weight: an unseeded Keras initializer returns the same numbers at every call."""
    def uniform():
        return keras.initializers.RandomUniform(-1 / math.sqrt(units), 1 / math.sqrt(units))
    return dict(kernel_initializer=uniform(), recurrent_initializer=uniform(),
                bias_initializer=uniform(), unit_forget_bias=False)


class MatchingNet(EpisodicModel):
    def __init__(self, in_channels: int = 1, encoder: keras.layers.Layer | None = None, fce: bool = False,
                 fce_steps: int = 5, embedding_size: int = 64,
                 cosine_scale: float = 1.0, distance: str = "cosine", **kwargs):
        """``embedding_size`` is the encoder's output size D, which the FCE LSTMs need to know;
        ``cosine_scale`` s multiplies the cosines of Eq. (2) (s = 1 is the equation), and
        ``distance="squared_euclidean"`` or ``"cosine_times_query_norm"`` replaces them (see
        matching_torch.py for all three)."""
        super().__init__(**kwargs)
        self.encoder = encoder if encoder is not None else Conv4(in_channels)
        self.fce, self.fce_steps, self.cosine_scale, self.distance = fce, fce_steps, cosine_scale, distance
        if fce:
            # Hidden size D, for the skip connections. merge_mode=None keeps the two directions
            # apart, as the paper writes them. The attLSTM is a standard LSTMCell(D) called on
            # input [f'(x̂), r_{k-1}] (2D wide) with state h_{k-1}: the paper's cell with its
            # weight rows regrouped (see matching_torch.py).
            lstm = keras.layers.LSTM(embedding_size, return_sequences=True, **torch_like_lstm(embedding_size))
            self.support_lstm = keras.layers.Bidirectional(lstm, merge_mode=None)
            self.query_lstm = keras.layers.LSTMCell(embedding_size, **torch_like_lstm(embedding_size))

    def fce_support(self, support, training=False):
        """g(x_i, S) = h_fwd_i + h_bwd_i + g'(x_i): the support set read as one sequence, (n, D)."""
        forward, backward = self.support_lstm(support[None], training=training)  # (1, n, D) each
        return forward[0] + backward[0] + support

    def fce_query(self, query, support, training=False):
        """f(x̂, S) = attLSTM(f'(x̂), g(S), K), every query at once, (n_query, D)."""
        h_hat, c = ops.zeros_like(query), ops.zeros_like(query)
        for _ in range(self.fce_steps):
            h = h_hat + query  # h_{k-1} = ĥ_{k-1} + f'(x̂)
            read = ops.matmul(ops.softmax(ops.matmul(h, ops.transpose(support)), axis=1), support)
            h_hat, (_, c) = self.query_lstm(ops.concatenate([query, read], axis=1), [h, c], training=training)
        return h_hat + query

    def embed(self, support_x, query_x, training=False):
        """(g(x_i, S) for the support set, f(x̂, S) for the queries); without FCE g = f = Conv-4."""
        # One encoder pass over the whole episode (BatchNorm statistics of support + query).
        embeddings = self.encoder(ops.concatenate([support_x, query_x], axis=0), training=training)
        n_support = ops.shape(support_x)[0]
        support, query = embeddings[:n_support], embeddings[n_support:]
        if self.fce:
            support = self.fce_support(support, training=training)
            query = self.fce_query(query, support, training=training)
        return support, query

    def call(self, inputs, training=False):
        """Query "logits" log ŷ, (n_query, way)."""
        support_x, support_y, query_x = inputs
        way = ops.cast(ops.max(support_y), "int32") + 1
        support, query = self.embed(support_x, query_x, training=training)
        # log ŷ: the learner's softmax cross-entropy is then the paper's -log ŷ[true class],
        # because softmax(log ŷ) = ŷ when ŷ sums to 1 (see matching_torch.py).
        return log_label_distribution(similarity(query, support, self.cosine_scale, self.distance), support_y, way)
