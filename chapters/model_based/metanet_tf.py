"""Meta Networks (Munkhdalai & Yu, ICML 2017) in TensorFlow.

Task-level fast weights Q* = d(G, {nabla_t}) (Eqs. 1-2), keys r = u(Q, Q*, x) (Eq. 5),
example-level fast weights W*_i = m(Z, nabla_i) in a memory (Eqs. 3-4), and a query's read
a = softmax(cos(R, r)), W* = a^T M, logits b(W, W*, x) (Eqs. 6-8). Gradients are meta
information: computed by their own ``tf.GradientTape`` and passed through ``tf.stop_gradient``.
See ``metanet_torch.py`` for the full commentary; the names and structure here are the same.
Images are NHWC; the support set's size must be known when a step is traced (its examples are
unrolled one by one), as it is for the book's episodes.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from chapters.model_based import metanet


def preprocess(gradient, k: float = metanet.GRADIENT_SCALE):
    """``(max(log(|g| + eps) / k, -1), clip(g e^k, -1, 1))`` per coordinate, (...) -> (..., 2)."""
    eps = np.finfo(gradient.dtype.as_numpy_dtype).eps
    log = tf.maximum(tf.math.log(tf.abs(gradient) + eps) / k, -1.0)
    sign = tf.clip_by_value(gradient * tf.exp(tf.constant(k, gradient.dtype)), -1.0, 1.0)
    return tf.stack([log, sign], -1)


def cosine_similarity(keys, memory_keys):
    """(Q, S): ``r . r' / sqrt(|r|^2 |r'|^2 + eps)`` for every query key r and support key r'."""
    norms = tf.reduce_sum(keys ** 2, 1, keepdims=True) * tf.reduce_sum(memory_keys ** 2, 1)
    return tf.matmul(keys, memory_keys, transpose_b=True) / tf.sqrt(norms + metanet.COSINE_EPS)


# ---------------------------------------------------------------------------- b and u

def conv(x, kernel):
    """3x3 convolution, 'SAME', of images (B, H, W, C) with one kernel (3, 3, in, out), or one
    kernel per image, (B, 3, 3, in, out). TensorFlow has no gradient for a grouped convolution on
    a CPU, so the second is written out: each pixel's 3x3 patch, (kh, kw, in) flattened, times
    its image's kernel flattened alike."""
    if kernel.shape.rank == 4:
        return tf.nn.conv2d(x, kernel, 1, "SAME")
    patches = tf.image.extract_patches(x, [1, 3, 3, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME")
    return tf.einsum("bhwk,bko->bhwo", patches, tf.reshape(kernel, [tf.shape(kernel)[0], -1, kernel.shape[-1]]))


def dense(x, kernel):
    """x (B, in) by one kernel (in, out), or by one kernel per row, (B, in, out)."""
    return x @ kernel if kernel.shape.rank == 2 else tf.einsum("bi,bio->bo", x, kernel)


def pool(x):
    """2x2 max-pooling, 'SAME': a partial last window is kept (7 -> 4)."""
    return tf.nn.max_pool2d(x, 2, 2, "SAME")


class ConvNet(tf.Module):
    """b and u: five conv blocks, a 64-unit dense layer, an N-unit output layer, no biases;
    ``kernels`` are the slow weights, ``fast`` a list of fast kernels (or None) per layer."""

    def __init__(self, image_shape, way: int, train_output: bool = True, dtype=tf.float32):
        super().__init__()
        shapes = metanet.kernel_shapes(image_shape, way)
        self.kernels = [tf.Variable(tf.zeros(shape, dtype), name="kernel",
                                    trainable=train_output or i < len(shapes) - 1)
                        for i, shape in enumerate(shapes)]

    def layer(self, i: int, x, fast, op, activation=None):
        """Layer ``i`` on x: ``act(op(x, W_i))``, plus ``act(op(x, W*_i))`` when it has a fast kernel."""
        return metanet.augmented(op, x, self.kernels[i], None if fast is None else fast[i], activation)

    def features(self, x, fast=None):
        """(B, features): the conv blocks, flattened in (H, W, C) order."""
        for i in range(metanet.CONV_LAYERS):
            x = pool(self.layer(i, x, fast, conv, tf.nn.relu))
        return tf.reshape(x, [tf.shape(x)[0], -1])

    def key(self, x, fast=None):
        """u's embedding r: the first dense layer before its ReLU, slow and fast summed (Eq. 5)."""
        return self.layer(metanet.KEY_LAYER, self.features(x, fast), fast, dense)

    def __call__(self, x, fast=None):
        """Logits (B, way)."""
        h = self.layer(metanet.CONV_LAYERS, self.features(x, fast), fast, dense, tf.nn.relu)
        return self.layer(metanet.CONV_LAYERS + 1, h, fast, dense)


def meta_information(net: ConvNet, x, y, layers: list[int]) -> dict:
    """The gradient of ``net``'s cross-entropy on (x, y) with respect to its kernels ``layers``,
    through ``tf.stop_gradient``: data for the generators, not a path for the meta-gradient."""
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, net(x)))
    gradients = tape.gradient(loss, [net.kernels[i] for i in layers])
    return {i: tf.stop_gradient(gradient) for i, gradient in zip(layers, gradients)}


