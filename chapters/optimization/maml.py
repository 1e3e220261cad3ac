"""MAML and first-order MAML (Finn, Abbeel & Levine 2017) on few-shot classification. MAML's
settings are :class:`MAMLConfig`; ``train.py`` has the options every script of the chapter shares.

Paper protocol on Omniglot (Sec. 5.2, Vinyals split, 28x28, rotations as classes), Conv-4 with a
5- or 20-way head, Adam (β = 1e-3) on meta-batches of tasks with K query images per class,
60,000 meta-iterations, tested on 600 fixed tasks (15 queries per class here):

    5-way:  meta-batch 32, α = 0.4, 1 inner step in training, 3 at test
    python -m chapters.optimization.maml --way 5 --shot 1 --transductive --episodes 60000
    python -m chapters.optimization.maml --way 5 --shot 5 --transductive --episodes 60000

    20-way: meta-batch 16, α = 0.1, 5 inner steps in training and at test
    python -m chapters.optimization.maml --way 20 --shot 1 --meta-batch 16 --inner-lr 0.1 --inner-steps 5 --test-inner-steps 5 --transductive --episodes 60000

Finn et al.'s numbers (98.7 / 99.9 / 95.8 / 98.9) were measured with the query set normalised as
one batch, hence ``--transductive`` to compare with them; without it a query is normalised with
the support set's statistics. ``--inner-loss sum`` takes the support loss of the released code: its cross-entropy is summed over
the N·K support examples and divided by K, i.e. N times the mean, so its α = 0.4 (5-way) and 0.1
(20-way) are steps of 2.0 on the mean loss of Eq. 1. ``--first-order`` drops the Hessian term (first-order MAML, Sec. 5.2;
reported as ``fomaml``; Nichol et al. give 98.3 / 99.2 / 89.4 / 97.9, transductive). Add
``--framework tf`` or ``keras`` for the other frameworks.
"""

from dataclasses import dataclass

import numpy as np

from chapters.optimization import train
from common.cli import Config, run
from common.errors import ConfigError


def check_inner_steps(inner_steps) -> None:
    """MAML needs at least one inner step: with none, θ' = θ and it is plain multi-task training.

    Framework-neutral, so written once: ``maml_torch``, ``maml_tf`` and ``maml_keras`` call it
    before building anything."""
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, (int, np.integer)) or inner_steps < 1:
        raise ConfigError(f"MAML needs inner_steps >= 1 (gradient steps on the support set per task), "
                          f"got {inner_steps!r}; with 0 steps the adapted parameters are θ itself and "
                          f"nothing is meta-learned")


def inner_loop_steps(inner_steps, test_inner_steps=None) -> tuple[int, int]:
    """(inner steps in meta-training, inner steps on a test task), both checked with
    :func:`check_inner_steps`: a test task takes ``inner_steps`` unless ``test_inner_steps`` says
    otherwise (Finn et al. take 1 in training and 3 at test on 5-way Omniglot). The learners of the
    three frameworks call it before building anything."""
    check_inner_steps(inner_steps)
    test_inner_steps = inner_steps if test_inner_steps is None else test_inner_steps
    check_inner_steps(test_inner_steps)
    return inner_steps, test_inner_steps


@dataclass
class MAMLConfig(Config):
    """MAML's settings, in one place: their defaults are the command line's (Finn et al.'s 5-way
    protocol above), ``train.learner_settings`` hands them to the ``MAML`` class of each framework,
    and :meth:`options` is what the results and the checkpoint record."""

    meta_batch: int = 32        # tasks per meta-iteration
    backbone: str = "maxpool"   # Conv-4 blocks: the paper's text, or "strided" (Finn et al.'s released code)
    inner_steps: int = 1        # gradient steps on a task's support set in meta-training ...
    test_inner_steps: int = 3   # ... and on a test task's support set before it is scored
    meta_lr: float = 1e-3       # β, Adam's learning rate
    transductive: bool = False  # BatchNorm normalises the query set as one batch (Finn et al.'s code)
    inner_lr: float = 0.4       # α, the inner step size
    first_order: bool = False   # treat the inner gradients as constants (first-order MAML)
    inner_loss: str = "mean"    # the support loss: the mean of Eq. 1, or the released code's "sum"

    def options(self) -> dict:
        """Every setting; the paper's mean inner loss is left out, so that runs from before the
        option existed resume."""
        options = super().options()
        if self.inner_loss == "mean":
            del options["inner_loss"]
        return options


def main(argv=None) -> dict:
    defaults = MAMLConfig()
    parser = train.parser("maml", defaults, way=5, shot=1, episodes=60_000)
    parser.add_argument("--first-order", action="store_true",
                        help="first-order MAML: treat the inner gradients as constants (no Hessian term)")
    parser.add_argument("--inner-loss", choices=("mean", "sum"), default=defaults.inner_loss,
                        help="the support loss of an inner step: 'mean' over the support examples (the paper's "
                             "Eq. 1), or 'sum' over the N classes as Finn et al.'s released code computes it "
                             "(its α = 0.4 is then α = 0.4 N on the mean); 'sum' labels the run "
                             "'[inner_loss sum]' (default: %(default)s)")
    args = parser.parse_args(argv)
    config = MAMLConfig.from_args(args)
    return train.train_and_test("fomaml" if config.first_order else "maml", args, config)


if __name__ == "__main__":
    run(main)
