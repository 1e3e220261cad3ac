"""Exercise 3: learned per-layer inner learning rates (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/optimization/exercises/03_learned_layer_lrs

You write ``init_layer_lrs`` and ``adapt_with_layer_lrs``; the network (a tiny MLP 1 -> 16 -> 16 -> 1
with tanh, as a dict of named tensors), ``meta_loss`` and ``meta_train`` are given.
"""

from __future__ import annotations

import torch

from chapters.optimization.exercises import tiny_mlp
from chapters.optimization.exercises.tiny_mlp import adapt, forward, loss  # noqa: F401 (the checks call them)


def init_params(seed: int = 0, hidden: int = 16) -> dict[str, torch.Tensor]:
    """θ of the tiny MLP 1 -> hidden -> hidden -> 1 (``tiny_mlp.py``)."""
    return tiny_mlp.init_params(seed, hidden)


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
