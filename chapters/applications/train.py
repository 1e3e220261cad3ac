"""Few-shot text and relation classification with the book's learners, in any framework.

    python -m chapters.applications.train --algorithm protonet --dataset huffpost --shot 1
    python -m chapters.applications.train --algorithm protonet --dataset fewrel --shot 5 --framework keras
    python -m chapters.applications.train --algorithm maml --dataset huffpost --shot 5 --meta-batch 4
    python -m chapters.applications.train --algorithm matching --distance cosine_times_query_norm --shot 1

The learners are the chapters' own, unchanged: Prototypical Networks and Matching Networks
(``chapters/metric/{protonet,matching}_*.py``, given a text encoder instead of Conv-4) and MAML
(``chapters/optimization/maml_*.py``, adapting a ``TextClassifier`` instead of the Conv-4
classifier). ``--distance`` is Matching Networks' (``chapters/metric/matching.py``): the paper's
cosine by default, or one of the metric chapter's labelled deviations. Only the encoder
(``--encoder cnn`` or ``bag``, see ``encoders.py``) is new. The episodes come from the same
sampler and the same fixed evaluation episodes as the image chapters.

A run writes into ``--out``/<algorithm>_<framework>_<dataset>_<way>w<shot>s[_encoder bag]/: the
checkpoint (a second run with the same options resumes it), ``curve.png`` and the results JSON.
Options follow the rules of ``common.options``; a mistake is one line and exit status 2.

``--word-vectors FILE`` starts the word embeddings from vectors a reader has on disk (a text file
of ``word v_1 ... v_50`` lines, GloVe's format); words it lacks keep their random start. The run
is then labelled ``[word_vectors <file name>]``. By default no pretrained vectors are used.

``--relations 6-10`` (FewRel only) splits FewRel's 16 public relations into 6 training relations,
whose held-out sentences validate, and 10 test relations, so that a model can be tested 10-way
(``--test-way 10``; it trains at most 6-way). Its results are named ``fewrel-6-10``, so they never
share a cell of the table with the 6/5/5 split's (``common/data/fewrel.py``).

    python -m chapters.applications.train --dataset fewrel --relations 6-10 --shot 1 --test-way 10
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chapters.applications.encoders import ENCODERS, WORD_DIM, encoder_arguments, embedding_size
from chapters.metric.matching import DISTANCES
from chapters.optimization.train import as_learner, learner_around
from common.cli import Config, episode_parser, require_framework, run as run_main
from common.data import load_dataset
from common.data.fewrel import SCHEMES as FEWREL_SCHEMES
from common.devices import use_device
from common.episodes import EpisodeSampler, MetaBatches, evaluation_episodes
from common.errors import ConfigError, DataNotFoundError, CorruptDataError
from common.learners import episodic_learner, seeded_model
from common.options import COUNT, DECAY_EVERY, POSITIVE, check_multiple, check_out, train_split
from common.training import Run, train

ALGORITHMS = ("protonet", "matching", "maml")
EPISODIC = ("protonet", "matching")  # one Adam step per episode; MAML has its own learner
TEXT_SETS = ("huffpost", "reuters", "fewrel")
# What each data set's runs record about their protocol (stored in the results' options).
DATA_NOTES = {
    "fewrel": ("meta-trained on {count} of FewRel's 16 public validation relations and tested on 5 others "
               "(common/data/fewrel.py); FewRel's published numbers were meta-trained on its 64 training relations"),
    "fewrel-6-10": ("meta-trained on 560 sentences of each of {count} of FewRel's 16 public validation relations, "
                    "validated on their other 140 sentences, tested on the 10 other relations (common/data/fewrel.py, "
                    "scheme 6-10); FewRel's published numbers were meta-trained on its 64 training relations"),
}


@dataclass
class TextLearnerConfig(Config):
    """The settings of a learner on text, in one place: their defaults are the command line's,
    :func:`build_model` and :func:`build_learner` build with them, and :meth:`options` is what the
    results and the checkpoint record (each algorithm its own settings)."""

    algorithm: str = "protonet"         # protonet, matching or maml: the run's name, not among its options
    encoder: str = "cnn"                # cnn (FewRel's Proto-CNN) or bag (mean of the word embeddings)
    distance: str = "cosine"            # Matching Networks: what the attention compares (Eq. 2: the cosine)
    lr: float = 1e-3                    # Adam's learning rate (MAML: the meta-rate β)
    decay_every: int = 2000             # ProtoNet, Matching Networks: halve lr every this many episodes (0: never)
    meta_batch: int = 4                 # MAML: tasks per meta-iteration
    # α = 5, not the 0.4 of MAML on Omniglot: the encoder's features start small (embeddings N(0, 0.1²)), so
    # a head step of α = 0.1 or 0.5 barely moves the logits (the meta-loss stayed at ln 5 for 200 iterations).
    inner_lr: float = 5.0               # MAML: α, the inner step size
    inner_steps: int = 1                # MAML: inner steps in meta-training ...
    test_inner_steps: int | None = None  # ... and on a test task (None: as many as in meta-training)
    first_order: bool = False           # MAML: first-order (no Hessian term)

    def __post_init__(self):
        if self.test_inner_steps is None:
            self.test_inner_steps = self.inner_steps

    @classmethod
    def from_args(cls, args) -> "TextLearnerConfig":
        if args.distance != "cosine" and args.algorithm != "matching":
            raise ConfigError("--distance is Matching Networks' option; drop it, or use --algorithm matching")
        return super().from_args(args)

    def maml_settings(self) -> dict:
        """The keyword arguments of MAML's class (``chapters.optimization``)."""
        return {"inner_lr": self.inner_lr, "inner_steps": self.inner_steps, "first_order": self.first_order,
                "test_inner_steps": self.test_inner_steps, "meta_lr": self.lr}

    def options(self) -> dict:
        """The encoder, its output size and the learning rate; Matching Networks' distance where it
        departs from Eq. 2; the schedule of ProtoNet and Matching Networks, or MAML's settings."""
        options = {"encoder": self.encoder, "embedding_size": embedding_size(self.encoder), "lr": self.lr}
        if self.algorithm == "matching" and self.distance != "cosine":  # recorded as a deviation from Eq. 2
            options["distance"] = self.distance
        if self.algorithm in EPISODIC:
            return {**options, "decay_every": self.decay_every}
        return {**options, "meta_batch": self.meta_batch, "inner_lr": self.inner_lr, "inner_steps": self.inner_steps,
                "test_inner_steps": self.test_inner_steps, "first_order": self.first_order}


