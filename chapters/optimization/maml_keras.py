"""Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017) in Keras 3.

Inner update, Eq. (1):      θ' = θ − α ∇_θ L_S(θ)          (k steps: repeated from θ_0 = θ)
Meta-objective, Eq. (2):    min_θ E_T [ L_Q(θ'(θ)) ]       (bi-level: θ' is gradient descent on L_S)
Meta-update, Eq. (3):       θ ← θ − β ∇_θ Σ_T L_Q(θ')      (Adam with rate β: the compiled optimizer)

The meta-gradient goes through the inner update:

    ∇_θ L_Q(θ') = (I − α ∇²L_S(θ)) ∇_θ' L_Q(θ')      (k steps: one factor I − α ∇²L_S(θ_j) per step)

The arithmetic is ``keras.ops``; the derivatives come from the backend, TensorFlow, whose nested
``GradientTape``\\ s give the Hessian-vector products (second-order MAML) exactly as in
``maml_tf.py``. First-order MAML (Sec. 5.2) stops the gradient of the inner gradients
(``ops.stop_gradient``): ∂θ'/∂θ = I, the meta-gradient is ∇_θ' L_Q(θ'), the Hessian term is dropped.

The Keras way to train is ``fit``: :class:`MAML` is a ``keras.Model`` whose ``train_step`` runs
the inner loop of every task of a meta-batch and the outer update, and it is fitted on
``common.adapters.keras_episodes(tasks, count, meta_batch_size=B)`` with ``shuffle=False``
(meta-batch i is then the same B tasks as in PyTorch and TensorFlow). ``fit`` traces
``train_step`` for a task axis of unknown length (and without AutoGraph), so the tasks are
looped over with ``ops.fori_loop``, a ``tf.while_loop`` on this backend, as in ``maml_tf.py``.

See ``maml_torch.py`` for the full commentary; the names and structure here are the same, and
the parameters are the same ``dict`` of canonical names and layouts (``layers.0.kernel`` (1, 40), ...).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from common.episodes import Episode
from common.errors import ConfigError


def _torch_like_dense(units: int, fan_in: int) -> keras.layers.Dense:
    """A Dense layer initialised as PyTorch's: kernel and bias uniform in ±1/sqrt(fan_in)."""
    bound = 1 / math.sqrt(fan_in)
    return keras.layers.Dense(units, kernel_initializer=keras.initializers.RandomUniform(-bound, bound),
                              bias_initializer=keras.initializers.RandomUniform(-bound, bound))


class SinusoidMLP(keras.layers.Layer):
    """The regression network of Finn et al. Sec. 5.1: 1 → 40 → 40 → 1, ReLU between layers.

    A ``Layer``, not a ``Model``: ``keras.Model`` reserves the attribute name ``layers``, which
    gives the canonical names (``layers.0.kernel``). Its weights exist from construction on.
    """

    def __init__(self, hidden: tuple[int, ...] = (40, 40), **kwargs):
        super().__init__(**kwargs)
        sizes = (1, *hidden, 1)
        self.layers = [_torch_like_dense(n_out, n_in) for n_in, n_out in zip(sizes, sizes[1:])]
        for layer, n_in in zip(self.layers, sizes):
            layer.build((None, n_in))
        self.built = True

    def params(self) -> dict:
        """θ as a dict of canonical names: ``{"layers.0.kernel": ..., "layers.0.bias": ..., ...}``."""
        return {f"layers.{i}.{name}": getattr(layer, name) for i, layer in enumerate(self.layers)
                for name in ("kernel", "bias")}

    def call(self, x):
        return forward(self.params(), x)


def forward(params: dict, x):
    """f_θ(x) for any parameters θ (the layer's variables, or adapted tensors): (N, 1) -> (N, 1)."""
    depth = len(params) // 2
    for i in range(depth):
        x = ops.matmul(x, params[f"layers.{i}.kernel"]) + params[f"layers.{i}.bias"]
        if i < depth - 1:
            x = ops.relu(x)
    return x


