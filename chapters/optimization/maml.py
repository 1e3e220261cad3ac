"""MAML and first-order MAML (Finn, Abbeel & Levine 2017) on few-shot classification. See
``train.py`` for the options.

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

import numpy as np

from chapters.optimization.train import main
from common.cli import run
from common.errors import ConfigError


def check_inner_steps(inner_steps) -> None:
    """MAML needs at least one inner step: with none, θ' = θ and it is plain multi-task training.

    Framework-neutral, so written once: ``maml_torch``, ``maml_tf`` and ``maml_keras`` call it
    before building anything."""
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, (int, np.integer)) or inner_steps < 1:
        raise ConfigError(f"MAML needs inner_steps >= 1 (gradient steps on the support set per task), "
                          f"got {inner_steps!r}; with 0 steps the adapted parameters are θ itself and "
                          f"nothing is meta-learned")


def add_arguments(parser):
    parser.add_argument("--first-order", action="store_true",
                        help="first-order MAML: treat the inner gradients as constants (no Hessian term)")
    parser.add_argument("--inner-loss", choices=("mean", "sum"), default="mean",
                        help="the support loss of an inner step: 'mean' over the support examples (the paper's "
                             "Eq. 1), or 'sum' over the N classes as Finn et al.'s released code computes it "
                             "(its α = 0.4 is then α = 0.4 N on the mean); 'sum' labels the run "
                             "'[inner_loss sum]' (default: %(default)s)")


def settings(args) -> dict:
    # The paper's mean loss is not recorded, so that runs from before the option existed resume.
    summed = {"inner_loss": "sum"} if args.inner_loss == "sum" else {}
    return {"inner_lr": args.inner_lr, "first_order": args.first_order, **summed}


DEFAULTS = dict(way=5, shot=1, episodes=60_000, meta_batch=32, inner_lr=0.4, inner_steps=1,
                test_inner_steps=3, meta_lr=1e-3)

if __name__ == "__main__":
    run(main, "maml", None, add_arguments=add_arguments, settings=settings, **DEFAULTS)
