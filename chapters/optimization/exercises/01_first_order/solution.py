"""Exercise 1, a reference solution: first-order MAML.

The helpers are the starter's. The network is a tiny MLP 1 -> 8 -> 8 -> 1
with tanh (smooth, so that finite differences measure its gradients exactly up to h²), held as a
dict of named tensors like the chapter's networks, and run as a *function* of that dict.
"""

from __future__ import annotations

import math

import torch


def init_params(seed: int = 0, hidden: int = 8, dtype=torch.float64) -> dict[str, torch.Tensor]:
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
    """f_θ(x) for any θ (the initial parameters or adapted ones): (N, 1) -> (N, 1)."""
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
    """Second-order MAML's inner loop (Finn et al. Eq. 1): ``inner_steps`` steps θ ← θ − α ∇L_S(θ).

    ``create_graph=True`` records how each inner gradient was computed, so a backward pass from
    the query loss runs through it: ∂θ'/∂θ = I − α ∇²L_S(θ), the Hessian term.
    """
    for _ in range(inner_steps):
        gradients = torch.autograd.grad(loss(params, support_x, support_y), list(params.values()),
                                        create_graph=True)
        params = {name: p - inner_lr * g for (name, p), g in zip(params.items(), gradients)}
    return params


def adapt_first_order(params: dict[str, torch.Tensor], support_x: torch.Tensor, support_y: torch.Tensor,
                      inner_lr: float, inner_steps: int) -> dict[str, torch.Tensor]:
    """First-order MAML's inner loop: the same θ' as :func:`adapt`, but the inner gradients are
    constants for the meta-gradient, so ∂θ'/∂θ = I.

    Return a new dict (same keys) of tensors that still depend on ``params`` (a backward pass from
    the query loss must reach θ), without modifying ``params``.
    """
    for _ in range(inner_steps):
        # Without create_graph the gradients come back as plain tensors with no history: for the
        # backward pass of the meta-loss they are constants, and θ' = θ − α·(constant) has
        # Jacobian I with respect to θ. (Calling .detach() on them says the same thing.)
        gradients = torch.autograd.grad(loss(params, support_x, support_y), list(params.values()))
        params = {name: p - inner_lr * g for (name, p), g in zip(params.items(), gradients)}
    return params
