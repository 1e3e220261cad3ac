"""Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017) in TensorFlow.

Inner update, Eq. (1):      θ' = θ − α ∇_θ L_S(θ)          (k steps: repeated from θ_0 = θ)
Meta-objective, Eq. (2):    min_θ E_T [ L_Q(θ'(θ)) ]       (bi-level: θ' is gradient descent on L_S)
Meta-update, Eq. (3):       θ ← θ − β ∇_θ Σ_T L_Q(θ')      (Adam with rate β here)

The meta-gradient goes through the inner update:

    ∇_θ L_Q(θ') = (I − α ∇²L_S(θ)) ∇_θ' L_Q(θ')      (k steps: one factor I − α ∇²L_S(θ_j) per step)

In TensorFlow that is two nested ``GradientTape``\\ s: the inner tape computes ∇L_S inside the
context of the outer one, which therefore records that computation too, and the outer
``tape.gradient`` differentiates through it, giving the Hessian-vector products (second-order
MAML). First-order MAML (Sec. 5.2) wraps the inner gradients in ``tf.stop_gradient``: ∂θ'/∂θ = I,
the meta-gradient is ∇_θ' L_Q(θ'), and the Hessian term is dropped.

See ``maml_torch.py`` for the full commentary; the names and structure here are the same. The
parameters are the same ``dict`` of canonical names and layouts (``layers.0.kernel`` (1, 40), ...),
held by ``common.tf_layers.Dense`` layers, and :func:`forward` runs the network on any such dict.

Tasks are looped over with ``for t in tf.range(B)``, which AutoGraph turns into one
``tf.while_loop`` inside ``tf.function``: exact second-order gradients, and traced in seconds,
where a Python loop unrolled over 25 tasks takes ~20 s to trace (measured on this CPU).

Second derivatives are less forgiving than first ones: a ``stop_gradient`` inside any op of the
network, harmless for ordinary training, silently removes part of the Hessian term. The MLP
here has none; a network with BatchNorm must not use ``tf.nn.moments``, which has one (see
``common.tf_layers.moments``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from common.episodes import Episode
from common.episodic_tf import Adam
from common.errors import ConfigError
from common.tf_layers import Dense, dense


class SinusoidMLP(tf.Module):
    """The regression network of Finn et al. Sec. 5.1: 1 → 40 → 40 → 1, ReLU between layers.

    ``common.tf_layers.Dense`` initialises as PyTorch does (uniform in ±1/sqrt(fan_in)).
    """

    def __init__(self, hidden: tuple[int, ...] = (40, 40), dtype=tf.float32, seed=None):
        super().__init__()
        rng = tf.random.Generator.from_seed(seed) if isinstance(seed, int) else seed
        sizes = (1, *hidden, 1)
        self.layers = [Dense(n_in, n_out, dtype=dtype, seed=rng) for n_in, n_out in zip(sizes, sizes[1:])]

    def params(self) -> dict[str, tf.Variable]:
        """θ as a dict of canonical names: ``{"layers.0.kernel": ..., "layers.0.bias": ..., ...}``."""
        return {f"layers.{i}.{name}": variable for i, layer in enumerate(self.layers)
                for name, variable in layer.params().items()}

    def __call__(self, x):
        return forward(self.params(), x)


def forward(params: dict, x):
    """f_θ(x) for any parameters θ (the module's variables, or adapted tensors): (N, 1) -> (N, 1)."""
    depth = len(params) // 2
    for i in range(depth):
        x = dense(x, params[f"layers.{i}.kernel"], params[f"layers.{i}.bias"])
        if i < depth - 1:
            x = tf.nn.relu(x)
    return x


def loss(params: dict, x, y):
    """L(θ) on the examples (x, y): the mean squared error of f_θ (Eq. 4, averaged)."""
    return tf.reduce_mean(tf.square(forward(params, x) - y))


def check_inner_steps(inner_steps) -> None:
    """MAML needs at least one inner step: with none, θ' = θ and it is plain multi-task training."""
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, (int, np.integer)) or inner_steps < 1:
        raise ConfigError(f"MAML needs inner_steps >= 1 (gradient steps on the support set per task), "
                          f"got {inner_steps!r}; with 0 steps the adapted parameters are θ itself and "
                          f"nothing is meta-learned")


