"""Canonical weights: bit-exact round trips, the same numbers in all three frameworks, strictness.

One small conv net is written three times (PyTorch NCHW, TensorFlow with ``common.tf_layers``,
Keras 3). Two conv-BN-ReLU-maxpool blocks turn a 12x12 image into a 3x3x4 map, so the flatten
order before the dense head matters, as it does on mini-ImageNet.
"""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from common import tf_layers  # noqa: E402
from common.errors import ConfigError, CorruptDataError  # noqa: E402
from common.weights import (  # noqa: E402
    FRAMEWORKS, from_canonical, load_weights, save_weights, to_canonical)

CHANNELS, WAYS, SIZE = 4, 5, 12
FINAL_MAP = (CHANNELS, SIZE // 4, SIZE // 4)  # (C, H, W) after two 2x2 max-pools
NCHW = {"head": FINAL_MAP}
DTYPES = [np.float32, np.float64]


# --------------------------------------------------------------------------------------------
# The net, three times. Attribute names match, so canonical names match.
# --------------------------------------------------------------------------------------------


class TorchBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)


class TorchNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([TorchBlock(3, CHANNELS), TorchBlock(CHANNELS, CHANNELS)])
        self.head = nn.Linear(CHANNELS * FINAL_MAP[1] * FINAL_MAP[2], WAYS)

    def forward(self, x):  # x: NCHW
        for block in self.blocks:
            x = block(x)
        return self.head(x.flatten(1))  # (C, H, W) order


class TFBlock(tf.Module):
    def __init__(self, cin, cout, dtype, rng):
        super().__init__()
        self.conv = tf_layers.Conv2D(cin, cout, 3, dtype=dtype, seed=rng)
        self.bn = tf_layers.BatchNorm(cout, dtype=dtype)

    def __call__(self, x, training):
        return tf.nn.max_pool2d(tf.nn.relu(self.bn(self.conv(x), training)), 2, 2, "VALID")


class TFNet(tf.Module):
    def __init__(self, dtype, seed=0):
        super().__init__()
        rng = tf.random.Generator.from_seed(seed)
        self.blocks = [TFBlock(3, CHANNELS, dtype, rng), TFBlock(CHANNELS, CHANNELS, dtype, rng)]
        self.head = tf_layers.Dense(CHANNELS * FINAL_MAP[1] * FINAL_MAP[2], WAYS, dtype=dtype,
                                    seed=rng)

    def __call__(self, x, training=False):  # x: NHWC
        for block in self.blocks:
            x = block(x, training)
        return self.head(tf.reshape(x, [tf.shape(x)[0], -1]))  # (H, W, C) order


class KerasBlock(keras.layers.Layer):
    def __init__(self, cout, dtype):
        super().__init__(dtype=dtype)
        self.conv = keras.layers.Conv2D(cout, 3, padding="same", dtype=dtype)
        # PyTorch's BatchNorm: eps 1e-5, and Keras' momentum is the weight of the old value.
        self.bn = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, dtype=dtype)
        self.pool = keras.layers.MaxPooling2D(2, dtype=dtype)

    def call(self, x, training=False):
        return self.pool(keras.ops.relu(self.bn(self.conv(x), training=training)))


class KerasNet(keras.Model):
    def __init__(self, dtype):
        super().__init__(dtype=dtype)
        self.blocks = [KerasBlock(CHANNELS, dtype), KerasBlock(CHANNELS, dtype)]
        self.head = keras.layers.Dense(WAYS, dtype=dtype)

    def call(self, x, training=False):
        for block in self.blocks:
            x = block(x, training=training)
        return self.head(keras.ops.reshape(x, (keras.ops.shape(x)[0], -1)))


def build(framework, dtype, seed=0):
    dtype = np.dtype(dtype)
    if framework == "torch":
        torch.manual_seed(seed)
        return TorchNet().to(getattr(torch, dtype.name))
    if framework == "tf":
        return TFNet(tf.as_dtype(dtype), seed)
    model = KerasNet(dtype.name)
    model(np.zeros((1, SIZE, SIZE, 3), dtype))  # creates the variables
    return model


def kwargs(framework):
    return {"nchw_flatten": NCHW} if framework == "torch" else {}


