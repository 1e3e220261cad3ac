"""Meta-SGD (Li, Zhou, Chen & Li 2017) in PyTorch: MAML that also learns the inner learning rates.

MAML adapts with one scalar step size α for every parameter. Meta-SGD makes α a *vector*, one
rate per parameter entry, of the same shape as θ, and learns it with θ (Li et al. Eq. 2/3):

    θ' = θ − α ∘ ∇_θ L_S(θ)                               (∘: elementwise product)
    (θ, α) ← (θ, α) − β ∇_(θ,α) Σ_T L_Q(θ')

α sets both the direction and the size of the inner step: a negative entry reverses a gradient
component, a zero freezes it. The meta-gradient with respect to α is read off the same backward
pass as θ's: ∂θ'/∂α = −∇_θ L_S(θ), so ∇_α L_Q(θ') = −∇_θ L_S(θ) ∘ ∇_θ' L_Q(θ') for one step.
Everything else is MAML's (``maml_torch.py``): the same :func:`~maml_torch.adapt` and
:func:`~maml_torch.meta_loss`, given the dict of rates instead of a float. Li et al. (Sec. 4.1)
initialise α uniformly in [0.005, 0.1]; with one inner step, as they train, α is the whole
"learning algorithm" the method learns.

α starts from ``metasgd.initial_inner_lrs``, drawn with NumPy, so the three frameworks start
from the same α for a seed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from chapters.optimization.maml_torch import MAML
from chapters.optimization.metasgd import INNER_LR_PREFIX, initial_inner_lrs
from common.weights import model_state


class MetaSGD(MAML):
    """Meta-training of θ and the per-parameter inner rates α (``inner_lrs``) with Adam (rate β)."""

    def __init__(self, model, inner_lr_range: tuple[float, float] = (0.005, 0.1), inner_steps: int = 1,
                 first_order: bool = False, meta_lr: float = 1e-3, transductive: bool = False,
                 test_inner_steps: int | None = None, seed: int = 0):
        # α: one trainable tensor per parameter, same name, shape, dtype and device (a plain dict,
        # not registered on the model: the network's canonical weights stay θ alone).
        params = model.params()
        self.inner_lrs = {name: nn.Parameter(torch.from_numpy(alpha).to(params[name].device, params[name].dtype))
                          for name, alpha in initial_inner_lrs(params, inner_lr_range, seed).items()}
        super().__init__(model, self.inner_lrs, inner_steps, first_order, meta_lr, transductive,
                         test_inner_steps)
        # The meta-optimizer updates θ and α together: indices 0..n-1 are θ, n..2n-1 are α.
        self.optimizer = torch.optim.Adam([*model.parameters(), *self.inner_lrs.values()], lr=meta_lr)

    def learned_inner_lrs(self) -> dict[str, np.ndarray]:
        """α as NumPy arrays, by parameter name."""
        return {name: alpha.detach().cpu().numpy().copy() for name, alpha in self.inner_lrs.items()}

    def state(self) -> dict[str, np.ndarray]:
        """MAML's state plus α, as ``inner_lr.<name>``."""
        return {**super().state(), **model_state(self.learned_inner_lrs(), INNER_LR_PREFIX)}

    def load_model(self, arrays: dict[str, np.ndarray]) -> None:
        """θ and α (``load_state`` calls this, then restores the optimizer)."""
        super().load_model(arrays)
        with torch.no_grad():
            for name, alpha in self.inner_lrs.items():
                alpha.copy_(torch.from_numpy(np.array(arrays[INNER_LR_PREFIX + name])))
