"""Small ``tf.Module`` layers for the plain-TensorFlow implementations.

The TensorFlow chapters write every algorithm with ``tf.Module``, ``tf.Variable`` and
``tf.GradientTape`` only, so that nothing is hidden behind ``fit()``. These layers are all
they need: four feed-forward ones, and an LSTM cell (with a bidirectional LSTM built from two)
for recurrent parts such as Matching Networks' full context embeddings. Three conventions make
them interchangeable with the PyTorch and Keras versions:

- **Layouts are TensorFlow's** (and the canonical ones of ``common.weights``): images are NHWC,
  a conv kernel is ``(kh, kw, in, out)``, a dense kernel is ``(in, out)``. Variables are named
  ``kernel``, ``recurrent_kernel``, ``bias``, ``gamma``, ``beta``, ``moving_mean``,
  ``moving_variance``, exactly the canonical parameter names, so ``common.weights`` can read and
  write them by attribute name.
- **Shapes are explicit.** Every layer is told its input size, so its variables exist as soon
  as it is built: no first call is needed before loading weights or taking gradients.
- **Numbers follow PyTorch**: the same default initialisation (uniform in
  ``+-1/sqrt(fan_in)``, which is what ``kaiming_uniform_(a=sqrt(5))`` works out to) and the same
  BatchNorm (``eps=1e-5``, ``momentum=0.1``, unbiased running variance). With identical weights
  the three frameworks then agree to rounding error.

MAML needs to run a layer with *adapted* weights, tensors computed from the variables, not the
variables themselves. So each layer's arithmetic lives in a plain function (``conv2d``,
``dense``, ``batch_norm``, ``layer_norm``) and the layer offers ``call_with(params, x)``, which
runs the same computation on any ``dict`` of tensors shaped like ``layer.params()``::

    fast = {k: w - alpha * g for (k, w), g in zip(layer.params().items(), grads)}
    y = layer.call_with(fast, x)
"""

from __future__ import annotations

import math

import tensorflow as tf

# --------------------------------------------------------------------------------------------
# The functions: what a layer computes, for any tensors (variables or adapted copies).
# --------------------------------------------------------------------------------------------


def conv2d(x, kernel, bias=None, strides=1, padding="SAME"):
    """2-D convolution of an NHWC batch.

    ``padding`` is ``"SAME"``, ``"VALID"`` or an int ``p`` (pad ``p`` pixels on every side, as
    PyTorch's ``padding=p``). For stride 1 and a 3x3 kernel "SAME" equals PyTorch's
    ``padding=1``; for stride 2 on even inputs TensorFlow pads only bottom/right, so pass an int
    there to match PyTorch.
    """
    if isinstance(padding, int):
        padding = [[0, 0], [padding, padding], [padding, padding], [0, 0]]
    y = tf.nn.conv2d(x, kernel, strides=strides, padding=padding)
    return y if bias is None else y + bias


def dense(x, kernel, bias=None):
    """``x @ kernel + bias``; the kernel is ``(in, out)``, so no transpose is needed."""
    y = tf.matmul(x, kernel)
    return y if bias is None else y + bias


def moments(x):
    """Mean and *biased* variance over every axis but the last (the channels).

    Not ``tf.nn.moments``: it wraps the mean in a ``stop_gradient`` inside the variance. That is
    harmless for first derivatives (the missing term sums to zero) but wrong for second
    derivatives, which second-order MAML takes through every BatchNorm.
    """
    axes = list(range(len(x.shape) - 1))
    mean = tf.reduce_mean(x, axes)
    variance = tf.reduce_mean(tf.square(x - mean), axes)
    return mean, variance


def batch_norm(x, gamma, beta, mean, variance, eps=1e-5):
    """Normalise the last axis with the given statistics, then scale and shift:
    (x − mean) / sqrt(variance + ε) · γ + β, computed as x · scale + shift per channel (two
    operations on the whole feature map instead of four, in its derivatives too)."""
    scale = gamma * tf.math.rsqrt(variance + eps)
    return x * scale + (beta - mean * scale)


