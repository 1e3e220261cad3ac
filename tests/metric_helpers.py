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
    # Keras fixes its global dtype policy from floatx when the first layer is built, and keeps it:
    # set (and restore) the policy too, or one float64 test makes every later layer float64.
    old, old_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(old)
        keras.config.set_dtype_policy(old_policy)


def evaluation_logits(framework: str, learner, episode) -> np.ndarray:
    """The query logits an episodic learner's ``predict`` takes its argmax of: the same call on the
    same model (PyTorch in evaluation mode, TensorFlow's ``_logits``, Keras' ``predict_on_batch``)."""
    if framework == "torch":
        import torch

        from common.adapters import to_torch
        learner.model.eval()
        with torch.no_grad():
            support_x, support_y, query_x, _ = to_torch(episode, learner.device)
            return learner.model(support_x, support_y, query_x).numpy()
    if framework == "tf":
        return learner._logits(episode.support_x, episode.support_y, episode.query_x).numpy()
    return np.asarray(learner.model.predict_on_batch((episode.support_x, episode.support_y, episode.query_x)))


def cast_episode(episode, dtype):
    return type(episode)(episode.support_x.astype(dtype), episode.support_y,
                         episode.query_x.astype(dtype), episode.query_y)


def omniglot_like_episode(dtype, way=5, shot=2, query=3):
    """A real-shaped (28x28x1) episode with varied pixels, from a synthetic split."""
    from common.data.base import FewShotDataset
    from common.episodes import EpisodeSampler

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 8, 28, 28, 1), dtype=np.uint8)
    dataset = FewShotDataset("noise", "train", images, tuple(map(str, range(12))))
    return cast_episode(EpisodeSampler(dataset, way, shot, query, seed=1).episode(0), dtype)


# float64: the three frameworks agree to rounding error. float32: TensorFlow's oneDNN
# convolutions sum in another order than PyTorch's. Measured on the metric models' one-episode
# forward pass and gradients (ProtoNet, Siamese, the five Matching Networks variants), as the
# largest relative difference of any tensor: forward 1.3e-5, gradients 2.1e-5, the same with oneDNN
# limited to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2, an older CPU's kernels). float32 tolerances: about 50x
# the measurement, rounded up to a power of ten (forward 1e-4 kept: 8x).
# "step": weights after one Adam step (the tf and keras learners use common.episodic_tf.Adam,
# PyTorch's formula; Keras's own Adam places epsilon differently and would differ by ~1e-4 here).
# Adam divides each gradient by its own magnitude, so elements whose gradient is near zero (~eps)
# turn rounding-level gradient differences into update differences: ~3e-8 relative in float64.
TOLERANCE = {"float64": {"forward": 1e-10, "gradients": 1e-8, "step": 1e-6},
             "float32": {"forward": 1e-4, "gradients": 1e-3, "step": 1e-3}}


def assert_gradients_close(expected, actual, rtol, name):
    """Every canonical gradient of ``actual`` (tf or keras) matches PyTorch's ``expected``."""
    assert set(actual) == set(expected)
    for key in expected:
        if key.endswith("conv.bias"):
            continue  # BatchNorm right after the conv cancels its bias: the gradient is 0 + rounding
        assert_close(expected[key], actual[key], rtol, f"{name} d loss / d {key}")


def one_adam_step(models, episode, dtype):
    """(losses, canonical weights) after one step of each framework's episodic learner.

    ``models`` are the torch, tf and keras models holding identical weights.
    """
    from common import episodic_keras, episodic_tf, episodic_torch
    from common.weights import to_canonical

    torch_model, tf_model, keras_model = models
    with keras_floatx(dtype):
        learners = {"torch": episodic_torch.EpisodicLearner(torch_model),
                    "tf": episodic_tf.EpisodicLearner(tf_model),
                    "keras": episodic_keras.EpisodicLearner(keras_model, episode)}
        losses = {name: learner.train_step(episode)["loss"] for name, learner in learners.items()}
    return losses, {name: to_canonical(learner.model, name) for name, learner in learners.items()}


def assert_same_step(losses, weights, dtype):
    """tf and keras took the step PyTorch took: same loss, same weights afterwards."""
    for name in ("tf", "keras"):
        assert_close(losses["torch"], losses[name], TOLERANCE[dtype]["forward"], f"{name} loss")
        for key, value in weights["torch"].items():
            if key.endswith("moving_variance") and name == "keras":
                continue  # Keras keeps the biased batch variance in its running average (PyTorch: unbiased)
            assert_close(value, weights[name][key], TOLERANCE[dtype]["step"], f"{name} {key} after one step")
