"""BatchNorm through TensorFlow's fused kernel computes what the formula computes.

``common.tf_layers.BatchNorm`` and the Keras Conv-4's ``BatchNorm`` send a float32 image batch in
training through ``FusedBatchNormV3`` (twice as fast a Conv-4 step on CPU). These tests prove that
the kernel is used and that it changes nothing but rounding: outputs, running statistics, and first
and second derivatives, against ``moments``/``batch_norm`` (TensorFlow) and Keras' own
``BatchNormalization``. float64, which the kernel lacks, is covered against PyTorch exactly in
``test_weights.py``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import tf_layers  # noqa: E402
from common.backbones import conv4_keras  # noqa: E402
from tests.metric_helpers import assert_close  # noqa: E402

SHAPE = (6, 5, 5, 3)  # NHWC: 150 values per channel
RTOL = 1e-5  # float32: the kernel sums in another order than the formula


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal(SHAPE) + 1).astype(np.float32)  # mean 1 and variance 9: normalising does something
    w = rng.standard_normal(SHAPE).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 1.5, 3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    return x, w, gamma, beta


def derivatives(normalise, x, w, weights):
    """f = sum(sin(bn(x)) * w); returns f, df/dx, df/dgamma, df/dbeta and d/dx |df/dx|^2 (MAML's kind)."""
    xt = tf.constant(x)
    with tf.GradientTape() as outer:
        outer.watch(xt)
        with tf.GradientTape() as inner:
            inner.watch(xt)
            f = tf.reduce_sum(tf.sin(normalise(xt)) * w)
        first = inner.gradient(f, [xt, *weights])
        h = tf.reduce_sum(first[0] ** 2)
    return [f.numpy(), *(g.numpy() for g in first), outer.gradient(h, xt).numpy()]


def op_types(normalise):
    graph = tf.function(normalise).get_concrete_function(tf.TensorSpec(SHAPE, tf.float32)).graph
    return {op.type for op in graph.get_operations()}


def test_tf_batch_norm_takes_the_fused_kernel_and_computes_the_formula():
    x, w, gamma, beta = inputs()
    bn = tf_layers.BatchNorm(3)
    bn.gamma.assign(gamma)
    bn.beta.assign(beta)
    assert "FusedBatchNormV3" in op_types(lambda x: bn(x, training=True))
    bn.moving_mean.assign(tf.zeros(3))
    bn.moving_variance.assign(tf.ones(3))

    def formula(x):
        mean, variance = tf_layers.moments(x)
        return tf_layers.batch_norm(x, bn.gamma, bn.beta, mean, variance, bn.eps)

    fused = derivatives(lambda x: bn(x, training=True), x, w, [bn.gamma, bn.beta])
    for name, a, b in zip(["f", "d/dx", "d/dgamma", "d/dbeta", "second order"], fused,
                          derivatives(formula, x, w, [bn.gamma, bn.beta])):
        assert_close(a, b, RTOL, name)
    # The running statistics moved once (the tape ran the forward once), by the unbiased variance.
    n = np.prod(SHAPE[:-1])
    assert_close(bn.moving_mean.numpy(), 0.1 * x.mean((0, 1, 2)), RTOL, "moving_mean")
    assert_close(bn.moving_variance.numpy(), 0.9 + 0.1 * x.var((0, 1, 2)) * n / (n - 1), RTOL,
                 "moving_variance")


def test_keras_batch_norm_takes_the_fused_kernel_and_is_keras_own():
    x, w, gamma, beta = inputs(1)
    ours = conv4_keras.BatchNorm(momentum=0.9, epsilon=1e-5)
    theirs = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    for layer in (ours, theirs):
        layer.build(SHAPE)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    assert "FusedBatchNormV3" in op_types(lambda x: ours(x, training=True))
    assert "FusedBatchNormV3" not in op_types(lambda x: ours(x, training=False))
    for layer in (ours, theirs):  # tracing ran training mode once: start the statistics again
        layer.moving_mean.assign(np.zeros(3, np.float32))
        layer.moving_variance.assign(np.ones(3, np.float32))

    results = [derivatives(lambda x, layer=layer: layer(x, training=True), x, w, [layer.gamma, layer.beta])
               for layer in (ours, theirs)]
    for name, a, b in zip(["f", "d/dx", "d/dgamma", "d/dbeta", "second order"], *results):
        assert_close(a, b, RTOL, name)
    # Keras' running statistics: old value weighted by momentum, the *biased* variance kept.
    for name in ("moving_mean", "moving_variance"):
        assert_close(getattr(ours, name).numpy(), getattr(theirs, name).numpy(), RTOL, name)
    assert_close(ours(x, training=False).numpy(), theirs(x, training=False).numpy(), RTOL, "inference")
