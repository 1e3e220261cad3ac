"""The two networks of the optimization-based chapter in Keras 3, as functions of a parameter dict.

MAML (Finn, Abbeel & Levine, ICML 2017) runs a network on parameters that are not its own: the
adapted θ' = θ − α ∇_θ L_S(θ) of Eq. (1) are tensors computed from θ, one set per task. So each
network here is a *function* ``forward(params, x)`` of a ``dict`` of canonical names and layouts
(``common.weights``), and the layer itself only holds θ, the initialisation being meta-learned.
``model.params()`` is the very same dict (keys, shapes) as in ``networks_torch.py`` and
``networks_tf.py``:

* :class:`SinusoidMLP` (Sec. 5.1): 1 → 40 → 40 → 1 with ReLU, on the mean squared error.
* :class:`Conv4Classifier` (Sec. 5.2, the network of Vinyals et al. 2016 for Omniglot): four
  blocks conv 3x3 (64 filters) → BatchNorm → ReLU → max-pool 2x2, then a linear head to N logits;
  or, with ``backbone="strided"``, the network of their released Omniglot code: stride-2
  convolutions instead of max-pooling and the mean of the final map.

**BatchNorm in MAML has no running statistics.** Finn et al.'s code normalises with the statistics
of the batch it is given, in training *and* at test time: every forward pass normalises each
channel with the mean and the *biased* variance over (N, H, W) of its input, then scales by γ and
shifts by β (which are meta-learned like every other parameter). Two consequences:

* The statistics are written out, ``mean = mean(x)``, ``var = mean((x − mean)²)``, not taken from
  ``tf.nn.moments`` nor from ``keras.layers.BatchNormalization``: ``tf.nn.moments`` puts a
  ``stop_gradient`` on the mean inside the variance, harmless for a first derivative but it
  silently removes part of the second-order meta-gradient.
* Normalising a *query* set with its own statistics is **transductive**: each query's prediction
  depends on the other queries. ``forward(params, x, reference=support_x)`` is the
  non-transductive alternative: every BatchNorm takes its statistics from the support set only and
  applies them to ``x``, so a query's prediction depends on the support set and on itself alone.
  It runs the network once on ``concat([reference, x])`` and computes each BatchNorm's statistics
  over the first ``len(reference)`` rows.

The arithmetic is ``keras.ops``; the layers (``Dense``, ``Conv2D``, and :class:`Norm` for γ and β)
are built with explicit input shapes in ``__init__``, so their weights exist from construction
on, initialised as PyTorch's defaults. Their dtype is ``keras.config.floatx()``. The networks are
``keras.layers.Layer``\\ s, not ``Model``\\ s: ``keras.Model`` reserves the attribute ``layers``,
which gives the MLP its canonical names (``layers.0.kernel``).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from common.backbones import BACKBONES, conv4_embedding_size
from common.backbones.conv4_keras import batch_norm
from common.errors import ConfigError

EPSILON = 1e-5  # BatchNorm's ε, as PyTorch's and Finn et al.'s


def torch_like_uniform(fan_in: int) -> keras.initializers.Initializer:
    """Uniform in ±1/sqrt(fan_in), PyTorch's default for conv and dense kernels and biases.

    A *new* initializer per weight: one unseeded Keras initializer returns the same numbers on
    every call, which would give same-shaped weights identical values.
    """
    bound = 1 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def dense(units: int, fan_in: int) -> keras.layers.Dense:
    """A built ``Dense`` layer (kernel (fan_in, units), bias (units,)), initialised as PyTorch's."""
    layer = keras.layers.Dense(units, kernel_initializer=torch_like_uniform(fan_in),
                               bias_initializer=torch_like_uniform(fan_in))
    layer.build((None, fan_in))
    return layer


def conv3x3(channels_in: int, channels_out: int) -> keras.layers.Conv2D:
    """A built 3x3 ``Conv2D`` (kernel (3, 3, in, out), bias (out,)), initialised as PyTorch's."""
    fan_in = 9 * channels_in
    layer = keras.layers.Conv2D(channels_out, 3, padding="same", kernel_initializer=torch_like_uniform(fan_in),
                                bias_initializer=torch_like_uniform(fan_in))
    layer.build((None, None, None, channels_in))
    return layer


class Norm(keras.layers.Layer):
    """BatchNorm's learned scale γ (ones) and shift β (zeros), and nothing else: MAML's BatchNorm
    keeps no running statistics (see the module docstring and :func:`batch_norm`)."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")
        self.built = True


class Block(keras.layers.Layer):
    """The parameters of one block: conv 3x3 (``conv``) → BatchNorm (``norm``) → ReLU → max-pool."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.conv = conv3x3(in_channels, out_channels)
        self.norm = Norm(out_channels)
        self.built = True


