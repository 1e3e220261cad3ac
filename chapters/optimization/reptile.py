"""Reptile (Nichol, Achiam & Schulman 2018) on few-shot classification. Reptile's settings are
:class:`ReptileConfig`; ``train.py`` has the options every script of the chapter shares.

Reptile adapts to each task of a meta-batch with k plain gradient steps, then moves the
initialisation toward the adapted weights: θ ← θ + ε (mean θ' − θ) (Algorithm 2), ε annealed
linearly to 0 over the run (``--no-anneal`` keeps it constant; ``--anneal-over N`` anneals over N
meta-iterations, so that a shorter run follows a longer run's schedule step for step). Nichol et
al.'s Omniglot protocol (Appendix A) trains on 10 shots per class whatever the test shot, 5 inner
steps on mini-batches of 10 examples (one pass through the 50 support examples of a 5-way task)
with Adam (rate 0.001, β1 = 0, its state kept across tasks), meta-batches of 5 tasks, ε = 1,
100,000 meta-iterations, and adapts with 50 inner steps at test; 20-way, 10 inner steps on
mini-batches of 20. Their released code's network is the stride-2 Conv-4 of Finn et al.'s released
code (``--backbone strided``):

    python -m chapters.optimization.reptile --way 5 --shot 10 --inner-batch 10 --inner-optimizer adam --inner-lr 0.001 --backbone strided --test-shot 1 --episodes 100000
    python -m chapters.optimization.reptile --way 5 --shot 10 --inner-batch 10 --inner-optimizer adam --inner-lr 0.001 --backbone strided --test-shot 5 --episodes 100000
    python -m chapters.optimization.reptile --way 20 --shot 10 --inner-steps 10 --inner-batch 20 --inner-optimizer adam --inner-lr 0.001 --backbone strided --test-shot 1 --episodes 100000

They report 95.39 / 98.90 / 88.14 / 96.65 (not transductive) and 97.68 / 99.48 / 89.43 / 97.12
(``--transductive``). ``--inner-batch`` b steps through the support set b examples at a time, in
a random order (``minibatches.py``); without it every step uses the whole support set (5x the
computation here). ``--inner-optimizer sgd`` (the default) takes plain gradient steps of rate
``--inner-lr``, the form in which the chapter derives Reptile; ``adam`` is Nichol et al.'s, and its
rate is not comparable to a gradient-descent one (Adam's steps are about ``--inner-lr`` in every
coordinate, whatever the gradient's scale). Our test tasks adapt on their whole support set, from
the inner Adam's state, which they do not change (theirs take mini-batches of 5 and keep
updating it). Add ``--framework tf`` or ``keras``.
"""

from dataclasses import dataclass

from chapters.optimization import train
from chapters.optimization.minibatches import INNER_OPTIMIZERS, check_inner_batch, check_inner_optimizer
from common.cli import Config, run
from common.errors import ConfigError
from common.options import COUNT


def check_settings(inner_batch: int | None, inner_optimizer: str, anneal_steps: int | None) -> None:
    """Reptile's own settings, checked by the learners of the three frameworks before anything is
    built: the inner mini-batch, the inner optimizer (``minibatches.py``) and the length of ε's
    annealing."""
    check_inner_batch(inner_batch)
    check_inner_optimizer(inner_optimizer)
    if anneal_steps is not None and anneal_steps < 1:
        raise ConfigError(f"anneal_steps must be at least 1 (or None: no annealing), got {anneal_steps!r}")


@dataclass
class ReptileConfig(Config):
    """Reptile's settings, in one place: their defaults are the command line's, ``train.learner_settings``
    hands them to the ``Reptile`` class of each framework, and :meth:`options` is what the results and
    the checkpoint record. Nichol et al.'s protocol changes some of them (the commands above)."""

    meta_batch: int = 5             # tasks per meta-iteration
    backbone: str = "maxpool"       # Conv-4 blocks (see MAMLConfig); Nichol et al.'s code: "strided"
    inner_steps: int = 5            # k, inner steps per training task ...
    test_inner_steps: int = 50      # ... and on a test task's support set
    meta_lr: float = 1.0            # ε, the outer step θ ← θ + ε (mean θ' − θ)
    transductive: bool = False      # BatchNorm normalises the query set as one batch
    inner_lr: float = 0.1           # the inner steps' rate (plain SGD, or Adam's)
    anneal_steps: int | None = None  # ε decays linearly to 0 over these meta-iterations (None: constant)
    inner_batch: int | None = None  # support examples per inner step (None: all of them)
    inner_optimizer: str = "sgd"    # the inner steps: "sgd", or Nichol et al.'s "adam"

    @classmethod
    def from_args(cls, args) -> "ReptileConfig":
        if args.no_anneal and args.anneal_over is not None:
            raise ConfigError("--no-anneal and --anneal-over contradict each other: give one of them")
        anneal_steps = None if args.no_anneal else args.anneal_over or args.episodes
        return super().from_args(args, anneal_steps=anneal_steps)


def main(argv=None) -> dict:
    defaults = ReptileConfig()
    # query=1: Reptile's update uses no query set (Nichol et al. sample only the 10 shots); one query
    # image per class only scores the adapted weights for the training curve, at little cost.
    # test_shot=1: trained on 10 shots, the model is tested 1-shot unless --test-shot says otherwise.
    parser = train.parser("reptile", defaults, way=5, shot=10, query=1, test_shot=1, episodes=100_000)
    parser.add_argument("--no-anneal", action="store_true", help="keep ε constant instead of annealing it to 0")
    parser.add_argument("--anneal-over", type=COUNT, default=None, metavar="N",
                        help="anneal ε to 0 over N meta-iterations (default: --episodes); a shorter run "
                             "with a longer run's N follows that run's schedule step for step")
    parser.add_argument("--inner-batch", type=COUNT, default=defaults.inner_batch,
                        help="support examples per inner step, stepping through the (shuffled) support set "
                             "(default: all of them at every step)")
    parser.add_argument("--inner-optimizer", choices=INNER_OPTIMIZERS, default=defaults.inner_optimizer,
                        help="the inner steps: plain gradient descent, or Nichol et al.'s Adam (β1 = 0, its "
                             "state kept across tasks); --inner-lr is its rate")
    args = parser.parse_args(argv)
    return train.train_and_test("reptile", args, ReptileConfig.from_args(args))


if __name__ == "__main__":
    run(main)
