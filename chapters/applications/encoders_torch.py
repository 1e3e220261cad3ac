"""The text encoders of ``encoders.py`` in PyTorch: a Proto-CNN and a bag of embeddings.

Each encoder is a *function of a parameter dict* (``function(params, tokens, prefix)``) and a
module that holds its parameters under the canonical names. Prototypical Networks call the module
(``encoder(tokens)``, its own parameters); MAML calls the function on adapted parameters θ' (see
``chapters/optimization/networks_torch.py`` for why). ``TextClassifier`` is that network for MAML:
an encoder and a linear head to N logits. Same names in ``encoders_tf.py`` and ``encoders_keras.py``.

Token arrays are ``(N, length, channels)`` integers: channel 0 the word ids, channels 1 and 2 (for
relation classification) the positions relative to the head and tail entities.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from chapters.applications.encoders import (EMBEDDING_STD, FILTERS, POSITION_DIM, WINDOW, WORD_DIM, check_encoder,
                                           embedding_size, token_size)
from chapters.optimization.networks_torch import Conv4Classifier, Dense
from common.data.text import PAD


def lookup(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Rows ``ids`` of ``table`` (any shape of ids). PyTorch's gradient of a lookup is already a
    dense tensor, as the TensorFlow and Keras ``lookup`` make theirs."""
    return F.embedding(ids.long(), table)


class Embedding(nn.Module):
    """A table of ``count`` vectors of ``size``, N(0, EMBEDDING_STD²) at the start."""

    def __init__(self, count: int, size: int):
        super().__init__()
        self.embeddings = nn.Parameter(torch.randn(count, size) * EMBEDDING_STD)


class Conv1D(nn.Module):
    """A 1-D convolution with its kernel stored (width, in, out), the canonical layout;
    initialised as ``nn.Conv1d``: uniform in ±1/sqrt(width · in)."""

    def __init__(self, width: int, in_channels: int, out_channels: int):
        super().__init__()
        bound = 1 / math.sqrt(width * in_channels)
        self.kernel = nn.Parameter(torch.empty(width, in_channels, out_channels).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))


def conv1d(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(N, L, in) -> (N, L, out): "same" padding of (width - 1) / 2 tokens on each side."""
    y = F.conv1d(x.transpose(1, 2), kernel.permute(2, 1, 0), bias, padding=kernel.shape[0] // 2)
    return y.transpose(1, 2)


class TextCNN(nn.Module):
    """f(x) = max over positions of ReLU(conv(word ⊕ head-position ⊕ tail-position embeddings))."""

    def __init__(self, vocabulary_size: int, positions: int = 0, word_dim: int = WORD_DIM,
                 position_dim: int = POSITION_DIM, filters: int = FILTERS, window: int = WINDOW):
        super().__init__()
        self.positions, self.size = positions, filters
        self.words = Embedding(vocabulary_size, word_dim)
        if positions:
            self.head_positions = Embedding(positions, position_dim)
            self.tail_positions = Embedding(positions, position_dim)
        self.conv = Conv1D(window, token_size(positions, word_dim, position_dim), filters)

    def params(self) -> dict[str, torch.Tensor]:
        """θ under its canonical names: ``words.embeddings``, ..., ``conv.kernel``, ``conv.bias``."""
        return dict(self.named_parameters())

    def function(self, params: dict, tokens: torch.Tensor, prefix: str = "") -> torch.Tensor:
        """f_θ(tokens), (N, filters), with θ read from ``params[prefix + canonical name]``."""
        x = lookup(params[prefix + "words.embeddings"], tokens[..., 0])
        if self.positions:
            x = torch.cat([x, lookup(params[prefix + "head_positions.embeddings"], tokens[..., 1]),
                           lookup(params[prefix + "tail_positions.embeddings"], tokens[..., 2])], dim=-1)
        h = torch.relu(conv1d(x, params[prefix + "conv.kernel"], params[prefix + "conv.bias"]))
        return h.amax(dim=1)  # max-pool over the sentence: the strongest match of each filter

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.function(self.params(), tokens)


class BagOfEmbeddings(nn.Module):
    """f(x) = the mean word embedding of x's tokens, padding left out (positions ignored)."""

    def __init__(self, vocabulary_size: int, positions: int = 0, word_dim: int = WORD_DIM):
        super().__init__()
        self.size = word_dim
        self.words = Embedding(vocabulary_size, word_dim)

    def params(self) -> dict[str, torch.Tensor]:
        return dict(self.named_parameters())

    def function(self, params: dict, tokens: torch.Tensor, prefix: str = "") -> torch.Tensor:
        words = tokens[..., 0]
        x = lookup(params[prefix + "words.embeddings"], words)
        mask = (words != PAD).to(x.dtype)[..., None]
        return (x * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.function(self.params(), tokens)


def build_encoder(encoder: str, vocabulary_size: int, positions: int = 0) -> nn.Module:
    """``"cnn"`` or ``"bag"`` (``encoders.ENCODERS``) for a vocabulary and a number of position ids."""
    check_encoder(encoder)
    return (TextCNN if encoder == "cnn" else BagOfEmbeddings)(vocabulary_size, positions)


class TextClassifier(nn.Module):
    """MAML's network on text: an encoder and a linear head to ``way`` logits, as a function of θ
    (``params()``, ``forward(params, x)``, ``loss``, ``metric``: the interface ``maml_torch`` adapts)."""

    metric_name = "accuracy"

    def __init__(self, way: int, encoder: str, vocabulary_size: int, positions: int = 0):
        super().__init__()
        self.encoder = build_encoder(encoder, vocabulary_size, positions)
        self.head = Dense(embedding_size(encoder), way)

    def params(self) -> dict[str, torch.Tensor]:
        return dict(self.named_parameters())

    def forward(self, params: dict, x: torch.Tensor, reference=None) -> torch.Tensor:
        """Logits (N, way) of token ids x (N, length, channels); or of T tasks at once, x (T, N,
        length, channels) with every parameter carrying a leading task axis (each task's own θ')
        -> (T, N, way), one task after the other. ``reference`` is ignored: no BatchNorm, so nothing
        flows between examples."""
        if x.dim() == 4:
            return torch.stack([self.forward({name: p[t] for name, p in params.items()}, x[t])
                                for t in range(len(x))])
        return self.encoder.function(params, x, "encoder.") @ params["head.kernel"] + params["head.bias"]

    # The image classifier's cross-entropy and accuracy: a classifier's loss does not depend on its input.
    loss, metric = Conv4Classifier.loss, Conv4Classifier.metric
