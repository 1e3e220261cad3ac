"""Siamese networks (Koch et al. 2015): train and evaluate. The Siamese network's settings are
:class:`SiameseConfig`; ``train.py`` has the options every script of the chapter shares.

Protocol on Omniglot. Koch et al. train a large convnet on 105x105 images with a fixed set of
same/different pairs; this book trains the chapter's Conv-4 (28x28) on the episodes ProtoNet sees,
so that the two differ only in how they score a query against the support set and in the loss:
60-way episodes with 5 queries per class (shot as at test time), every query x support pair a
training pair (both kinds weighted equally), Adam 1e-3 halved every 2,000 episodes; test on 600+
episodes with 15 queries per class, a query taking the class of its most similar support example.
The published numbers (96.7 / 98.4 % 5-way, 88.0 / 96.5 % 20-way, 1 / 5-shot) are those Vinyals et
al. (2016, Table 1) report for a convolutional siamese net. The reproduction (``reproduce.py``)
trains as long as ProtoNet's: 8,000 episodes, by which time the rate has been halved four times:

    python -m chapters.metric.siamese --way 60 --shot 1 --query 5 --test-way 5 --test-shot 1 --test-query 15 --episodes 8000

The weighted-L1 head has one weight per embedding feature: its size follows the images (64 on
Omniglot, 1600 on mini-ImageNet, 256 on CIFAR-FS).
"""

from dataclasses import dataclass

from chapters.metric import train
from common.backbones import conv4_embedding_size
from common.cli import run


@dataclass
class SiameseConfig(train.MetricConfig):
    """The Siamese network's settings: the chapter's schedule (``train.MetricConfig``: ``lr``,
    ``decay_every``); the results record them with the model's size, which follows the images."""

    def model_options(self, image_shape) -> dict:
        """The keyword arguments of ``SiameseNet``: its weighted-L1 head has one weight per feature."""
        return {"embedding_size": conv4_embedding_size(image_shape)}


def main(argv=None) -> dict:
    args = train.parser("siamese", SiameseConfig()).parse_args(argv)
    return train.train_and_test("siamese", args, SiameseConfig.from_args(args))


if __name__ == "__main__":
    run(main)
