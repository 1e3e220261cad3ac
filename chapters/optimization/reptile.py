"""Reptile (Nichol, Achiam & Schulman 2018) on few-shot classification. See ``train.py`` for the options.

Reptile adapts to each task of a meta-batch with k plain gradient steps, then moves the
initialisation toward the adapted weights: θ ← θ + ε (mean θ' − θ) (Algorithm 2), ε annealed
linearly to 0 over the run (``--no-anneal`` keeps it constant). Nichol et al.'s Omniglot protocol
(Appendix A) trains on 10 shots per class whatever the test shot, 5 inner steps on mini-batches of
10 examples (one pass through the 50 support examples of a 5-way task) with Adam (rate 0.001,
β1 = 0, its state kept across tasks), meta-batches of 5 tasks, ε = 1, 100,000 meta-iterations,
and adapts with 50 inner steps at test; 20-way, 10 inner steps on mini-batches of 20. Their released
code's network is the stride-2 Conv-4 of Finn et al.'s released code (``--backbone strided``):

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

from chapters.optimization.minibatches import INNER_OPTIMIZERS
from chapters.optimization.train import main
from common.cli import run
from common.options import COUNT


def add_arguments(parser):
    parser.add_argument("--no-anneal", action="store_true", help="keep ε constant instead of annealing it to 0")
    parser.add_argument("--inner-batch", type=COUNT, default=None,
                        help="support examples per inner step, stepping through the (shuffled) support set "
                             "(default: all of them at every step)")
    parser.add_argument("--inner-optimizer", choices=INNER_OPTIMIZERS, default="sgd",
                        help="the inner steps: plain gradient descent, or Nichol et al.'s Adam (β1 = 0, its "
                             "state kept across tasks); --inner-lr is its rate")


def settings(args) -> dict:
    return {"inner_lr": args.inner_lr, "anneal_steps": None if args.no_anneal else args.episodes,
            "inner_batch": args.inner_batch, "inner_optimizer": args.inner_optimizer}


# query=1: Reptile's update uses no query set (Nichol et al. sample only the 10 shots); one query
# image per class only scores the adapted weights for the training curve, at little cost.
# test_shot=1: trained on 10 shots, the model is tested 1-shot unless --test-shot says otherwise.
DEFAULTS = dict(way=5, shot=10, query=1, test_shot=1, episodes=100_000, meta_batch=5, inner_lr=0.1,
                inner_steps=5, test_inner_steps=50, meta_lr=1.0)

if __name__ == "__main__":
    run(main, "reptile", None, add_arguments=add_arguments, settings=settings, **DEFAULTS)
