"""Meta-SGD (Li, Zhou, Chen & Li 2017) on few-shot classification. Meta-SGD's settings are
:class:`MetaSGDConfig`; ``train.py`` has the options every script of the chapter shares.

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

from dataclasses import dataclass

import numpy as np

from chapters.optimization import train
from common.cli import Config, run
from common.errors import ConfigError
from common.options import POSITIVE

INNER_LR_PREFIX = "inner_lr."  # α in a checkpoint: inner_lr.<θ's canonical name>, beside model.<name>


def initial_inner_lrs(params: dict, inner_lr_range: tuple[float, float], seed: int) -> dict[str, np.ndarray]:
    """α's initial values, an array of each parameter's shape under its name (float64; each framework
    casts): uniform in ``inner_lr_range`` (Li et al. Sec. 4.1), drawn with NumPy in the order of
    ``params`` (the network's ``params()``, of any framework: only their shapes are read), so that
    the three frameworks start from the same α for one seed."""
    rng = np.random.default_rng(seed)
    low, high = inner_lr_range
    return {name: rng.uniform(low, high, size=tuple(p.shape)) for name, p in params.items()}


@dataclass
class MetaSGDConfig(Config):
    """Meta-SGD's settings, in one place: their defaults are the command line's (Li et al.'s Omniglot
    protocol, MAML's), ``train.learner_settings`` hands them to the ``MetaSGD`` class of each
    framework, and :meth:`options` is what the results and the checkpoint record."""

    meta_batch: int = 32                   # tasks per meta-iteration
    backbone: str = "maxpool"              # Conv-4 blocks (see MAMLConfig)
    inner_steps: int = 1                   # adaptation steps in meta-training ...
    test_inner_steps: int = 1              # ... and on a test task's support set
    meta_lr: float = 1e-3                  # β, Adam's learning rate
    transductive: bool = False             # BatchNorm normalises the query set as one batch
    inner_lr_range: tuple = (0.005, 0.1)   # α starts uniform in [low, high] (Sec. 4.1)
    first_order: bool = False              # drop the Hessian term (α still learns)
    seed: int = 0                          # draws α's initial values (--seed)

    @classmethod
    def from_args(cls, args) -> "MetaSGDConfig":
        if not 0 < args.inner_lr_low <= args.inner_lr_high:
            raise ConfigError(f"Meta-SGD's learning rates start uniform in [--inner-lr-low, --inner-lr-high]; "
                              f"need 0 < low <= high, got [{args.inner_lr_low}, {args.inner_lr_high}]")
        return super().from_args(args, inner_lr_range=(args.inner_lr_low, args.inner_lr_high))


def main(argv=None) -> dict:
    defaults = MetaSGDConfig()
    parser = train.parser("metasgd", defaults, way=5, shot=1, episodes=60_000)
    low, high = defaults.inner_lr_range
    parser.add_argument("--inner-lr-low", type=POSITIVE, default=low, help="α starts uniform in [low, high]")
    parser.add_argument("--inner-lr-high", type=POSITIVE, default=high, help="see --inner-lr-low")
    parser.add_argument("--first-order", action="store_true", help="drop the Hessian term (α still learns)")
    args = parser.parse_args(argv)
    return train.train_and_test("metasgd", args, MetaSGDConfig.from_args(args))


if __name__ == "__main__":
    run(main)
