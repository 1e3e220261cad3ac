"""Matching Networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, NeurIPS 2016) in TensorFlow.

Eq. (1): ŷ = sum_i a(x̂, x_i) y_i, a vote of the one-hot support labels; Eq. (2): a(x̂, x_i) =
softmax_i(c(f(x̂), g(x_i))), c the cosine similarity or one of its labelled deviations. With
``fce=True`` g and f read the whole support set through LSTMs. See ``matching_torch.py`` for the
full commentary and equations; the names and structure here are the same.
The LSTMs are ``common.tf_layers.LSTMCell`` and ``BidirectionalLSTM``: the gate equations
written out in ``lstm_cell``, the steps run by ``tf.scan``.
"""

from __future__ import annotations

import tensorflow as tf

from chapters.metric import matching
from chapters.metric.matching import DISTANCES, EPSILON  # noqa: F401 (DISTANCES: what MatchingNet accepts)
from chapters.metric.protonet_tf import squared_euclidean
from common.backbones.conv4_tf import Conv4
from common.tf_layers import BidirectionalLSTM, LSTMCell


def unit_length(x):
    """Each row divided by its length, x_i / |x_i|, (n, D)."""
    return x / tf.sqrt(tf.reduce_sum(x * x, axis=-1, keepdims=True) + EPSILON)


def cosine_similarity(a, b):
    """c(a_i, b_j) = a_i . b_j / (|a_i| |b_j|) for every pair: (n, D), (m, D) -> (n, m)."""
    return tf.matmul(unit_length(a), unit_length(b), transpose_b=True)


# Each of matching.DISTANCES, computed here; matching.similarity chooses and scales.
MEASURES = {
    "cosine": cosine_similarity,
    "squared_euclidean": lambda query, support: -squared_euclidean(query, support),
    # |f(x̂)| c(f(x̂), g(x_i)) = f(x̂) . g(x_i) / |g(x_i)|: only the support is normalised.
    "cosine_times_query_norm": lambda query, support: tf.matmul(query, unit_length(support), transpose_b=True),
}


def similarity(query_embeddings, support_embeddings, scale: float = 1.0, distance: str = "cosine"):
    """What Eq. (2) puts inside its softmax, (n_query, n_support): see ``matching.similarity``."""
    return matching.similarity(MEASURES, query_embeddings, support_embeddings, scale, distance)


def attention(query_embeddings, support_embeddings, scale: float = 1.0, distance: str = "cosine"):
    """Eq. (2): a(x̂, x_i), a softmax over the support set of ``similarity``, (n_query, n_support)."""
    return tf.nn.softmax(similarity(query_embeddings, support_embeddings, scale, distance), axis=1)


def label_distribution(weights, support_y, way):
    """Eq. (1): ŷ = sum_i a(x̂, x_i) y_i with one-hot y_i, (n_query, way); each row sums to 1."""
    return tf.matmul(weights, tf.one_hot(support_y, way, dtype=weights.dtype))


def log_label_distribution(similarities, support_y, way):
    """log ŷ of Eqs. (1)-(2) in one step, (n_query, way): logsumexp_{i: y_i = c} s_i - logsumexp_i s_i,
    without forming the attention weights, which can underflow (see matching_torch.py)."""
    members = support_y[:, None] == tf.range(way, dtype=support_y.dtype)  # (n_support, way)
    minus_inf = tf.constant(float("-inf"), similarities.dtype)
    per_class = tf.where(members[None], similarities[:, :, None], minus_inf)  # other classes: -inf
    return tf.reduce_logsumexp(per_class, axis=1) - tf.reduce_logsumexp(similarities, axis=1, keepdims=True)


class MatchingNet(tf.Module):
    def __init__(self, in_channels: int = 1, encoder: tf.Module | None = None, fce: bool = False,
                 fce_steps: int = 5, embedding_size: int = 64,
                 cosine_scale: float = 1.0, distance: str = "cosine", dtype=tf.float32, seed=None):
        """``embedding_size`` is the encoder's output size D, which the FCE LSTMs need to know;
        ``cosine_scale`` s multiplies the cosines of Eq. (2) (s = 1 is the equation), and
        ``distance="squared_euclidean"`` or ``"cosine_times_query_norm"`` replaces them (see
        matching_torch.py for all three)."""
        super().__init__()
        # One generator seeds the encoder and then the LSTMs (the encoder's weights are then the
        # same as ProtoNet's for the same seed).
        rng = tf.random.Generator.from_seed(seed) if isinstance(seed, int) else seed
        self.encoder = encoder if encoder is not None else Conv4(in_channels, dtype=dtype, seed=rng)
        self.fce, self.fce_steps, self.cosine_scale, self.distance = fce, fce_steps, cosine_scale, distance
        if fce:
            # Hidden size D, for the skip connections. The attLSTM is a standard LSTMCell(2D, D)
            # with input [f'(x̂), r_{k-1}] and state h_{k-1}: the paper's cell with its weight
            # rows regrouped (see matching_torch.py).
            self.support_lstm = BidirectionalLSTM(embedding_size, embedding_size, dtype=dtype, seed=rng)
            self.query_lstm = LSTMCell(2 * embedding_size, embedding_size, dtype=dtype, seed=rng)

    def fce_support(self, support):
        """g(x_i, S) = h_fwd_i + h_bwd_i + g'(x_i): the support set read as one sequence, (n, D)."""
        forward, backward = self.support_lstm(support[None])  # (1, n, D) each
        return forward[0] + backward[0] + support

    def fce_query(self, query, support):
        """f(x̂, S) = attLSTM(f'(x̂), g(S), K), every query at once, (n_query, D)."""
        h_hat, c = tf.zeros_like(query), tf.zeros_like(query)
        for _ in range(self.fce_steps):
            h = h_hat + query  # h_{k-1} = ĥ_{k-1} + f'(x̂)
            read = tf.matmul(tf.nn.softmax(tf.matmul(h, support, transpose_b=True), axis=1), support)
            h_hat, c = self.query_lstm(tf.concat([query, read], axis=1), (h, c))
        return h_hat + query

    def embed(self, support_x, query_x, training: bool = False):
        """(g(x_i, S) for the support set, f(x̂, S) for the queries); without FCE g = f = Conv-4."""
        # One encoder pass over the whole episode (BatchNorm statistics of support + query).
        embeddings = self.encoder(tf.concat([support_x, query_x], 0), training=training)
        n_support = tf.shape(support_x)[0]
        support, query = embeddings[:n_support], embeddings[n_support:]
        if self.fce:
            support = self.fce_support(support)
            query = self.fce_query(query, support)
        return support, query

    def __call__(self, support_x, support_y, query_x, training: bool = False):
        """Query "logits" log ŷ, (n_query, way)."""
        way = tf.cast(tf.reduce_max(support_y), tf.int32) + 1
        support, query = self.embed(support_x, query_x, training=training)
        # log ŷ: the learner's softmax cross-entropy is then the paper's -log ŷ[true class],
        # because softmax(log ŷ) = ŷ when ŷ sums to 1 (see matching_torch.py).
        return log_label_distribution(similarity(query, support, self.cosine_scale, self.distance), support_y, way)
