"""Train and evaluate a metric-based learner in the framework of your choice.

    python -m chapters.metric.protonet --framework torch --way 60 --shot 5 --test-way 5 --test-shot 1
    python -m chapters.metric.matching --framework keras --episodes 2000
    python -m chapters.metric.siamese  --framework tf

Each algorithm script (``protonet.py``, ``matching.py``, ``siamese.py``) holds the algorithm's
settings in one dataclass (``MetricConfig``, ...): its fields' defaults are the script's, it is
built from the parsed options, and it gives the learner its learning rate and the model its keyword
arguments, which the results record as their ``options``; the scripts' docstrings give the papers'
protocols. A run writes into
``--out``/<algorithm>_<framework>_<dataset>_<way>w<shot>s/: the checkpoint (a second run with the
same options resumes it), ``curve.png``, and the results JSON.

``--pipeline-check`` is for a data set whose meta-training classes are not on disk, such as the
offline mini-ImageNet copy, which holds only the 20 test classes. It meta-trains on the first 12
of the test classes (sorted by name), validates and tests on the other 8, and labels everything
``<dataset>-pipeline-check`` (results, run folder, and a note in the results' options): it checks
that the real images flow through loader, model, training and evaluation, and its accuracy is not
comparable to any published number:

    python -m chapters.metric.protonet --dataset mini-imagenet --pipeline-check --way 5 --shot 5 --query 15 --episodes 1000 --eval-every 100 --val-episodes 50

``--scheme lake`` (``common/schemes.py``) is Omniglot's own challenge (Lake et al. 2015): train on
25 background alphabets, validate on 5 more, test 20-way 1-shot within one evaluation alphabet at a
time, support and query by different drawers; results and run folder are named ``omniglot-lake``:

    python -m chapters.metric.protonet --scheme lake --way 60 --shot 1 --query 5 --test-way 20 --test-shot 1 --test-query 1 --test-episodes 400 --episodes 8000
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass

from common.cli import Config, add_schedule_arguments, episode_parser, require_framework
from common.data import FewShotDataset, load_dataset
from common.devices import use_device
from common.errors import ConfigError
from common.learners import episodic_learner, seeded_model
from common.options import Parser, check_multiple, check_out, train_split
from common.schemes import Scheme, add_scheme_arguments
from common.training import Run, train

# algorithm -> framework -> "module:class" of its model; each model maps an episode to query logits.
MODELS = {
    "protonet": {"torch": "chapters.metric.protonet_torch:ProtoNet",
                 "tf": "chapters.metric.protonet_tf:ProtoNet",
                 "keras": "chapters.metric.protonet_keras:ProtoNet"},
    "siamese": {"torch": "chapters.metric.siamese_torch:SiameseNet",
                "tf": "chapters.metric.siamese_tf:SiameseNet",
                "keras": "chapters.metric.siamese_keras:SiameseNet"},
    "matching": {"torch": "chapters.metric.matching_torch:MatchingNet",
                 "tf": "chapters.metric.matching_tf:MatchingNet",
                 "keras": "chapters.metric.matching_keras:MatchingNet"},
}


PIPELINE_CHECK = "pipeline-check"  # suffix of the data set name of every pipeline-check run


def pipeline_check_splits(test_set: FewShotDataset, train_classes: int | None = None
                          ) -> tuple[FewShotDataset, FewShotDataset, dict]:
    """Stand-in splits for a data set whose meta-training classes are not available.

    The classes of ``test_set`` are sorted by name and split once: the first ``train_classes``
    (default: three fifths, 12 of mini-ImageNet's 20) for meta-training, the rest for validation
    and test. Both parts are named ``<data set>-pipeline-check``, and the returned note (stored in
    the results' options) says what the run is, so that it is never read as a reproduction.
    """
    order = sorted(range(test_set.n_classes), key=lambda c: test_set.class_names[c])
    n_train = test_set.n_classes * 3 // 5 if train_classes is None else train_classes
    if not 1 <= n_train < test_set.n_classes:
        raise ConfigError(f"a pipeline check needs at least one class on each side; {test_set.name} "
                          f"{test_set.split} has {test_set.n_classes} classes, {n_train} asked for training")
    name = f"{test_set.name}-{PIPELINE_CHECK}"
    train_set = test_set.subset(order[:n_train], name=name, split="train")
    held_out = test_set.subset(order[n_train:], name=name, split="test")
    note = {
        "note": (f"PIPELINE CHECK, NOT A REPRODUCTION: meta-trained on {n_train} of the {test_set.n_classes} "
                 f"{test_set.name} {test_set.split} classes (the first {n_train} in sorted order), validated "
                 f"and tested on the other {test_set.n_classes - n_train}; not comparable to published numbers"),
        "train_classes": list(train_set.class_names),
        "test_classes": list(held_out.class_names),
    }
    return train_set, held_out, note


def build_learner(algorithm: str, framework: str, in_channels: int, example, learning_rate: float,
                  decay_every: int | None, seed: int, device: str = "cpu", **model_options):
    """The model of ``algorithm`` in ``framework``, drawn from ``seed`` and wrapped in that framework's
    episodic learner (``common.learners``). ``device`` matters to PyTorch only (TensorFlow places ops
    itself; see ``common.devices``)."""
    module, name = MODELS[algorithm][framework].split(":")
    model = seeded_model(framework, getattr(importlib.import_module(module), name), in_channels, seed=seed,
                         **model_options)
    return episodic_learner(framework, model, example, learning_rate, decay_every, device)


@dataclass
class MetricConfig(Config):
    """The settings every metric learner of the chapter has, and ProtoNet's only ones: Adam's
    learning rate, halved every ``decay_every`` episodes (Snell et al.'s schedule, this chapter's
    for all three methods). Their defaults are the command line's; an algorithm with settings of
    its own adds them in a subclass (``MatchingConfig``)."""

    lr: float = 1e-3          # Adam's learning rate ...
    decay_every: int = 2000   # ... halved every this many episodes (0: never)

    def model_options(self, image_shape) -> dict:
        """The keyword arguments of the algorithm's model besides its input channels: none."""
        return {}

    def options(self, image_shape) -> dict:
        """What the results and the checkpoint record of these settings: the schedule and the model's
        keyword arguments, which may follow the images (the Siamese head's size)."""
        return {"lr": self.lr, "decay_every": self.decay_every, **self.model_options(image_shape)}


def parser(algorithm: str, defaults) -> Parser:
    """The options of ``algorithm``'s script: its episodes (``common.cli.episode_parser``), its Adam
    schedule, whose defaults are the fields of ``defaults``, the algorithm's settings (``MetricConfig``,
    ...), and the classes it trains on. An algorithm with options of its own adds them."""
    parser = episode_parser(f"Train {algorithm} (metric-based meta-learning).")
    add_schedule_arguments(parser, lr=defaults.lr, decay_every=defaults.decay_every)
    parser.add_argument("--train-split", type=train_split, default="train",
                        help="the classes to meta-train on: 'train', or 'trainval' as Snell et al. for final runs "
                             "(never the test classes)")
    parser.add_argument("--pipeline-check", action="store_true",
                        help="for a data set without its train split (offline mini-ImageNet): meta-train on "
                             "the first 12 of the 20 test classes (sorted), validate and test on the other 8; "
                             "labelled '<dataset>-pipeline-check', never comparable to the papers")
    add_scheme_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def train_and_test(algorithm: str, args: argparse.Namespace, config) -> dict:
    """Train ``algorithm`` with its settings ``config`` (``MetricConfig``, ...) on the episodes the
    parsed options ``args`` ask for, and test it. The results' options are ``config.options``
    (the learning rate, its halving and the model's keyword arguments) and the classes trained on."""
    require_framework(args.framework)
    check_multiple("--episodes", args.episodes, "--eval-every", args.eval_every)
    check_out(args.out)
    scheme = Scheme.from_args(args)
    device = use_device(args.framework, args.device)

    test_way, test_shot = args.test_way or args.way, args.test_shot or args.shot
    test_query = args.test_query or args.query
    if args.pipeline_check:
        if args.train_split != "train":
            raise ConfigError("--pipeline-check makes its own split of the test classes; drop --train-split")
        train_set, held_out, note = pipeline_check_splits(load_dataset(args.dataset, "test", args.data_dir))
        val_set = test_set = held_out  # nothing is selected on validation: it only draws the curve
        dataset, split_options = train_set.name, {"train_split": PIPELINE_CHECK, "pipeline_check": note}
        print(f"{note['note']}.")
    else:
        val_split = "val" if args.train_split == "train" else "test"  # trainval runs validate on test
        train_set, val_set, test_set = (load_dataset(args.dataset, split, args.data_dir, **scheme.dataset_options(split))
                                        for split in (args.train_split, val_split, "test"))
        dataset = scheme.dataset_label(args.dataset)
        split_options = {"train_split": args.train_split, **scheme.options()}
    model_options = config.model_options(train_set.image_shape)
    sampler = scheme.training_sampler(train_set, args.way, args.shot, args.query, seed=args.seed)
    # The Vinyals split's episodes draw classes from any alphabets; the Lake scheme's, from one.
    val_episodes = scheme.evaluation_episodes(val_set, test_way, test_shot, test_query, count=args.val_episodes)
    test_episodes = scheme.evaluation_episodes(test_set, test_way, test_shot, test_query, count=args.test_episodes)
    run = Run(algorithm=algorithm, framework=args.framework, dataset=dataset, way=args.way, shot=args.shot,
              query=args.query, test_way=test_way, test_shot=test_shot, test_query=test_query,
              episodes=args.episodes, seed=args.seed, eval_every=min(args.eval_every, args.episodes),
              val_episodes=args.val_episodes, test_episodes=args.test_episodes, out=args.out,
              options={**config.options(train_set.image_shape), **split_options},
              device=device)
    learner = build_learner(algorithm, args.framework, train_set.image_shape[-1], sampler.episode(0),
                            config.lr, config.decay_every or None, args.seed, device, **model_options)
    return train(run, learner, sampler, val_episodes, test_episodes, progress=not args.quiet)
