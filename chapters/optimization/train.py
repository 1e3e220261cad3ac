"""Train and evaluate an optimization-based learner on few-shot classification, in any framework.

    python -m chapters.optimization.maml    --framework torch --way 5 --shot 1 --episodes 60000
    python -m chapters.optimization.maml    --framework tf    --way 5 --shot 1 --first-order
    python -m chapters.optimization.metasgd --framework keras --way 5 --shot 1
    python -m chapters.optimization.reptile --framework torch --way 5 --shot 10 --test-shot 1

Each algorithm script (``maml.py``, ``metasgd.py``, ``reptile.py``) holds the algorithm's settings
in one dataclass (``MAMLConfig``, ...): its fields' defaults are the script's, it is built from the
parsed options, handed to the learner, and recorded as the results' ``options``; the scripts'
docstrings give the papers' protocols. One training "episode" here is one
meta-iteration: a meta-batch of ``--meta-batch`` tasks (``common.episodes.MetaBatches``), so
``--episodes 60000`` is MAML's 60,000 meta-iterations. The network is MAML's Conv-4 with a
``--way``-output head (``networks_<framework>.Conv4Classifier``), so a model is tested with the
number of classes it was trained for.

BatchNorm (see the chapter text): by default a query is normalised with the statistics of the
support set, so its prediction depends on the support set and itself only. ``--transductive``
normalises the query set as one batch, as Finn et al.'s code does; the run is then named
``<algorithm>-transductive`` everywhere (results, run folder), since its numbers are not
comparable with the others'.

A run writes into ``--out``/<algorithm>_<framework>_<dataset>_<way>w<shot>s/: the checkpoint (a
second run with the same options resumes it), ``curve.png`` and the results JSON, through the
training loop every chapter shares (``common.training``). ``--scheme lake`` trains on Omniglot's
background alphabets and tests within one evaluation alphabet at a time (``common/schemes.py``);
such a run is named ``omniglot-lake``.
"""

from __future__ import annotations

import argparse
import importlib

import numpy as np

from common.backbones import BACKBONES
from common.cli import episode_parser, require_framework
from common.data import load_dataset
from common.devices import torch_device, use_device
from common.episodes import MetaBatches
from common.errors import ConfigError
from common.learners import seeded_model
from common.options import COUNT, POSITIVE, check_multiple, check_out
from common.results import BOOK_TEST_QUERY
from common.schemes import Scheme, add_scheme_arguments
from common.training import Run, train

# algorithm -> the module (per framework) and class that implement it
ALGORITHMS = {"maml": ("maml", "MAML"), "fomaml": ("maml", "MAML"),
              "metasgd": ("metasgd", "MetaSGD"), "reptile": ("reptile", "Reptile")}
# ... and the learners that ``make_learner`` builds besides them (the LSTM meta-learner: sinusoids only)
LEARNERS = {**ALGORITHMS, "lstm-meta-learner": ("lstm_meta_learner", "LSTMMetaLearner")}


def parser(algorithm: str, defaults, *, way: int, shot: int, episodes: int, query: int | None = None,
           test_shot: int | None = None) -> argparse.ArgumentParser:
    """The options of ``algorithm``'s script: its episodes (``common.cli.episode_parser``; ``query``
    None: as many as --shot, as in Finn et al.'s code) and the options every optimization-based
    learner has, whose defaults are the fields of ``defaults``, the algorithm's settings (``MAMLConfig``,
    ...). The script adds its own options."""
    parser = episode_parser(f"Train {algorithm} (optimization-based meta-learning) on few-shot classification.",
                            way=way, shot=shot, query=query, episodes=episodes, test_shot=test_shot,
                            test_query=BOOK_TEST_QUERY,
                            episodes_help="meta-iterations (one meta-batch of --meta-batch tasks each)")
    add_common_arguments(parser, defaults)
    return parser


