"""The metric chapter's learners, as the scripts build them (``chapters.metric.train.build_learner``),
compared exactly where a reader's numbers come from: evaluation, the schedule, the checkpoint.

1. Evaluation mode. ``predict`` normalises with BatchNorm's *running* statistics. From the same
   canonical weights and running statistics (those of a few training steps), the three frameworks
   give the same query logits in evaluation mode (float64, 1e-10 relative) and the same labels, and
   those logits are not the batch-statistics ones (a learner that evaluated in training mode would
   fail: the test checks that the episode is one where the two modes disagree on labels).
2. The schedule. Five Adam steps with ``--decay-every 2`` (rates β, β, β/2, β/2, β/4) end in the
   same weights in the three frameworks; without the decay they end far elsewhere, so a framework
   that ignored the schedule, or decayed one step early, fails.
3. A trained model moves between frameworks. A checkpoint written by ``common.training`` in one
   framework, loaded into the others' models, gives the same predictions on fixed episodes: the
   same logits in float64; in float32 the same labels up to a stated number of flips.

What they do not prove: that long float32 trainings stay together (``test_metric_agreement.py``
bounds that statistically) or that a model reaches the papers' accuracy (the results tables).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import tensorflow as tf
import torch

from chapters.metric.train import build_learner
from common.adapters import to_torch
from common.backbones import conv4_embedding_size
from common.data.base import FewShotDataset
from common.episodes import EpisodeSampler, astype_floats, evaluation_episodes
from common.training import write_checkpoint
from common.weights import from_canonical, load_weights, model_weights, to_canonical
from tests.metric_helpers import TOLERANCE, assert_close, evaluation_logits, keras_floatx

FRAMEWORKS = ("torch", "tf", "keras")
ALGORITHMS = ("protonet", "siamese", "matching")
MODEL_OPTIONS = {"protonet": {}, "matching": {}, "siamese": {"embedding_size": conv4_embedding_size((28, 28, 1))}}
WAY, SHOT, QUERY = 3, 1, 6


def noise_split(seed: int, classes: int = 10) -> FewShotDataset:
    images = np.random.default_rng(seed).integers(0, 256, size=(classes, 8, 28, 28, 1), dtype=np.uint8)
    return FewShotDataset("noise", "train", images, tuple(map(str, range(classes))))


TRAIN, TEST = noise_split(0), noise_split(1)


@contextlib.contextmanager
def floats(dtype: str):
    """Models built in ``dtype``: PyTorch's default dtype, Keras' floatx (TensorFlow: ``dtype=``).
    PyTorch on one thread: two threads on a shared core wait on each other (10x slower)."""
    old_dtype, old_threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(getattr(torch, dtype))
    torch.set_num_threads(1)
    try:
        with keras_floatx(dtype):
            yield
    finally:
        torch.set_num_threads(old_threads)
        torch.set_default_dtype(old_dtype)


def episode(index: int, dtype: str = "float64", dataset=TRAIN):
    return astype_floats(EpisodeSampler(dataset, WAY, SHOT, QUERY, seed=3).episode(index), np.dtype(dtype))


def learners(algorithm: str, dtype: str = "float64", learning_rate: float = 1e-3, decay_every=None,
             weights: dict | None = None) -> dict:
    """``build_learner``'s learners of the three frameworks, holding the same weights (PyTorch's
    seed-0 initialisation unless ``weights`` are given)."""
    built = {}
    with floats(dtype):
        for framework in FRAMEWORKS:
            options = dict(MODEL_OPTIONS[algorithm], **({"dtype": getattr(tf, dtype)} if framework == "tf" else {}))
            built[framework] = build_learner(algorithm, framework, 1, episode(0, dtype), learning_rate,
                                             decay_every, 0, **options)
    if weights is None:
        weights = to_canonical(built["torch"].model, "torch")
    for framework, learner in built.items():
        from_canonical(weights, learner.model, framework)
    return built


def batch_statistics_logits(framework: str, learner, data) -> np.ndarray:
    """The same model in training mode: BatchNorm normalises with the episode's own statistics."""
    if framework == "torch":
        learner.model.train()
        with torch.no_grad():
            support_x, support_y, query_x, _ = to_torch(data, learner.device)
            logits = learner.model(support_x, support_y, query_x).numpy()
        return logits
    if framework == "tf":
        return learner.model(data.support_x, data.support_y, data.query_x, training=True).numpy()
    return np.asarray(learner.model((data.support_x, data.support_y, data.query_x), training=True))


