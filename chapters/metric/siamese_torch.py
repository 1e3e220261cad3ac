"""Siamese networks (Koch, Zemel & Salakhutdinov, ICML Deep Learning Workshop 2015) in PyTorch.

Two copies of one network f (the *twins*, sharing every weight) embed two images; the pair is
scored by a learned, weighted L1 distance between the embeddings, squashed by a sigmoid (Sec. 3.1):

    p(x1, x2) = sigma( sum_j alpha_j |f(x1)_j - f(x2)_j| + b )

The alpha_j are a Dense(D -> 1) layer on |f(x1) - f(x2)| (we keep its bias b, which the paper's
equation leaves out): the network learns how much each embedding dimension matters for "same
class or not". Training is binary cross-entropy
on same/different pairs (Sec. 3.2): the target is 1 when x1 and x2 belong to the same class.

The network is never trained to classify. One-shot classification reuses the verification score
(Sec. 4, one-shot learning): a query x gets the class of the support example it is most similar to,

    y(x) = argmax_c p(x, x_c).

With K shots we take, for each class, the best score over its K support examples (Koch et al.
only define the 1-shot rule; max is its nearest-neighbour generalisation) and call those the
query's *class logits*; their argmax is the prediction.

Differences from the paper, which this chapter shares with its other methods so that the methods
differ in one thing only: f is the chapter's Conv-4 on 28x28 images (Koch et al. use a larger
convnet, four conv layers of 64-256 filters and a 4096-unit sigmoid layer, on 105x105 images),
trained with Adam on the pairs inside episodes rather than with SGD, momentum, layer-wise learning
rates, L2 regularisation and affine distortions on a fixed set of pairs. The published numbers we
compare against are those Vinyals et al. (2016, Table 1) report for a convolutional siamese net
on their Omniglot split: 96.7 / 98.4 % (5-way 1/5-shot), 88.0 / 96.5 % (20-way).

Same names in ``siamese_tf.py`` and ``siamese_keras.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from common.backbones.conv4_torch import Conv4


def pair_logits(query_embeddings: torch.Tensor, support_embeddings: torch.Tensor,
                alpha: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Sec. 3.1 before the sigmoid, for every (query, support) pair: (n, D), (m, D) -> (n, m).

    ``alpha`` (D,) and ``bias`` () are the weight and bias of the Dense(D -> 1) head.
    """
    distance = (query_embeddings[:, None, :] - support_embeddings[None, :, :]).abs()  # (n, m, D)
    return distance @ alpha + bias


def class_logits(pair_logits: torch.Tensor, support_y: torch.Tensor, way: int) -> torch.Tensor:
    """The one-shot rule generalised to K shots: each class's best pair score, (n_query, way).

    The sigmoid is monotonic, so the most similar support example is the one with the largest
    pre-sigmoid score.
    """
    members = support_y[:, None] == torch.arange(way, device=support_y.device)  # (n_support, way)
    scores = pair_logits[:, :, None].masked_fill(~members[None], float("-inf"))  # other classes: -inf
    return scores.amax(dim=1)


def pair_loss(pair_logits: torch.Tensor, support_y: torch.Tensor, query_y: torch.Tensor) -> torch.Tensor:
    """Sec. 3.2: binary cross-entropy over every (query, support) pair, both kinds weighted equally.

    In an N-way episode a query shares its class with 1/N of the support set: of 60-way training
    pairs, 59 in 60 are "different". Unweighted, a network that answers "different" to everything
    is already 98% right and the positive pairs, the ones that teach it what "same" looks like,
    carry 1/60 of the gradient. Koch et al. train on balanced same/different pairs; we keep all
    the episode's pairs and restore that balance by averaging each kind separately:

        L = 1/2 * mean_{same pairs} -log p  +  1/2 * mean_{different pairs} -log(1 - p)
    """
    same = (query_y[:, None] == support_y[None, :]).to(pair_logits.dtype)  # the targets, (n_query, n_support)
    bce = F.binary_cross_entropy_with_logits(pair_logits, same, reduction="none")  # stable: no sigmoid, then log
    return 0.5 * ((bce * same).sum() / same.sum() + (bce * (1 - same)).sum() / (1 - same).sum())


class SiameseNet(nn.Module):
    """``embedding_size`` is the encoder's output size: 64 for Conv-4 on 28x28 Omniglot
    (a 1x1x64 map), 64 * (size // 16)^2 in general (1600 for 84x84 mini-ImageNet)."""

    def __init__(self, in_channels: int = 1, encoder: nn.Module | None = None, embedding_size: int = 64):
        super().__init__()
        self.encoder = encoder if encoder is not None else Conv4(in_channels)  # the twins: one network
        self.head = nn.Linear(embedding_size, 1)  # the alpha_j of Sec. 3.1, and a bias

    def episode_pair_logits(self, support_x, query_x) -> torch.Tensor:
        """Every (query, support) pair's score, (n_query, n_support)."""
        # One encoder pass over the whole episode, as ProtoNet: in training mode BatchNorm uses the
        # statistics of support + query. Both twins are this one pass.
        embeddings = self.encoder(torch.cat([support_x, query_x]))
        support, query = embeddings[:len(support_x)], embeddings[len(support_x):]
        return pair_logits(query, support, self.head.weight[0], self.head.bias[0])

    def forward(self, support_x, support_y, query_x) -> torch.Tensor:
        """Query class logits, (n_query, way): for prediction and accuracy."""
        way = int(support_y.max()) + 1
        return class_logits(self.episode_pair_logits(support_x, query_x), support_y, way)

    def episode_loss(self, support_x, support_y, query_x, query_y):
        """(pair loss, class logits): the learner trains on the first, measures accuracy with the second."""
        way = int(support_y.max()) + 1
        scores = self.episode_pair_logits(support_x, query_x)
        return pair_loss(scores, support_y, query_y), class_logits(scores, support_y, way)
