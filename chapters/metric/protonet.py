"""Prototypical Networks (Snell et al. 2017): train and evaluate. ProtoNet's settings are the
chapter's schedule alone (``train.MetricConfig``); ``train.py`` has the options every script of the
chapter shares.

Paper protocol on Omniglot: train 60-way with 5 queries per class (shot as at test time), Adam
1e-3 halved every 2,000 episodes, test on 600+ episodes with 15 queries per class:

    python -m chapters.metric.protonet --way 60 --shot 1 --query 5 --test-way 5 --test-shot 1 --test-query 15 --episodes 20000

Paper protocol on mini-ImageNet (Ravi & Larochelle split, Conv-4 on 84x84 images, a 1,600-d
embedding): train on the 64 training classes, 30-way 1-shot for the 1-shot model and 20-way
5-shot for the 5-shot model, 15 queries per class (the 16 validation classes only monitor
training); test 5-way with 15 queries per class. Published: 49.42 / 68.20 % (Table 2). It needs
the full images.zip (see ``common/data/mini_imagenet.py``); without it, the train split stops
with a message that says where to put it:

    python -m chapters.metric.protonet --dataset mini-imagenet --way 30 --shot 1 --query 15 --test-way 5 --test-shot 1 --test-query 15 --episodes 20000
    python -m chapters.metric.protonet --dataset mini-imagenet --way 20 --shot 5 --query 15 --test-way 5 --test-shot 5 --test-query 15 --episodes 20000

Snell et al. do not give a number of episodes; with the rate halved every 2,000 episodes it is
below 1e-6 after 20,000, so later episodes change little. Add ``--framework tf`` or ``keras`` for
the other frameworks; every framework uses a GPU when it sees one (``--device``, see ``common/devices.py``).

With only the offline test split of mini-ImageNet, ``--pipeline-check`` meta-trains on 12 of its
20 classes and tests on the other 8 (a check of the pipeline, not comparable to the paper):

    python -m chapters.metric.protonet --dataset mini-imagenet --pipeline-check --way 5 --shot 5 --query 15 --episodes 1000 --eval-every 100 --val-episodes 50
"""

from chapters.metric import train
from common.cli import run

ProtoNetConfig = train.MetricConfig  # Adam's rate and its halving: ProtoNet has no settings of its own


def main(argv=None) -> dict:
    args = train.parser("protonet", ProtoNetConfig()).parse_args(argv)
    return train.train_and_test("protonet", args, ProtoNetConfig.from_args(args))


if __name__ == "__main__":
    run(main)
