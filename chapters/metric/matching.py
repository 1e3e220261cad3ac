"""Matching Networks (Vinyals et al. 2016): train and evaluate. Matching Networks' settings are
:class:`MatchingConfig`; ``train.py`` has the options every script of the chapter shares.

Paper protocol on Omniglot (28x28, Conv-4 embedding, cosine attention, no FCE): train on N-way
K-shot episodes that match the test setting ("test and train conditions must match"), with Adam,
and test on held-out characters. The published accuracies are 98.1 / 98.9 % 5-way and
93.8 / 98.5 % 20-way, 1 / 5-shot (Table 1). A 5-way 1-shot run, with the optimiser settings of
this chapter's other scripts (Adam 1e-3 halved every 2,000 episodes):

    python -m chapters.metric.matching --way 5 --shot 1 --query 15 --episodes 20000 --distance cosine_times_query_norm

With Eq. 2 as printed (``--distance cosine``, the default) the attention cannot be sharp, because
the ReLU embeddings make every cosine non-negative, and the same run reached 85.3 to 86.7 % in the
three frameworks, and 65.3 to 66.7 % with 20 ways (see ``MatchingNet`` in matching_torch.py and
section 7 of the chapter). The chapter measures three
labelled deviations from the paper, each named in its results' options:

``--distance cosine_times_query_norm``, the one to reach for first: the cosine times the length of
the query's embedding, f(x̂) . g(x_i) / |g(x_i)|, which is what the widely used TensorFlow
implementations of the paper (zergylord/oneshot, AntreasAntoniou/MatchingNetworks) compute as
their "cosine": a softmax temperature that the encoder learns, one per query. The run above
reached 97.5 % in the three frameworks, within a point of the paper, and the 20-way and 5-shot
runs came out above the paper's numbers (section 7 of the chapter).

``--cosine-scale 10`` multiplies the cosines of Eq. 2 by 10 before the softmax: 96.2-96.4 % on
the run above, about 2 points short at 1 shot, within a point at 5-way 5-shot.

``--distance squared_euclidean``: minus the squared Euclidean distance in place of the cosine, as
in Snell et al.'s ablation (with one shot, a Prototypical Network trained on Matching Networks'
episodes): 97.2-97.3 % on the run above.

``--fce`` adds the Full Context Embeddings (bidirectional LSTM over the support set, attention
LSTM with ``--fce-steps`` reads for each query). The paper reports them for mini-ImageNet, where
they help; on Omniglot it reports the plain model. Their LSTMs have the size of the embedding:
64 on Omniglot, 1600 on mini-ImageNet (84x84), where they are large (about 70M weights).

Protocol on mini-ImageNet (Ravi & Larochelle split, 84x84): Matching Nets with FCE, trained on
5-way episodes of the test setting with 15 queries per class and tested 5-way with 15 queries per
class. The published numbers on this split are 43.56 / 55.31 % (1 / 5-shot; Ravi & Larochelle
2017, as listed in Snell et al. 2017, Table 2). It needs the full images.zip (see
``common/data/mini_imagenet.py``):

    python -m chapters.metric.matching --dataset mini-imagenet --fce --way 5 --shot 1 --query 15 --episodes 20000
    python -m chapters.metric.matching --dataset mini-imagenet --fce --way 5 --shot 5 --query 15 --episodes 20000
"""

from dataclasses import dataclass

from chapters.metric import train
from common.backbones import conv4_embedding_size
from common.cli import run
from common.errors import ConfigError
from common.options import COUNT, POSITIVE

# Written once for matching_{torch,tf,keras}.py (and the command line below):
EPSILON = 1e-8  # inside the norms of the cosine: an all-zero embedding (ReLU) gives 0, not NaN
# What Eq. 2's softmax compares: the paper's cosine, Snell et al.'s distance, and the cosine
# times the query's length (the widely used TensorFlow implementations of the paper).
DISTANCES = ("cosine", "squared_euclidean", "cosine_times_query_norm")


