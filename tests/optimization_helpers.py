"""Shared scaffolding for the optimization chapter's cross-framework tests.

Every test builds the same network in the three frameworks from one set of canonical weights
(float64, so that the frameworks differ by summation order only), feeds the same meta-batch, and
compares NumPy arrays under canonical names.
"""

import numpy as np
import tensorflow as tf
import torch

from chapters.optimization import (maml_keras, maml_tf, maml_torch, metasgd_keras, metasgd_tf, metasgd_torch,
                                   networks_keras, networks_tf, networks_torch, reptile_keras, reptile_tf,
                                   reptile_torch)
from common.adapters import to_torch
from common.data.base import FewShotDataset
from common.data.sinusoid import SinusoidTasks
from common.episodes import Episode, EpisodeSampler, astype_floats
from common.episodic_tf import Adam
from common.weights import from_canonical, to_canonical
from tests.metric_helpers import assert_close, keras_floatx

FRAMEWORKS = ("torch", "tf", "keras")
NETWORKS = {"torch": networks_torch, "tf": networks_tf, "keras": networks_keras}
MAML = {"torch": maml_torch, "tf": maml_tf, "keras": maml_keras}
METASGD = {"torch": metasgd_torch, "tf": metasgd_tf, "keras": metasgd_keras}
REPTILE = {"torch": reptile_torch, "tf": reptile_tf, "keras": reptile_keras}
AGREE = 1e-10  # float64: the frameworks differ by summation order only (~1e-14 measured)

# A small Conv-4 keeps the tests fast; the structure (4 blocks with BatchNorm, a head) is MAML's.
# "conv4" is the max-pool network of Finn et al.'s text, "conv4-strided" the stride-2 one of their code.
CONV4 = dict(way=3, image_shape=(28, 28, 1), hidden=8)
BACKBONE = {"conv4": "maxpool", "conv4-strided": "strided"}


def build(framework: str, network: str, weights: dict | None = None):
    """The ``network`` ("mlp" or "conv4") of ``framework`` in float64, holding ``weights``
    (or, without them, PyTorch's initialisation with seed 0, exported and loaded)."""
    module = NETWORKS[framework]
    conv4 = dict(CONV4, backbone=BACKBONE.get(network))
    if framework == "torch":
        torch.manual_seed(0)
        model = (module.SinusoidMLP() if network == "mlp" else module.Conv4Classifier(**conv4)).double()
    elif framework == "tf":
        model = (module.SinusoidMLP(dtype=tf.float64, seed=0) if network == "mlp"
                 else module.Conv4Classifier(**conv4, dtype=tf.float64, seed=0))
    else:
        with keras_floatx("float64"):
            model = module.SinusoidMLP() if network == "mlp" else module.Conv4Classifier(**conv4)
    if weights is None and framework == "torch":
        return model
    return from_canonical(weights if weights is not None else canonical_weights(network), model, framework)


def canonical_weights(network: str) -> dict:
    return to_canonical(build("torch", network), "torch")


def float64(episode: Episode) -> Episode:
    return astype_floats(episode, np.float64)


def meta_batch(network: str, index: int = 0, tasks: int = 3) -> Episode:
    """``tasks`` tasks of the network's kind: sinusoids, or 3-way 2-shot 3-query image tasks with
    varied pixels (real-shaped 28x28x1, from a synthetic split: no data set needed)."""
    if network == "mlp":
        return float64(SinusoidTasks(shot=5, query=10, seed=1).meta_batch(index, tasks))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 8, 28, 28, 1), dtype=np.uint8)
    dataset = FewShotDataset("noise", "train", images, tuple(map(str, range(10))))
    return float64(EpisodeSampler(dataset, CONV4["way"], 2, 3, seed=1).meta_batch(index, tasks))


def framework_batch(framework: str, batch: Episode) -> Episode:
    """The meta-batch as the framework's functions take it (torch: tensors, images NCHW)."""
    return to_torch(batch) if framework == "torch" else batch


def task(batch: Episode, t: int) -> Episode:
    return Episode(*(part[t] for part in batch))


def numpy_dict(params: dict) -> dict:
    return {name: np.array(value.detach().numpy() if isinstance(value, torch.Tensor) else value)
            for name, value in params.items()}


def value_and_gradient(framework: str, function, params: dict, *extra):
    """``function()`` and its gradient with respect to ``params`` (and the dicts in ``extra``)."""
    variables = list(params.values()) + [v for d in extra for v in d.values()]
    if framework == "torch":
        value, metric = function()
        gradients = torch.autograd.grad(value, variables)
        value, metric = value.item(), metric.item()
    else:
        with tf.GradientTape() as tape:
            value, metric = function()
        gradients = tape.gradient(value, variables)
        value, metric = float(value), float(metric)
    names = list(params) + [f"inner_lr.{name}" for d in extra for name in d]
    return value, metric, numpy_dict(dict(zip(names, gradients)))


def assert_same_arrays(expected: dict, actual: dict, what: str, rtol: float = AGREE) -> None:
    """Equal keys; every array equal to ``rtol`` relative. A conv bias right before a BatchNorm has
    a gradient of zero plus rounding (the normalisation cancels it), so it is compared absolutely."""
    assert set(expected) == set(actual), f"{what}: keys differ: {sorted(set(expected) ^ set(actual))}"
    for name in expected:
        if name.endswith("conv.bias") and np.abs(expected[name]).max() < 1e-12:
            assert np.abs(actual[name]).max() < 1e-12, f"{what} {name}: not ~0"
            continue
        assert_close(expected[name], actual[name], rtol, f"{what} {name}")


def make_learner(kind: str, framework: str, model, **settings):
    """A MAML / MetaSGD / Reptile learner of ``framework`` around ``model``, in the model's float type."""
    module, name = {"maml": (MAML, "MAML"), "metasgd": (METASGD, "MetaSGD"), "reptile": (REPTILE, "Reptile")}[kind]
    learner_class = getattr(module[framework], name)
    if framework != "keras":
        return learner_class(model, **settings)
    with keras_floatx(model.compute_dtype):  # the learner (a keras.Model) casts its inputs to it
        if kind == "reptile":
            return learner_class(model, **settings)
        meta_lr = settings.pop("meta_lr", 1e-3)
        learner = learner_class(model, **settings)
        learner.compile(optimizer=Adam(meta_lr, epsilon=1e-8))
        return learner


def model_arrays(state: dict) -> dict:
    """The framework-neutral part of a learner's state: model weights and learned inner rates."""
    return {k: v for k, v in state.items() if k.startswith(("model.", "inner_lr."))}
