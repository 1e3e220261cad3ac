"""SNAIL (Mishra, Rohaninejad, Chen & Abbeel, ICLR 2018) in Keras 3.

Dense block (Algorithm 1): concat(x, tanh(conv_f(x)) * sigmoid(conv_g(x))), causal convolutions of
kernel 2 and dilation R. TC block (Algorithm 2): dilations 2, 4, ..., 2^ceil(log2 T). Attention
block (Algorithm 3): concat(x, causally masked softmax(q k^T / sqrt(K)) v).
See ``snail_torch.py`` for the full commentary; the names and structure here are the same.
``train_step`` (one Adam step on the cross-entropy of every query) is ``EpisodicModel``'s.
"""

from __future__ import annotations

import math

import keras
from keras import ops
import tensorflow as tf

from chapters.model_based import snail
from chapters.model_based import snail_tf
from common.backbones.conv4_keras import Conv4, torch_like_init
from common.episodic_keras import EpisodicModel


def shift(support, dilation):
    """The support rows with ``dilation`` zero rows before them, (S + R, C)."""
    return ops.pad(support, [[dilation, 0], [0, 0]])


def check_episode(support_y, query_x, way: int, shot: int) -> list:
    """``snail.check_episode`` before any computation; in a compiled step, assertions with the same
    messages (the book's Keras runs on TensorFlow: ``snail_tf.check_episode``)."""
    return snail_tf.check_episode(support_y, query_x, way, shot)


def _dense(units: int):
    """A dense layer initialised as PyTorch's ``nn.Linear``: kernel and bias uniform in +-1/sqrt(fan_in)."""
    return keras.layers.Dense(units, kernel_initializer=torch_like_init())


class CausalConv1d(keras.layers.Layer):
    """Kernel 2, dilation R: ``y_t = x_{t-R} @ kernel[0] + x_t @ kernel[1] + bias``; ``kernel`` (2, in, out)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int, **kwargs):
        super().__init__(**kwargs)
        self.dilation = dilation
        bound = 1 / math.sqrt(2 * in_channels)
        self.kernel = self.add_weight(shape=(2, in_channels, out_channels), name="kernel",
                                      initializer=keras.initializers.RandomUniform(-bound, bound))
        self.bias = self.add_weight(shape=(out_channels,), name="bias",
                                    initializer=keras.initializers.RandomUniform(-bound, bound))

    def call(self, support, query):
        padded = shift(support, self.dilation)
        n_support = ops.shape(support)[0]
        past_support, past_query = padded[:n_support], padded[n_support:n_support + 1]  # x_{t-R}
        kernel_past, kernel_now = self.kernel[0], self.kernel[1]
        return (ops.matmul(past_support, kernel_past) + ops.matmul(support, kernel_now) + self.bias,
                ops.matmul(past_query, kernel_past) + ops.matmul(query, kernel_now) + self.bias)


class DenseBlock(keras.layers.Layer):
    """Algorithm 1: concat(x, tanh(conv_f(x)) * sigmoid(conv_g(x))), D new channels."""

    def __init__(self, in_channels: int, dilation: int, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filter = CausalConv1d(in_channels, filters, dilation)
        self.gate = CausalConv1d(in_channels, filters, dilation)

    def call(self, support, query):
        (f_support, f_query), (g_support, g_query) = self.filter(support, query), self.gate(support, query)
        return (ops.concatenate([support, ops.tanh(f_support) * ops.sigmoid(g_support)], 1),
                ops.concatenate([query, ops.tanh(f_query) * ops.sigmoid(g_query)], 1))


class TCBlock(keras.layers.Layer):
    """Algorithm 2: dense blocks of dilations 2, 4, ..., 2^ceil(log2 T)."""

    def __init__(self, in_channels: int, sequence_length: int, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [DenseBlock(in_channels + i * filters, dilation, filters)
                       for i, dilation in enumerate(snail.dilations(sequence_length))]

    def call(self, support, query):
        for block in self.blocks:
            support, query = block(support, query)
        return support, query


def causal_mask(length):
    """(T, T) booleans, True where position t may read position s: s <= t."""
    return ops.cast(ops.tril(ops.ones((length, length))), "bool")


class AttentionBlock(keras.layers.Layer):
    """Algorithm 3: concat(x, softmax(q k^T / sqrt(K), causally masked) v), V new channels; also
    each query's attention weights over (support positions, itself), (Q, S + 1)."""

    def __init__(self, in_channels: int, key_size: int, value_size: int, **kwargs):
        super().__init__(**kwargs)
        self.keys, self.queries, self.values = _dense(key_size), _dense(key_size), _dense(value_size)
        self.scale = 1 / math.sqrt(key_size)

    def call(self, support, query):
        k_support, q_support, v_support = self.keys(support), self.queries(support), self.values(support)
        k_query, q_query, v_query = self.keys(query), self.queries(query), self.values(query)
        # The support sequence: position t reads positions s <= t.
        logits = ops.matmul(q_support, ops.transpose(k_support)) * self.scale
        logits = ops.where(causal_mask(ops.shape(support)[0]), logits, ops.cast(-math.inf, logits.dtype))
        read_support = ops.matmul(ops.softmax(logits, axis=1), v_support)
        # Each query, one step after the support: it reads every support position and itself.
        logits = ops.concatenate([ops.matmul(q_query, ops.transpose(k_support)),
                                  ops.sum(q_query * k_query, axis=1, keepdims=True)], 1) * self.scale
        attention = ops.softmax(logits, axis=1)
        read_query = ops.matmul(attention[:, :-1], v_support) + attention[:, -1:] * v_query
        return ops.concatenate([support, read_support], 1), ops.concatenate([query, read_query], 1), attention