# ---------------------------------------------------------------------------- m and d

class CoordinateMLP(tf.Module):
    """m (Eq. 4): 2 -> 20 -> 20 -> 1 with ReLUs, applied to every coordinate's preprocessed gradient."""

    def __init__(self, dtype=tf.float32):
        super().__init__()
        sizes = [2, metanet.META_HIDDEN, metanet.META_HIDDEN, 1]
        self.kernels = [tf.Variable(tf.zeros((a, b), dtype), name="kernel") for a, b in zip(sizes, sizes[1:])]
        self.biases = [tf.Variable(tf.zeros((b,), dtype), name="bias") for b in sizes[1:]]

    def __call__(self, meta_info):
        """(..., 2) -> (...): one fast weight per coordinate."""
        h = meta_info
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            h = tf.tensordot(h, kernel, 1) + bias
            h = tf.nn.relu(h) if i < len(self.kernels) - 1 else h
        return h[..., 0]


class CoordinateLSTM(tf.Module):
    """d (Eq. 2): an LSTM of 20 units over one coordinate's preprocessed gradients, then a linear
    map of its last hidden state. Gates in the canonical order (input, forget, cell, output)."""

    def __init__(self, dtype=tf.float32):
        super().__init__()
        units = metanet.META_HIDDEN
        self.kernel = tf.Variable(tf.zeros((2, 4 * units), dtype), name="kernel")
        self.recurrent_kernel = tf.Variable(tf.zeros((units, 4 * units), dtype), name="recurrent_kernel")
        self.bias = tf.Variable(tf.zeros((4 * units,), dtype), name="bias")
        self.output_kernel = tf.Variable(tf.zeros((units, 1), dtype), name="output_kernel")
        self.output_bias = tf.Variable(tf.zeros((1,), dtype), name="output_bias")

    def __call__(self, steps):
        """``steps``: T tensors (P, 2) -> (P,)."""
        hidden = cell = tf.zeros([tf.shape(steps[0])[0], self.recurrent_kernel.shape[0]], steps[0].dtype)
        for meta_info in steps:
            gates = meta_info @ self.kernel + hidden @ self.recurrent_kernel + self.bias
            i, f, g, o = tf.split(gates, 4, 1)
            cell = tf.sigmoid(f) * cell + tf.sigmoid(i) * tf.tanh(g)
            hidden = tf.sigmoid(o) * tf.tanh(cell)
        return (hidden @ self.output_kernel + self.output_bias)[:, 0]


def flatten(kernels, lead: int):
    """The kernels' coordinates side by side, (*lead axes, P): what a generator reads."""
    return tf.concat([tf.reshape(kernel, [*kernel.shape[:lead], -1]) for kernel in kernels], -1)


def unflatten(values, shapes: list[tuple]) -> list:
    """The inverse of :func:`flatten`: (*lead, P) -> one tensor (*lead, *shape) per kernel."""
    lead = values.shape[:-1]
    pieces = tf.split(values, [int(np.prod(shape)) for shape in shapes], -1)
    return [tf.reshape(piece, [*lead, *shape]) for piece, shape in zip(pieces, shapes)]


