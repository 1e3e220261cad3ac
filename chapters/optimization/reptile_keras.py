"""Reptile (Nichol, Achiam & Schulman, 2018, "On First-Order Meta-Learning Algorithms") in Keras 3.

Reptile learns an initialisation θ like MAML, without any meta-gradient. For each task t of a
meta-batch it runs k plain SGD steps on the task from θ, giving θ'_t, and then moves θ towards
the adapted parameters (Algorithm 2, the batched version):

    θ ← θ + ε (mean_t θ'_t − θ)

With k = 1 that is joint training on the tasks; with k > 1 the update contains, to second order,
the same gradient-alignment term as first-order MAML (Nichol et al. Sec. 5). Here the outer
update is written as an optimizer step on the "gradient" g = θ − mean_t θ'_t with plain SGD of rate
ε (``keras.optimizers.SGD``: θ ← θ − ε g), so Reptile's difference vector is seen as a gradient.
Nichol et al. anneal ε linearly to 0 over training: with ``anneal_steps``, ε_i = meta_lr (1 −
i / anneal_steps) at meta-step i, a ``PolynomialDecay`` schedule of power 1 that the optimizer
evaluates at its step counter ``iterations`` (saved with the optimizer's variables, so a resumed
run continues the annealing).

Unlike :class:`maml_keras.MAML`, Reptile's optimizer is part of the algorithm (plain SGD, rate ε),
so :class:`Reptile` compiles itself in ``__init__``: no ``compile`` call is needed.

``train_step`` loops over the meta-batch's tasks with ``ops.fori_loop`` (``fit`` traces it for an
unknown task count), carrying the sum of the θ'_t and, for monitoring only, the query loss and
metric at θ'_t (transductive or not, as configured).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from chapters.optimization import reptile_tf
from chapters.optimization.maml_keras import InnerLoopLearner, adapt, cast_floats, query_outputs
from chapters.optimization.minibatches import adapt_task
from chapters.optimization.reptile import check_settings
from common.episodes import Episode


def support_gradients(model, params: dict, support_x, support_y) -> dict:
    """∇_θ L_S(θ) at ``params``, as plain numbers (Reptile never differentiates through it): the
    backend's tape, ``reptile_tf.support_gradients``, on the values of Keras' variables."""
    params = {name: tf.convert_to_tensor(p) for name, p in params.items()}  # a tape watches tensors
    return reptile_tf.support_gradients(model, params, support_x, support_y)


class Reptile(InnerLoopLearner):
    """Reptile on a network of ``networks_keras``, trained with ``fit``:

        reptile = Reptile(Conv4Classifier(way=5), inner_lr=1e-3, inner_steps=5, meta_lr=1.0,
                          anneal_steps=iterations)
        reptile.fit(keras_episodes(tasks, iterations, meta_batch_size=5), shuffle=False)

    The inner steps are plain SGD (``maml_keras.adapt``, the same function as MAML's inner loop),
    or with ``inner_optimizer="adam"`` Nichol et al.'s Adam with β1 = 0, its state kept in
    non-trainable variables across tasks and meta-steps (see reptile_torch.py).
    """

    def __init__(self, model, inner_lr: float = 1e-3, inner_steps: int = 5, meta_lr: float = 1.0,
                 anneal_steps: int | None = None, transductive: bool = False,
                 test_inner_steps: int | None = None, inner_batch: int | None = None,
                 inner_optimizer: str = "sgd", **kwargs):
        super().__init__(model, inner_lr, inner_steps, transductive, test_inner_steps, **kwargs)
        check_settings(inner_batch, inner_optimizer, anneal_steps)
        self.inner_batch, self.inner_optimizer = inner_batch, inner_optimizer
        # The inner Adam's state (v per parameter, step count t in θ's dtype), across tasks and meta-steps.
        params = model.params()
        self.adam_names = list(params)
        self.adam_moments = [keras.Variable(ops.zeros_like(p), trainable=False, name=f"adam_v_{i}")
                             for i, p in enumerate(params.values())]
        self.adam_step = keras.Variable(0.0, dtype=model.compute_dtype, trainable=False, name="adam_step")
        epsilon = meta_lr if anneal_steps is None else keras.optimizers.schedules.PolynomialDecay(
            meta_lr, anneal_steps, end_learning_rate=0.0, power=1.0)  # ε_i = meta_lr (1 − i / anneal_steps)
        self.compile(optimizer=keras.optimizers.SGD(epsilon))
        self.optimizer.build(self.trainable_variables)  # its step counter exists: state() works at once

    def adapt_task(self, params, support_x, support_y, inner_steps: int, inner_batch: int | None,
                   moments: dict, step):
        """θ'_t and the inner Adam's state after it (``minibatches.adapt_task``)."""
        return adapt_task(adapt, support_gradients, self.model, self.inner_optimizer, params, support_x, support_y,
                          self.inner_lr, inner_steps, inner_batch, moments, step)

    def call(self, inputs, training=False):
        """A test task: ``test_inner_steps`` steps on the whole support set, from the inner Adam's
        state without changing it (SGD: MAML's test-time adaptation)."""
        if self.inner_optimizer == "sgd":
            return super().call(inputs, training=training)
        support_x, support_y, query_x = inputs
        moments = {name: ops.convert_to_tensor(v) for name, v in zip(self.adam_names, self.adam_moments)}
        adapted, _, _ = self.adapt_task(self.model.params(), support_x, support_y, self.test_inner_steps, None,
                                        moments, ops.convert_to_tensor(self.adam_step))
        return query_outputs(self.model, adapted, support_x, query_x, self.transductive)

    def train_step(self, data):
        (support_x, support_y, query_x), query_y, _ = keras.utils.unpack_x_y_sample_weight(data)
        support_x, support_y, query_x, query_y = cast_floats(Episode(support_x, support_y, query_x, query_y),
                                                             self.model.compute_dtype)
        model, params = self.model, self.model.params()

        def add_task(t, totals):
            adapted_total, loss_total, metric_total, moments, step = totals
            # θ'_t from θ, no meta-gradient; the inner Adam's state goes on from the previous task.
            adapted, moments, step = self.adapt_task(params, support_x[t], support_y[t], self.inner_steps,
                                                     self.inner_batch, dict(zip(self.adam_names, moments)), step)
            outputs = query_outputs(model, adapted, support_x[t], query_x[t], self.transductive)
            return ([total + a for total, a in zip(adapted_total, adapted.values())],
                    loss_total + model.loss(outputs, query_y[t]),
                    metric_total + model.metric(outputs, query_y[t]),
                    [moments[name] for name in self.adam_names], step)

        tasks = ops.shape(support_x)[0]
        zero = ops.zeros([], support_x.dtype)
        initial = ([ops.zeros_like(p) for p in params.values()], zero, zero,
                   [ops.convert_to_tensor(v) for v in self.adam_moments], ops.convert_to_tensor(self.adam_step))
        adapted_total, loss_total, metric_total, moments, step = ops.fori_loop(0, tasks, add_task, initial)
        count = ops.cast(tasks, zero.dtype)
        # The outer update as a gradient step: g = θ − mean_t θ'_t, and SGD does θ ← θ − ε g.
        differences = [p - total / count for p, total in zip(params.values(), adapted_total)]
        self.optimizer.apply_gradients(zip(differences, params.values()))
        for variable, v in zip(self.adam_moments, moments):
            variable.assign(v)
        self.adam_step.assign(step)
        return {"loss": loss_total / count, model.metric_name: metric_total / count}

    def state(self) -> dict:
        """:meth:`InnerLoopLearner.state`, and the inner Adam's state (``inner_adam.<name>``, in
        this framework's layout, and ``inner_adam.step``)."""
        arrays = super().state()
        arrays.update({f"inner_adam.{name}": ops.convert_to_numpy(v) for name, v in zip(self.adam_names,
                                                                                         self.adam_moments)})
        arrays["inner_adam.step"] = np.array(int(ops.convert_to_numpy(self.adam_step)))
        return arrays

    def load_state(self, arrays: dict) -> None:
        super().load_state(arrays)
        for name, variable in zip(self.adam_names, self.adam_moments):
            variable.assign(arrays[f"inner_adam.{name}"])
        self.adam_step.assign(float(arrays["inner_adam.step"]))
