"""Exercise 3: learned per-layer inner learning rates (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/optimization/exercises/03_learned_layer_lrs

You write ``init_layer_lrs`` and ``adapt_with_layer_lrs``; the network (a tiny MLP 1 -> 16 -> 16 -> 1
with tanh, as a dict of named tensors), ``meta_loss`` and ``meta_train`` are given.
"""

from __future__ import annotations

import math

import torch


def init_params(seed: int = 0, hidden: int = 16, dtype=torch.float64) -> dict[str, torch.Tensor]:
    """θ: ``layers.{i}.kernel`` (in, out) and ``layers.{i}.bias`` (out,), uniform in ±1/sqrt(fan_in)."""
    generator = torch.Generator().manual_seed(seed)
    sizes = (1, hidden, hidden, 1)
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        bound = 1 / math.sqrt(n_in)
        for name, shape in ((f"layers.{i}.kernel", (n_in, n_out)), (f"layers.{i}.bias", (n_out,))):
            uniform = torch.rand(shape, generator=generator, dtype=dtype)
            params[name] = ((2 * uniform - 1) * bound).requires_grad_()
    return params


def forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """f_θ(x): (N, 1) -> (N, 1)."""
    depth = len(params) // 2
    for i in range(depth):
        x = x @ params[f"layers.{i}.kernel"] + params[f"layers.{i}.bias"]
        if i < depth - 1:
            x = torch.tanh(x)
    return x


def loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The mean squared error of f_θ on (x, y)."""
    return torch.mean((forward(params, x) - y) ** 2)


def adapt(params: dict[str, torch.Tensor], support_x: torch.Tensor, support_y: torch.Tensor,
          inner_lr: float, inner_steps: int) -> dict[str, torch.Tensor]:
    """Second-order MAML's inner loop with one rate α for everything: θ ← θ − α ∇L_S(θ)."""
    for _ in range(inner_steps):
        gradients = torch.autograd.grad(loss(params, support_x, support_y), list(params.values()),
                                        create_graph=True)
        params = {name: p - inner_lr * g for (name, p), g in zip(params.items(), gradients)}
    return params


def init_layer_lrs(params: dict[str, torch.Tensor], value: float = 0.01) -> dict[str, torch.Tensor]:
    """One learnable inner learning rate per parameter tensor: a dict with the names of ``params``,
    each a 0-d tensor (shape ``()``) equal to ``value``, of the dtype of its parameter, that
    requires grad (the outer loop trains it)."""
    # ---- your code here: replace the line below (about 2 lines) ----
    raise NotImplementedError("init_layer_lrs: return {name: 0-d tensor `value`, requires_grad} per parameter tensor")


def adapt_with_layer_lrs(params: dict[str, torch.Tensor], layer_lrs: dict[str, torch.Tensor],
                         support_x: torch.Tensor, support_y: torch.Tensor,
                         inner_steps: int) -> dict[str, torch.Tensor]:
    """θ' after ``inner_steps`` steps θ_l ← θ_l − α_l ∇_{θ_l} L_S(θ), each tensor l with its own α_l.

    Second order, as :func:`adapt`: the meta-gradient must reach θ *and* the rates α_l through
    every step. Return a new dict; do not modify ``params``.
    """
    # ---- your code here: replace the line below (about 4 lines) ----
    raise NotImplementedError("adapt_with_layer_lrs: θ_l − α_l ∇_l L_S(θ), repeated inner_steps times")


def meta_loss(params, layer_lrs, tasks, inner_steps: int) -> torch.Tensor:
    """The mean over ``tasks`` = [(support_x, support_y, query_x, query_y), ...] of L_Q(θ')."""
    total = 0.0
    for support_x, support_y, query_x, query_y in tasks:
        adapted = adapt_with_layer_lrs(params, layer_lrs, support_x, support_y, inner_steps)
        total = total + loss(adapted, query_x, query_y)
    return total / len(tasks)


def meta_train(params, layer_lrs, meta_batches, inner_steps: int, meta_lr: float = 1e-3):
    """Adam on θ and the rates together (Meta-SGD's outer loop, Li et al. Eq. 3), one step per
    meta-batch of ``meta_batches``; θ and the rates are updated in place."""
    optimizer = torch.optim.Adam([*params.values(), *layer_lrs.values()], lr=meta_lr)
    for tasks in meta_batches:
        optimizer.zero_grad(set_to_none=True)
        meta_loss(params, layer_lrs, tasks, inner_steps).backward()
        optimizer.step()
