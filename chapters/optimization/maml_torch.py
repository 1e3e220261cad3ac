"""Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017) in PyTorch.

MAML learns an *initialisation* θ from which a few gradient steps on a task's support set S give
parameters that do well on the task's query set Q. For one task, the inner update is Eq. (1):

    θ' = θ − α ∇_θ L_S(θ)                               (k steps: repeat k times from θ_0 = θ)

and the meta-objective, Eq. (2), is the query loss *after* adaptation, averaged over tasks:

    min_θ  E_T [ L_Q(θ'(θ)) ]      a bi-level problem: the inner level (θ → θ') is gradient
                                   descent on L_S, the outer level trains θ through it.

Its gradient is taken through the inner update (Eq. 3, the meta-update θ ← θ − β ∇_θ Σ_T L_Q(θ'),
with Adam as the meta-optimizer here, as in the paper's experiments). By the chain rule, with
∂θ'/∂θ = I − α ∇²L_S(θ) (the Hessian is symmetric):

    ∇_θ L_Q(θ') = (I − α ∇²L_S(θ)) ∇_θ' L_Q(θ')

and for k steps θ_{j+1} = θ_j − α ∇L_S(θ_j), one factor per step:

    ∇_θ L_Q(θ_k) = (I − α ∇²L_S(θ_0)) ··· (I − α ∇²L_S(θ_{k−1})) ∇_{θ_k} L_Q(θ_k)

No Hessian is ever formed: ``torch.autograd.grad(..., create_graph=True)`` records the
computation of ∇L_S itself, so the backward pass of the meta-loss runs through it and produces
the Hessian-vector products ∇²L_S(θ_j) v ("double backward"). This is **second-order MAML**.

**First-order MAML** (FOMAML, Finn et al. Sec. 5.2) treats the inner gradients as constants:
without ``create_graph`` they carry no graph, so ∂θ'/∂θ = I and the meta-gradient is just
∇_θ' L_Q(θ'), the query gradient at the adapted parameters, applied to θ. It drops the Hessian
term −α ∇²L_S(θ) ∇_θ' L_Q(θ'), saving the double backward. (For a ReLU network the Hessian with
respect to the *input* is zero almost everywhere, but not the one with respect to the *weights*:
the term is genuinely dropped, as ``tests/test_maml.py`` shows against finite differences.)

The sinusoid model (Sec. 5.1) is an MLP 1-40-40-1 with ReLU, trained on the mean squared error
(Eq. 4 writes a sum; the authors' code, and the MSE the paper reports, average). Its parameters
are a ``dict`` of canonical names and layouts (``common.weights``): ``layers.0.kernel`` (1, 40),
``layers.0.bias`` (40,), ..., ``layers.2.bias`` (1,), the very same dict in ``maml_tf.py`` and
``maml_keras.py``. The network is a *function* of that dict, :func:`forward`, because MAML must run
it on adapted parameters θ' (tensors computed from θ), not only on the module's own.

Tasks are looped over one by one (not ``torch.func.vmap``): on a CPU a loop is as fast, and vmap
gives wrong second-order gradients through BatchNorm, which the image models of this chapter have.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from common.episodes import Episode
from common.errors import ConfigError


class Dense(nn.Module):
    """``x @ kernel + bias`` with the kernel stored (in, out), the canonical layout.

    Not ``nn.Linear``, whose ``weight`` is (out, in): with this layer ``model.named_parameters()``
    *is* the canonical dict (``layers.0.kernel``, ...), the same keys and shapes as in TensorFlow
    and Keras. Initialised as ``nn.Linear``: uniform in ±1/sqrt(fan_in).
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.kernel = nn.Parameter(torch.empty(in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))


class SinusoidMLP(nn.Module):
    """The regression network of Finn et al. Sec. 5.1: 1 → 40 → 40 → 1, ReLU between layers."""

    def __init__(self, hidden: tuple[int, ...] = (40, 40)):
        super().__init__()
        sizes = (1, *hidden, 1)
        self.layers = nn.ModuleList(Dense(n_in, n_out) for n_in, n_out in zip(sizes, sizes[1:]))

    def params(self) -> dict[str, torch.Tensor]:
        """θ as a dict of canonical names: ``{"layers.0.kernel": ..., "layers.0.bias": ..., ...}``."""
        return dict(self.named_parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward(self.params(), x)


def forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """f_θ(x) for any parameters θ (the module's own, or adapted ones): (N, 1) -> (N, 1)."""
    depth = len(params) // 2
    for i in range(depth):
        x = x @ params[f"layers.{i}.kernel"] + params[f"layers.{i}.bias"]
        if i < depth - 1:
            x = torch.relu(x)
    return x


def loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L(θ) on the examples (x, y): the mean squared error of f_θ (Eq. 4, averaged)."""
    return torch.mean((forward(params, x) - y) ** 2)


def check_inner_steps(inner_steps) -> None:
    """MAML needs at least one inner step: with none, θ' = θ and it is plain multi-task training."""
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, (int, np.integer)) or inner_steps < 1:
        raise ConfigError(f"MAML needs inner_steps >= 1 (gradient steps on the support set per task), "
                          f"got {inner_steps!r}; with 0 steps the adapted parameters are θ itself and "
                          f"nothing is meta-learned")


