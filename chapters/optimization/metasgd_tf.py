"""Meta-SGD (Li, Zhou, Chen & Li, 2017) in TensorFlow: MAML that also learns the inner learning rates.

MAML adapts with one scalar step size α for every parameter. Meta-SGD learns a step size per
parameter *coordinate*, a tensor α shaped like θ, and adapts with the elementwise product (Eq. 2):

    θ' = θ − α ∘ ∇_θ L_S(θ)

α sets both the direction and the size of the update (a coordinate's α may even turn negative),
and it is meta-learned with θ on the same objective as MAML's (Eq. 3):

    (θ, α) ← (θ, α) − β ∇_(θ,α) Σ_T L_Q(θ')

The inner loop, the meta-loss and the evaluation are MAML's (``maml_tf.py``), called with the
dict α in place of the number; only the meta-parameters grow: Adam updates θ and α together.
The outer tape watches every variable read under it, α included, so ∂L_Q(θ')/∂α = −∇L_S(θ) ∘
∇_θ' L_Q(θ') comes out of the same ``tape.gradient``. α starts uniform in ``inner_lr_range``
(Li et al. Sec. 4.1: [0.005, 0.1]), drawn with NumPy so that the three frameworks start from the
same α for the same seed.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from chapters.optimization.maml_tf import MAML
from chapters.optimization.metasgd import INNER_LR_PREFIX, initial_inner_lrs
from common.weights import model_state


class MetaSGD(MAML):
    """MAML with a learned per-coordinate inner learning rate α (``inner_lrs``, one tensor per θ)."""

    def __init__(self, model, inner_lr_range: tuple[float, float] = (0.005, 0.1), inner_steps: int = 1,
                 first_order: bool = False, meta_lr: float = 1e-3, transductive: bool = False,
                 test_inner_steps: int | None = None, seed: int = 0):
        params = model.params()
        self.inner_lrs = {name: tf.Variable(alpha.astype(params[name].dtype.as_numpy_dtype), name=f"inner_lr.{name}")
                          for name, alpha in initial_inner_lrs(params, inner_lr_range, seed).items()}
        # MAML's functions take α as a dict as readily as a number; MAML builds Adam on
        # _meta_parameters(), θ and α here.
        super().__init__(model, inner_lr=self.inner_lrs, inner_steps=inner_steps, first_order=first_order,
                         meta_lr=meta_lr, transductive=transductive, test_inner_steps=test_inner_steps)

    def _meta_parameters(self) -> list[tf.Variable]:
        """θ and α: Meta-SGD meta-learns both."""
        return list(self.model.params().values()) + list(self.inner_lrs.values())

    def learned_inner_lrs(self) -> dict[str, np.ndarray]:
        """α as NumPy arrays, under θ's canonical names."""
        return {name: alpha.numpy() for name, alpha in self.inner_lrs.items()}

    def state(self) -> dict[str, np.ndarray]:
        """MAML's state (θ, Adam's moments of θ and α) and α under ``inner_lr.<name>``."""
        return {**super().state(), **model_state(self.learned_inner_lrs(), INNER_LR_PREFIX)}

    def load_model(self, arrays: dict) -> None:
        """θ and α (``load_state`` calls this, then restores the optimizer)."""
        super().load_model(arrays)
        for name, alpha in self.inner_lrs.items():
            alpha.assign(np.asarray(arrays[INNER_LR_PREFIX + name], alpha.dtype.as_numpy_dtype))
