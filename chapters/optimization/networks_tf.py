"""The networks of the optimization-based chapter in TensorFlow, as functions of a parameter dict.

MAML, Meta-SGD and Reptile run a network on *adapted* parameters θ' (tensors computed from the
variables θ by inner gradient steps), not only on its own variables. So each network here holds
its variables (``common.tf_layers`` layers, initialised as PyTorch's defaults) and offers
``forward(params, x)``, the same computation on any dict shaped like ``params()``. The dict has
the canonical names and layouts of ``common.weights``, the very same keys and shapes as in
``networks_torch.py`` and ``networks_keras.py``.

Two networks, each with its loss and metric so the algorithms need not know the task:

* :class:`SinusoidMLP`, Finn, Abbeel & Levine (ICML 2017) Sec. 5.1: 1 → 40 → 40 → 1, ReLU,
  mean squared error;
* :class:`Conv4Classifier`, their Omniglot network (Sec. 5.2, after Vinyals et al. 2016): four
  blocks of 3x3 conv → BatchNorm → ReLU → 2x2 max-pool, then a linear head with one output per
  class of the task, softmax cross-entropy; or, with ``backbone="strided"``, the network of their
  released Omniglot code: stride-2 convolutions instead of max-pooling and the mean of the final map.

**BatchNorm in MAML** keeps no running statistics. Finn et al.'s code normalises every forward
pass with the statistics of the batch it is given, in the inner loop, in the outer loop and at
test time alike, so the learned θ never depends on statistics accumulated over other tasks.
Each channel is normalised with the mean and the *biased* variance over (N, H, W), written out
(``common.tf_layers.moments``): ``tf.nn.moments`` wraps the mean in a ``stop_gradient`` inside
the variance, harmless for first derivatives and wrong for the second derivatives that
second-order MAML takes through every BatchNorm. Which batch gives the statistics matters:

* ``reference=None``: ``x`` itself. That is what Finn et al. do, and it is *transductive* when
  ``x`` is a query set: each query's prediction depends on the other queries.
* ``reference=support_x``: the support set's, applied to ``x``. A query is then normalised with
  the support set's statistics, so its prediction depends on the support set and itself only.
  The network runs once on ``concat([reference, x])`` and every BatchNorm computes its statistics
  over the first ``len(reference)`` rows only; the rows of ``x`` are returned.
"""

from __future__ import annotations

import tensorflow as tf

from common.backbones import BACKBONES, conv4_embedding_size
from common.errors import ConfigError
from common.tf_layers import Conv2D, Dense, batch_norm, conv2d, dense, moments


def _generator(seed):
    """One generator for every layer, so one int seeds the whole network (None: random)."""
    return tf.random.Generator.from_seed(seed) if isinstance(seed, int) else seed


class SinusoidMLP(tf.Module):
    """The regression network of Finn et al. Sec. 5.1: 1 → 40 → 40 → 1, ReLU between layers.

    ``common.tf_layers.Dense`` initialises as PyTorch does (uniform in ±1/sqrt(fan_in)).
    """

    metric_name = "mse"

    def __init__(self, hidden: tuple[int, ...] = (40, 40), dtype=tf.float32, seed=None):
        super().__init__()
        rng = _generator(seed)
        sizes = (1, *hidden, 1)
        self.layers = [Dense(n_in, n_out, dtype=dtype, seed=rng) for n_in, n_out in zip(sizes, sizes[1:])]

    def params(self) -> dict[str, tf.Variable]:
        """θ as a dict of canonical names: ``{"layers.0.kernel": ..., "layers.0.bias": ..., ...}``."""
        return {f"layers.{i}.{name}": variable for i, layer in enumerate(self.layers)
                for name, variable in layer.params().items()}

    def forward(self, params: dict, x, reference=None):
        """f_θ(x) for any parameters θ: (N, 1) -> (N, 1). ``reference`` is ignored: no BatchNorm."""
        depth = len(self.layers)
        for i in range(depth):
            x = dense(x, params[f"layers.{i}.kernel"], params[f"layers.{i}.bias"])
            if i < depth - 1:
                x = tf.nn.relu(x)
        return x

    def loss(self, outputs, targets):
        """The mean squared error (Finn et al. Eq. 4 writes a sum; their code averages)."""
        return tf.reduce_mean(tf.square(outputs - targets))

    def metric(self, outputs, targets):
        """Also the MSE: what the paper reports for regression."""
        return self.loss(outputs, targets)

    def __call__(self, x):
        return self.forward(self.params(), x)