def layer_norm(x, gamma, beta, eps=1e-5):
    """Normalise each example over its last axis (PyTorch's ``LayerNorm(C)``)."""
    mean = tf.reduce_mean(x, -1, keepdims=True)
    variance = tf.reduce_mean(tf.square(x - mean), -1, keepdims=True)
    return (x - mean) / tf.sqrt(variance + eps) * gamma + beta


def lstm_cell(x, state, kernel, recurrent_kernel, bias=None):
    """One LSTM step: ``(x, (h, c)) -> (h', c')``, the gate equations written out.

    The 4H columns of ``kernel`` (in, 4H), ``recurrent_kernel`` (H, 4H) and ``bias`` (4H,) hold
    four blocks in the order of PyTorch and Keras: input gate i, forget gate f, candidate g,
    output gate o::

        i, f, g, o = split(x @ kernel + h @ recurrent_kernel + bias, 4)
        c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
        h' = sigmoid(o) * tanh(c')
    """
    h, c = state
    z = tf.matmul(x, kernel) + tf.matmul(h, recurrent_kernel)
    if bias is not None:
        z = z + bias
    i, f, g, o = tf.split(z, 4, axis=-1)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c), c


def dense_gather(table, ids):
    """Rows ``ids`` of ``table`` (any shape of ids), with a *dense* gradient.

    ``tf.gather``'s gradient with respect to the table is an ``IndexedSlices`` (only the rows that
    were read). PyTorch's is a dense tensor, and so is every other gradient the book's learners
    handle: MAML's inner step θ − α∇ and the Adam of ``common.episodic_tf`` expect one. The
    gradient here is written with differentiable ops, so that second-order MAML can differentiate
    it again. The table is read into a tensor first: a gradient function must not see the variable
    behind it. The text encoders of TensorFlow and Keras (``chapters/applications``) look up their
    word and position embeddings with it.
    """
    return _dense_gather(tf.identity(table), ids)


@tf.custom_gradient
def _dense_gather(table, ids):
    def gradient(upstream):
        flat = tf.reshape(upstream, [-1, tf.shape(table)[1]])
        return tf.math.unsorted_segment_sum(flat, tf.reshape(ids, [-1]), tf.shape(table)[0]), None

    return tf.gather(table, ids), gradient


# --------------------------------------------------------------------------------------------
# The layers: variables plus a call that forwards to the functions above.
# --------------------------------------------------------------------------------------------


def _generator(seed):
    """A ``tf.random.Generator`` from an int seed, an existing generator, or None (random).

    Pass one generator to every layer of a model to seed the whole model with one number.
    """
    if isinstance(seed, tf.random.Generator):
        return seed
    if seed is None:
        return tf.random.Generator.from_non_deterministic_state()
    return tf.random.Generator.from_seed(seed)


def _present(**params):
    """The parameters that exist (a layer built with ``use_bias=False`` has no bias)."""
    return {name: p for name, p in params.items() if p is not None}


def _uniform(rng, shape, fan_in, dtype):
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(shape, -bound, bound, dtype=dtype)


def _kernel_and_bias(rng, shape, fan_in, use_bias, dtype):
    """A ``kernel`` of ``shape`` and a ``bias`` of its last axis (None without ``use_bias``), both
    uniform in ``+-1/sqrt(fan_in)``, as PyTorch initialises its conv and linear layers."""
    kernel = tf.Variable(_uniform(rng, shape, fan_in, dtype), name="kernel")
    bias = tf.Variable(_uniform(rng, shape[-1:], fan_in, dtype), name="bias") if use_bias else None
    return kernel, bias