def random_like(weights, seed):
    """Random canonical weights with the given names, shapes and dtypes (variances > 0)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, value in weights.items():
        r = rng.standard_normal(value.shape)
        if name.endswith("moving_variance"):
            r = rng.uniform(0.5, 2.0, value.shape)
        elif name.endswith("gamma"):
            r = rng.uniform(0.5, 1.5, value.shape)
        out[name] = (0.3 * r if name.endswith("kernel") else r).astype(value.dtype)
    return out


def assert_same(a, b):
    """Bit-exact: same names, shapes, dtypes and values."""
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].shape == b[name].shape, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def assert_close(actual, expected, dtype, what=""):
    """Relative to the largest expected magnitude: 1e-10 in float64, 1e-4 in float32."""
    tol = 1e-10 if np.dtype(dtype) == np.float64 else 1e-4
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = max(np.max(np.abs(expected)), 1e-12)
    err = np.max(np.abs(actual - expected)) / scale
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:g}"


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_round_trip_is_bit_exact(framework, dtype, tmp_path):
    model = build(framework, dtype, seed=1)
    names = to_canonical(model, framework, **kwargs(framework))
    assert all(v.dtype == dtype for v in names.values())
    expected = random_like(names, seed=2)

    from_canonical(expected, model, framework, **kwargs(framework))
    assert_same(to_canonical(model, framework, **kwargs(framework)), expected)

    save_weights(tmp_path / "w.npz", expected, {"algorithm": "maml", "ways": WAYS})
    loaded, metadata = load_weights(tmp_path / "w.npz")
    assert metadata == {"algorithm": "maml", "ways": WAYS}
    assert_same(loaded, expected)

    fresh = build(framework, dtype, seed=3)
    from_canonical(loaded, fresh, framework, **kwargs(framework))
    assert_same(to_canonical(fresh, framework, **kwargs(framework)), expected)


def test_torch_round_trip_without_nchw_flatten():
    model = build("torch", np.float64)
    expected = random_like(to_canonical(model, "torch"), seed=4)
    from_canonical(expected, model, "torch")
    assert_same(to_canonical(model, "torch"), expected)


def test_canonical_names():
    names = sorted(to_canonical(build("torch", np.float32), "torch", nchw_flatten=NCHW))
    for framework in ("tf", "keras"):
        assert sorted(to_canonical(build(framework, np.float32), framework)) == names
    assert "blocks.1.bn.moving_variance" in names and "head.kernel" in names
    assert not any("num_batches_tracked" in n for n in names)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_loading_keeps_the_model_dtype(framework):
    model = build(framework, np.float64)
    weights32 = {k: v.astype(np.float32)
                 for k, v in random_like(to_canonical(model, framework, **kwargs(framework)),
                                         5).items()}
    from_canonical(weights32, model, framework, **kwargs(framework))
    back = to_canonical(model, framework, **kwargs(framework))
    assert_same(back, {k: v.astype(np.float64) for k, v in weights32.items()})


# --------------------------------------------------------------------------------------------
# The same weights give the same numbers in all three frameworks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_weights_run_identically_in_tf_and_keras(dtype):
    torch_net = build("torch", dtype)
    from_canonical(random_like(to_canonical(torch_net, "torch", nchw_flatten=NCHW), seed=6), torch_net, "torch", NCHW)
    weights = to_canonical(torch_net, "torch", nchw_flatten=NCHW)
    tf_net = from_canonical(weights, build("tf", dtype, seed=7), "tf")
    keras_net = from_canonical(weights, build("keras", dtype, seed=8), "keras")

    x = np.random.default_rng(9).standard_normal((6, SIZE, SIZE, 3)).astype(dtype)
    x_nchw = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    def run_all(training):
        torch_net.train(training)
        with torch.no_grad():
            expected = torch_net(x_nchw).numpy()
        return (expected, tf_net(x, training=training).numpy(),
                keras.ops.convert_to_numpy(keras_net(x, training=training)))

    # Inference mode: normalised with the (random, loaded) moving statistics.
    expected, out_tf, out_keras = run_all(training=False)
    assert_close(out_tf, expected, dtype, "tf, inference")
    assert_close(out_keras, expected, dtype, "keras, inference")

    # Without the (C,H,W) -> (H,W,C) permutation of the head, TF computes something else.
    unpermuted = from_canonical(to_canonical(torch_net, "torch"), build("tf", dtype), "tf")
    err = np.max(np.abs(unpermuted(x).numpy() - expected)) / np.max(np.abs(expected))
    assert err > 1e-2

    # Training mode: batch statistics, and one update of the moving statistics.
    expected, out_tf, out_keras = run_all(training=True)
    assert_close(out_tf, expected, dtype, "tf, training")
    assert_close(out_keras, expected, dtype, "keras, training")
    after = to_canonical(torch_net, "torch", nchw_flatten=NCHW)
    after_tf, after_keras = to_canonical(tf_net, "tf"), to_canonical(keras_net, "keras")
    for name in after:
        assert_close(after_tf[name], after[name], dtype, name)
        if not name.endswith("moving_variance"):  # Keras keeps the biased variance
            assert_close(after_keras[name], after[name], dtype, name)


def test_tf_batch_norm_matches_torch_to_second_order():
    """Second-order MAML differentiates through BatchNorm twice: d/dx |d/dx f(bn(x))|^2."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 5, 5, 3))
    w = rng.standard_normal(x.shape)
    gamma, beta = rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    mean0, var0 = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)

    bn = tf_layers.BatchNorm(3, dtype=tf.float64)
    for var, value in [(bn.gamma, gamma), (bn.beta, beta), (bn.moving_mean, mean0),
                       (bn.moving_variance, var0)]:
        var.assign(value)
    xt = tf.constant(x)
    with tf.GradientTape() as outer:
        outer.watch(xt)
        with tf.GradientTape() as inner:
            inner.watch(xt)
            f = tf.reduce_sum(tf.sin(bn(xt, training=True)) * w)
        g_tf = inner.gradient(f, xt)
        h = tf.reduce_sum(g_tf ** 2)
    gg_tf = outer.gradient(h, xt)

    bn_t = nn.BatchNorm2d(3).double().train()
    with torch.no_grad():
        for tensor, value in [(bn_t.weight, gamma), (bn_t.bias, beta), (bn_t.running_mean, mean0),
                              (bn_t.running_var, var0)]:
            tensor.copy_(torch.from_numpy(value))
    xp = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    f = (torch.sin(bn_t(xp)) * torch.from_numpy(w.transpose(0, 3, 1, 2))).sum()
    (g_t,) = torch.autograd.grad(f, xp, create_graph=True)
    (gg_t,) = torch.autograd.grad((g_t ** 2).sum(), xp)

    def nhwc(t):
        return t.detach().numpy().transpose(0, 2, 3, 1)

    assert_close(g_tf.numpy(), nhwc(g_t), np.float64, "first order")
    assert_close(gg_tf.numpy(), nhwc(gg_t), np.float64, "second order")
    # One training-mode call each: the moving statistics moved identically (unbiased variance).
    assert_close(bn.moving_mean.numpy(), bn_t.running_mean.numpy(), np.float64, "moving_mean")
    assert_close(bn.moving_variance.numpy(), bn_t.running_var.numpy(), np.float64,
                 "moving_variance")


