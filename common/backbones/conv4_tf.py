"""Conv-4 embedding network in TensorFlow (``tf.Module``; see ``common.backbones``)."""

from __future__ import annotations

import tensorflow as tf

from common.tf_layers import BatchNorm, Conv2D, batch_norm, moments


class ConvBlock(tf.Module):
    """conv 3x3 -> BatchNorm -> ReLU -> max-pool 2x2; ``reference_rows``: see ``conv4_torch.ConvBlock``."""

    def __init__(self, in_channels: int, out_channels: int, dtype=tf.float32, seed=None):
        super().__init__()
        self.conv = Conv2D(in_channels, out_channels, kernel_size=3, padding="SAME", dtype=dtype, seed=seed)
        self.bn = BatchNorm(out_channels, eps=1e-5, momentum=0.1, dtype=dtype)

    def __call__(self, x, training: bool, reference_rows=None):
        x = self.conv(x)
        if reference_rows is None:
            x = self.bn(x, training=training)
        else:
            mean, variance = moments(x[:reference_rows])
            x = batch_norm(x, self.bn.gamma, self.bn.beta, mean, variance, self.bn.eps)
        return tf.nn.max_pool2d(tf.nn.relu(x), 2, 2, "VALID")


class Conv4(tf.Module):
    """Images (B, H, W, C) -> embeddings (B, D)."""

    def __init__(self, in_channels: int = 1, hidden: int = 64, depth: int = 4, dtype=tf.float32, seed=None):
        super().__init__()
        rng = tf.random.Generator.from_seed(seed) if isinstance(seed, int) else seed
        channels = [in_channels] + [hidden] * depth
        self.blocks = [ConvBlock(c_in, c_out, dtype, rng) for c_in, c_out in zip(channels, channels[1:])]

    def __call__(self, x, training: bool = False, reference_rows=None):
        for block in self.blocks:
            x = block(x, training, reference_rows)
        return tf.reshape(x, (tf.shape(x)[0], -1))