class Conv2D(tf.Module):
    """``kernel`` (kh, kw, in, out) and ``bias`` (out,); NHWC in, NHWC out."""

    def __init__(self, in_channels, out_channels, kernel_size=3, strides=1, padding="SAME",
                 use_bias=True, dtype=tf.float32, seed=None, name=None):
        super().__init__(name=name)
        rng = _generator(seed)
        self.strides, self.padding = strides, padding
        self.kernel, self.bias = _kernel_and_bias(rng, (kernel_size, kernel_size, in_channels, out_channels),
                                                  in_channels * kernel_size * kernel_size, use_bias, dtype)

    def params(self):
        return _present(kernel=self.kernel, bias=self.bias)

    def call_with(self, params, x):
        return conv2d(x, params["kernel"], params.get("bias"), self.strides, self.padding)

    def __call__(self, x):
        return self.call_with(self.params(), x)


class Dense(tf.Module):
    """``kernel`` (in, out) and ``bias`` (out,)."""

    def __init__(self, in_features, out_features, use_bias=True, dtype=tf.float32, seed=None,
                 name=None):
        super().__init__(name=name)
        rng = _generator(seed)
        self.kernel, self.bias = _kernel_and_bias(rng, (in_features, out_features), in_features, use_bias, dtype)

    def params(self):
        return _present(kernel=self.kernel, bias=self.bias)

    def call_with(self, params, x):
        return dense(x, params["kernel"], params.get("bias"))

    def __call__(self, x):
        return self.call_with(self.params(), x)


# What TensorFlow's fused BatchNorm kernel (FusedBatchNormV3) takes with weights of the same dtype
# (half-precision inputs would need float32 weights).
FUSED_DTYPES = (tf.float32,)


def fusable(x) -> bool:
    """Whether TensorFlow's fused BatchNorm kernel takes ``x``: a float32 NHWC image batch."""
    return x.dtype in FUSED_DTYPES and x.shape.rank == 4


