"""Meta-SGD (Li, Zhou, Chen & Li, 2017) in Keras 3: MAML with a learned inner learning rate per parameter.

MAML adapts with one scalar step size α. Meta-SGD learns α too, one entry per entry of θ, and the
inner update becomes elementwise, Eq. (2) (one step; k steps repeat it):

    θ' = θ − α ∘ ∇_θ L_S(θ)

α is meta-learned with θ by the same outer objective, Eq. (3):

    (θ, α) ← (θ, α) − β ∇_(θ,α) Σ_T L_Q(θ')

so α encodes both the direction and the size of the inner step: a negative entry even reverses a
coordinate's gradient. Li et al. (Sec. 4.1) initialise α uniformly at random in [0.005, 0.1].

Everything else is MAML's: :class:`MetaSGD` is ``maml_keras.MAML`` whose ``inner_lr`` is the dict of
learned rates, so ``maml_keras.adapt`` / ``maml_keras.meta_loss`` apply α ∘ ∇, and ``train_step``,
which differentiates with respect to all ``trainable_variables``, updates θ and α with the compiled
optimizer (Adam, rate β). The rates are ``keras.Variable``\\ s made with ``add_weight`` on the model.
With the same seed, α starts from the same numbers in PyTorch, TensorFlow and Keras
(``metasgd.initial_inner_lrs``, drawn with NumPy).
"""

from __future__ import annotations

import numpy as np
from keras import ops

from chapters.optimization.maml_keras import MAML
from chapters.optimization.metasgd import INNER_LR_PREFIX, initial_inner_lrs
from common.weights import model_state


class MetaSGD(MAML):
    """Meta-SGD on a network of ``networks_keras``, trained like :class:`MAML` with ``fit``:

        meta_sgd = MetaSGD(Conv4Classifier(way=5), inner_lr_range=(0.005, 0.1))
        meta_sgd.compile(optimizer=common.episodic_tf.Adam(1e-3, epsilon=1e-8))
        meta_sgd.fit(keras_episodes(tasks, iterations, meta_batch_size=32), shuffle=False)
    """

    def __init__(self, model, inner_lr_range=(0.005, 0.1), inner_steps: int = 1, first_order: bool = False,
                 transductive: bool = False, test_inner_steps: int | None = None, seed: int = 0, **kwargs):
        super().__init__(model, None, inner_steps, first_order, transductive, test_inner_steps, **kwargs)
        self.inner_lrs = {}  # α: one learned rate per entry of θ, same names and shapes
        for name, initial in initial_inner_lrs(model.params(), inner_lr_range, seed).items():
            alpha = self.add_weight(shape=initial.shape, initializer="zeros", name=f"inner_lr.{name}")
            alpha.assign(initial)
            self.inner_lrs[name] = alpha
        self.inner_lr = self.inner_lrs  # every MAML method now adapts with θ − α ∘ ∇L_S(θ)

    def learned_inner_lrs(self) -> dict[str, np.ndarray]:
        """α as NumPy arrays, by parameter name."""
        return {name: ops.convert_to_numpy(alpha) for name, alpha in self.inner_lrs.items()}

    def state(self) -> dict:
        """MAML's state (θ, optimizer) and α as ``inner_lr.<name>``."""
        return {**super().state(), **model_state(self.learned_inner_lrs(), INNER_LR_PREFIX)}

    def load_model(self, arrays: dict) -> None:
        """θ and α (``load_state`` calls this, then restores the optimizer)."""
        super().load_model(arrays)
        for name, alpha in self.inner_lrs.items():
            alpha.assign(arrays[INNER_LR_PREFIX + name])
