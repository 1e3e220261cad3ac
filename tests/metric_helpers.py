"""Shared scaffolding for the metric chapter's cross-framework tests."""

import contextlib

import numpy as np


def assert_close(a, b, rtol, what=""):
    """||a - b|| <= rtol * ||a||: a relative error over the whole tensor (robust to zeros)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} and {b.shape}"
    error = np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30)
    assert error <= rtol, f"{what}: relative difference {error:.2e} > {rtol:.0e}"


@contextlib.contextmanager
def keras_floatx(dtype):
    """Build Keras layers in ``dtype`` (Keras sub-layers take the global float type)."""
    import keras
    old = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(old)


def cast_episode(episode, dtype):
    return type(episode)(episode.support_x.astype(dtype), episode.support_y,
                         episode.query_x.astype(dtype), episode.query_y)


# float64: the three frameworks agree to rounding error. float32: TensorFlow's oneDNN
# convolutions sum in another order than PyTorch's, so gradients differ by up to ~1e-2 relative.
# "step": after one Adam step. Keras's Adam (used by the tf and keras versions) adds epsilon after
# folding the bias correction into the learning rate, an effective epsilon of eps/sqrt(1-beta2^t)
# instead of PyTorch's eps: updates differ by about eps / |gradient| relative, up to ~1e-5 for
# weights that start at zero (BatchNorm beta), whose whole value is that first update.
TOLERANCE = {"float64": {"forward": 1e-10, "gradients": 1e-8, "step": 1e-4},
             "float32": {"forward": 1e-4, "gradients": 3e-2, "step": 1e-3}}