def add_common_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """The options of every optimization-based learner, with the defaults of the algorithm's settings
    ``defaults`` (Meta-SGD, which learns its inner learning rates, has no ``inner_lr`` and flags of its own)."""
    parser.add_argument("--meta-batch", type=COUNT, default=defaults.meta_batch, help="tasks per meta-iteration")
    if hasattr(defaults, "inner_lr"):
        parser.add_argument("--inner-lr", type=POSITIVE, default=defaults.inner_lr,
                            help="α, the inner (adaptation) step size")
    parser.add_argument("--inner-steps", type=COUNT, default=defaults.inner_steps, help="inner steps in meta-training")
    parser.add_argument("--test-inner-steps", type=COUNT, default=defaults.test_inner_steps,
                        help="inner steps on a test task's support set before it is scored")
    parser.add_argument("--meta-lr", type=POSITIVE, default=defaults.meta_lr, help="β (MAML, Meta-SGD) or ε (Reptile)")
    parser.add_argument("--backbone", choices=BACKBONES, default=defaults.backbone,
                        help="Conv-4 blocks: 'maxpool' (the paper's text: stride-1 conv, max-pool) or 'strided' "
                             "(Finn et al.'s released Omniglot code: stride-2 conv, mean of the final map; "
                             "3-4x fewer multiply-adds); a strided run is labelled '[backbone strided]' "
                             "(default: %(default)s)")
    parser.add_argument("--transductive", action="store_true",
                        help="normalise the query set as one batch (Finn et al.'s code); labels the run "
                             "'<algorithm>-transductive'")
    parser.add_argument("--eval-every", type=COUNT, default=500,
                        help="validate and checkpoint every N meta-iterations (--episodes must be a multiple)")
    parser.add_argument("--val-episodes", type=COUNT, default=100,
                        help="fixed validation tasks scored at each checkpoint")
    parser.add_argument("--test-episodes", type=COUNT, default=600, help="fixed test tasks scored at the end")
    add_scheme_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def check_options(args) -> None:
    """Clear errors for settings that cannot work, before any data is loaded or model built (each
    option's own rule is its type, checked while parsing: ``common.options``)."""
    check_multiple("--episodes", args.episodes, "--eval-every", args.eval_every, "meta-iterations")
    check_out(args.out)
    if args.test_way is not None and args.test_way != args.way:
        raise ConfigError(f"the network's head has --way {args.way} outputs, so it is tested {args.way}-way; "
                          f"drop --test-way {args.test_way}, or train a {args.test_way}-way model")


def make_learner(algorithm: str, framework: str, network: str, network_args: tuple, seed: int, settings: dict,
                 device: str = "cpu"):
    """The learner of ``algorithm`` in ``framework`` (``meta_step``, ``predict``, ``state``, ...) around
    a fresh ``networks_<framework>.<network>(*network_args)`` drawn from ``seed``. Every script of the
    chapter builds its learners here: ``Conv4Classifier`` for Omniglot, ``SinusoidMLP`` for sinusoids
    (the LSTM meta-learner's too). ``device`` matters to PyTorch only (TensorFlow places ops itself;
    see ``common.devices``)."""
    network_class = getattr(importlib.import_module(f"chapters.optimization.networks_{framework}"), network)
    return learner_around(algorithm, framework, seeded_model(framework, network_class, *network_args, seed=seed),
                          settings, device)


def learner_around(algorithm: str, framework: str, network, settings: dict, device: str = "cpu"):
    """The object of ``algorithm`` in ``framework`` around ``network``, a model already drawn
    (``common.learners.seeded_model``; another chapter's network too, such as a text classifier),
    with ``settings`` the keyword arguments of its class."""
    module_name, class_name = LEARNERS[algorithm]
    algorithm_class = getattr(importlib.import_module(f"chapters.optimization.{module_name}_{framework}"),
                              class_name)
    if framework == "torch":
        network = network.to(torch_device(device))  # drawn on the CPU: every device starts from the same θ
    # A Keras learner takes its meta-optimizer from compile(); Reptile's outer step is plain SGD of
    # rate ε, which it sets up itself in every framework.
    if framework != "keras" or algorithm == "reptile":
        return algorithm_class(network, **settings)
    from common.episodic_tf import Adam
    settings = dict(settings)
    meta_lr = settings.pop("meta_lr")
    learner = algorithm_class(network, **settings)
    learner.compile(optimizer=Adam(meta_lr, epsilon=1e-8))  # β, with PyTorch's Adam formula
    return learner


def build_learner(algorithm: str, framework: str, way: int, image_shape, seed: int, settings: dict,
                  device: str = "cpu", backbone: str = "maxpool"):
    """The learner of ``algorithm`` in ``framework`` around MAML's Conv-4 (64 filters, 4 blocks of
    ``backbone``) with a ``way``-output head."""
    return make_learner(algorithm, framework, "Conv4Classifier", (way, tuple(image_shape), 64, 4, backbone),
                        seed, settings, device)


