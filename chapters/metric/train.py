"""Train and evaluate a metric-based learner in the framework of your choice.

    python -m chapters.metric.protonet --framework torch --way 60 --shot 5 --test-way 5 --test-shot 1
    python -m chapters.metric.matching --framework keras --episodes 2000
    python -m chapters.metric.siamese  --framework tf

Each algorithm script (``protonet.py``, ``matching.py``, ``siamese.py``) is this one with its own
defaults. A run writes into ``--out``/<algorithm>_<framework>_<dataset>_<way>w<shot>s/: the checkpoint
(a second run with the same options resumes it), ``curve.png``, and the results JSON.
"""

from __future__ import annotations

import importlib

from common.cli import episode_parser, require_framework
from common.data import load_dataset
from common.episodes import EpisodeSampler, evaluation_episodes
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
LEARNERS = {"torch": "common.episodic_torch", "tf": "common.episodic_tf", "keras": "common.episodic_keras"}


def build_learner(algorithm: str, framework: str, in_channels: int, example, learning_rate: float,
                  decay_every: int | None, seed: int, **model_options):
    """The model of ``algorithm`` in ``framework``, wrapped in that framework's episodic learner."""
    module, name = MODELS[algorithm][framework].split(":")
    model_class = getattr(importlib.import_module(module), name)
    learners = importlib.import_module(LEARNERS[framework])
    if framework == "torch":
        import torch
        torch.manual_seed(seed)
        return learners.EpisodicLearner(model_class(in_channels, **model_options), learning_rate, decay_every)
    if framework == "tf":
        return learners.EpisodicLearner(model_class(in_channels, seed=seed, **model_options), learning_rate, decay_every)
    import keras
    keras.utils.set_random_seed(seed)
    return learners.EpisodicLearner(model_class(in_channels, **model_options), example, learning_rate, decay_every)


def main(algorithm: str, argv=None, *, add_arguments=None, model_options=None, **defaults) -> dict:
    """Parse the options, train, test. An algorithm with options of its own passes
    ``add_arguments(parser)``, which adds its flags, and ``model_options(args, image_shape)``,
    which turns them into keyword arguments of its model class (recorded in the results too)."""
    parser = episode_parser(f"Train {algorithm} (metric-based meta-learning).", **defaults)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--decay-every", type=int, default=2000,
                        help="halve the learning rate every this many episodes (0: never)")
    parser.add_argument("--eval-every", type=int, default=500, help="validate and checkpoint every N episodes")
    parser.add_argument("--val-episodes", type=int, default=100)
    parser.add_argument("--test-episodes", type=int, default=600)
    parser.add_argument("--train-split", default="train", help="'train', or 'trainval' as Snell et al. for final runs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    require_framework(args.framework)

    test_way, test_shot = args.test_way or args.way, args.test_shot or args.shot
    test_query = args.test_query or args.query
    train_set = load_dataset(args.dataset, args.train_split, args.data_dir)
    options = model_options(args, train_set.image_shape) if model_options is not None else {}
    sampler = EpisodeSampler(train_set, args.way, args.shot, args.query, seed=args.seed)
    val_split = "val" if args.train_split == "train" else "test"  # trainval runs validate on test
    val_episodes = evaluation_episodes(load_dataset(args.dataset, val_split, args.data_dir),
                                       test_way, test_shot, test_query, count=args.val_episodes)
    test_episodes = evaluation_episodes(load_dataset(args.dataset, "test", args.data_dir),
                                        test_way, test_shot, test_query, count=args.test_episodes)
    run = Run(algorithm, args.framework, args.dataset, args.way, args.shot, args.query, test_way, test_shot,
              test_query, args.episodes, args.seed, min(args.eval_every, args.episodes), args.val_episodes,
              args.test_episodes, args.out, options={"lr": args.lr, "decay_every": args.decay_every,
                                                     "train_split": args.train_split, **options})
    learner = build_learner(algorithm, args.framework, train_set.image_shape[-1], sampler.episode(0),
                            args.lr, args.decay_every or None, args.seed, **options)
    return train(run, learner, sampler, val_episodes, test_episodes, progress=not args.quiet)