def running_statistics(weights: dict) -> dict:
    return {k: v for k, v in weights.items() if "moving_" in k}


# ------------------------------------------------------------------------------ 1. evaluation mode

@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_evaluation_mode_gives_the_same_logits_from_the_same_running_statistics(algorithm):
    trained = learners(algorithm)["torch"]
    for index in range(3):  # running statistics of three training episodes, far from their start (0, 1)
        trained.train_step(episode(index))
    weights = to_canonical(trained.model, "torch")
    assert min(np.abs(v).max() for k, v in running_statistics(weights).items() if "mean" in k) > 1e-3
    built = learners(algorithm, weights=weights)
    data = episode(0, dataset=TEST)
    for learner in built.values():
        learner.train_step(episode(3))  # predict is called right after training, as the scripts do
    weights = to_canonical(built["torch"].model, "torch")
    for framework, learner in built.items():
        from_canonical(weights, learner.model, framework)  # the same trained weights and statistics again
    labels = {framework: learner.predict(data) for framework, learner in built.items()}
    logits = {framework: evaluation_logits(framework, learner, data) for framework, learner in built.items()}
    for framework, learner in built.items():
        assert_close(logits["torch"], logits[framework], TOLERANCE["float64"]["forward"], f"{framework} eval logits")
        np.testing.assert_array_equal(labels[framework], logits["torch"].argmax(1), f"{framework} predict")
        # Evaluation left the running statistics alone.
        assert_close(np.concatenate([v.ravel() for v in running_statistics(weights).values()]),
                     np.concatenate([v.ravel() for v in running_statistics(
                         to_canonical(learner.model, framework)).values()]), 1e-12, f"{framework} statistics")
    # The test can see a learner that evaluates with batch statistics: on this episode the two
    # modes give other labels (and logits far apart).
    batch_logits = batch_statistics_logits("torch", built["torch"], data)
    assert np.linalg.norm(batch_logits - logits["torch"]) > 1e-2 * np.linalg.norm(logits["torch"])
    assert (batch_logits.argmax(1) != logits["torch"].argmax(1)).any(), "pick an episode where the modes disagree"


# ----------------------------------------------------------------------------------- 2. schedule

@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_five_steps_across_two_decay_boundaries_agree(algorithm):
    """Rates 1e-3 (the scripts' --lr) for steps 0-1, 5e-4 for 2-3, 2.5e-4 for step 4 (``--decay-every 2``).

    Tolerance: ``TOLERANCE["float64"]["step"]`` (1e-6 relative), as for one step. Measured: losses
    and weights agree to ~1e-7 after five steps (Adam divides the rounding-level gradients of
    parameters that BatchNorm makes irrelevant by their own size); without the decay some tensors
    end ~0.5 relative away, 10^5 times the tolerance."""
    built = learners(algorithm, learning_rate=1e-3, decay_every=2)
    constant = learners(algorithm, learning_rate=1e-3)["torch"]
    for index in range(5):
        losses = {framework: learner.train_step(episode(index)) for framework, learner in built.items()}
        constant.train_step(episode(index))
        for framework in ("tf", "keras"):
            assert_close(losses["torch"]["loss"], losses[framework]["loss"], TOLERANCE["float64"]["step"],
                         f"{framework} loss at step {index}")
    weights = {framework: to_canonical(learner.model, framework) for framework, learner in built.items()}
    for framework in ("tf", "keras"):
        for key, value in weights["torch"].items():
            if key.endswith("moving_variance") and framework == "keras":
                continue  # Keras keeps the biased batch variance in its running average (PyTorch: unbiased)
            assert_close(value, weights[framework][key], TOLERANCE["float64"]["step"], f"{framework} {key}")
    undecayed = to_canonical(constant.model, "torch")
    trainable = [k for k in undecayed if "moving_" not in k and not k.endswith("conv.bias")]
    distance = max(np.linalg.norm(undecayed[k] - weights["torch"][k]) / np.linalg.norm(weights["torch"][k])
                   for k in trainable)
    assert distance > 1e3 * TOLERANCE["float64"]["step"], f"the decay changed the weights by {distance:.1e} only"


