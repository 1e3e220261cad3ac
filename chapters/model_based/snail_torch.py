"""SNAIL (Mishra, Rohaninejad, Chen & Abbeel, ICLR 2018) in PyTorch.

An N-way K-shot episode becomes a *sequence*: the T - 1 = N*K support pairs (embedding, one-hot
label), then the query with a zero label. SNAIL reads it with two kinds of causal layers and
predicts the label at the last position:

* a **dense block** (Algorithm 1) adds D channels: a causal convolution of kernel 2 and dilation
  R, ``y_t = W_0 x_{t-R} + W_1 x_t + b``, twice (filter f and gate g), combined as
  ``tanh(f) * sigmoid(g)``, concatenated to its input;
* a **TC block** stacks ceil(log2 T) dense blocks with dilations 2, 4, 8, ...: position t then
  sees every earlier position (Algorithm 2);
* an **attention block** (Algorithm 3) adds V channels: causal single-head attention,
  ``softmax(q_t k_s^T / sqrt(K))`` over the positions s <= t, reading their values.

Every query is scored as the last element of *its own* sequence (support, that query), so no query
sees another. The support part of those sequences is the same and, the layers being causal, does
not depend on the query: it is computed once, and each query is one more step after it, reading
the support positions' activations, as a language model decodes with cached keys and values.
``SNAIL.forward`` therefore takes the support rows (S, C) and the query rows (Q, C) through every
block side by side. Same names in ``snail_tf.py`` and ``snail_keras.py``; the sizes, and the
order in which ``read`` calls the blocks (``snail.through_blocks``), in ``snail.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from chapters.model_based import snail
from common.backbones.conv4_torch import Conv4


def shift(support: torch.Tensor, dilation: int) -> torch.Tensor:
    """The support rows with ``dilation`` = R zero rows before them, (S + R, C). Row t of the result
    is x_{t-R} (zeros for t < R), what position t's first tap reads; row S is what a query, one step
    after the support at position S, reads."""
    return F.pad(support, (0, 0, dilation, 0))


class CausalConv1d(nn.Module):
    """Kernel 2, dilation R: ``y_t = x_{t-R} @ kernel[0] + x_t @ kernel[1] + bias`` (x before the
    first position is 0). ``kernel`` is (2, in, out), Keras' ``Conv1D`` layout (the canonical one);
    initialised as PyTorch's ``nn.Conv1d``, uniform in +-1/sqrt(fan_in)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int):
        super().__init__()
        self.dilation = dilation
        bound = 1 / math.sqrt(2 * in_channels)
        self.kernel = nn.Parameter(torch.empty(2, in_channels, out_channels).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))

    def forward(self, support, query):
        padded = shift(support, self.dilation)
        past_support, past_query = padded[:len(support)], padded[len(support)]  # x_{t-R}
        kernel_past, kernel_now = self.kernel
        return (past_support @ kernel_past + support @ kernel_now + self.bias,
                past_query @ kernel_past + query @ kernel_now + self.bias)


class DenseBlock(nn.Module):
    """Algorithm 1: concat(x, tanh(conv_f(x)) * sigmoid(conv_g(x))), D new channels."""

    def __init__(self, in_channels: int, dilation: int, filters: int):
        super().__init__()
        self.filter = CausalConv1d(in_channels, filters, dilation)
        self.gate = CausalConv1d(in_channels, filters, dilation)

    def forward(self, support, query):
        (f_support, f_query), (g_support, g_query) = self.filter(support, query), self.gate(support, query)
        return (torch.cat([support, torch.tanh(f_support) * torch.sigmoid(g_support)], 1),
                torch.cat([query, torch.tanh(f_query) * torch.sigmoid(g_query)], 1))


class TCBlock(nn.Module):
    """Algorithm 2: dense blocks of dilations 2, 4, ..., 2^ceil(log2 T)."""

    def __init__(self, in_channels: int, sequence_length: int, filters: int):
        super().__init__()
        dilations = snail.dilations(sequence_length)
        self.blocks = nn.ModuleList(DenseBlock(in_channels + i * filters, dilation, filters)
                                    for i, dilation in enumerate(dilations))

    def forward(self, support, query):
        for block in self.blocks:
            support, query = block(support, query)
        return support, query


def check_episode(support_y, query_x, way: int, shot: int) -> None:
    """``snail.check_episode``: a ``ConfigError`` that says what to change, before any computation."""
    snail.check_episode(support_y.cpu().numpy(), len(query_x), way, shot)


