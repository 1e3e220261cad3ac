"""Matching Networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, NeurIPS 2016) in PyTorch.

A query x̂ is labelled by *attending* over the support set S = {(x_i, y_i)}: its prediction is
a weighted vote of the support labels (Eq. 1),

    ŷ = sum_i a(x̂, x_i) y_i                                  (y_i one-hot),

and the weights are a softmax, over the support set, of cosine similarities c between the
embedded query f(x̂) and the embedded support examples g(x_i) (Eq. 2):

    a(x̂, x_i) = exp(c(f(x̂), g(x_i))) / sum_j exp(c(f(x̂), g(x_j))).

Three labelled deviations from Eq. 2 are options (see ``MatchingNet``): the cosines times a scale
s, the negative squared Euclidean distance in place of the cosine, and the cosines times the
length of the query's embedding.

Nothing is fitted to the support set: the network is a mapping from (S, x̂) to a label
distribution, trained episode after episode on the query log-likelihood, log ŷ[true class].
With f = g = Conv-4 this is the paper's Omniglot model.

**Full Context Embeddings** (FCE, Section 2.1.2 and Appendix A, ``fce=True``) make both
embeddings depend on the whole support set. With f' = g' = Conv-4:

- g(x_i, S) = h_fwd_i + h_bwd_i + g'(x_i): a bidirectional LSTM reads the embedded support set
  as a sequence, plus a skip connection;
- f(x̂, S) = attLSTM(f'(x̂), g(S), K): an LSTM that runs K steps on f'(x̂), each time reading
  the support set with content-based attention; we start from ĥ_0 = 0, c_0 = 0:

      h_{k-1} = ĥ_{k-1} + f'(x̂)
      r_{k-1} = sum_i softmax_i(h_{k-1} . g(x_i)) g(x_i)       (a dot product, not the cosine)
      ĥ_k, c_k = LSTM(f'(x̂), [h_{k-1}, r_{k-1}], c_{k-1})
      f(x̂, S) = h_K = ĥ_K + f'(x̂).

Same names in ``matching_tf.py`` and ``matching_keras.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from chapters.metric import matching
from chapters.metric.matching import DISTANCES, EPSILON  # noqa: F401 (DISTANCES: what MatchingNet accepts)
from chapters.metric.protonet_torch import squared_euclidean
from common.backbones.conv4_torch import Conv4


def unit_length(x: torch.Tensor) -> torch.Tensor:
    """Each row divided by its length, x_i / |x_i|, (n, D)."""
    return x / torch.sqrt((x * x).sum(dim=-1, keepdim=True) + EPSILON)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """c(a_i, b_j) = a_i . b_j / (|a_i| |b_j|) for every pair: (n, D), (m, D) -> (n, m)."""
    return unit_length(a) @ unit_length(b).T


# Each of matching.DISTANCES, computed here; matching.similarity chooses and scales.
MEASURES = {
    "cosine": cosine_similarity,
    "squared_euclidean": lambda query, support: -squared_euclidean(query, support),
    # |f(x̂)| c(f(x̂), g(x_i)) = f(x̂) . g(x_i) / |g(x_i)|: only the support is normalised.
    "cosine_times_query_norm": lambda query, support: query @ unit_length(support).T,
}


def similarity(query_embeddings: torch.Tensor, support_embeddings: torch.Tensor, scale: float = 1.0,
               distance: str = "cosine") -> torch.Tensor:
    """What Eq. (2) puts inside its softmax, (n_query, n_support): see ``matching.similarity``."""
    return matching.similarity(MEASURES, query_embeddings, support_embeddings, scale, distance)


def attention(query_embeddings: torch.Tensor, support_embeddings: torch.Tensor, scale: float = 1.0,
              distance: str = "cosine") -> torch.Tensor:
    """Eq. (2): a(x̂, x_i), a softmax over the support set of ``similarity``, (n_query, n_support)."""
    return torch.softmax(similarity(query_embeddings, support_embeddings, scale, distance), dim=1)


def label_distribution(weights: torch.Tensor, support_y: torch.Tensor, way: int) -> torch.Tensor:
    """Eq. (1): ŷ = sum_i a(x̂, x_i) y_i with one-hot y_i, (n_query, way); each row sums to 1."""
    return weights @ F.one_hot(support_y, way).to(weights.dtype)


def log_label_distribution(similarities: torch.Tensor, support_y: torch.Tensor, way: int) -> torch.Tensor:
    """log ŷ of Eqs. (1)-(2) in one step, (n_query, way), from the scores inside the softmax:

        log ŷ_c = log sum_{i: y_i = c} a(x̂, x_i) = logsumexp_{i: y_i = c} s_i - logsumexp_i s_i.

    The same numbers as log(label_distribution(attention(...))), but computed without ever
    forming an attention weight: with squared distances a wrong class can get e^-200 of it,
    which float32 rounds to 0, and log 0 would give the loss no gradient at all."""
    # The mask of the Siamese class_logits, reduced by log-sum-exp instead of max.
    members = support_y[:, None] == torch.arange(way, device=support_y.device)  # (n_support, way)
    per_class = similarities[:, :, None].masked_fill(~members[None], float("-inf"))  # other classes: -inf
    return per_class.logsumexp(dim=1) - similarities.logsumexp(dim=1, keepdim=True)


def single_bias(lstm: nn.Module) -> None:
    """Keep one bias per gate, as TensorFlow and Keras do: zero and freeze PyTorch's second one.

    PyTorch's LSTMs add two biases, ``bias_ih + bias_hh``; only their sum matters, but Adam
    would move each by a full step, the sum by two, and the three frameworks would part after
    the first update. With ``bias_hh`` fixed at 0 the model is the same function with the same
    trainable parameters as the TensorFlow and Keras ones (``common.weights`` exports the sum).
    """
    for name, parameter in lstm.named_parameters():
        if name.startswith("bias_hh"):
            with torch.no_grad():
                parameter.zero_()
            parameter.requires_grad_(False)


class MatchingNet(nn.Module):
    def __init__(self, in_channels: int = 1, encoder: nn.Module | None = None, fce: bool = False,
                 fce_steps: int = 5, embedding_size: int = 64,
                 cosine_scale: float = 1.0, distance: str = "cosine"):
        """``embedding_size`` is the encoder's output size D, which the FCE LSTMs need to know
        (Conv-4: 64 on 28x28 Omniglot, 1600 on 84x84 mini-ImageNet). ``fce_steps`` is K; we did
        not find the paper's value, 5 is our choice.

        ``cosine_scale`` s multiplies the cosines inside Eq. (2), softmax_i(s c(f(x̂), g(x_i))).
        Eq. (2) as printed is s = 1, and with this embedding it cannot be confident: Conv-4 ends
        in ReLU and max-pooling, so every embedding is non-negative and every cosine lies in
        [0, 1]. In a 5-way 1-shot episode the right class then gets at most e / (e + 4) = 0.40 of
        the attention, the loss cannot fall below -log 0.40 = 0.91, and training stalls (our
        run: 86.7 % against the paper's 98.1 %). A larger s (a lower softmax temperature) lifts
        that ceiling; s = 10 is a labelled deviation from the equation (our run: 96.2 %). The
        paper does not say whether its code had such a factor.

        ``distance="squared_euclidean"`` replaces the cosine by -||f(x̂) - g(x_i)||^2, another
        labelled deviation: the Matching Network of Snell et al.'s ablation (Sec. 2.5), which
        they found better than the cosine. A distance is unbounded, so the attention can be as
        sharp as training makes it. With one shot per class this model *is* a Prototypical
        Network (each prototype is the single support embedding), trained on Matching Networks'
        episodes; with K shots it still differs (K kernels per class, not one at their mean).

        ``distance="cosine_times_query_norm"`` divides the dot product by the support
        embedding's length only, f(x̂) . g(x_i) / |g(x_i)| = |f(x̂)| c(f(x̂), g(x_i)): the cosine
        of Eq. 2 times the query's own length. That is what the widely used TensorFlow
        implementations of the paper compute under the name "cosine similarity"
        (zergylord/oneshot, then AntreasAntoniou/MatchingNetworks and its PyTorch ports). Within
        one query's softmax |f(x̂)| is a constant, so it is the scale s again, but one that the
        encoder learns, per query, instead of one that we choose; a labelled deviation too
        (our run: 97.5 %, the closest of the three to the paper's 98.1)."""
        super().__init__()
        self.encoder = encoder if encoder is not None else Conv4(in_channels)
        self.fce, self.fce_steps, self.cosine_scale, self.distance = fce, fce_steps, cosine_scale, distance
        if fce:
            # The LSTMs' hidden size is D: the skip connections add their outputs to embeddings.
            self.support_lstm = nn.LSTM(embedding_size, embedding_size, batch_first=True, bidirectional=True)
            # The paper's attLSTM has input f'(x̂) and previous state [h_{k-1}, r_{k-1}] (2D wide)
            # but output ĥ_k (D wide), which no library cell offers. A cell with *input*
            # [f'(x̂), r_{k-1}] and state h_{k-1} computes the same gates,
            # [x, r] W_ih + h W_hh = x W_x + [h, r] W_[h,r] with the rows of W regrouped:
            # a standard LSTMCell(2D, D), in all three frameworks.
            self.query_lstm = nn.LSTMCell(2 * embedding_size, embedding_size)
            for lstm in (self.support_lstm, self.query_lstm):
                single_bias(lstm)

    def fce_support(self, support: torch.Tensor) -> torch.Tensor:
        """g(x_i, S) = h_fwd_i + h_bwd_i + g'(x_i): the support set read as one sequence, (n, D)."""
        # The sequence is in the episode's order (class by class): unlike the rest of the model,
        # the LSTM's output depends on the order of S.
        outputs, _ = self.support_lstm(support[None])  # (1, n, 2D): both directions, concatenated
        forward, backward = outputs[0].chunk(2, dim=-1)
        return forward + backward + support

    def fce_query(self, query: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        """f(x̂, S) = attLSTM(f'(x̂), g(S), K), every query at once, (n_query, D)."""
        h_hat, c = torch.zeros_like(query), torch.zeros_like(query)
        for _ in range(self.fce_steps):
            h = h_hat + query  # h_{k-1} = ĥ_{k-1} + f'(x̂)
            read = torch.softmax(h @ support.T, dim=1) @ support  # r_{k-1}: attention over g(S)
            h_hat, c = self.query_lstm(torch.cat([query, read], dim=1), (h, c))
        return h_hat + query

    def embed(self, support_x, query_x) -> tuple[torch.Tensor, torch.Tensor]:
        """(g(x_i, S) for the support set, f(x̂, S) for the queries); without FCE g = f = Conv-4."""
        # Support and query go through the encoder as one batch, as for ProtoNet: in training
        # mode BatchNorm normalises with the statistics of the whole episode.
        embeddings = self.encoder(torch.cat([support_x, query_x]))
        support, query = embeddings[:len(support_x)], embeddings[len(support_x):]
        if self.fce:
            support = self.fce_support(support)
            query = self.fce_query(query, support)
        return support, query

    def forward(self, support_x, support_y, query_x) -> torch.Tensor:
        """Query "logits" log ŷ, (n_query, way)."""
        way = int(support_y.max()) + 1
        support, query = self.embed(support_x, query_x)
        # The shared learner takes a softmax cross-entropy of what the model returns. The paper
        # maximises the log-likelihood of ŷ itself, and ŷ already sums to 1, so returning log ŷ
        # makes the two the same: softmax(log ŷ) = ŷ / sum ŷ = ŷ, and the cross-entropy is
        # -log ŷ[true class].
        return log_label_distribution(similarity(query, support, self.cosine_scale, self.distance), support_y, way)
