"""Meta Networks (Munkhdalai & Yu, ICML 2017): train and evaluate on Omniglot in the framework of
your choice.

    python -m chapters.model_based.metanet --way 5 --shot 1
    python -m chapters.model_based.metanet --framework tf --way 20 --shot 1 --episodes 20000

A MetaNet has two learners, each with *slow* weights trained across episodes by Adam:

* the **base learner** b (slow weights W) classifies; the **meta learner** owns a representation
  network u (slow weights Q) and two *fast-weight generators*, m (weights Z) and d (weights G);
* the **meta information** is the gradient of a loss on the support set (Section 3.1): for u,
  the gradient of its loss on T groups of support examples, ``nabla_t = dL_emb / dQ``; for b, the
  gradient of each support example's loss, ``nabla_i = dL_task(b(W, x'_i), y'_i) / dW``;
* d turns the T gradients of u into *task-level* fast weights ``Q* = d(G, {nabla_t})`` (Eq. 2), and
  m turns each support example's gradient into *example-level* fast weights ``W*_i = m(Z, nabla_i)``
  (Eq. 4), written to a **memory** M whose keys are the support embeddings ``r'_i = u(Q, Q*, x'_i)``
  (Eq. 5);
* a query x reads the memory by attention, ``a = softmax(cos(R, u(Q, Q*, x)))`` (Eq. 6), takes
  ``W* = a^T M`` (Eq. 7) and is classified by ``b(W, W*, x)`` (Eq. 8);
* slow and fast weights meet by **layer augmentation** (Section 3.3, Figure 2): a layer's input
  goes through both, ``relu(x W) + relu(x W*)`` (the output layer sums without the ReLU).

The arithmetic is in ``metanet_{torch,tf,keras}.py`` (same names and structure). This file holds
what is framework-neutral: the sizes, the initial weights (drawn here, with NumPy, so that the
three frameworks start from the same numbers for one seed), the grouping of the support set for
d, how the fast weights are made from gradients (Eqs. 1-4: :func:`task_fast_weights` and
:func:`example_fast_weights`, given a framework's operations), the checks of an episode, and the
script.

**What the paper leaves open, and our choice** (taken, where it exists, from the authors' Chainer
code for Omniglot; otherwise ours):

* networks: b and u are the same CNN, five 3x3 convolutions of 64 filters without bias, each
  followed by ReLU and 2x2 max-pooling (28 -> 14 -> 7 -> 4 -> 2 -> 1, a partial window kept), then
  a dense layer of 64 units (ReLU) and an output layer of N units, both without bias; no
  BatchNorm. Every layer of b is augmented; u's key is its 64-unit layer before the ReLU, slow and
  fast summed (``KEY_LAYER``). Initial slow weights: He-uniform (uniform in +-sqrt(6 / fan_in)).
* u's loss L_emb is the cross-entropy of u's own N-way output layer on the support labels, over
  T = 5 groups of the support set (``REPRESENTATION_STEPS``; the support in its class order, split
  into T nearly equal groups, :func:`groups`). That output layer serves only this loss: the meta
  information enters the generators as data (below), so no meta-gradient reaches it, and it keeps
  its random initial weights (it is not trainable; it is saved with the others).
* meta information is data: gradients are preprocessed as in Andrychowicz et al. (2016), each
  coordinate g becoming ``(max(log(|g| + eps) / k, -1), clip(g e^k, -1, 1))`` with k = 7, and no
  gradient flows back through them (first order, as the authors' code).
* m and d act on each weight coordinate separately, one network for the conv kernels and one for
  the dense kernels: m is an MLP 2 -> 20 -> 20 -> 1 (ReLU), d an LSTM of 20 units over the T steps
  followed by a linear map 20 -> 1 (the paper found an MLP for d converged poorly). Their output
  layers start small (uniform in +-0.001, zero bias), so that the first fast weights are small:
  a fast conv kernel whose every coordinate is c multiplies a 3x3x64 window's sum by c.
* attention: cosine similarity ``r . r' / sqrt(|r|^2 |r'|^2 + 1e-6)``, softmax over the support
  examples, no temperature.
* training: Adam 1e-3 on the mean cross-entropy of the queries (the authors sum it and clip the
  gradient norm at 10; we neither), one episode per update, training episodes of the test's N
  and K with ``--query`` 5 queries per class.

A run writes into ``--out``/metanet_<framework>_omniglot_<way>w<shot>s/: the checkpoint (the same
command resumes it exactly), ``curve.png`` and the results JSON. Published on Omniglot (Table 1 of
the paper): 98.95 / 97.00 % at 5-way / 20-way 1-shot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from common.cli import Config
from common.errors import ConfigError

PAPER = {(5, 1): 98.95, (20, 1): 97.00}  # Omniglot accuracy (%), Munkhdalai & Yu 2017, Table 1
CONV_LAYERS, CHANNELS, HIDDEN = 5, 64, 64   # b and u: five 3x3 convs of 64 filters, a 64-unit layer
META_HIDDEN = 20                            # m's hidden layers, d's LSTM units
GRADIENT_SCALE = 7.0                        # k of the log-and-sign preprocessing
REPRESENTATION_STEPS = 5                    # T: the support groups whose gradients d reads
OUTPUT_INIT = 1e-3                          # m's and d's output layers start uniform in +-this
ALL_LAYERS = CONV_LAYERS + 2                # b's layers: five convs and two dense
KEY_LAYER = CONV_LAYERS                     # u's key: its first dense layer (index 5 of its kernels)
COSINE_EPS = 1e-6


# ---------------------------------------------------------------------------- sizes and weights

def pooled(size: int) -> int:
    """Side of a map after a 2x2 max-pooling that keeps a partial last window: ceil(size / 2)."""
    return (size + 1) // 2


def feature_size(image_shape) -> int:
    """Features after the five conv blocks, flattened (H, W, C) order: 64 on 28x28 Omniglot."""
    height, width = image_shape[0], image_shape[1]
    for _ in range(CONV_LAYERS):
        height, width = pooled(height), pooled(width)
    return height * width * CHANNELS


def kernel_shapes(image_shape, way: int) -> list[tuple]:
    """The kernels of b (and u), in order: five conv kernels (3, 3, in, 64), then the dense
    kernels (features, 64) and (64, way). Canonical (TensorFlow) layouts."""
    in_channels = image_shape[-1]
    convs = [(3, 3, in_channels if i == 0 else CHANNELS, CHANNELS) for i in range(CONV_LAYERS)]
    return convs + [(feature_size(image_shape), HIDDEN), (HIDDEN, way)]


def is_conv(index: int) -> bool:
    """Layer ``index`` of b or u is a convolution (it gets the conv generator of m and d)."""
    return index < CONV_LAYERS


def fast_layers_of(fast_layers: int = ALL_LAYERS, task_fast_weights: bool = True) -> tuple[list[int], list[int]]:
    """(b's layers with fast weights, u's layers with fast weights): b's last ``fast_layers`` of
    seven (the paper's full model: all of them); u's key path is b's first six layers, and u gets
    those of b's fast layers that lie on it (with ``fast_layers`` 2: b's two dense layers and u's
    key layer), or none without task-level fast weights (an ablation)."""
    base = [i for i in range(ALL_LAYERS) if i >= ALL_LAYERS - fast_layers]
    return base, [i for i in base if i <= KEY_LAYER] if task_fast_weights else []


def layer_groups(layers: list[int]) -> dict[str, list[int]]:
    """``layers`` by the generator that serves them: m and d each have one network for the conv
    kernels and one for the dense kernels (as the authors' code); a group without layers is left out."""
    groups = {"conv": [i for i in layers if is_conv(i)], "dense": [i for i in layers if not is_conv(i)]}
    return {name: indices for name, indices in groups.items() if indices}


def by_layer(kernels: dict, count: int) -> list:
    """``count`` fast kernels, one a layer: ``kernels[i]`` for a layer i that has one (the
    generators' outputs, {layer: kernel}), None for the others."""
    return [kernels.get(i) for i in range(count)]


def generate(generators: dict, gradients: list[dict], layers: list[int], meta_info, unflatten, count: int) -> list:
    """Fast kernels made by ``generators`` (m or d: a network for the conv kernels, one for the
    dense), one a layer of ``count`` (None for a layer without; :func:`by_layer`). ``gradients``
    holds one {layer: gradient} for each support group (d) or example (m). Each generator reads the
    gradients of its own ``layers`` (:func:`layer_groups`), prepared by the framework's
    ``meta_info([[each layer's gradient] for each group or example])``, and its output, one fast
    weight a coordinate, is cut back into kernels of the layers' shapes by ``unflatten``."""
    kernels = {}
    for name, indices in layer_groups(layers).items():
        generated = generators[name](meta_info([[g[i] for i in indices] for g in gradients]))
        kernels.update(zip(indices, unflatten(generated, [tuple(gradients[0][i].shape) for i in indices])))
    return by_layer(kernels, count)


class Operations(NamedTuple):
    """What :func:`task_fast_weights` and :func:`example_fast_weights` take from a framework: each
    ``metanet_<framework>.py`` defines these functions under the same names and passes them as its
    ``OPERATIONS``."""
    meta_information: Callable  # (net, x, y, layers) -> {layer: gradient of net's loss on (x, y)}, detached
    rows: Callable  # (x, indices) -> the rows of x at ``indices`` (NumPy positions)
    stack: Callable  # arrays -> one array with a new first axis
    preprocess: Callable  # gradient coordinates (...) -> (..., 2): Andrychowicz et al.'s two features
    flatten: Callable  # (kernels, lead) -> their coordinates side by side, (*lead axes, P)
    unflatten: Callable  # the inverse of flatten: (*lead, P) -> one array per kernel shape


def task_fast_weights(model, support_x, support_y, operations: Operations) -> list:
    """Q* (Eqs. 1-2): fast kernels for u's layers up to its key (None for a layer without), from
    the gradients of u's loss on T groups of the support set, read in order by d."""
    layers = fast_layers_of(model.fast_layers, model.task_fast)[1]
    if not layers:  # the ablation without task-level fast weights: u keeps its slow weights alone
        return [None] * (KEY_LAYER + 1)
    rows, flatten, preprocess = operations.rows, operations.flatten, operations.preprocess
    steps = [operations.meta_information(model.representation, rows(support_x, group), rows(support_y, group), layers)
             for group in groups(support_x.shape[0])]

    def meta_info(per_step):  # d reads the T steps in order, each one's coordinates side by side: T of (P, 2)
        return [preprocess(flatten(step, 0)) for step in per_step]
    return generate(model.task_meta, steps, layers, meta_info, operations.unflatten, KEY_LAYER + 1)


def example_fast_weights(model, support_x, support_y, operations: Operations) -> list:
    """The memory M (Eqs. 3-4): for every fast layer of b, the fast kernels W*_i = m(Z, nabla_i)
    of each support example i, (S, *kernel shape); None for a layer without."""
    layers = fast_layers_of(model.fast_layers, model.task_fast)[0]
    gradients = [operations.meta_information(model.base, support_x[i:i + 1], support_y[i:i + 1], layers)
                 for i in range(support_x.shape[0])]
    flatten, preprocess, stack = operations.flatten, operations.preprocess, operations.stack

    def meta_info(per_example):  # m reads every support example's coordinates at once: (S, P, 2)
        return preprocess(stack([flatten(example, 0) for example in per_example]))
    return generate(model.example_meta, gradients, layers, meta_info, operations.unflatten, len(model.base.kernels))


def augmented(op, x, kernel, fast_kernel=None, activation=None):
    """A layer of b or u (Section 3.3): act(op(x, W)), plus act(op(x, W*)) when it has a fast kernel
    W*. ``op`` is the framework's convolution or dense product, ``activation`` its ReLU (None: the
    identity, for u's key layer and b's output layer)."""
    activation = activation or (lambda h: h)
    out = activation(op(x, kernel))
    return out if fast_kernel is None else out + activation(op(x, fast_kernel))


def _uniform(rng, shape, bound):
    return rng.uniform(-bound, bound, shape)


def initial_weights(image_shape, way: int, seed: int, fast_layers: int = ALL_LAYERS,
                    task_fast_weights: bool = True) -> dict[str, np.ndarray]:
    """Every weight of a MetaNet under its canonical name, drawn from ``seed`` (float64; each
    framework casts). He-uniform slow kernels; m and d as PyTorch initialises an MLP and an LSTM,
    except their output layers (``OUTPUT_INIT``). Only the generators that the configuration uses
    exist; the numbers drawn for the others are drawn all the same, so that a weight's initial
    value does not depend on the configuration."""
    rng = np.random.default_rng([seed, 30])
    weights = {}
    for net in ("base", "representation"):
        for i, shape in enumerate(kernel_shapes(image_shape, way)):
            fan_in = int(np.prod(shape[:-1]))
            weights[f"{net}.kernels.{i}"] = _uniform(rng, shape, math.sqrt(6 / fan_in))
    for group in ("conv", "dense"):
        sizes = [2, META_HIDDEN, META_HIDDEN]
        for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
            weights[f"example_meta.{group}.kernels.{i}"] = _uniform(rng, (fan_in, fan_out), 1 / math.sqrt(fan_in))
            weights[f"example_meta.{group}.biases.{i}"] = _uniform(rng, (fan_out,), 1 / math.sqrt(fan_in))
        weights[f"example_meta.{group}.kernels.2"] = _uniform(rng, (META_HIDDEN, 1), OUTPUT_INIT)
        weights[f"example_meta.{group}.biases.2"] = np.zeros(1)
        bound = 1 / math.sqrt(META_HIDDEN)
        weights[f"task_meta.{group}.kernel"] = _uniform(rng, (2, 4 * META_HIDDEN), bound)
        weights[f"task_meta.{group}.recurrent_kernel"] = _uniform(rng, (META_HIDDEN, 4 * META_HIDDEN), bound)
        weights[f"task_meta.{group}.bias"] = _uniform(rng, (4 * META_HIDDEN,), bound)
        weights[f"task_meta.{group}.output_kernel"] = _uniform(rng, (META_HIDDEN, 1), OUTPUT_INIT)
        weights[f"task_meta.{group}.output_bias"] = np.zeros(1)
    example_layers, task_layers = fast_layers_of(fast_layers, task_fast_weights)
    used = [f"example_meta.{group}." for group in layer_groups(example_layers)]
    used += [f"task_meta.{group}." for group in layer_groups(task_layers)]
    return {name: value for name, value in weights.items()
            if not name.startswith(("example_meta.", "task_meta.")) or name.startswith(tuple(used))}


def groups(n_support: int, steps: int = REPRESENTATION_STEPS) -> list[np.ndarray]:
    """The support indices of d's ``steps`` gradient steps: the support set in its order, split
    into min(steps, n_support) nearly equal consecutive groups (one example each at 5-way 1-shot)."""
    return [group for group in np.array_split(np.arange(n_support), min(steps, n_support))]


# ---------------------------------------------------------------------------- bad input

def labels_outside(labels, way: int) -> str:
    return (f"support labels must lie in 0..{way - 1} (the output layers have {way} units), got "
            f"{sorted(set(np.asarray(labels).ravel().tolist()))}; relabel the classes 0..N-1 or build the "
            f"model with --way {int(np.max(labels)) + 1}")


NO_SUPPORT = ("the episode has no support examples: a MetaNet generates its fast weights from the support "
              "set's loss gradients; give each episode at least one support example (--shot 1 or more)")
NO_QUERY = "the episode has no query: give each episode at least one query (--query 1 or more)"


def check_episode(support_y, n_query: int, way: int) -> None:
    """Raise a :class:`ConfigError` that says what to change, before any computation, when an
    episode does not fit a MetaNet built for ``way`` classes."""
    support_y = np.asarray(support_y)
    if support_y.size == 0:
        raise ConfigError(NO_SUPPORT)
    if n_query < 1:
        raise ConfigError(NO_QUERY)
    if support_y.min() < 0 or support_y.max() >= way:
        raise ConfigError(labels_outside(support_y, way))


def check_setting(way: int, test_way: int) -> None:
    """b's output layer has ``way`` units: a trained MetaNet is tested ``way``-way (any K)."""
    if test_way != way:
        raise ConfigError(f"a MetaNet's output layer has one unit per training class ({way}); test it "
                          f"{way}-way (--test-way {way}) or train a {test_way}-way model (--way {test_way})")


# ---------------------------------------------------------------------------- the script

@dataclass
class MetaNetConfig(Config):
    """Meta Networks' settings, in one place: their defaults are the command line's (the paper's full
    model), the learner and the model are built with them, and the results record them as their
    ``options``."""

    lr: float = 1e-3                     # Adam's learning rate ...
    decay_every: int = 0                 # ... halved every this many episodes (0: never)
    fast_layers: int = ALL_LAYERS        # fast weights in b's last this many layers (and u's among them)
    no_task_fast_weights: bool = False   # ablation: u without task-level fast weights (no d)


def build_model(framework: str, image_shape, way: int, seed: int, fast_layers: int = ALL_LAYERS,
                task_fast_weights: bool = True, dtype: str = "float32"):
    """A MetaNet in ``framework`` with fast weights in its last ``fast_layers`` layers (and in u's,
    unless ``task_fast_weights`` is False), holding :func:`initial_weights` of ``seed``."""
    if framework == "torch":
        import torch
        from chapters.model_based.metanet_torch import MetaNet
        model = MetaNet(image_shape, way, fast_layers, task_fast_weights)
        model = model.double() if dtype == "float64" else model
    elif framework == "tf":
        import tensorflow as tf
        from chapters.model_based.metanet_tf import MetaNet
        model = MetaNet(image_shape, way, fast_layers, task_fast_weights, dtype=tf.float64 if dtype == "float64" else tf.float32)
    else:
        from chapters.model_based.metanet_keras import MetaNet
        model = MetaNet(image_shape, way, fast_layers, task_fast_weights, dtype=dtype)
    from common.weights import from_canonical
    from_canonical(initial_weights(image_shape, way, seed, fast_layers, task_fast_weights), model, framework)
    return model


def build_learner(framework: str, image_shape, way: int, example, learning_rate: float,
                  decay_every: int | None, seed: int, device: str = "cpu", fast_layers: int = ALL_LAYERS,
                  task_fast_weights: bool = True):
    """A MetaNet in ``framework`` inside that framework's episodic learner (``common.episodic_*``):
    one Adam step per episode on the cross-entropy of every query."""
    from common.learners import episodic_learner

    model = build_model(framework, image_shape, way, seed, fast_layers, task_fast_weights)
    return episodic_learner(framework, model, example, learning_rate, decay_every, device)


def main(argv=None) -> dict:
    from common.cli import add_schedule_arguments, episode_parser, require_framework
    from common.data import load_dataset
    from common.devices import use_device
    from common.episodes import EpisodeSampler, FixedEpisodes, evaluation_episodes
    from common.options import Number, check_multiple, check_out
    from common.training import Run, train

    # test_query=15: the book's test episodes, 15 queries per class.
    parser = episode_parser("Train Meta Networks (Munkhdalai & Yu 2017) on few-shot episodes.", way=5, shot=1,
                            query=5, episodes=20000, test_query=15)
    defaults = MetaNetConfig()
    add_schedule_arguments(parser, lr=defaults.lr, decay_every=defaults.decay_every)
    parser.add_argument("--fast-layers", type=Number(int, 1, ALL_LAYERS), default=defaults.fast_layers,
                        help="fast weights in b's last this many layers, and in u's among them (7: the paper's "
                             "full model; 2: the two dense layers, several times cheaper)")
    parser.add_argument("--no-task-fast-weights", action="store_true",
                        help="ablation: u keeps its slow weights alone (no d, no task-level fast weights)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)  # each option's rule is its type (common.options)
    require_framework(args.framework)
    check_multiple("--episodes", args.episodes, "--eval-every", args.eval_every)
    check_out(args.out)
    test_way, test_shot = args.test_way or args.way, args.test_shot or args.shot
    check_setting(args.way, test_way)
    config = MetaNetConfig.from_args(args)
    device = use_device(args.framework, args.device)

    train_set = load_dataset(args.dataset, "train", args.data_dir)
    val_set, test_set = load_dataset(args.dataset, "val", args.data_dir), load_dataset(args.dataset, "test", args.data_dir)
    sampler = EpisodeSampler(train_set, args.way, args.shot, args.query, seed=args.seed)

    def fixed(dataset, count):  # the book's fixed episodes
        return FixedEpisodes(evaluation_episodes(dataset, test_way, test_shot, args.test_query).source, count)

    run = Run(algorithm="metanet", framework=args.framework, dataset=args.dataset, way=args.way, shot=args.shot,
              query=args.query, test_way=test_way, test_shot=test_shot, test_query=args.test_query,
              episodes=args.episodes, seed=args.seed, eval_every=min(args.eval_every, args.episodes),
              val_episodes=args.val_episodes, test_episodes=args.test_episodes, out=args.out,
              options=config.options(), device=device)
    learner = build_learner(args.framework, train_set.image_shape, args.way, sampler.episode(0), config.lr,
                            config.decay_every or None, args.seed, device, config.fast_layers,
                            task_fast_weights=not config.no_task_fast_weights)
    return train(run, learner, sampler, fixed(val_set, args.val_episodes), fixed(test_set, args.test_episodes),
                 progress=not args.quiet)


if __name__ == "__main__":
    from common.cli import run

    run(main)