class SinusoidMLP(keras.layers.Layer):
    """The regression network of Finn et al. Sec. 5.1: 1 → 40 → 40 → 1, ReLU between layers."""

    metric_name = "mse"

    def __init__(self, hidden: tuple[int, ...] = (40, 40), **kwargs):
        super().__init__(**kwargs)
        sizes = (1, *hidden, 1)
        self.layers = [dense(n_out, n_in) for n_in, n_out in zip(sizes, sizes[1:])]
        self.built = True

    def params(self) -> dict:
        """θ as a dict of canonical names: ``{"layers.0.kernel": ..., "layers.0.bias": ..., ...}``."""
        return {f"layers.{i}.{name}": getattr(layer, name) for i, layer in enumerate(self.layers)
                for name in ("kernel", "bias")}

    def forward(self, params: dict, x, reference=None):
        """f_θ(x) for any parameters θ (the layer's variables, or adapted tensors): (N, 1) -> (N, 1).
        ``reference`` is ignored: without BatchNorm every example is computed on its own."""
        depth = len(self.layers)
        for i in range(depth):
            x = ops.matmul(x, params[f"layers.{i}.kernel"]) + params[f"layers.{i}.bias"]
            if i < depth - 1:
                x = ops.relu(x)
        return x

    def loss(self, outputs, targets):
        """The mean squared error (Finn et al. Eq. 4 writes a sum; their code and results average)."""
        return ops.mean(ops.square(outputs - targets))

    def metric(self, outputs, targets):
        """The MSE again: what the paper reports for regression."""
        return self.loss(outputs, targets)

    def call(self, x):
        return self.forward(self.params(), x)


class Conv4Classifier(keras.layers.Layer):
    """MAML's Omniglot and mini-ImageNet classifier (Finn et al. Sec. 5.2, after Vinyals et al.).

    Images (N, H, W, C) -> logits (N, way). ``depth`` blocks of conv 3x3 stride 1 "same" + bias →
    BatchNorm (batch statistics, see :func:`batch_norm`) → ReLU → max-pool 2x2 stride 2 (floor),
    then flatten in (H, W, C) order and ``head``: x @ kernel + bias. On 28x28 Omniglot the last map
    is 1x1x64, so the head reads D = 64 features (``common.backbones.conv4_embedding_size``).

    ``backbone="strided"`` (Finn et al.'s released Omniglot code): the convolution has stride 2
    and "same" padding, no max-pool follows (28 → 14 → 7 → 4 → 2), and the head reads the mean of
    the final map over its positions. Same parameters, names and shapes as ``maxpool``.
    """

    metric_name = "accuracy"

    def __init__(self, way: int, image_shape=(28, 28, 1), hidden: int = 64, depth: int = 4,
                 backbone: str = "maxpool", **kwargs):
        super().__init__(**kwargs)
        if backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        self.backbone = backbone
        channels = [image_shape[-1]] + [hidden] * depth
        self.blocks = [Block(c_in, c_out) for c_in, c_out in zip(channels, channels[1:])]
        self.head = dense(way, conv4_embedding_size(image_shape, hidden, depth, backbone))
        self.built = True

    def params(self) -> dict:
        """θ: ``blocks.{i}.conv.kernel``, ``.conv.bias``, ``.norm.gamma``, ``.norm.beta`` for each
        block, then ``head.kernel``, ``head.bias``."""
        params = {}
        for i, block in enumerate(self.blocks):
            params.update({f"blocks.{i}.conv.kernel": block.conv.kernel, f"blocks.{i}.conv.bias": block.conv.bias,
                           f"blocks.{i}.norm.gamma": block.norm.gamma, f"blocks.{i}.norm.beta": block.norm.beta})
        params.update({"head.kernel": self.head.kernel, "head.bias": self.head.bias})
        return params

    def forward(self, params: dict, x, reference=None):
        """Logits of the images ``x`` (N, H, W, C) under θ = ``params``.

        ``reference=None``: each BatchNorm normalises with the statistics of ``x`` itself
        (transductive for a query set). ``reference=support_x``: with the statistics of the
        support images only, so the rows of ``x`` do not influence one another.
        """
        rows = None
        if reference is not None:
            rows = ops.shape(reference)[0]
            x = ops.concatenate([reference, x], axis=0)  # one pass; the statistics use rows [0, rows)
        strided = self.backbone == "strided"
        for i in range(len(self.blocks)):
            x = ops.conv(x, params[f"blocks.{i}.conv.kernel"], strides=2 if strided else 1, padding="same",
                         data_format="channels_last") + params[f"blocks.{i}.conv.bias"]
            x = ops.relu(batch_norm(x, params[f"blocks.{i}.norm.gamma"], params[f"blocks.{i}.norm.beta"], rows, EPSILON))
            if not strided:
                x = ops.max_pool(x, pool_size=2, strides=2, padding="valid", data_format="channels_last")
        if strided:
            x = ops.mean(x, axis=(1, 2))  # the mean over the final map's positions
        else:
            x = ops.reshape(x, (ops.shape(x)[0], -1))  # channels-last (H, W, C) order, the canonical one
        logits = ops.matmul(x, params["head.kernel"]) + params["head.bias"]
        return logits if reference is None else logits[rows:]

    def loss(self, logits, labels):
        """The mean softmax cross-entropy of integer labels."""
        return ops.mean(ops.sparse_categorical_crossentropy(labels, logits, from_logits=True))

    def metric(self, logits, labels):
        """Accuracy: the fraction of argmax logits equal to the label, in the logits' float dtype."""
        predicted = ops.argmax(logits, axis=-1)
        return ops.mean(ops.cast(predicted == ops.cast(labels, predicted.dtype), logits.dtype))

    def call(self, x):
        return self.forward(self.params(), x)