class Norm(tf.Module):
    """BatchNorm's learned scale ``gamma`` (ones) and shift ``beta`` (zeros), and nothing else.

    Not ``common.tf_layers.BatchNorm``: MAML's networks keep no running statistics, so there
    is nothing else to hold (see the module docstring). The arithmetic is in
    :meth:`Conv4Classifier.forward`.
    """

    def __init__(self, channels: int, dtype=tf.float32):
        super().__init__()
        self.gamma = tf.Variable(tf.ones(channels, dtype), name="gamma")
        self.beta = tf.Variable(tf.zeros(channels, dtype), name="beta")

    def params(self) -> dict[str, tf.Variable]:
        return {"gamma": self.gamma, "beta": self.beta}


class Block(tf.Module):
    """One block's parameters: a 3x3 ``conv`` ("SAME", stride 1) and its ``norm``."""

    def __init__(self, in_channels: int, out_channels: int, dtype=tf.float32, seed=None):
        super().__init__()
        self.conv = Conv2D(in_channels, out_channels, kernel_size=3, padding="SAME", dtype=dtype, seed=seed)
        self.norm = Norm(out_channels, dtype=dtype)


class Conv4Classifier(tf.Module):
    """MAML's Omniglot network (Finn et al. Sec. 5.2; Vinyals et al. 2016): Conv-4 and a linear head.

    Block i: conv 3x3 + bias → BatchNorm (batch statistics only) → ReLU → max-pool 2x2, halving
    height and width (rounding down: 28 → 14 → 7 → 3 → 1). The final map is flattened in
    (H, W, C) order and ``head`` maps it to ``way`` logits. Images are NHWC.

    ``backbone="strided"`` (Finn et al.'s released Omniglot code): the convolution has stride 2
    and "SAME" padding, no max-pool follows (28 → 14 → 7 → 4 → 2), and the head reads the mean of
    the final map over its positions. Same parameters, names and shapes as ``maxpool``.
    """

    metric_name = "accuracy"

    def __init__(self, way: int, image_shape=(28, 28, 1), hidden: int = 64, depth: int = 4,
                 backbone: str = "maxpool", dtype=tf.float32, seed=None):
        super().__init__()
        if backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        rng = _generator(seed)
        self.way, self.image_shape, self.hidden, self.depth = way, tuple(image_shape), hidden, depth
        self.backbone = backbone
        channels = [image_shape[-1]] + [hidden] * depth
        self.blocks = [Block(c_in, c_out, dtype, rng) for c_in, c_out in zip(channels, channels[1:])]
        self.head = Dense(conv4_embedding_size(image_shape, hidden, depth, backbone), way, dtype=dtype, seed=rng)

    def params(self) -> dict[str, tf.Variable]:
        """θ under canonical names: ``blocks.{i}.conv.kernel``, ``blocks.{i}.conv.bias``,
        ``blocks.{i}.norm.gamma``, ``blocks.{i}.norm.beta``, ..., ``head.kernel``, ``head.bias``."""
        params = {}
        for i, block in enumerate(self.blocks):
            params.update({f"blocks.{i}.conv.{name}": v for name, v in block.conv.params().items()})
            params.update({f"blocks.{i}.norm.{name}": v for name, v in block.norm.params().items()})
        params.update({f"head.{name}": v for name, v in self.head.params().items()})
        return params

    def forward(self, params: dict, x, reference=None):
        """Logits (N, way) of the images ``x`` (N, H, W, C) under parameters θ (any dict).

        BatchNorm statistics come from ``x`` (``reference=None``) or from ``reference`` only
        (non-transductive: see the module docstring).
        """
        rows = None
        if reference is not None:
            rows = tf.shape(reference)[0]
            x = tf.concat([reference, x], 0)
        strided = self.backbone == "strided"
        for i in range(self.depth):
            block = f"blocks.{i}."
            x = conv2d(x, params[block + "conv.kernel"], params[block + "conv.bias"], strides=2 if strided else 1)
            mean, variance = moments(x if rows is None else x[:rows])
            x = tf.nn.relu(batch_norm(x, params[block + "norm.gamma"], params[block + "norm.beta"],
                                      mean, variance, 1e-5))
            if not strided:
                x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        if strided:
            x = tf.reduce_mean(x, axis=[1, 2])  # the mean over the final map's positions
        else:
            x = tf.reshape(x, [tf.shape(x)[0], -1])  # NHWC: (H, W, C) order, the canonical one
        logits = dense(x, params["head.kernel"], params["head.bias"])
        return logits if rows is None else logits[rows:]

    def loss(self, logits, labels):
        """Mean softmax cross-entropy of the int64 ``labels``."""
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))

    def metric(self, logits, labels):
        """The fraction of queries whose highest logit is their label."""
        correct = tf.equal(tf.argmax(logits, -1), tf.cast(labels, tf.int64))
        return tf.reduce_mean(tf.cast(correct, logits.dtype))

    def __call__(self, x, reference=None):
        return self.forward(self.params(), x, reference)
