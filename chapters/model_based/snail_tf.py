"""SNAIL (Mishra, Rohaninejad, Chen & Abbeel, ICLR 2018) in TensorFlow.

Dense block (Algorithm 1): concat(x, tanh(conv_f(x)) * sigmoid(conv_g(x))), causal convolutions of
kernel 2 and dilation R. TC block (Algorithm 2): dilations 2, 4, ..., 2^ceil(log2 T). Attention
block (Algorithm 3): concat(x, causally masked softmax(q k^T / sqrt(K)) v).
See ``snail_torch.py`` for the full commentary (why the support rows and the query rows go
through every block side by side); the names and structure here are the same.
"""

from __future__ import annotations

import math

import tensorflow as tf

from chapters.model_based import snail
from common.backbones.conv4_tf import Conv4
from common.tf_layers import Dense, _generator, _uniform


def shift(support, dilation):
    """The support rows with ``dilation`` zero rows before them, (S + R, C)."""
    return tf.pad(support, [[dilation, 0], [0, 0]])


class CausalConv1d(tf.Module):
    """Kernel 2, dilation R: ``y_t = x_{t-R} @ kernel[0] + x_t @ kernel[1] + bias``; ``kernel`` (2, in, out)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int, dtype=tf.float32, seed=None):
        super().__init__()
        rng = _generator(seed)
        self.dilation = dilation
        self.kernel = tf.Variable(_uniform(rng, (2, in_channels, out_channels), 2 * in_channels, dtype), name="kernel")
        self.bias = tf.Variable(_uniform(rng, (out_channels,), 2 * in_channels, dtype), name="bias")

    def __call__(self, support, query):
        padded = shift(support, self.dilation)
        n_support = tf.shape(support)[0]
        past_support, past_query = padded[:n_support], padded[n_support]  # x_{t-R}
        kernel_past, kernel_now = self.kernel[0], self.kernel[1]
        return (past_support @ kernel_past + support @ kernel_now + self.bias,
                past_query[None] @ kernel_past + query @ kernel_now + self.bias)


class DenseBlock(tf.Module):
    """Algorithm 1: concat(x, tanh(conv_f(x)) * sigmoid(conv_g(x))), D new channels."""

    def __init__(self, in_channels: int, dilation: int, filters: int, dtype=tf.float32, seed=None):
        super().__init__()
        self.filter = CausalConv1d(in_channels, filters, dilation, dtype, seed)
        self.gate = CausalConv1d(in_channels, filters, dilation, dtype, seed)

    def __call__(self, support, query):
        (f_support, f_query), (g_support, g_query) = self.filter(support, query), self.gate(support, query)
        return (tf.concat([support, tf.tanh(f_support) * tf.sigmoid(g_support)], 1),
                tf.concat([query, tf.tanh(f_query) * tf.sigmoid(g_query)], 1))


class TCBlock(tf.Module):
    """Algorithm 2: dense blocks of dilations 2, 4, ..., 2^ceil(log2 T)."""

    def __init__(self, in_channels: int, sequence_length: int, filters: int, dtype=tf.float32, seed=None):
        super().__init__()
        self.blocks = [DenseBlock(in_channels + i * filters, dilation, filters, dtype, seed)
                       for i, dilation in enumerate(snail.dilations(sequence_length))]

    def __call__(self, support, query):
        for block in self.blocks:
            support, query = block(support, query)
        return support, query


def causal_mask(length):
    """(T, T) booleans, True where position t may read position s: s <= t."""
    return tf.linalg.band_part(tf.ones((length, length), tf.bool), -1, 0)


class AttentionBlock(tf.Module):
    """Algorithm 3: concat(x, softmax(q k^T / sqrt(K), causally masked) v), V new channels; also
    each query's attention weights over (support positions, itself), (Q, S + 1)."""

    def __init__(self, in_channels: int, key_size: int, value_size: int, dtype=tf.float32, seed=None):
        super().__init__()
        self.keys = Dense(in_channels, key_size, dtype=dtype, seed=seed)
        self.queries = Dense(in_channels, key_size, dtype=dtype, seed=seed)
        self.values = Dense(in_channels, value_size, dtype=dtype, seed=seed)
        self.scale = 1 / math.sqrt(key_size)

    def __call__(self, support, query):
        k_support, q_support, v_support = self.keys(support), self.queries(support), self.values(support)
        k_query, q_query, v_query = self.keys(query), self.queries(query), self.values(query)
        # The support sequence: position t reads positions s <= t.
        logits = tf.matmul(q_support, k_support, transpose_b=True) * self.scale
        logits = tf.where(causal_mask(tf.shape(support)[0]), logits, tf.constant(-math.inf, logits.dtype))
        read_support = tf.nn.softmax(logits, 1) @ v_support
        # Each query, one step after the support: it reads every support position and itself.
        logits = tf.concat([tf.matmul(q_query, k_support, transpose_b=True),
                            tf.reduce_sum(q_query * k_query, 1, keepdims=True)], 1) * self.scale
        attention = tf.nn.softmax(logits, 1)
        read_query = attention[:, :-1] @ v_support + attention[:, -1:] * v_query
        return tf.concat([support, read_support], 1), tf.concat([query, read_query], 1), attention