def adapt(params: dict, support_x, support_y, inner_lr: float, inner_steps: int,
          first_order: bool = False) -> dict:
    """θ' after ``inner_steps`` gradient steps θ ← θ − α ∇_θ L_S(θ) (Eq. 1), as a new dict.

    Second order (default): called under an outer tape, which records this inner gradient
    computation and later differentiates through it. First order: ``tf.stop_gradient`` makes
    the inner gradients constants for the outer tape.
    """
    check_inner_steps(inner_steps)
    for _ in range(inner_steps):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(list(params.values()))
            support_loss = loss(params, support_x, support_y)
        gradients = tape.gradient(support_loss, list(params.values()))
        if first_order:
            gradients = [tf.stop_gradient(g) for g in gradients]
        params = {name: p - inner_lr * g for (name, p), g in zip(params.items(), gradients)}
    return params


def meta_loss(params: dict, meta_batch: Episode, inner_lr: float, inner_steps: int,
              first_order: bool = False):
    """Eq. (2)/(3): the mean over the meta-batch's tasks of L_Q at each task's adapted θ'.

    ``meta_batch`` holds B tasks along a leading axis: support_x (B, K, 1), ..., query_y (B, Q, 1).
    Its gradient with respect to ``params`` (under a tape) is the meta-gradient.
    """
    support_x, support_y, query_x, query_y = (tf.convert_to_tensor(part) for part in meta_batch)
    tasks = tf.shape(support_x)[0]
    total = tf.zeros([], support_x.dtype)
    for t in tf.range(tasks):  # one task at a time; a tf.while_loop inside tf.function
        adapted = adapt(params, support_x[t], support_y[t], inner_lr, inner_steps, first_order)
        total += loss(adapted, query_x[t], query_y[t])
    return total / tf.cast(tasks, total.dtype)


def adaptation_curve(params: dict, episode: Episode, inner_lr: float, steps: int):
    """Query MSE of one task after 0, 1, ..., ``steps`` gradient steps on its support set.

    Entry 0 is f_θ without adaptation; entry k is what the paper reports "after k steps"
    (Finn et al. Fig. 3). No meta-gradient is needed, so the steps are first-order.
    """
    support_x, support_y, query_x, query_y = episode
    curve = [loss(params, query_x, query_y)]
    for _ in range(steps):
        params = adapt(params, support_x, support_y, inner_lr, 1, first_order=True)
        curve.append(loss(params, query_x, query_y))
    return tf.stack(curve)


class MAML:
    """Meta-training of a :class:`SinusoidMLP`: Adam (rate β) on the meta-loss, Eq. (3)."""

    def __init__(self, model: SinusoidMLP, inner_lr: float = 0.01, inner_steps: int = 1,
                 first_order: bool = False, meta_lr: float = 1e-3):
        check_inner_steps(inner_steps)
        self.model, self.inner_lr, self.inner_steps = model, inner_lr, inner_steps
        self.first_order = first_order
        self.optimizer = Adam(meta_lr, epsilon=1e-8)  # PyTorch's Adam formula and epsilon
        self.optimizer.build(list(model.params().values()))
        self._meta_step = tf.function(self._step)  # 3-5x faster than eager on a CPU
        self._curve = tf.function(lambda episode, steps: adaptation_curve(
            self.model.params(), episode, self.inner_lr, steps), reduce_retracing=True)

    def _tensors(self, episode: Episode) -> Episode:
        dtype = self.model.layers[0].kernel.dtype.as_numpy_dtype
        return Episode(*(np.asarray(part, dtype) for part in episode))

    def _step(self, meta_batch: Episode):
        params = self.model.params()
        with tf.GradientTape() as tape:  # the outer tape: records the inner gradients too
            value = meta_loss(params, meta_batch, self.inner_lr, self.inner_steps, self.first_order)
        gradients = tape.gradient(value, list(params.values()))
        self.optimizer.apply_gradients(zip(gradients, params.values()))
        return value

    def meta_step(self, meta_batch: Episode) -> float:
        """One meta-update on a meta-batch of tasks; returns the meta-loss before the update."""
        return float(self._meta_step(self._tensors(meta_batch)))

    def adaptation_curve(self, episode: Episode, steps: int = 10) -> np.ndarray:
        """Query MSE of one task after 0..``steps`` inner steps (see :func:`adaptation_curve`)."""
        return self._curve(self._tensors(episode), steps).numpy()
