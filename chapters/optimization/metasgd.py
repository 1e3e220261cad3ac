"""Meta-SGD (Li, Zhou, Chen & Li 2017) on few-shot classification. See ``train.py`` for the options.

Meta-SGD learns, beside MAML's initialisation θ, a learning rate for every parameter (a vector α
of θ's shape, Eq. 2-3), and adapts with one step θ' = θ − α ∘ ∇L_S(θ) in training and at test.
Li et al. evaluate on Omniglot with MAML's protocol and network (Sec. 4.2): 5-way and 20-way,
1 and 5 shots, reporting 99.53 / 99.93 / 95.93 / 98.97 (Table 1); α starts uniformly in
[0.005, 0.1] (Sec. 4.1). Their batch-norm protocol is not stated; ``--transductive`` follows
MAML's code.

    python -m chapters.optimization.metasgd --way 5 --shot 1 --episodes 60000
    python -m chapters.optimization.metasgd --way 20 --shot 1 --meta-batch 16 --episodes 60000

Add ``--framework tf`` or ``keras`` for the other frameworks.
"""

from chapters.optimization.train import main
from common.cli import run
from common.errors import ConfigError
from common.options import POSITIVE


def add_arguments(parser):
    parser.add_argument("--inner-lr-low", type=POSITIVE, default=0.005, help="α starts uniform in [low, high]")
    parser.add_argument("--inner-lr-high", type=POSITIVE, default=0.1, help="see --inner-lr-low")
    parser.add_argument("--first-order", action="store_true", help="drop the Hessian term (α still learns)")


def settings(args) -> dict:
    if not 0 < args.inner_lr_low <= args.inner_lr_high:
        raise ConfigError(f"Meta-SGD's learning rates start uniform in [--inner-lr-low, --inner-lr-high]; "
                          f"need 0 < low <= high, got [{args.inner_lr_low}, {args.inner_lr_high}]")
    return {"inner_lr_range": (args.inner_lr_low, args.inner_lr_high), "first_order": args.first_order,
            "seed": args.seed}


DEFAULTS = dict(way=5, shot=1, episodes=60_000, meta_batch=32, inner_lr=None, inner_steps=1,
                test_inner_steps=1, meta_lr=1e-3)

if __name__ == "__main__":
    run(main, "metasgd", None, add_arguments=add_arguments, settings=settings, **DEFAULTS)
