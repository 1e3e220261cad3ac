"""SNAIL, a simple neural attentive meta-learner (Mishra, Rohaninejad, Chen & Abbeel, ICLR 2018):
train and evaluate on Omniglot in the framework of your choice.

    python -m chapters.model_based.snail --way 5 --shot 1
    python -m chapters.model_based.snail --framework tf --way 20 --shot 5 --episodes 40000

The model (``snail_{torch,tf,keras}.py``) reads an episode as a sequence, the support pairs
(embedding, one-hot label) and then a query with a zero label, through temporal-convolution and
causal attention blocks, and predicts the query's label. Mishra et al. score one query per
sequence; we score every query of the book's fixed test episodes, each as the last element of its
own sequence (support, that query), so that no query sees another. Published on Omniglot (Table 1):
99.07 / 99.78 / 97.64 / 99.36 % at 5-way 1-shot / 5-way 5-shot / 20-way 1-shot / 20-way 5-shot.

Protocol (our reading of the paper's Appendix, which gives the architecture but not every training
setting): Conv-4 embedding (64 features; see ``common.backbones``), the blocks below, Adam 1e-3,
training episodes of the test's N and K. The support pairs of every sequence come in a random
order, fixed per episode (:class:`ShuffledSupport`): the sampler lists them class by class, and
that order would tell the model each label without looking at it. BatchNorm normalises with the
episode's own statistics: the whole training episode's in training, the support set's at test time
(``snail_torch.embed``), not the running averages, whose global mean leaves a test episode's
features off the centre SNAIL learned on.

A run writes into ``--out``/snail_<framework>_omniglot_<way>w<shot>s/: the checkpoint (the same
command resumes it exactly), ``curve.png`` and the results JSON.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field

import numpy as np

from common.cli import Config
from common.episodes import EpisodeSource
from common.errors import ConfigError

# (key size K, value size V) of the three attention blocks and the filters D of the two TC blocks,
# for Omniglot (Mishra et al., Appendix): Attention(64, 32), TC(T, 128), Attention(256, 128),
# TC(T, 128), Attention(512, 256).
ATTENTION_SIZES = ((64, 32), (256, 128), (512, 256))
TC_FILTERS = (128, 128)


def sequence_length(way: int, shot: int) -> int:
    """T = N*K + 1: the support pairs, then the query."""
    return way * shot + 1


def dilations(length: int) -> list[int]:
    """The dense blocks' dilations in a TC block over T positions (Algorithm 2): 2^i for
    i = 1 .. ceil(log2 T). With kernel 2, position t then reaches back 2 + 4 + ... >= T - 1 steps."""
    return [2 ** i for i in range(1, math.ceil(math.log2(length)) + 1)]


def block_inputs(way: int, shot: int, embedding_size: int = 64) -> list[int]:
    """The features each position carries into attention 1, TC 1, attention 2, TC 2, attention 3
    and the output layer, in that order: an embedding and a one-hot label to start, then every
    block concatenates what it computes (V per attention block, D per dense block of a TC block)."""
    (_, value1), (_, value2), (_, value3) = ATTENTION_SIZES
    tc1, tc2 = (filters * len(dilations(sequence_length(way, shot))) for filters in TC_FILTERS)
    inputs = [embedding_size + way]
    for added in (value1, tc1, value2, tc2, value3):
        inputs.append(inputs[-1] + added)
    return inputs


def channels(way: int, shot: int, embedding_size: int = 64) -> int:
    """The features each position carries into the output layer: every block concatenates."""
    return block_inputs(way, shot, embedding_size)[-1]


def build_blocks(way: int, shot: int, embedding_size: int, attention_block, tc_block, *args) -> tuple[list, int]:
    """The five blocks of the Appendix in order (attention 1, TC 1, attention 2, TC 2, attention 3),
    made by a framework's ``attention_block(features in, key size, value size, *args)`` and
    ``tc_block(features in, T, filters, *args)`` (``args``: what else its blocks take, such as a
    dtype and a seed), in that order, so that every framework draws their initial weights in the
    same sequence. Returns the blocks and the features a position carries into the output layer."""
    length = sequence_length(way, shot)
    (key1, value1), (key2, value2), (key3, value3) = ATTENTION_SIZES
    filters1, filters2 = TC_FILTERS
    inputs = block_inputs(way, shot, embedding_size)
    blocks = [attention_block(inputs[0], key1, value1, *args), tc_block(inputs[1], length, filters1, *args),
              attention_block(inputs[2], key2, value2, *args), tc_block(inputs[3], length, filters2, *args),
              attention_block(inputs[4], key3, value3, *args)]
    return blocks, inputs[5]


def through_blocks(model, support, query):
    """The support rows (S, C) and the query rows (Q, C) through ``model``'s five blocks, in the
    order of the Appendix: attention 1, TC 1, attention 2, TC 2, attention 3. Returns (support (S,
    C'), query (Q, C'), the three attention blocks' query weights, each (Q, S + 1)). It only calls
    the blocks, whose arithmetic is the framework's: written once for the three ``SNAIL.read``."""
    support, query, attention1 = model.attention1(support, query)
    support, query = model.tc1(support, query)
    support, query, attention2 = model.attention2(support, query)
    support, query = model.tc2(support, query)
    support, query, attention3 = model.attention3(support, query)
    return support, query, [attention1, attention2, attention3]


# ---------------------------------------------------------------------------- bad input

def too_long(n_support: int, way: int, shot: int) -> str:
    return (f"this SNAIL was built for {way}-way {shot}-shot sequences of {way * shot} support examples "
            f"and a query, but the episode has {n_support} support examples; build the model with the "
            f"episode's --way and --shot (its TC blocks cover sequences of T = N*K + 1 steps)")


def labels_outside(labels, way: int) -> str:
    return (f"support labels must lie in 0..{way - 1} (the model's one-hot labels have {way} entries), "
            f"got {sorted(set(np.asarray(labels).ravel().tolist()))}; relabel the classes 0..N-1")


NO_QUERY = ("the episode has no query: SNAIL predicts the label of the last element of a sequence, "
            "which must be a query example after the support set; give each episode at least one query")


def check_episode(support_y, n_query: int, way: int, shot: int) -> None:
    """Raise a :class:`ConfigError` that says what to change, before any computation, when an
    episode does not fit a SNAIL built for ``way``-way ``shot``-shot sequences."""
    support_y = np.asarray(support_y)
    if n_query < 1:
        raise ConfigError(NO_QUERY)
    if len(support_y) > way * shot:
        raise ConfigError(too_long(len(support_y), way, shot))
    if support_y.size and (support_y.min() < 0 or support_y.max() >= way):
        raise ConfigError(labels_outside(support_y, way))


def check_setting(way: int, shot: int, test_way: int, test_shot: int) -> None:
    """A trained SNAIL outputs ``way`` logits and covers N*K support steps: test settings must fit."""
    if test_way != way:
        raise ConfigError(f"SNAIL predicts one of its {way} training labels; test it {way}-way "
                          f"(--test-way {way}) or train a {test_way}-way model (--way {test_way})")
    if test_shot > shot:
        raise ConfigError(too_long(test_way * test_shot, way, shot) + f" (--test-shot {test_shot} > --shot {shot})")


# ---------------------------------------------------------------------------- episodes

class ShuffledSupport(EpisodeSource):
    """Episode ``i`` of ``source`` with its support pairs (images and labels together) in a random
    order drawn from (source seed, i): the same in every framework and in a resumed run. Query
    order and every value are unchanged."""

    def __init__(self, source):
        self.source, self.seed = source, source.seed

    def episode(self, index: int):
        episode = self.source.episode(index)
        order = np.random.default_rng([self.seed, index, 2]).permutation(len(episode.support_y))
        return episode._replace(support_x=episode.support_x[order], support_y=episode.support_y[order])


# ---------------------------------------------------------------------------- the script

@dataclass
class SNAILConfig(Config):
    """SNAIL's settings, in one place: their defaults are the command line's, the learner trains
    with them, and the results record them as their ``options``."""

    lr: float = 1e-3                  # Adam's learning rate ...
    decay_every: int = 0              # ... halved every this many episodes (0: never)
    # A sequence's support pairs come in a random order (ShuffledSupport), always: no option sets it.
    support_order: str = field(default="shuffled", init=False)


def build_learner(framework: str, in_channels: int, way: int, shot: int, example, learning_rate: float,
                  decay_every: int | None, seed: int, device: str = "cpu"):
    """A SNAIL in ``framework`` inside that framework's episodic learner (``common.episodic_*``):
    one Adam step per episode on the cross-entropy of every query."""
    from common.learners import episodic_learner, seeded_model

    snail = importlib.import_module(f"chapters.model_based.snail_{framework}")
    model = seeded_model(framework, snail.SNAIL, in_channels, way, shot, seed=seed)
    return episodic_learner(framework, model, example, learning_rate, decay_every, device)


def main(argv=None) -> dict:
    from common.cli import add_schedule_arguments, episode_parser, require_framework
    from common.data import load_dataset
    from common.devices import use_device
    from common.episodes import FixedEpisodes
    from common.options import check_multiple, check_out
    from common.schemes import Scheme, add_scheme_arguments
    from common.training import Run, train

    # test_query=15: the book's test episodes, 15 queries per class.
    parser = episode_parser("Train SNAIL (Mishra et al. 2018) on few-shot episodes.", way=5, shot=1, query=5,
                            episodes=20000, test_query=15)
    defaults = SNAILConfig()
    add_schedule_arguments(parser, lr=defaults.lr, decay_every=defaults.decay_every)
    add_scheme_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)  # each option's rule is its type (common.options)
    config = SNAILConfig.from_args(args)
    require_framework(args.framework)
    check_multiple("--episodes", args.episodes, "--eval-every", args.eval_every)
    check_out(args.out)
    scheme = Scheme.from_args(args)  # Omniglot's classes: the Vinyals split or Lake et al.'s alphabets
    if scheme.image_size is not None:
        raise ConfigError(f"SNAIL's blocks are sized for the Conv-4's 64 features of a 28x28 image (Mishra et al.); "
                          f"drop --image-size {scheme.image_size}")
    test_way, test_shot = args.test_way or args.way, args.test_shot or args.shot
    check_setting(args.way, args.shot, test_way, test_shot)
    if args.query < 1 or args.test_query < 1:
        raise ConfigError(NO_QUERY + " (--query and --test-query must be at least 1)")
    device = use_device(args.framework, args.device)

    train_set, val_set, test_set = (load_dataset(args.dataset, split, args.data_dir, **scheme.dataset_options(split))
                                    for split in ("train", "val", "test"))
    sampler = ShuffledSupport(scheme.training_sampler(train_set, args.way, args.shot, args.query, seed=args.seed))

    def fixed(dataset, count):  # the book's fixed episodes (within one alphabet: Lake), support in a fixed random order
        source = scheme.evaluation_episodes(dataset, test_way, test_shot, args.test_query, count=count).source
        return FixedEpisodes(ShuffledSupport(source), count)

    run = Run(algorithm="snail", framework=args.framework, dataset=scheme.dataset_label(args.dataset), way=args.way,
              shot=args.shot, query=args.query, test_way=test_way, test_shot=test_shot, test_query=args.test_query,
              episodes=args.episodes, seed=args.seed, eval_every=min(args.eval_every, args.episodes),
              val_episodes=args.val_episodes, test_episodes=args.test_episodes, out=args.out,
              options={**config.options(), **scheme.options()}, device=device)
    learner = build_learner(args.framework, train_set.image_shape[-1], args.way, args.shot, sampler.episode(0),
                            config.lr, config.decay_every or None, args.seed, device)
    return train(run, learner, sampler, fixed(val_set, args.val_episodes), fixed(test_set, args.test_episodes),
                 progress=not args.quiet)


if __name__ == "__main__":
    from common.cli import run

    run(main)