def values_per_channel(x):
    """n, the number of values BatchNorm averages per channel (as ``x``'s dtype), for n / (n − 1)."""
    return tf.cast(tf.size(x) // tf.shape(x)[-1], x.dtype)


class BatchNorm(tf.Module):
    """BatchNorm over every axis but the last, with PyTorch's semantics.

    ``training=True`` normalises with the batch's mean and biased variance and moves the
    running statistics towards the batch's: ``moving = (1 - momentum) * moving + momentum *
    batch``, using the *unbiased* variance ``n / (n - 1) * var`` as PyTorch does. Keras'
    ``BatchNormalization`` differs here: its ``momentum`` is the weight of the old value
    (0.99 by default, i.e. 0.9 to match) and it stores the biased variance.
    ``training=False`` uses the running statistics.

    In training, a float32 image batch goes through TensorFlow's fused kernel, one operation
    forward and one backward instead of the half-dozen of :func:`moments` and :func:`batch_norm`:
    the same numbers to float32 rounding, first *and* second derivatives
    (``tests/test_tf_layers.py``), in less than half the time of a Conv-4 training step on one
    CPU core (``python -m chapters.metric.benchmark``). The kernel has no float64 version: float64
    (the exact cross-framework tests) and other shapes take the formula.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=tf.float32, name=None):
        super().__init__(name=name)
        self.eps, self.momentum = eps, momentum
        self.gamma = tf.Variable(tf.ones(num_features, dtype), name="gamma")
        self.beta = tf.Variable(tf.zeros(num_features, dtype), name="beta")
        # Statistics, not parameters: excluded from trainable_variables, still saved.
        self.moving_mean = tf.Variable(tf.zeros(num_features, dtype), trainable=False,
                                       name="moving_mean")
        self.moving_variance = tf.Variable(tf.ones(num_features, dtype), trainable=False,
                                           name="moving_variance")

    def params(self):
        return {"gamma": self.gamma, "beta": self.beta}

    def call_with(self, params, x, training=False):
        if not training:
            return batch_norm(x, params["gamma"], params["beta"], self.moving_mean,
                              self.moving_variance, self.eps)
        if fusable(x):
            # The fused kernel returns the batch's unbiased variance, the one the running average needs.
            y, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
                x, params["gamma"], params["beta"], epsilon=self.eps, is_training=True)
        else:
            mean, variance = moments(x)
            n = values_per_channel(x)
            y = batch_norm(x, params["gamma"], params["beta"], mean, variance, self.eps)
            unbiased_variance = variance * n / (n - 1)
        m = self.momentum
        self.moving_mean.assign((1 - m) * self.moving_mean + m * mean)
        self.moving_variance.assign((1 - m) * self.moving_variance + m * unbiased_variance)
        return y

    def __call__(self, x, training=False):
        return self.call_with(self.params(), x, training)


class LayerNorm(tf.Module):
    """``gamma`` and ``beta`` (C,); normalises each example over its last axis."""

    def __init__(self, num_features, eps=1e-5, dtype=tf.float32, name=None):
        super().__init__(name=name)
        self.eps = eps
        self.gamma = tf.Variable(tf.ones(num_features, dtype), name="gamma")
        self.beta = tf.Variable(tf.zeros(num_features, dtype), name="beta")

    def params(self):
        return {"gamma": self.gamma, "beta": self.beta}

    def call_with(self, params, x):
        return layer_norm(x, params["gamma"], params["beta"], self.eps)

    def __call__(self, x):
        return self.call_with(self.params(), x)


class LSTMCell(tf.Module):
    """One LSTM step (:func:`lstm_cell`): ``kernel`` (in, 4H), ``recurrent_kernel`` (H, 4H),
    ``bias`` (4H,), initialised as PyTorch's ``nn.LSTMCell``, uniform in ``+-1/sqrt(H)``.

    ``cell(x, (h, c))`` returns the new ``(h, c)``, as ``nn.LSTMCell`` does.
    """

    def __init__(self, input_size, units, use_bias=True, dtype=tf.float32, seed=None, name=None):
        super().__init__(name=name)
        rng = _generator(seed)
        self.units = units
        self.kernel = tf.Variable(_uniform(rng, (input_size, 4 * units), units, dtype),
                                  name="kernel")
        self.recurrent_kernel = tf.Variable(_uniform(rng, (units, 4 * units), units, dtype),
                                            name="recurrent_kernel")
        self.bias = (tf.Variable(_uniform(rng, (4 * units,), units, dtype), name="bias")
                     if use_bias else None)

    def params(self):
        return _present(kernel=self.kernel, recurrent_kernel=self.recurrent_kernel,
                        bias=self.bias)

    def call_with(self, params, x, state):
        return lstm_cell(x, state, params["kernel"], params["recurrent_kernel"],
                         params.get("bias"))

    def __call__(self, x, state):
        return self.call_with(self.params(), x, state)


def run_lstm(cell, sequence, reverse=False):
    """The outputs h_t of ``cell`` over ``sequence`` (B, T, in) -> (B, T, H), from zero states.

    ``tf.scan`` runs the steps (any T, also inside ``tf.function``); ``reverse=True`` goes from
    the last step to the first but, like PyTorch and Keras, returns the outputs in input order.
    """
    steps = tf.transpose(sequence, [1, 0, 2])  # tf.scan walks the first axis: time-major
    zeros = tf.zeros([tf.shape(sequence)[0], cell.units], sequence.dtype)
    outputs, _ = tf.scan(lambda state, x: cell(x, state), steps, initializer=(zeros, zeros),
                         reverse=reverse)
    return tf.transpose(outputs, [1, 0, 2])


class BidirectionalLSTM(tf.Module):
    """Two LSTMs over one sequence, ``forward`` from first to last step and ``backward`` from
    last to first: ``(B, T, in) -> (forward outputs, backward outputs)``, each (B, T, H) in
    input order (PyTorch's ``nn.LSTM(bidirectional=True)``, Keras' ``Bidirectional(LSTM)``).
    """

    def __init__(self, input_size, units, dtype=tf.float32, seed=None, name=None):
        super().__init__(name=name)
        rng = _generator(seed)
        self.forward = LSTMCell(input_size, units, dtype=dtype, seed=rng)
        self.backward = LSTMCell(input_size, units, dtype=dtype, seed=rng)

    def __call__(self, sequence):
        return run_lstm(self.forward, sequence), run_lstm(self.backward, sequence, reverse=True)