def embed(encoder: Conv4, support_x, query_x, training: bool):
    """The episode's images, support then queries, through the Conv-4: (S + Q, 64). BatchNorm takes
    the episode's statistics: the whole batch's in training, the support set's alone at test time,
    never the running averages (see ``snail_torch.embed``)."""
    images = ops.concatenate([support_x, query_x], axis=0)
    return encoder(images, training=True) if training else encoder(images, reference_rows=ops.shape(support_x)[0])


class SNAIL(EpisodicModel):
    """The Omniglot architecture of Mishra et al. (Appendix), for ``way``-way ``shot``-shot episodes:

        embedding -> Attention(64, 32) -> TC(T, 128) -> Attention(256, 128) -> TC(T, 128)
                  -> Attention(512, 256) -> linear map to N logits,   T = N*K + 1.
    """

    def __init__(self, in_channels: int = 1, way: int = 5, shot: int = 1, encoder: keras.layers.Layer | None = None,
                 embedding_size: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.way, self.shot = way, shot
        self.encoder = encoder if encoder is not None else Conv4(in_channels)
        blocks, _ = snail.build_blocks(way, shot, embedding_size, AttentionBlock, TCBlock)
        self.attention1, self.tc1, self.attention2, self.tc2, self.attention3 = blocks
        self.classifier = _dense(way)

    def read(self, support_x, support_y, query_x, training=False):
        """(query logits (Q, way), the three attention blocks' query weights, each (Q, S + 1), and the
        support sequence's features after the last block, (S, C): what every step of it carries)."""
        with tf.control_dependencies(check_episode(support_y, query_x, self.way, self.shot)):
            embeddings = embed(self.encoder, support_x, query_x, training)
        n_support = ops.shape(support_x)[0]
        support = ops.concatenate([embeddings[:n_support], ops.one_hot(support_y, self.way, dtype=embeddings.dtype)], 1)
        query = ops.pad(embeddings[n_support:], [[0, 0], [0, self.way]])  # the query's label is unknown: zeros
        support, query, attention = snail.through_blocks(self, support, query)
        return self.classifier(query), attention, support

    def call(self, inputs, training=False):
        return self.read(*inputs, training=training)[0]
