"""Prototypical Networks (Snell, Swersky & Zemel, NeurIPS 2017) in PyTorch.

Embed every image with a network f (Conv-4). Each class k of the support set S_k gets a
*prototype*, the mean of its embedded examples (Eq. 1):

    c_k = 1/|S_k| * sum_{(x_i, y_i) in S_k} f(x_i)

and a query x is classified by a softmax over negative squared Euclidean distances (Eq. 2):

    p(y = k | x) = exp(-d(f(x), c_k)) / sum_k' exp(-d(f(x), c_k')),   d(z, z') = ||z - z'||^2

Training minimises the query cross-entropy, episode after episode. Same names in
``protonet_tf.py`` and ``protonet_keras.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from common.backbones.conv4_torch import Conv4


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, way: int) -> torch.Tensor:
    """Eq. (1): the mean embedding of each class, (way, D)."""
    sums = embeddings.new_zeros(way, embeddings.shape[1]).index_add_(0, labels, embeddings)
    counts = torch.bincount(labels, minlength=way).to(embeddings.dtype)
    return sums / counts[:, None]


def squared_euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """d(a_i, b_j) = ||a_i - b_j||^2 for every pair: (n, D), (m, D) -> (n, m)."""
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(dim=-1)


class ProtoNet(nn.Module):
    def __init__(self, in_channels: int = 1, encoder: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder if encoder is not None else Conv4(in_channels)

    def forward(self, support_x, support_y, query_x) -> torch.Tensor:
        """Query logits, (n_query, way): Eq. (2) before the softmax."""
        way = int(support_y.max()) + 1
        # Support and query go through the encoder as one batch, as in the original code: in
        # training mode BatchNorm normalises with the statistics of the whole episode.
        embeddings = self.encoder(torch.cat([support_x, query_x]))
        support, query = embeddings[:len(support_x)], embeddings[len(support_x):]
        return -squared_euclidean(query, prototypes(support, support_y, way))
