"""Meta Networks (Munkhdalai & Yu, ICML 2017) in Keras 3.

Task-level fast weights Q* = d(G, {nabla_t}) (Eqs. 1-2), keys r = u(Q, Q*, x) (Eq. 5),
example-level fast weights W*_i = m(Z, nabla_i) in a memory (Eqs. 3-4), and a query's read
a = softmax(cos(R, r)), W* = a^T M, logits b(W, W*, x) (Eqs. 6-8). See ``metanet_torch.py`` for
the full commentary; the names and structure here are the same. The meta information needs a
gradient inside the forward pass, which Keras leaves to its backend: the book's Keras runs on
TensorFlow, so that gradient is a ``tf.GradientTape``'s (as ``EpisodicModel.train_step``'s is).
``train_step`` (one Adam step on the cross-entropy of every query) is ``EpisodicModel``'s.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops
import tensorflow as tf

from chapters.model_based import metanet
from chapters.model_based import metanet_tf
from common.episodic_keras import EpisodicModel


def preprocess(gradient, k: float = metanet.GRADIENT_SCALE):
    """``(max(log(|g| + eps) / k, -1), clip(g e^k, -1, 1))`` per coordinate, (...) -> (..., 2)."""
    eps = np.finfo(keras.backend.standardize_dtype(gradient.dtype)).eps
    log = ops.maximum(ops.log(ops.abs(gradient) + eps) / k, -1.0)
    sign = ops.clip(gradient * np.exp(k), -1.0, 1.0)
    return ops.stack([log, sign], -1)


def cosine_similarity(keys, memory_keys):
    """(Q, S): ``r . r' / sqrt(|r|^2 |r'|^2 + eps)`` for every query key r and support key r'."""
    norms = ops.sum(keys ** 2, 1, keepdims=True) * ops.sum(memory_keys ** 2, 1)
    return ops.matmul(keys, ops.transpose(memory_keys)) / ops.sqrt(norms + metanet.COSINE_EPS)


# ---------------------------------------------------------------------------- b and u