def similarity(measures: dict, query_embeddings, support_embeddings, scale: float = 1.0, distance: str = "cosine"):
    """What Eq. (2) puts inside its softmax, for every (query, support) pair, (n_query, n_support).

    ``cosine``: the paper's c(f(x̂), g(x_i)), times ``scale`` (a softmax temperature of 1/scale;
    Eq. (2) is scale = 1). ``squared_euclidean``: minus ProtoNet's distance, -||f(x̂) - g(x_i)||^2
    (no scale: the distance sets its own). ``cosine_times_query_norm``: |f(x̂)| c(f(x̂), g(x_i)),
    a scale that the network sets itself, one per query. ``measures`` maps each of ``DISTANCES``
    to the framework's function (query embeddings, support embeddings) -> (n_query, n_support):
    each framework's ``similarity`` passes its own. See ``MatchingNet`` in matching_torch.py for
    why the protocols deviate from the cosine."""
    if distance not in DISTANCES:
        raise ConfigError(f"unknown distance {distance!r} for Matching Networks: choose one of {', '.join(DISTANCES)}")
    similarities = measures[distance](query_embeddings, support_embeddings)
    return scale * similarities if distance == "cosine" else similarities


@dataclass
class MatchingConfig(train.MetricConfig):
    """Matching Networks' settings: the chapter's schedule (``train.MetricConfig``: ``lr``,
    ``decay_every``) and these, whose defaults are the command line's (Eq. 2 as printed, no FCE);
    :meth:`model_options` gives ``MatchingNet`` its keyword arguments, which the results record."""

    fce: bool = False           # Full Context Embeddings (Appendix A)
    fce_steps: int = 5          # K, the attention LSTM's reads of the support set (with fce)
    cosine_scale: float = 1.0   # s in softmax(s * cosine); 1 is Eq. 2
    distance: str = "cosine"    # what the attention compares (DISTANCES)

    @classmethod
    def from_args(cls, args) -> "MatchingConfig":
        if args.distance != "cosine" and args.cosine_scale != 1.0:
            raise ConfigError("--cosine-scale scales cosines: it cannot be combined with "
                              f"--distance {args.distance}; leave one of the two out")
        return super().from_args(args)

    def model_options(self, image_shape) -> dict:
        """The keyword arguments of ``MatchingNet``. The deviations are recorded only when they depart
        from Eq. 2, so that runs of the plain equation keep the identity (and checkpoints) they had
        before the options existed."""
        deviations = {} if self.cosine_scale == 1.0 else {"cosine_scale": self.cosine_scale}
        if self.distance != "cosine":
            deviations["distance"] = self.distance
        if not self.fce:
            return {"fce": False, **deviations}
        return {"fce": True, "fce_steps": self.fce_steps, "embedding_size": conv4_embedding_size(image_shape),
                **deviations}


def add_arguments(parser, defaults: MatchingConfig = MatchingConfig()) -> None:
    """Matching Networks' own options, with the defaults of its settings."""
    parser.add_argument("--fce", action="store_true", help="Full Context Embeddings (Appendix A)")
    parser.add_argument("--fce-steps", type=COUNT, default=defaults.fce_steps,
                        help="K, the attention LSTM's reads of the support set (with --fce)")
    # A zero scale would make every attention weight equal and the model untrainable, without an error.
    parser.add_argument("--cosine-scale", type=POSITIVE, default=defaults.cosine_scale,
                        help="s in softmax(s * cosine); 1 is Eq. 2 as printed, reproduce.py's matching-5w1s, "
                             "-5w5s, -20w1s and -20w5s use 10 (see MatchingNet in matching_torch.py)")
    parser.add_argument("--distance", choices=DISTANCES,
                        default=defaults.distance,
                        help="what the attention compares: the paper's cosine, minus the squared Euclidean "
                             "distance, or the cosine times the query embedding's length (labelled "
                             "deviations; --cosine-scale then does not apply)")


def main(argv=None) -> dict:
    defaults = MatchingConfig()
    parser = train.parser("matching", defaults)
    add_arguments(parser, defaults)
    args = parser.parse_args(argv)
    return train.train_and_test("matching", args, MatchingConfig.from_args(args))


if __name__ == "__main__":
    run(main)
