"""The network of this chapter's exercises: a tiny MLP 1 -> hidden -> hidden -> 1 with tanh, held
as a dict of named tensors like the chapter's networks and run as a *function* of that dict, so
that θ and any adapted θ' go through the same code.

tanh rather than ReLU: the network is smooth, so finite differences measure its gradients exactly
up to h², which is what the checks compare with. Float64 for the same reason.
"""

from __future__ import annotations

import math

import torch


def init_params(seed: int = 0, hidden: int = 16, dtype=torch.float64,
                requires_grad: bool = True) -> dict[str, torch.Tensor]:
    """θ: ``layers.{i}.kernel`` (in, out) and ``layers.{i}.bias`` (out,), uniform in ±1/sqrt(fan_in)."""
    generator = torch.Generator().manual_seed(seed)
    sizes = (1, hidden, hidden, 1)
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        bound = 1 / math.sqrt(n_in)
        for name, shape in ((f"layers.{i}.kernel", (n_in, n_out)), (f"layers.{i}.bias", (n_out,))):
            uniform = torch.rand(shape, generator=generator, dtype=dtype)
            params[name] = ((2 * uniform - 1) * bound).requires_grad_(requires_grad)
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


class one_thread:
    """``with one_thread():`` single-threaded torch for the checks: fast for these tiny tensors,
    and the same sums on every machine."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)