def rows(x, indices):
    """The rows of ``x`` at ``indices`` (NumPy positions): a support group for d."""
    return tf.gather(x, indices)


OPERATIONS = metanet.Operations(meta_information, rows, tf.stack, preprocess, flatten, unflatten)


def check_episode(support_y, query_x, way: int) -> list:
    """``metanet.check_episode`` on concrete values (a ``ConfigError`` before any computation); inside
    a traced ``tf.function``, the same checks with the same messages as assertions that run first.
    Returns them, for control dependencies."""
    if tf.executing_eagerly():
        metanet.check_episode(support_y.numpy() if hasattr(support_y, "numpy") else support_y,
                              int(tf.shape(query_x)[0]), way)
        return []
    return [tf.debugging.assert_positive(tf.shape(query_x)[0], message=metanet.NO_QUERY),
            tf.debugging.assert_non_negative(support_y, message=metanet.labels_outside([way], way)),
            tf.debugging.assert_less(support_y, tf.cast(way, support_y.dtype),
                                     message=metanet.labels_outside([way], way))]


class MetaNet(tf.Module):
    """``__call__(support_x, support_y, query_x, training)`` returns the logits of every query, (Q, way).

    ``base`` (b, slow weights W), ``representation`` (u, slow weights Q), ``example_meta`` (m,
    weights Z) and ``task_meta`` (d, weights G), each with a generator for every kind of layer
    (``conv``, ``dense``) that has fast weights.
    """

    def __init__(self, image_shape=(28, 28, 1), way: int = 5, fast_layers: int = metanet.ALL_LAYERS,
                 task_fast_weights: bool = True, dtype=tf.float32):
        super().__init__()
        self.way, self.fast_layers, self.task_fast = way, fast_layers, task_fast_weights
        self.base = ConvNet(image_shape, way, dtype=dtype)
        self.representation = ConvNet(image_shape, way, train_output=False, dtype=dtype)  # see metanet.py
        # m and d: a generator for each kind of layer (conv, dense) that has fast weights
        example_layers, task_layers = metanet.fast_layers_of(fast_layers, task_fast_weights)
        self.example_meta = {name: CoordinateMLP(dtype) for name in metanet.layer_groups(example_layers)}
        self.task_meta = {name: CoordinateLSTM(dtype) for name in metanet.layer_groups(task_layers)}

    def task_fast_weights(self, support_x, support_y) -> list:
        """Q* (Eqs. 1-2): :func:`metanet.task_fast_weights` with TensorFlow's operations."""
        return metanet.task_fast_weights(self, support_x, support_y, OPERATIONS)

    def example_fast_weights(self, support_x, support_y) -> list:
        """The memory M (Eqs. 3-4): :func:`metanet.example_fast_weights` with TensorFlow's operations."""
        return metanet.example_fast_weights(self, support_x, support_y, OPERATIONS)

    def read(self, support_x, support_y, query_x, training: bool = False):
        """(query logits (Q, way), attention (Q, S), Q*, M): as ``metanet_torch.MetaNet.read``.
        ``training`` is accepted for the episodic learner; a MetaNet has no BatchNorm or dropout."""
        with tf.control_dependencies(check_episode(support_y, query_x, self.way)):
            support_x = tf.identity(support_x)
        task_fast = self.task_fast_weights(support_x, support_y)
        keys = self.representation.key(tf.concat([support_x, query_x], 0), task_fast)  # Eq. 5
        n_support = support_x.shape[0]
        memory_keys, query_keys = keys[:n_support], keys[n_support:]
        memory = self.example_fast_weights(support_x, support_y)
        attention = tf.nn.softmax(cosine_similarity(query_keys, memory_keys), 1)      # Eq. 6
        fast = [None if kernels is None else tf.tensordot(attention, kernels, 1)     # Eq. 7
                for kernels in memory]
        return self.base(query_x, fast), attention, task_fast, memory  # Eq. 8

    def __call__(self, support_x, support_y, query_x, training: bool = False):
        return self.read(support_x, support_y, query_x, training)[0]
