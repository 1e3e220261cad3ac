"""Every option of the optimization chapter's scripts, through the learner the scripts build.

``test_maml.py`` and ``test_metasgd_reptile.py`` prove the algorithms' functions agree; here the
whole path a reader runs is exercised: the script's flags (``maml.py --first-order``,
``--transductive``, ``metasgd.py``, ``reptile.py --inner-optimizer adam --inner-batch b``,
``--no-anneal``, ``--backbone strided``) are parsed by the script's own ``main``, which turns them
into the learner's settings, builds the learner with ``train.build_learner`` and trains it with
``common.training.train`` (Keras through ``fit``). Two things are swapped, and nothing else: the
data set (a small synthetic one: no files needed) and the network's size and precision (the
scripts' Conv-4 with 8 filters, float64, from canonical weights shared by the three frameworks),
so that the frameworks can be compared to rounding error.

What the tests prove, for each option:

1. the three frameworks take the same two meta-steps (losses, accuracies, weights and, for
   Meta-SGD, the learned rates after them, to 1e-8 relative: measured ~1e-13) and report the same
   test accuracy;
2. the option has its effect in every framework's learner: first-order MAML ends elsewhere than
   second-order MAML from the same start, a transductive run elsewhere than one normalised with
   the support set, Reptile's inner Adam elsewhere than its inner SGD, an annealed ε elsewhere than
   a constant one. A learner that ignored ``first_order`` (or a script that dropped the flag) would
   agree with itself but fail here, or, in one framework only, fail the agreement.

What they do not prove: float32 agreement, the traced (``tf.function``) learners (both in
``test_maml.py`` and ``test_metasgd_reptile.py``), and long runs.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import tensorflow as tf
import torch

from chapters.optimization import maml as maml_script
from chapters.optimization import metasgd as metasgd_script
from chapters.optimization import reptile as reptile_script
from chapters.optimization import train as optimization_train
from common.data.base import FewShotDataset
from common.weights import from_canonical
from tests.metric_helpers import keras_floatx
from tests.optimization_helpers import AGREE, FRAMEWORKS, assert_same_arrays, canonical_weights, model_arrays

# Keras' fit reads its batches through tf.data, which run_functions_eagerly does not make eager (and need not).
pytestmark = pytest.mark.filterwarnings("ignore:Even though the `tf.config.experimental_run_functions_eagerly`")

SCRIPTS = {"maml": maml_script, "metasgd": metasgd_script, "reptile": reptile_script}
WAY, HIDDEN = 3, 8  # tests.optimization_helpers.CONV4: the canonical weights fit this network
TINY = ["--way", str(WAY), "--shot", "2", "--test-shot", "2", "--test-query", "3", "--meta-batch", "2",
        "--episodes", "2", "--eval-every", "2", "--val-episodes", "1", "--test-episodes", "2", "--test-inner-steps", "2", "--quiet"]

# (script, extra flags): every learner option of the chapter's scripts
OPTIONS = {
    "maml": ("maml", []),
    "maml-first-order": ("maml", ["--first-order"]),
    "maml-transductive": ("maml", ["--transductive"]),
    "maml-first-order-transductive-strided": ("maml", ["--first-order", "--transductive", "--backbone", "strided",
                                                       "--inner-steps", "2"]),
    "metasgd": ("metasgd", []),
    "metasgd-first-order": ("metasgd", ["--first-order"]),
    "reptile": ("reptile", ["--inner-steps", "3", "--meta-lr", "0.5"]),
    "reptile-no-anneal": ("reptile", ["--inner-steps", "3", "--meta-lr", "0.5", "--no-anneal"]),
    "reptile-adam-minibatches": ("reptile", ["--inner-steps", "3", "--meta-lr", "0.5", "--inner-optimizer", "adam",
                                             "--inner-lr", "0.01", "--inner-batch", "3"]),
}


def noise_split(split: str, seed: int) -> FewShotDataset:
    """Real-shaped (28x28x1) classes of varied pixels: enough for 3-way episodes of 2 + 3 images."""
    images = np.random.default_rng(seed).integers(0, 256, size=(8, 6, 28, 28, 1), dtype=np.uint8)
    return FewShotDataset("omniglot", split, images, tuple(f"{split}{c}" for c in range(8)))


SPLITS = {"train": noise_split("train", 0), "val": noise_split("val", 1), "test": noise_split("test", 2)}


@contextlib.contextmanager
def float64_everywhere():
    """Networks built in float64: PyTorch's default dtype, Keras' floatx (TensorFlow's networks take
    a ``dtype`` argument, passed by :func:`small_float64_learner`).

    Also, for speed only: PyTorch on one thread (two threads on a shared core wait on each other at
    every small operation: 10x slower here), and TensorFlow's functions run eagerly (tracing a
    second-order meta-step takes longer than running it on this small network; the traced
    learners are compared in ``test_maml.py`` and ``test_metasgd_reptile.py``)."""
    old_dtype, old_threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    tf.config.run_functions_eagerly(True)
    try:
        with keras_floatx("float64"):
            yield
    finally:
        tf.config.run_functions_eagerly(False)
        torch.set_num_threads(old_threads)
        torch.set_default_dtype(old_dtype)


def run_script(option: str, framework: str, out, monkeypatch) -> tuple[dict, object]:
    """(the results dict, the learner) of the option's script run end to end in ``framework``."""
    script_name, flags = OPTIONS[option]
    script = SCRIPTS[script_name]
    built = {}
    backbone_network = "conv4-strided" if "strided" in flags else "conv4"

    def small_float64_learner(algorithm, framework, way, image_shape, seed, settings, device="cpu",
                              backbone="maxpool"):
        """``train.build_learner`` with 8 filters in float64, holding the canonical weights."""
        network_args = (way, tuple(image_shape), HIDDEN, 4, backbone) + ((tf.float64,) if framework == "tf" else ())
        learner = optimization_train.make_learner(algorithm, framework, "Conv4Classifier", network_args, seed,
                                                  settings, device)
        from_canonical(canonical_weights(backbone_network), learner.model, framework)
        built.update(learner=learner, algorithm=algorithm, settings=settings)
        return learner

    monkeypatch.setattr(optimization_train, "load_dataset", lambda name, split, data_dir=None: SPLITS[split])
    monkeypatch.setattr(optimization_train, "build_learner", small_float64_learner)
    argv = ["--framework", framework, "--out", str(out), *TINY, *flags]
    with float64_everywhere():
        result = script.main(argv)
    return result, built


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every option run once in each framework (cached: several tests read the same runs)."""
    cache = {}

    def get(option, framework):
        if (option, framework) not in cache:
            with pytest.MonkeyPatch.context() as monkeypatch:
                out = tmp_path_factory.mktemp(f"{option}-{framework}")
                result, built = run_script(option, framework, out, monkeypatch)
            cache[option, framework] = result, model_arrays(built["learner"].state()), built
        return cache[option, framework]

    return get


@pytest.mark.parametrize("option", list(OPTIONS))
def test_the_three_frameworks_take_the_same_meta_steps_with_every_option(option, runs):
    expected, expected_arrays, built = runs(option, "torch")
    assert all(value.dtype == np.float64 for value in expected_arrays.values())
    for framework in ("tf", "keras"):
        result, arrays, _ = runs(option, framework)
        assert result["algorithm"] == expected["algorithm"] and result["options"] == expected["options"]
        for point, other in zip(expected["history"], result["history"], strict=True):
            for key in ("loss", "accuracy"):
                assert np.isclose(point[key], other[key], rtol=AGREE, atol=0), \
                    f"{framework} {option}: {key} {other[key]} != {point[key]} at {point['episode']}"
        assert_same_arrays(expected_arrays, arrays, f"{framework} {option} after two meta-steps", rtol=1e-8)
        assert result["accuracy"] == expected["accuracy"], f"{framework} {option}: test accuracy"


# (option, the option it changes one setting of, the setting): each must move the learner elsewhere
EFFECTS = [("maml-first-order", "maml", "first_order"),
           ("maml-transductive", "maml", "transductive"),
           ("metasgd-first-order", "metasgd", "first_order"),
           ("reptile-no-anneal", "reptile", "anneal_steps"),
           ("reptile-adam-minibatches", "reptile", "inner_optimizer")]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("option,base,setting", EFFECTS, ids=[e[0] for e in EFFECTS])
def test_each_option_changes_what_the_learner_does(option, base, setting, framework, runs):
    """Two meta-steps with the option end elsewhere than two without it, in every framework.

    Measured (float64, these runs): first- against second-order MAML differ by ~1e-4 relative in
    the weights of some tensors after two Adam steps (Adam's first step is ±β per coordinate for both,
    the second one is not), against a framework-to-framework difference of ~1e-13: the threshold
    1e-7 sits far from both."""
    _, with_option, built = runs(option, framework)
    _, without, base_built = runs(base, framework)
    assert built["settings"][setting] != base_built["settings"][setting], f"the script did not pass {setting}"
    if setting != "anneal_steps":  # the learner keeps the setting under its own name
        assert getattr(built["learner"], setting) == built["settings"][setting], f"{framework} learner's {setting}"
    differences = {name: np.linalg.norm(with_option[name] - without[name]) / np.linalg.norm(without[name])
                   for name in without if name.startswith("model.") and not name.endswith("conv.bias")}
    assert max(differences.values()) > 1e-7, f"{framework}: {option} ends where {base} does: {differences}"