def conv(x, kernel):
    """3x3 convolution, 'same', of images (B, H, W, C) with one kernel (3, 3, in, out), or one
    kernel per image, (B, 3, 3, in, out): each pixel's 3x3 patch times its image's kernel."""
    if len(kernel.shape) == 4:
        return ops.conv(x, kernel, 1, "same")
    patches = tf.image.extract_patches(x, [1, 3, 3, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME")
    return ops.einsum("bhwk,bko->bhwo", patches, ops.reshape(kernel, (ops.shape(kernel)[0], -1, kernel.shape[-1])))


def dense(x, kernel):
    """x (B, in) by one kernel (in, out), or by one kernel per row, (B, in, out)."""
    return ops.matmul(x, kernel) if len(kernel.shape) == 2 else ops.einsum("bi,bio->bo", x, kernel)


def pool(x):
    """2x2 max-pooling, 'same': a partial last window is kept (7 -> 4)."""
    return ops.max_pool(x, 2, 2, "same")


class ConvNet(keras.layers.Layer):
    """b and u: five conv blocks, a 64-unit dense layer, an N-unit output layer, no biases;
    ``kernels`` are the slow weights, ``fast`` a list of fast kernels (or None) per layer."""

    def __init__(self, image_shape, way: int, train_output: bool = True, **kwargs):
        super().__init__(**kwargs)
        shapes = metanet.kernel_shapes(image_shape, way)
        self.kernels = [self.add_weight(shape=shape, initializer="zeros", name=f"kernel{i}",
                                        trainable=train_output or i < len(shapes) - 1)
                        for i, shape in enumerate(shapes)]

    def layer(self, i: int, x, fast, op, activation=None):
        """Layer ``i`` on x: ``act(op(x, W_i))``, plus ``act(op(x, W*_i))`` when it has a fast kernel."""
        return metanet.augmented(op, x, self.kernels[i], None if fast is None else fast[i], activation)

    def features(self, x, fast=None):
        """(B, features): the conv blocks, flattened in (H, W, C) order."""
        for i in range(metanet.CONV_LAYERS):
            x = pool(self.layer(i, x, fast, conv, ops.relu))
        return ops.reshape(x, (ops.shape(x)[0], -1))

    def key(self, x, fast=None):
        """u's embedding r: the first dense layer before its ReLU, slow and fast summed (Eq. 5)."""
        return self.layer(metanet.KEY_LAYER, self.features(x, fast), fast, dense)

    def call(self, x, fast=None):
        """Logits (B, way)."""
        h = self.layer(metanet.CONV_LAYERS, self.features(x, fast), fast, dense, ops.relu)
        return self.layer(metanet.CONV_LAYERS + 1, h, fast, dense)


def meta_information(net: ConvNet, x, y, layers: list[int]) -> dict:
    """The gradient of ``net``'s cross-entropy on (x, y) with respect to its kernels ``layers``,
    through ``stop_gradient``: data for the generators, not a path for the meta-gradient."""
    with tf.GradientTape() as tape:
        loss = ops.mean(keras.losses.sparse_categorical_crossentropy(y, net(x), from_logits=True))
    gradients = tape.gradient(loss, [net.kernels[i].value for i in layers])
    return {i: ops.stop_gradient(gradient) for i, gradient in zip(layers, gradients)}


# ---------------------------------------------------------------------------- m and d

class CoordinateMLP(keras.layers.Layer):
    """m (Eq. 4): 2 -> 20 -> 20 -> 1 with ReLUs, applied to every coordinate's preprocessed gradient."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        sizes = [2, metanet.META_HIDDEN, metanet.META_HIDDEN, 1]
        self.kernels = [self.add_weight(shape=(a, b), initializer="zeros", name=f"kernel{i}")
                        for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]
        self.biases = [self.add_weight(shape=(b,), initializer="zeros", name=f"bias{i}")
                       for i, b in enumerate(sizes[1:])]

    def call(self, meta_info):
        """(..., 2) -> (...): one fast weight per coordinate."""
        h = meta_info
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            h = ops.tensordot(h, kernel, 1) + bias
            h = ops.relu(h) if i < len(self.kernels) - 1 else h
        return h[..., 0]


class CoordinateLSTM(keras.layers.Layer):
    """d (Eq. 2): an LSTM of 20 units over one coordinate's preprocessed gradients, then a linear
    map of its last hidden state. Gates in the canonical order (input, forget, cell, output)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        units = metanet.META_HIDDEN
        self.kernel = self.add_weight(shape=(2, 4 * units), initializer="zeros", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(units, 4 * units), initializer="zeros", name="recurrent_kernel")
        self.bias = self.add_weight(shape=(4 * units,), initializer="zeros", name="bias")
        self.output_kernel = self.add_weight(shape=(units, 1), initializer="zeros", name="output_kernel")
        self.output_bias = self.add_weight(shape=(1,), initializer="zeros", name="output_bias")

    def call(self, steps):
        """``steps``: T tensors (P, 2) -> (P,)."""
        hidden = cell = ops.zeros((ops.shape(steps[0])[0], self.recurrent_kernel.shape[0]), steps[0].dtype)
        for meta_info in steps:
            gates = ops.matmul(meta_info, self.kernel) + ops.matmul(hidden, self.recurrent_kernel) + self.bias
            i, f, g, o = ops.split(gates, 4, 1)
            cell = ops.sigmoid(f) * cell + ops.sigmoid(i) * ops.tanh(g)
            hidden = ops.sigmoid(o) * ops.tanh(cell)
        return (ops.matmul(hidden, self.output_kernel) + self.output_bias)[:, 0]


def flatten(kernels, lead: int):
    """The kernels' coordinates side by side, (*lead axes, P): what a generator reads."""
    return ops.concatenate([ops.reshape(kernel, (*kernel.shape[:lead], -1)) for kernel in kernels], -1)


def unflatten(values, shapes: list[tuple]) -> list:
    """The inverse of :func:`flatten`: (*lead, P) -> one tensor (*lead, *shape) per kernel."""
    lead = tuple(values.shape[:-1])
    ends = np.cumsum([int(np.prod(shape)) for shape in shapes])
    return [ops.reshape(values[..., end - int(np.prod(shape)):end], (*lead, *shape)) for end, shape in zip(ends, shapes)]


def rows(x, indices):
    """The rows of ``x`` at ``indices`` (NumPy positions): a support group for d."""
    return ops.take(x, indices, 0)


OPERATIONS = metanet.Operations(meta_information, rows, ops.stack, preprocess, flatten, unflatten)


def check_episode(support_y, query_x, way: int) -> list:
    """``metanet.check_episode`` before any computation; in a compiled step, assertions with the same
    messages (the book's Keras runs on TensorFlow: ``metanet_tf.check_episode``)."""
    return metanet_tf.check_episode(support_y, query_x, way)


class MetaNet(EpisodicModel):
    """``call((support_x, support_y, query_x))`` returns the logits of every query, (Q, way).

    ``base`` (b, slow weights W), ``representation`` (u, slow weights Q), ``example_meta`` (m,
    weights Z) and ``task_meta`` (d, weights G), each with a generator for every kind of layer
    (``conv``, ``dense``) that has fast weights.
    """

    def __init__(self, image_shape=(28, 28, 1), way: int = 5, fast_layers: int = metanet.ALL_LAYERS,
                 task_fast_weights: bool = True, dtype=None, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.way, self.fast_layers, self.task_fast = way, fast_layers, task_fast_weights
        self.base = ConvNet(image_shape, way, dtype=dtype)
        self.representation = ConvNet(image_shape, way, train_output=False, dtype=dtype)  # see metanet.py
        # m and d: a generator for each kind of layer (conv, dense) that has fast weights
        example_layers, task_layers = metanet.fast_layers_of(fast_layers, task_fast_weights)
        self.example_meta = {name: CoordinateMLP(dtype=dtype) for name in metanet.layer_groups(example_layers)}
        self.task_meta = {name: CoordinateLSTM(dtype=dtype) for name in metanet.layer_groups(task_layers)}

    def task_fast_weights(self, support_x, support_y) -> list:
        """Q* (Eqs. 1-2): :func:`metanet.task_fast_weights` with Keras' operations."""
        return metanet.task_fast_weights(self, support_x, support_y, OPERATIONS)

    def example_fast_weights(self, support_x, support_y) -> list:
        """The memory M (Eqs. 3-4): :func:`metanet.example_fast_weights` with Keras' operations."""
        return metanet.example_fast_weights(self, support_x, support_y, OPERATIONS)

    def read(self, support_x, support_y, query_x, training: bool = False):
        """(query logits (Q, way), attention (Q, S), Q*, M): as ``metanet_torch.MetaNet.read``."""
        support_x, query_x = ops.convert_to_tensor(support_x, self.compute_dtype), ops.convert_to_tensor(query_x, self.compute_dtype)
        support_y = ops.convert_to_tensor(support_y)
        with tf.control_dependencies(check_episode(support_y, query_x, self.way)):
            support_x = tf.identity(support_x)
        task_fast = self.task_fast_weights(support_x, support_y)
        keys = self.representation.key(ops.concatenate([support_x, query_x], 0), task_fast)  # Eq. 5
        n_support = support_x.shape[0]
        memory_keys, query_keys = keys[:n_support], keys[n_support:]
        memory = self.example_fast_weights(support_x, support_y)
        attention = ops.softmax(cosine_similarity(query_keys, memory_keys), 1)              # Eq. 6
        fast = [None if kernels is None else ops.tensordot(attention, kernels, 1)         # Eq. 7
                for kernels in memory]
        return self.base(query_x, fast), attention, task_fast, memory  # Eq. 8

    def call(self, inputs, training: bool = False):
        support_x, support_y, query_x = inputs
        return self.read(support_x, support_y, query_x, training)[0]
