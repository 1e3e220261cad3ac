"""Prototypical Networks (Snell et al. 2017): train and evaluate. See ``train.py`` for the options.

Paper protocol on Omniglot: train 60-way with 5 queries per class (shot as at test time), Adam
1e-3 halved every 2,000 episodes, test on 600+ episodes with 15 queries per class:

    python -m chapters.metric.protonet --way 60 --shot 1 --query 5 --test-way 5 --test-shot 1 --test-query 15 --episodes 20000
"""

from chapters.metric.train import main
from common.cli import run

if __name__ == "__main__":
    run(main, "protonet")
