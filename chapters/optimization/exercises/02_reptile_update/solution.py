"""Exercise 2, a reference solution: Reptile's outer update.

The network (a tiny MLP 1 -> 16 -> 16 -> 1
with tanh, as a dict of named tensors), the inner loop and ``meta_step`` are given.
"""

from __future__ import annotations

import torch

from chapters.optimization.exercises import tiny_mlp
from chapters.optimization.exercises.tiny_mlp import forward, loss  # noqa: F401 (the checks call them)


def init_params(seed: int = 0, hidden: int = 16) -> dict[str, torch.Tensor]:
    """θ of the tiny MLP 1 -> hidden -> hidden -> 1 (``tiny_mlp.py``), without gradients."""
    return tiny_mlp.init_params(seed, hidden, requires_grad=False)


def inner_sgd(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, inner_lr: float,
              inner_steps: int) -> dict[str, torch.Tensor]:
    """θ'_t: ``inner_steps`` plain SGD steps on one task's data, from θ. No meta-gradient is ever
    taken through them (Reptile is first-order), so θ' comes back detached."""
    params = {name: p.detach().clone().requires_grad_() for name, p in params.items()}
    for _ in range(inner_steps):
        gradients = torch.autograd.grad(loss(params, x, y), list(params.values()))
        params = {name: (p - inner_lr * g).detach().requires_grad_() for (name, p), g in zip(params.items(), gradients)}
    return {name: p.detach() for name, p in params.items()}


def reptile_update(params: dict[str, torch.Tensor], adapted: list[dict[str, torch.Tensor]],
                   epsilon: float) -> dict[str, torch.Tensor]:
    """Nichol et al. Alg. 2, the outer update for a meta-batch: θ ← θ + ε (mean_t θ'_t − θ).

    ``params`` is θ, ``adapted`` the list of the B tasks' θ'_t (dicts with the same names), and
    ``epsilon`` the outer step size ε. Return the new θ as a new dict (same names, shapes and
    dtypes), without modifying ``params`` or ``adapted``. The update is not differentiated: return
    tensors without a graph (``torch.no_grad()`` or ``.detach()``).

    Read it as one step of SGD with rate ε on the "gradient" g = θ − mean_t θ'_t.
    """
    with torch.no_grad():
        new = {}
        for name, theta in params.items():
            # Reptile's difference vector, used as a gradient: g = θ − mean_t θ'_t.
            gradient = theta - torch.stack([task[name] for task in adapted]).mean(dim=0)
            new[name] = theta - epsilon * gradient
    return new


def annealed_epsilon(meta_lr: float, step: int, anneal_steps: int | None) -> float:
    """ε at meta-step ``step`` (0, 1, 2, ...): ``meta_lr`` annealed linearly to 0 over ``anneal_steps``
    meta-steps, ε_i = meta_lr · (1 − i / anneal_steps), as Nichol et al. do; never below 0.
    ``anneal_steps=None``: no annealing, ε = meta_lr at every step."""
    if anneal_steps is None:
        return meta_lr
    return meta_lr * max(0.0, 1 - step / anneal_steps)


def meta_step(params: dict[str, torch.Tensor], tasks, inner_lr: float, inner_steps: int,
              epsilon: float) -> dict[str, torch.Tensor]:
    """One Reptile meta-step on a meta-batch ``tasks`` = [(x, y), ...]: adapt to each, then update θ."""
    adapted = [inner_sgd(params, x, y, inner_lr, inner_steps) for x, y in tasks]
    return reptile_update(params, adapted, epsilon)