def causal_mask(length: int) -> torch.Tensor:
    """(T, T) booleans, True where position t may read position s: s <= t."""
    return torch.ones(length, length, dtype=torch.bool).tril()


class AttentionBlock(nn.Module):
    """Algorithm 3: concat(x, softmax(q k^T / sqrt(K), causally masked) v), V new channels.

    ``forward`` also returns each query's attention weights over (support positions, itself),
    (Q, S + 1): what the chapter draws.
    """

    def __init__(self, in_channels: int, key_size: int, value_size: int):
        super().__init__()
        self.keys, self.queries = nn.Linear(in_channels, key_size), nn.Linear(in_channels, key_size)
        self.values = nn.Linear(in_channels, value_size)
        self.scale = 1 / math.sqrt(key_size)

    def forward(self, support, query):
        k_support, q_support, v_support = self.keys(support), self.queries(support), self.values(support)
        k_query, q_query, v_query = self.keys(query), self.queries(query), self.values(query)
        # The support sequence: position t reads positions s <= t.
        logits = (q_support @ k_support.T) * self.scale
        logits = logits.masked_fill(~causal_mask(len(support)).to(logits.device), float("-inf"))
        read_support = torch.softmax(logits, 1) @ v_support
        # Each query, one step after the support: it reads every support position and itself.
        logits = torch.cat([q_query @ k_support.T, (q_query * k_query).sum(1, keepdim=True)], 1) * self.scale
        attention = torch.softmax(logits, 1)
        read_query = attention[:, :-1] @ v_support + attention[:, -1:] * v_query
        return torch.cat([support, read_support], 1), torch.cat([query, read_query], 1), attention


def embed(encoder: Conv4, support_x, query_x, training: bool) -> torch.Tensor:
    """The episode's images, support then queries, through the Conv-4: (S + Q, 64).

    BatchNorm normalises with the episode's own statistics: in training those of the whole batch
    (support and queries, as the other chapters' learners do), at test time those of the support
    set alone, never the running averages. SNAIL learns on features centred on each episode's
    mean; the running mean is the mean over all episodes, and a test episode normalised with it
    sits off-centre by the difference, a shift that attention logits and the output layer do not
    cancel (distances to prototypes nearly do). The support set's statistics keep each query's
    prediction a function of the support set and that query alone (non-transductive).
    """
    images = torch.cat([support_x, query_x])
    return encoder(images) if training else encoder(images, reference_rows=len(support_x))


class SNAIL(nn.Module):
    """The Omniglot architecture of Mishra et al. (Appendix), for ``way``-way ``shot``-shot episodes:

        embedding -> Attention(64, 32) -> TC(T, 128) -> Attention(256, 128) -> TC(T, 128)
                  -> Attention(512, 256) -> linear map to N logits,   T = N*K + 1.

    ``forward(support_x, support_y, query_x)`` returns the logits of every query, (Q, way).
    """

    def __init__(self, in_channels: int = 1, way: int = 5, shot: int = 1, encoder: nn.Module | None = None,
                 embedding_size: int = 64):
        super().__init__()
        self.way, self.shot = way, shot
        self.encoder = encoder if encoder is not None else Conv4(in_channels)
        blocks, features = snail.build_blocks(way, shot, embedding_size, AttentionBlock, TCBlock)
        self.attention1, self.tc1, self.attention2, self.tc2, self.attention3 = blocks
        self.classifier = nn.Linear(features, way)

    def read(self, support_x, support_y, query_x):
        """(query logits (Q, way), the three attention blocks' query weights, each (Q, S + 1), and the
        support sequence's features after the last block, (S, C): what every step of it carries)."""
        check_episode(support_y, query_x, self.way, self.shot)
        embeddings = embed(self.encoder, support_x, query_x, self.training)
        n_support = len(support_x)
        support = torch.cat([embeddings[:n_support], F.one_hot(support_y, self.way).to(embeddings.dtype)], 1)
        query = F.pad(embeddings[n_support:], (0, self.way))  # the query's label is unknown: zeros
        support, query, attention = snail.through_blocks(self, support, query)
        return self.classifier(query), attention, support

    def forward(self, support_x, support_y, query_x) -> torch.Tensor:
        return self.read(support_x, support_y, query_x)[0]