# ------------------------------------------------------------------------------ 3. checkpoints

def trained_checkpoint(algorithm: str, framework: str, dtype: str, folder) -> tuple:
    """A learner of ``framework`` trained 3 episodes from the shared start, and its checkpoint file."""
    learner = learners(algorithm, dtype)[framework]
    for index in range(3):
        learner.train_step(episode(index, dtype))
    path = folder / f"{algorithm}_{framework}_{dtype}.npz"
    write_checkpoint(path, learner, {"algorithm": algorithm, "framework": framework})
    return learner, path


def fixed_episodes(dtype: str, count: int):
    episodes = evaluation_episodes(TEST, WAY, SHOT, QUERY, count=count)
    return [astype_floats(episodes[i], np.dtype(dtype)) for i in range(count)]


@pytest.mark.parametrize("source", FRAMEWORKS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_checkpoint_gives_the_same_predictions_in_every_framework_float64(algorithm, source, tmp_path):
    learner, path = trained_checkpoint(algorithm, source, "float64", tmp_path)
    arrays, _ = load_weights(path)
    loaded = learners(algorithm, weights=model_weights(arrays))
    for data in fixed_episodes("float64", 3):
        expected = evaluation_logits(source, learner, data)
        for framework, other in loaded.items():
            assert_close(expected, evaluation_logits(framework, other, data), TOLERANCE["float64"]["forward"],
                         f"{source} checkpoint evaluated in {framework}")
            np.testing.assert_array_equal(learner.predict(data), other.predict(data))


# float32: measured per algorithm and source framework over 20 fixed 3-way episodes of 18 queries,
# evaluated in the three frameworks (1,080 predictions): logits differ by at most 1.4e-6 relative
# (ProtoNet; Siamese 2.9e-7, Matching 1.8e-7) and no prediction flipped. A flip needs two classes'
# logits within ~1e-6 of each other; allowed: 1 in the 360 predictions of one framework (0.3 points
# of accuracy on one episode). ProtoNet only here: the float64 test covers the three models' paths.
FLOAT32_FLIPS_ALLOWED = 1


@pytest.mark.parametrize("source", FRAMEWORKS)
@pytest.mark.parametrize("algorithm", ["protonet"])
def test_a_float32_checkpoint_gives_the_same_accuracy_in_every_framework(algorithm, source, tmp_path):
    learner, path = trained_checkpoint(algorithm, source, "float32", tmp_path)
    arrays, _ = load_weights(path)
    loaded = learners(algorithm, "float32", weights=model_weights(arrays))
    episodes = fixed_episodes("float32", 20)
    expected = [learner.predict(data) for data in episodes]
    for framework, other in loaded.items():
        got = [other.predict(data) for data in episodes]
        flips = sum(int((e != g).sum()) for e, g in zip(expected, got))
        assert flips <= FLOAT32_FLIPS_ALLOWED, f"{source} checkpoint in {framework}: {flips} predictions flipped"
        accuracy = [float((g == data.query_y).mean()) for g, data in zip(got, episodes)]
        expected_accuracy = [float((e == data.query_y).mean()) for e, data in zip(expected, episodes)]
        assert np.abs(np.subtract(accuracy, expected_accuracy)).sum() <= FLOAT32_FLIPS_ALLOWED / (WAY * QUERY) + 1e-9