def adapt(params: dict[str, torch.Tensor], support_x: torch.Tensor, support_y: torch.Tensor,
          inner_lr: float, inner_steps: int, first_order: bool = False) -> dict[str, torch.Tensor]:
    """θ' after ``inner_steps`` gradient steps θ ← θ − α ∇_θ L_S(θ) (Eq. 1), as a new dict.

    Second order (default): ``create_graph=True`` keeps the graph of each inner gradient, so a
    backward pass from the query loss differentiates through it (the Hessian term). First order:
    the inner gradients are plain numbers, constants for the meta-gradient.
    """
    check_inner_steps(inner_steps)
    for _ in range(inner_steps):
        support_loss = loss(params, support_x, support_y)
        gradients = torch.autograd.grad(support_loss, list(params.values()), create_graph=not first_order)
        params = {name: p - inner_lr * g for (name, p), g in zip(params.items(), gradients)}
    return params


def meta_loss(params: dict[str, torch.Tensor], meta_batch: Episode, inner_lr: float, inner_steps: int,
              first_order: bool = False) -> torch.Tensor:
    """Eq. (2)/(3): the mean over the meta-batch's tasks of L_Q at each task's adapted θ'.

    ``meta_batch`` holds B tasks along a leading axis: support_x (B, K, 1), ..., query_y (B, Q, 1).
    Its gradient with respect to ``params`` is the meta-gradient (second or first order).
    """
    support_x, support_y, query_x, query_y = meta_batch
    total = 0.0
    for t in range(len(support_x)):  # one task at a time: exact, and as fast as vmap on a CPU
        adapted = adapt(params, support_x[t], support_y[t], inner_lr, inner_steps, first_order)
        total = total + loss(adapted, query_x[t], query_y[t])
    return total / len(support_x)


def adaptation_curve(params: dict[str, torch.Tensor], episode: Episode, inner_lr: float,
                     steps: int) -> np.ndarray:
    """Query MSE of one task after 0, 1, ..., ``steps`` gradient steps on its support set.

    Entry 0 is f_θ without adaptation; entry k is what the paper reports "after k steps"
    (Finn et al. Fig. 3). No meta-gradient is needed, so the steps are first-order.
    """
    support_x, support_y, query_x, query_y = episode
    params = {name: p.detach().requires_grad_() for name, p in params.items()}
    curve = []
    for k in range(steps + 1):
        if k:
            params = adapt(params, support_x, support_y, inner_lr, 1, first_order=True)
        with torch.no_grad():
            curve.append(loss(params, query_x, query_y).item())
    return np.array(curve)


class MAML:
    """Meta-training of a :class:`SinusoidMLP`: Adam (rate β) on the meta-loss, Eq. (3)."""

    def __init__(self, model: SinusoidMLP, inner_lr: float = 0.01, inner_steps: int = 1,
                 first_order: bool = False, meta_lr: float = 1e-3):
        check_inner_steps(inner_steps)
        self.model, self.inner_lr, self.inner_steps = model, inner_lr, inner_steps
        self.first_order = first_order
        self.optimizer = torch.optim.Adam(model.parameters(), lr=meta_lr)

    def _tensors(self, episode: Episode) -> Episode:
        dtype = next(self.model.parameters()).dtype
        return Episode(*(torch.as_tensor(np.asarray(part), dtype=dtype) for part in episode))

    def meta_step(self, meta_batch: Episode) -> float:
        """One meta-update on a meta-batch of tasks; returns the meta-loss before the update."""
        value = meta_loss(self.model.params(), self._tensors(meta_batch), self.inner_lr,
                          self.inner_steps, self.first_order)
        self.optimizer.zero_grad(set_to_none=True)
        value.backward()  # through every inner update: the meta-gradient
        self.optimizer.step()
        return value.item()

    def adaptation_curve(self, episode: Episode, steps: int = 10) -> np.ndarray:
        """Query MSE of one task after 0..``steps`` inner steps (see :func:`adaptation_curve`)."""
        return adaptation_curve(self.model.params(), self._tensors(episode), self.inner_lr, steps)