def add_arguments(parser, defaults: TextLearnerConfig = TextLearnerConfig()) -> None:
    """The script's options besides the episodes'; the learner's have the defaults of its settings."""
    parser.add_argument("--algorithm", choices=ALGORITHMS, default=defaults.algorithm, help="the learner")
    parser.add_argument("--encoder", choices=ENCODERS, default=defaults.encoder,
                        help="cnn (FewRel's Proto-CNN) or bag (mean of the word embeddings)")
    parser.add_argument("--distance", choices=DISTANCES, default=defaults.distance,
                        help="Matching Networks: what the attention compares (the paper's cosine, or a labelled "
                             "deviation of the metric chapter: squared_euclidean, cosine_times_query_norm)")
    parser.add_argument("--lr", type=POSITIVE, default=defaults.lr,
                        help="Adam's learning rate (MAML: the meta-rate β)")
    parser.add_argument("--decay-every", type=DECAY_EVERY, default=defaults.decay_every,
                        help="ProtoNet, Matching Networks: halve the learning rate every this many episodes (0: never)")
    parser.add_argument("--meta-batch", type=COUNT, default=defaults.meta_batch, help="MAML: tasks per meta-iteration")
    parser.add_argument("--inner-lr", type=POSITIVE, default=defaults.inner_lr, help="MAML: α, the inner step size")
    parser.add_argument("--inner-steps", type=COUNT, default=defaults.inner_steps,
                        help="MAML: inner steps in meta-training")
    parser.add_argument("--test-inner-steps", type=COUNT, default=None,
                        help="MAML: inner steps on a test task (default: --inner-steps)")
    parser.add_argument("--first-order", action="store_true", help="MAML: first-order (no Hessian term)")
    parser.add_argument("--eval-every", type=COUNT, default=500,
                        help="validate and checkpoint every N episodes (--episodes must be a multiple)")
    parser.add_argument("--val-episodes", type=COUNT, default=100, help="fixed validation episodes per checkpoint")
    parser.add_argument("--test-episodes", type=COUNT, default=600, help="fixed test episodes scored at the end")
    parser.add_argument("--train-split", type=train_split, default="train",
                        help="the classes to meta-train on: 'train' or 'trainval' (never the test classes)")
    parser.add_argument("--relations", choices=FEWREL_SCHEMES, default="6-5-5",
                        help="FewRel: its 16 public relations as 6-5-5 (train / val / test relations) or 6-10 (6 "
                             "train relations, every fifth of their sentences held out to validate, 10 test "
                             "relations, so that --test-way 10 works; results named fewrel-6-10)")
    parser.add_argument("--word-vectors", default=None,
                        help="a text file of pretrained word vectors (word v_1 ... v_50 per line) to start the "
                             "word embeddings from (default: none, trained from scratch)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def read_word_vectors(path: str, vocabulary) -> tuple[np.ndarray, int]:
    """(rows for the vocabulary's words, NaN where the file has none; how many were found)."""
    table = np.full((len(vocabulary), WORD_DIM), np.nan, dtype=np.float32)
    index = {word: i for i, word in enumerate(vocabulary.words)}
    try:
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                parts = line.rstrip().split(" ")
                if len(parts) != WORD_DIM + 1:
                    raise ValueError(f"line {number} has {len(parts) - 1} numbers, not {WORD_DIM}")
                if parts[0] in index:
                    table[index[parts[0]]] = np.asarray(parts[1:], dtype=np.float32)
    except FileNotFoundError:
        raise DataNotFoundError(f"--word-vectors {path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CorruptDataError(f"--word-vectors {path} is not a text file of 'word' and {WORD_DIM} numbers per line "
                               f"({error})") from None
    return table, int(np.isfinite(table[:, 0]).sum())


def build_model(algorithm: str, framework: str, encoder: str, way: int, encoder_args: dict, seed: int,
                distance: str = "cosine"):
    """The bare model, drawn from ``seed`` (``common.learners.seeded_model``): ProtoNet or Matching
    Networks (comparing by ``distance``) around a text encoder, or MAML's TextClassifier (way logits)."""
    module = importlib.import_module(f"chapters.applications.encoders_{framework}")
    if algorithm == "maml":
        return seeded_model(framework, module.TextClassifier, way, encoder, seed=seed, **encoder_args)
    text_encoder = seeded_model(framework, module.build_encoder, encoder, seed=seed, **encoder_args)
    if algorithm == "matching":
        matching = importlib.import_module(f"chapters.metric.matching_{framework}")
        return matching.MatchingNet(encoder=text_encoder, distance=distance)
    protonet = importlib.import_module(f"chapters.metric.protonet_{framework}")
    return protonet.ProtoNet(encoder=text_encoder)


def build_learner(config: TextLearnerConfig, framework: str, model, example, device: str = "cpu"):
    """The chapters' learner of ``config.algorithm`` around ``model`` (``common.learners``): the episodic
    learner for ProtoNet and Matching Networks, the optimization chapter's MAML (behind its ``Learner``
    interface) for MAML."""
    if config.algorithm in EPISODIC:
        return episodic_learner(framework, model, example, config.lr, config.decay_every or None, device)
    return as_learner(learner_around("maml", framework, model, config.maml_settings(), device), framework)


def load_word_vectors(learner, framework: str, path: str, vocabulary) -> int:
    """Overwrite the rows of the word embeddings that ``path`` has vectors for; returns how many."""
    from common.weights import from_canonical, to_canonical
    table, found = read_word_vectors(path, vocabulary)
    model = learner.model if hasattr(learner, "model") else learner.algorithm.model
    weights = to_canonical(model, framework)
    name = next(n for n in weights if n.endswith("words.embeddings"))
    rows = np.isfinite(table[:, 0])
    weights[name][rows] = table[rows]
    from_canonical(weights, model, framework)
    return found


def parse_args(argv=None):
    """The options, each checked by its rule (``common.options``) while parsing."""
    parser = episode_parser("Few-shot text or relation classification with ProtoNet, Matching Networks or MAML.",
                            dataset="huffpost", way=5, shot=1, query=5, episodes=10_000, test_query=15)
    add_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    require_framework(args.framework)
    config = TextLearnerConfig.from_args(args)
    if args.dataset not in TEXT_SETS:
        raise ConfigError(f"--dataset must be one of {', '.join(TEXT_SETS)} (a text data set), got {args.dataset}")
    check_multiple("--episodes", args.episodes, "--eval-every", args.eval_every)
    check_out(args.out)
    test_way, test_shot = args.test_way or args.way, args.test_shot or args.shot
    if config.algorithm == "maml" and test_way != args.way:
        raise ConfigError(f"MAML's head has --way {args.way} outputs, so it is tested {args.way}-way; drop "
                          f"--test-way {test_way}, or train a {test_way}-way model")
    if args.word_vectors is not None and not Path(args.word_vectors).is_file():
        raise ConfigError(f"--word-vectors {args.word_vectors}: no such file")
    wide = args.relations == "6-10"
    if wide and args.dataset != "fewrel":
        raise ConfigError(f"--relations 6-10 splits FewRel's relations; drop it for --dataset {args.dataset}")
    if wide and args.train_split != "train":
        raise ConfigError("--relations 6-10 validates on held-out sentences of the training relations, so there "
                          "are no validation relations to train on; drop --train-split trainval")
    device = use_device(args.framework, args.device)

    dataset = f"fewrel-{args.relations}" if wide else args.dataset
    scheme = {"scheme": args.relations} if wide else {}
    train_set = load_dataset(args.dataset, args.train_split, args.data_dir, **scheme)
    val_set = load_dataset(args.dataset, "val" if args.train_split == "train" else "test", args.data_dir, **scheme)
    test_set = load_dataset(args.dataset, "test", args.data_dir, **scheme)
    sampler = EpisodeSampler(train_set, args.way, args.shot, args.query, seed=args.seed)
    # Scheme 6-10 validates on the 6 training relations: a 10-way test is watched 6-way at most.
    val_way = min(test_way, val_set.n_classes) if wide else test_way
    val_episodes = evaluation_episodes(val_set, val_way, test_shot, args.test_query, count=args.val_episodes)
    test_episodes = evaluation_episodes(test_set, test_way, test_shot, args.test_query, count=args.test_episodes)

    options = {**config.options(), "train_split": args.train_split, "vocabulary": len(train_set.vocabulary),
               "length": train_set.length}
    if config.algorithm not in EPISODIC:  # MAML: a meta-batch of tasks per step
        sampler = MetaBatches(sampler, config.meta_batch)
    if args.word_vectors is not None:
        options["word_vectors"] = Path(args.word_vectors).name
    if val_way != test_way:
        options["val_way"] = val_way
    if dataset in DATA_NOTES:
        options["protocol"] = DATA_NOTES[dataset].format(count=train_set.n_classes)
    algorithm = "fomaml" if config.algorithm == "maml" and config.first_order else config.algorithm
    run = Run(algorithm=algorithm, framework=args.framework, dataset=dataset, way=args.way, shot=args.shot,
              query=args.query, test_way=test_way, test_shot=test_shot, test_query=args.test_query,
              episodes=args.episodes, seed=args.seed, eval_every=min(args.eval_every, args.episodes),
              val_episodes=args.val_episodes, test_episodes=args.test_episodes, out=args.out, options=options,
              device=device)
    model = build_model(config.algorithm, args.framework, config.encoder, args.way, encoder_arguments(train_set),
                        args.seed, config.distance)
    learner = build_learner(config, args.framework, model, sampler.episode(0), device)
    if args.word_vectors is not None:
        found = load_word_vectors(learner, args.framework, args.word_vectors, train_set.vocabulary)
        print(f"{found:,} of the {len(train_set.vocabulary):,} words start from {args.word_vectors}")
    return train(run, learner, sampler, val_episodes, test_episodes, progress=not args.quiet)


if __name__ == "__main__":
    run_main(main)