def loss(params: dict, x, y):
    """L(θ) on the examples (x, y): the mean squared error of f_θ (Eq. 4, averaged)."""
    return ops.mean(ops.square(forward(params, x) - y))


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
    computation and later differentiates through it. First order: ``ops.stop_gradient`` makes
    the inner gradients constants for the outer tape.
    """
    check_inner_steps(inner_steps)
    # A tape watches tensors: read Keras variables into their values (the outer tape, which
    # watches the variables, still traces these reads back to them).
    params = {name: tf.convert_to_tensor(p) for name, p in params.items()}
    for _ in range(inner_steps):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(list(params.values()))
            support_loss = loss(params, support_x, support_y)
        gradients = tape.gradient(support_loss, list(params.values()))
        if first_order:
            gradients = [ops.stop_gradient(g) for g in gradients]
        params = {name: p - inner_lr * g for (name, p), g in zip(params.items(), gradients)}
    return params


def meta_loss(params: dict, meta_batch: Episode, inner_lr: float, inner_steps: int,
              first_order: bool = False):
    """Eq. (2)/(3): the mean over the meta-batch's tasks of L_Q at each task's adapted θ'.

    ``meta_batch`` holds B tasks along a leading axis: support_x (B, K, 1), ..., query_y (B, Q, 1).
    Its gradient with respect to ``params`` (under a tape) is the meta-gradient.
    """
    support_x, support_y, query_x, query_y = (ops.convert_to_tensor(part) for part in meta_batch)

    def add_task(t, total):
        adapted = adapt(params, support_x[t], support_y[t], inner_lr, inner_steps, first_order)
        return total + loss(adapted, query_x[t], query_y[t])

    tasks = ops.shape(support_x)[0]  # a tensor while fit traces train_step: B is not known then
    total = ops.fori_loop(0, tasks, add_task, ops.zeros([], support_x.dtype))  # one task at a time
    return total / ops.cast(tasks, total.dtype)


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
    return ops.stack(curve)


class MAML(keras.Model):
    """Meta-training of a :class:`SinusoidMLP` with ``fit``: compile it with the meta-optimizer,

        maml = MAML(SinusoidMLP(), inner_lr=0.01, inner_steps=1, first_order=False)
        maml.compile(optimizer=common.episodic_tf.Adam(1e-3, epsilon=1e-8))   # β, PyTorch's Adam
        maml.fit(keras_episodes(tasks, iterations, meta_batch_size=25), shuffle=False)

    Each ``fit`` item is ``((support_x, support_y, query_x), query_y)`` of B tasks.
    """

    def __init__(self, model: SinusoidMLP, inner_lr: float = 0.01, inner_steps: int = 1,
                 first_order: bool = False, **kwargs):
        check_inner_steps(inner_steps)
        super().__init__(**kwargs)
        self.model, self.inner_lr, self.inner_steps = model, inner_lr, inner_steps
        self.first_order = first_order
        self.built = True  # the MLP's weights exist: nothing for fit to build on a first batch
        self._curve = tf.function(lambda episode, steps: adaptation_curve(
            self.model.params(), episode, self.inner_lr, steps), reduce_retracing=True)

    def call(self, x):
        return self.model(x)

    def train_step(self, data):
        (support_x, support_y, query_x), query_y, _ = keras.utils.unpack_x_y_sample_weight(data)
        parts = (support_x, support_y, query_x, query_y)
        meta_batch = Episode(*(ops.cast(part, self.compute_dtype) for part in parts))
        params = self.model.params()
        with tf.GradientTape() as tape:  # the outer tape: records the inner gradients too
            value = meta_loss(params, meta_batch, self.inner_lr, self.inner_steps, self.first_order)
        gradients = tape.gradient(value, list(params.values()))
        self.optimizer.apply_gradients(zip(gradients, params.values()))
        return {"loss": value}

    def _arrays(self, episode: Episode) -> Episode:
        return Episode(*(np.asarray(part, self.compute_dtype) for part in episode))

    def meta_step(self, meta_batch: Episode) -> float:
        """One meta-update on a meta-batch of tasks (``train_on_batch``); returns the meta-loss
        before the update."""
        support_x, support_y, query_x, query_y = self._arrays(meta_batch)
        logs = self.train_on_batch((support_x, support_y, query_x), query_y, return_dict=True)
        return float(logs["loss"])

    def adaptation_curve(self, episode: Episode, steps: int = 10) -> np.ndarray:
        """Query MSE of one task after 0..``steps`` inner steps (see :func:`adaptation_curve`)."""
        return ops.convert_to_numpy(self._curve(self._arrays(episode), steps))
