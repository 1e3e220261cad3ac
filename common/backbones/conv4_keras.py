"""Conv-4 embedding network in Keras 3 (see ``common.backbones``).

Keras's defaults differ from PyTorch's in two places that matter for cross-framework agreement:
BatchNorm's ``momentum`` is the weight of the *old* running value (0.9 here = PyTorch's 0.1) and
its epsilon defaults to 1e-3 (1e-5 here). The conv kernels use PyTorch's default initialisation,
uniform in +-1/sqrt(fan_in), so that all three frameworks start from the same distribution.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from common.tf_layers import fusable, values_per_channel


def torch_like_init():
    """A *new* initializer per layer: one shared unseeded Keras initializer returns the same numbers
    on every call, which would give blocks 2-4 identical kernels."""
    return keras.initializers.VarianceScaling(scale=1 / 3, mode="fan_in", distribution="uniform")


class BatchNorm(keras.layers.BatchNormalization):
    """Keras' ``BatchNormalization`` (its variables, and its running statistics: the weight of the
    old value is ``momentum``, the variance kept is the biased one), but a float32 image batch in
    training goes through TensorFlow's fused kernel: Keras computes mean, variance and the
    normalisation as separate operations, which made the Conv-4 training step twice as slow
    (``common.tf_layers.BatchNorm`` does the same for the TensorFlow code). Anything else (a
    mask, another dtype, inference) is Keras' own ``call``."""

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self.scale and self.center and mask is None
                and fusable(inputs) and self.axis in (-1, 3)):
            return super().call(inputs, training=training, mask=mask)
        y, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
        n = values_per_channel(inputs)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum
                                    + unbiased_variance * (n - 1) / n * (1 - self.momentum))
        return y


def batch_norm(x, gamma, beta, reference_rows=None, epsilon=1e-5):
    """(x − mean) / sqrt(var + ε) · γ + β per channel (the last axis), statistics over the other axes
    of x's first ``reference_rows`` rows (all rows when None), the variance biased, no stop_gradient
    anywhere (second-order MAML differentiates through it). Computed as x · scale + shift per channel:
    two operations on the whole feature map instead of four, in its derivatives too."""
    statistics = x if reference_rows is None else x[:reference_rows]
    axes = tuple(range(len(x.shape) - 1))
    mean = keras.ops.mean(statistics, axis=axes)
    var = keras.ops.mean(keras.ops.square(statistics - mean), axis=axes)
    scale = gamma * keras.ops.rsqrt(var + epsilon)
    return x * scale + (beta - mean * scale)


class ConvBlock(keras.layers.Layer):
    """conv 3x3 -> BatchNorm -> ReLU -> max-pool 2x2; ``reference_rows``: see ``conv4_torch.ConvBlock``."""

    def __init__(self, out_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(out_channels, 3, padding="same", kernel_initializer=torch_like_init())
        self.bn = BatchNorm(momentum=0.9, epsilon=1e-5)
        self.pool = keras.layers.MaxPooling2D(2)

    def call(self, x, training=False, reference_rows=None):
        x = self.conv(x)
        if reference_rows is None:
            x = self.bn(x, training=training)
        else:
            if not self.bn.built:  # a model's first call may be this one: create γ and β
                self.bn.build(x.shape)
            x = batch_norm(x, self.bn.gamma, self.bn.beta, reference_rows, self.bn.epsilon)
        return self.pool(keras.ops.relu(x))


class Conv4(keras.layers.Layer):
    """Images (B, H, W, C) -> embeddings (B, D); built, like every Keras layer, by its first call."""

    def __init__(self, in_channels: int = 1, hidden: int = 64, depth: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [ConvBlock(hidden) for _ in range(depth)]

    def call(self, x, training=False, reference_rows=None):
        for block in self.blocks:
            x = block(x, training=training, reference_rows=reference_rows)
        return keras.ops.reshape(x, (keras.ops.shape(x)[0], -1))
