"""Exercise 1: first-order MAML (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/optimization/exercises/01_first_order

Everything here is given except ``adapt_first_order``. The network is a tiny MLP 1 -> 8 -> 8 -> 1
with tanh (smooth, so that finite differences measure its gradients exactly up to h²), held as a
dict of named tensors like the chapter's networks, and run as a *function* of that dict.
"""

from __future__ import annotations

import torch

from chapters.optimization.exercises import tiny_mlp
from chapters.optimization.exercises.tiny_mlp import adapt, forward, loss  # noqa: F401 (the checks call them)


def init_params(seed: int = 0, hidden: int = 8) -> dict[str, torch.Tensor]:
    """θ of the tiny MLP 1 -> hidden -> hidden -> 1 (``tiny_mlp.py``)."""
    return tiny_mlp.init_params(seed, hidden)


def adapt_first_order(params: dict[str, torch.Tensor], support_x: torch.Tensor, support_y: torch.Tensor,
                      inner_lr: float, inner_steps: int) -> dict[str, torch.Tensor]:
    """First-order MAML's inner loop: the same θ' as :func:`adapt`, but the inner gradients are
    constants for the meta-gradient, so ∂θ'/∂θ = I.

    Return a new dict (same keys) of tensors that still depend on ``params`` (a backward pass from
    the query loss must reach θ), without modifying ``params``.
    """
    # ---- your code here: replace the line below (about 4 lines) ----
    raise NotImplementedError("adapt_first_order: return θ' with the inner gradients treated as constants")
