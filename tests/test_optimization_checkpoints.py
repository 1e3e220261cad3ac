"""A trained MAML, Meta-SGD or Reptile model moves between frameworks.

Each learner meta-trains two steps in one framework from the shared canonical weights, writes its
checkpoint with ``common.training.write_checkpoint`` (the file a run leaves behind), and the other
two frameworks load it with ``load_model`` (θ, and Meta-SGD's learned rates α) into learners that
started elsewhere. On fixed test tasks they then adapt and predict as the source does:

1. float64: the same query logits after the test-time inner steps (1e-10 relative; measured
   ~1e-15) and the same labels, for every learner and every source framework;
2. float32, the precision of the runs: the same labels on 20 tasks (180 queries) up to a stated
   number of flips.

A learner that dropped α on loading, loaded θ under the wrong names, or adapted with other inner
steps at test time than the source fails; so does a checkpoint that does not hold what the model
needs. What they do not prove: that the optimizer's slots move (they are each framework's own, so
a run resumes only in the framework that wrote it).
"""

from __future__ import annotations

import numpy as np
import pytest

from common.episodes import Episode, astype_floats
from common.training import write_checkpoint
from common.weights import load_weights
from tests.metric_helpers import assert_close, keras_floatx
from tests.optimization_helpers import AGREE, FRAMEWORKS, build, make_learner, meta_batch, task
from tests.test_float32_agreement import build32, one_thread  # noqa: F401  (one_thread: a fixture)

NETWORK = "conv4-strided"  # the network of the Omniglot protocols
SETTINGS = {
    "maml": dict(inner_lr=0.4, inner_steps=1, meta_lr=1e-2, test_inner_steps=2),
    "metasgd": dict(inner_lr_range=(0.005, 0.1), inner_steps=1, seed=3, meta_lr=1e-2, test_inner_steps=2),
    "reptile": dict(inner_lr=0.1, inner_steps=3, meta_lr=0.5, anneal_steps=4, test_inner_steps=4),
}


def learner(kind: str, framework: str, dtype: str = "float64"):
    model = build(framework, NETWORK) if dtype == "float64" else build32(framework, NETWORK)
    with keras_floatx(dtype):
        return make_learner(kind, framework, model, **dict(SETTINGS[kind]))


def unseen_tasks(count: int, dtype: str = "float64") -> list[Episode]:
    """Tasks the learners never trained on (the 3 tasks of each meta-batch from index 10 on)."""
    batches = [meta_batch(NETWORK, 10 + b) for b in range((count + 2) // 3)]
    return [astype_floats(task(batches[i // 3], i % 3), np.dtype(dtype)) for i in range(count)]


def trained_checkpoint(kind: str, framework: str, dtype: str, folder):
    """A learner of ``framework`` meta-trained two steps from the shared start, and its arrays as
    read back from the checkpoint file it wrote."""
    source = learner(kind, framework, dtype)
    for index in range(2):
        source.meta_step(astype_floats(meta_batch(NETWORK, index), np.dtype(dtype)))
    path = folder / f"{kind}_{framework}_{dtype}.npz"
    write_checkpoint(path, source, {"algorithm": kind, "framework": framework})
    return source, load_weights(path)[0]


@pytest.fixture(scope="module")
def loaders():
    """``loaders(kind, framework, dtype)``: the learner of ``framework`` that loads every source
    framework's ``kind`` checkpoint in turn, built once (building a learner is most of a test's
    time), with its prediction on the first unseen task before it loaded anything. The first
    checkpoint it loads is a trained model, so a loader that kept the start fails there."""
    built = {}

    def get(kind: str, framework: str, dtype: str = "float64"):
        if (kind, framework, dtype) not in built:
            with keras_floatx(dtype):  # Keras casts inputs to its float type
                other = learner(kind, framework, dtype)
                built[kind, framework, dtype] = other, other.predict(unseen_tasks(1, dtype)[0])
        return built[kind, framework, dtype]
    return get


@pytest.mark.parametrize("source_framework", FRAMEWORKS)
@pytest.mark.parametrize("kind", SETTINGS)
def test_a_checkpoint_gives_the_same_adapted_predictions_in_every_framework_float64(kind, source_framework, loaders,
                                                                                   tmp_path):
    source, arrays = trained_checkpoint(kind, source_framework, "float64", tmp_path)
    tasks = unseen_tasks(2)
    for framework in FRAMEWORKS:
        other, untrained = loaders(kind, framework)
        other.load_model(arrays)
        for data in tasks:
            expected, got = source.predict(data), other.predict(data)
            assert_close(expected, got, AGREE, f"{source_framework} {kind} checkpoint in {framework}")
            np.testing.assert_array_equal(expected.argmax(-1), got.argmax(-1))
        # The two meta-steps moved the model: a loader that kept the start would have failed above.
        assert np.abs(untrained - source.predict(tasks[0])).max() > 1e3 * AGREE * np.abs(untrained).max()


# float32: measured for each learner and source framework on these 20 tasks (180 queries, evaluated
# in the three frameworks): logits after the test-time steps differ by at most 1.3e-6 relative, but
# for one ill-conditioned task of the PyTorch-trained MAML checkpoint, where TensorFlow's float32
# logits are 1.2e-3 from the float64 result (PyTorch's 5e-7); no label flipped. A flip needs two
# classes' logits that close; allowed: 1 label in the 180 of one framework. MAML only here (the
# float64 test covers Meta-SGD's and Reptile's paths).
FLOAT32_FLIPS_ALLOWED = 1


@pytest.mark.parametrize("source_framework", FRAMEWORKS)
@pytest.mark.parametrize("kind", ["maml"])
def test_a_float32_checkpoint_gives_the_same_labels_in_every_framework(kind, source_framework, loaders, tmp_path):
    with keras_floatx("float32"):  # Keras casts inputs to its float type
        source, arrays = trained_checkpoint(kind, source_framework, "float32", tmp_path)
        tasks = unseen_tasks(20, "float32")
        expected = [source.predict(data) for data in tasks]
        for framework in FRAMEWORKS:
            other = loaders(kind, framework, "float32")[0]
            other.load_model(arrays)
            got = [other.predict(data) for data in tasks]
            flips = sum(int((e.argmax(-1) != g.argmax(-1)).sum()) for e, g in zip(expected, got))
            assert flips <= FLOAT32_FLIPS_ALLOWED, f"{source_framework} {kind} checkpoint in {framework}: {flips} labels flipped"