def test_tf_layers_call_with_adapted_tensors():
    """call_with runs a layer on tensors that are not its variables (MAML's fast weights)."""
    layer = tf_layers.Dense(3, 2, dtype=tf.float64, seed=0)
    x = tf.ones((1, 3), tf.float64)
    doubled = {k: 2 * v for k, v in layer.params().items()}
    np.testing.assert_allclose(layer.call_with(doubled, x).numpy(), 2 * layer(x).numpy())
    assert tf_layers.Conv2D(2, 3, use_bias=False).params().keys() == {"kernel"}


# --------------------------------------------------------------------------------------------
# Strict loading
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_loading_is_strict(framework):
    model = build(framework, np.float32)
    good = to_canonical(model, framework, **kwargs(framework))

    missing = dict(good)
    del missing["blocks.0.bn.moving_mean"]
    with pytest.raises(ConfigError, match=r"not in the weights: blocks\.0\.bn\.moving_mean"):
        from_canonical(missing, model, framework, **kwargs(framework))

    extra = dict(good, **{"blocks.2.conv.kernel": np.zeros((3, 3, 4, 4), np.float32)})
    with pytest.raises(ConfigError, match=r"not in the model: blocks\.2\.conv\.kernel"):
        from_canonical(extra, model, framework, **kwargs(framework))

    wrong = dict(random_like(good, 11), **{"head.kernel": np.zeros((37, WAYS), np.float32)})
    with pytest.raises(ConfigError, match=r"head\.kernel: weights \(37, 5\), model \(36, 5\)"):
        from_canonical(wrong, model, framework, **kwargs(framework))
    # Checked before anything is written: the model still holds its old weights.
    assert_same(to_canonical(model, framework, **kwargs(framework)), good)


def test_other_mistakes_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="one of torch, tf, keras"):
        to_canonical(build("tf", np.float32), "jax")
    with pytest.raises(ConfigError, match="not nn.Linear"):
        to_canonical(build("torch", np.float32), "torch", nchw_flatten={"blocks.0.conv": NCHW})
    with pytest.raises(ConfigError, match="reads 36"):
        to_canonical(build("torch", np.float32), "torch", nchw_flatten={"head": (4, 2, 2)})
    with pytest.raises(ConfigError, match="no canonical layout"):
        to_canonical(nn.Sequential(nn.Conv1d(1, 1, 3)), "torch")
    with pytest.raises(ConfigError, match="call the model once"):
        to_canonical(KerasNet("float32"), "keras")
    with pytest.raises(ConfigError, match="No weights file"):
        load_weights(tmp_path / "nothing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(CorruptDataError):
        load_weights(tmp_path / "junk.npz")


def test_importing_weights_imports_no_framework():
    code = ("import sys, common.weights; "
            "print([m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules])")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