class Learner:
    """The interface of ``common.training`` around a MAML, Meta-SGD, Reptile or LSTM meta-learner object.

    ``train_step`` is one meta-iteration (one meta-batch); ``predict`` adapts to a test episode's
    support set (``--test-inner-steps``) and labels its queries (classification only: the sinusoid
    scripts score their models themselves).
    """

    def __init__(self, algorithm):
        self.algorithm = algorithm

    def train_step(self, meta_batch) -> dict:
        return self.algorithm.meta_step(meta_batch)

    def predict(self, episode) -> np.ndarray:
        return np.argmax(self.algorithm.predict(episode), axis=1)

    def state(self) -> dict:
        return self.algorithm.state()

    def load_state(self, arrays: dict) -> None:
        self.algorithm.load_state(arrays)


class KerasLearner(Learner):
    """Keras trains with ``fit``: one call for the whole run, one meta-batch per batch."""

    def fit(self, sampler: MetaBatches, start: int, log, progress: bool = True) -> None:
        from common.episodic_keras import fit_episodes

        fit_episodes(self.algorithm, sampler, start, log, progress)  # item i: meta-batch start + i


def as_learner(algorithm, framework: str) -> Learner:
    """``algorithm`` (the object ``make_learner`` builds) as the learner of ``common.training``."""
    return KerasLearner(algorithm) if framework == "keras" else Learner(algorithm)


def summed_inner_loss(settings: dict, way: int) -> dict:
    """The learner's settings for the recorded ``settings``: with ``inner_loss = "sum"`` (MAML's
    ``--inner-loss sum``) the support loss is N times the mean the learners take, so α becomes N·α."""
    settings = dict(settings)
    if settings.pop("inner_loss", "mean") == "sum":
        settings["inner_lr"] = settings["inner_lr"] * way
    return settings


def learner_settings(config, way: int) -> dict:
    """The keyword arguments of the algorithm's class: the recorded settings (``config.options()``) but
    the meta-batch size and the backbone, which shape the data and the network; a summed inner loss
    as its step on the mean loss (:func:`summed_inner_loss`)."""
    settings = {key: value for key, value in config.options().items() if key not in ("meta_batch", "backbone")}
    return summed_inner_loss(settings, way)


def train_and_test(algorithm: str, args: argparse.Namespace, config) -> dict:
    """Meta-train ``algorithm`` with its settings ``config`` (``MAMLConfig``, ...) on the episodes the
    parsed options ``args`` ask for, and test it: the run's checkpoint, curve and results record
    ``config.options()``."""
    require_framework(args.framework)
    check_options(args)
    scheme = Scheme.from_args(args)
    device = use_device(args.framework, args.device)

    query = args.query or args.shot
    test_shot, test_query = args.test_shot or args.shot, args.test_query
    train_set, val_set, test_set = (load_dataset(args.dataset, split, args.data_dir, **scheme.dataset_options(split))
                                    for split in ("train", "val", "test"))
    # The Vinyals split's episodes draw classes from any alphabets; the Lake scheme's, from one.
    val_episodes = scheme.evaluation_episodes(val_set, args.way, test_shot, test_query, count=args.val_episodes)
    test_episodes = scheme.evaluation_episodes(test_set, args.way, test_shot, test_query, count=args.test_episodes)

    # A learner that steps through the support set in mini-batches (Reptile's inner_batch) gets it
    # in a random order, so that each mini-batch mixes the classes.
    shuffle_support = getattr(config, "inner_batch", None) is not None
    sampler = MetaBatches(scheme.training_sampler(train_set, args.way, args.shot, query, seed=args.seed),
                          config.meta_batch, shuffle_support=shuffle_support)
    name = f"{algorithm}-transductive" if config.transductive else algorithm
    run = Run(algorithm=name, framework=args.framework, dataset=scheme.dataset_label(args.dataset), way=args.way,
              shot=args.shot, query=query, test_way=args.way, test_shot=test_shot, test_query=test_query,
              episodes=args.episodes, seed=args.seed, eval_every=min(args.eval_every, args.episodes),
              val_episodes=args.val_episodes, test_episodes=args.test_episodes, out=args.out,
              options={**config.options(), **scheme.options()}, device=device)
    learner = build_learner(algorithm, args.framework, args.way, train_set.image_shape, args.seed,
                            learner_settings(config, args.way), device, config.backbone)
    return train(run, as_learner(learner, args.framework), sampler, val_episodes, test_episodes,
                 progress=not args.quiet)