def check_episode(support_y, query_x, way: int, shot: int) -> list:
    """``snail.check_episode`` on concrete values (a ``ConfigError`` before any computation); inside
    a traced ``tf.function`` the sizes and labels are known only when it runs, so the same checks,
    with the same messages, become assertions that run first. Returns them, for control dependencies."""
    if tf.executing_eagerly():
        snail.check_episode(support_y.numpy() if hasattr(support_y, "numpy") else support_y,
                            int(tf.shape(query_x)[0]), way, shot)
        return []
    n_support, n_query = tf.shape(support_y)[0], tf.shape(query_x)[0]
    return [tf.debugging.assert_positive(n_query, message=snail.NO_QUERY),
            tf.debugging.assert_less_equal(n_support, way * shot, message=snail.too_long("more", way, shot)),
            tf.debugging.assert_non_negative(support_y, message=snail.labels_outside([], way)),
            tf.debugging.assert_less(support_y, tf.cast(way, support_y.dtype), message=snail.labels_outside([], way))]


def embed(encoder: Conv4, support_x, query_x, training: bool):
    """The episode's images, support then queries, through the Conv-4: (S + Q, 64). BatchNorm takes
    the episode's statistics: the whole batch's in training, the support set's alone at test time,
    never the running averages (see ``snail_torch.embed``)."""
    images = tf.concat([support_x, query_x], 0)
    return encoder(images, training=True) if training else encoder(images, reference_rows=tf.shape(support_x)[0])


class SNAIL(tf.Module):
    """The Omniglot architecture of Mishra et al. (Appendix), for ``way``-way ``shot``-shot episodes:

        embedding -> Attention(64, 32) -> TC(T, 128) -> Attention(256, 128) -> TC(T, 128)
                  -> Attention(512, 256) -> linear map to N logits,   T = N*K + 1.
    """

    def __init__(self, in_channels: int = 1, way: int = 5, shot: int = 1, encoder: tf.Module | None = None,
                 embedding_size: int = 64, dtype=tf.float32, seed=None):
        super().__init__()
        rng = _generator(seed)
        self.way, self.shot = way, shot
        self.encoder = encoder if encoder is not None else Conv4(in_channels, dtype=dtype, seed=rng)
        blocks, features = snail.build_blocks(way, shot, embedding_size, AttentionBlock, TCBlock, dtype, rng)
        self.attention1, self.tc1, self.attention2, self.tc2, self.attention3 = blocks
        self.classifier = Dense(features, way, dtype=dtype, seed=rng)

    def read(self, support_x, support_y, query_x, training: bool = False):
        """(query logits (Q, way), the three attention blocks' query weights, each (Q, S + 1), and the
        support sequence's features after the last block, (S, C): what every step of it carries)."""
        with tf.control_dependencies(check_episode(support_y, query_x, self.way, self.shot)):
            embeddings = embed(self.encoder, support_x, query_x, training)
        n_support = tf.shape(support_x)[0]
        support = tf.concat([embeddings[:n_support], tf.one_hot(support_y, self.way, dtype=embeddings.dtype)], 1)
        query = tf.pad(embeddings[n_support:], [[0, 0], [0, self.way]])  # the query's label is unknown: zeros
        support, query, attention = snail.through_blocks(self, support, query)
        return self.classifier(query), attention, support

    def __call__(self, support_x, support_y, query_x, training: bool = False):
        return self.read(support_x, support_y, query_x, training)[0]
