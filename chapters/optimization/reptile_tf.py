"""Reptile (Nichol, Achiam & Schulman, 2018) in TensorFlow: meta-learning without a meta-gradient.

For each task of a meta-batch, Reptile runs k plain SGD steps on the task's loss from θ, giving
θ'_t (the inner loop of MAML, ``maml_tf.adapt`` with ``first_order=True``: nothing is
differentiated through it), then moves θ towards the adapted parameters (Nichol et al.
Algorithm 2, the batched version):

    θ ← θ + ε (1/B Σ_t θ'_t − θ)

Written as an optimizer step, the "gradient" is the Reptile difference vector

    g = θ − 1/B Σ_t θ'_t,        θ ← θ − ε g       (plain SGD of rate ε)

which for k = 1 is exactly α times the average task gradient (joint training) and for k > 1
contains, to leading order, that joint-training gradient plus a term that increases the inner
product between the gradients of different minibatches of a task (Nichol et al. Sec. 5): a step
taken on one minibatch of a task then also helps on its others. ε is annealed linearly to 0
over ``anneal_steps`` meta-steps when given, as Nichol et al. do.

The loss and metric returned by :meth:`Reptile.meta_step` are the query set's at θ'_t, averaged
over the tasks: for monitoring only, Reptile's update never looks at the query set.

``inner_optimizer="adam"``: Nichol et al.'s inner Adam (β1 = 0, ``minibatches.adam_step``), its
state kept in variables across tasks and meta-steps; a test task adapts from a copy of it (see
reptile_torch.py).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from chapters.optimization.maml_tf import InnerLoopLearner, adapt, query_outputs
from chapters.optimization.minibatches import adapt_task
from chapters.optimization.reptile import check_settings
from common.episodes import Episode


def support_gradients(model, params: dict, support_x, support_y) -> dict:
    """∇_θ L_S(θ) at ``params``, as plain numbers (Reptile never differentiates through it)."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(list(params.values()))
        support_loss = model.loss(model.forward(params, support_x), support_y)
    return dict(zip(params, tape.gradient(support_loss, list(params.values()))))


class Reptile(InnerLoopLearner):
    """Reptile on any network of ``networks_tf.py``: SGD of rate ε on the difference θ − mean θ'_t."""

    def __init__(self, model, inner_lr: float = 1e-3, inner_steps: int = 5, meta_lr: float = 1.0,
                 anneal_steps: int | None = None, transductive: bool = False,
                 test_inner_steps: int | None = None, inner_batch: int | None = None,
                 inner_optimizer: str = "sgd"):
        super().__init__(model, inner_lr, inner_steps, transductive, test_inner_steps)
        check_settings(inner_batch, inner_optimizer, anneal_steps)
        self.inner_batch, self.inner_optimizer = inner_batch, inner_optimizer
        # The inner Adam's state (v per parameter, step count t), kept across tasks and meta-steps;
        # t in θ's dtype, as Keras' Adam computes β2^t.
        params = model.params()
        self.adam_moments = {name: tf.Variable(tf.zeros_like(p), trainable=False) for name, p in params.items()}
        self.adam_step = tf.Variable(tf.zeros([], next(iter(params.values())).dtype), trainable=False)
        # ε_i = meta_lr (1 − i / anneal_steps), held at 0 afterwards; i is the optimizer's step count.
        epsilon = meta_lr if anneal_steps is None else keras.optimizers.schedules.PolynomialDecay(
            meta_lr, anneal_steps, end_learning_rate=0.0, power=1.0)
        self.optimizer = keras.optimizers.SGD(epsilon)
        self.optimizer.build(list(model.params().values()))
        self._meta_step = tf.function(self._step, reduce_retracing=True)

    def adapt_task(self, params, support_x, support_y, inner_steps: int, inner_batch: int | None,
                   moments: dict, step):
        """θ'_t and the inner Adam's state after it (``minibatches.adapt_task``)."""
        return adapt_task(adapt, support_gradients, self.model, self.inner_optimizer, params, support_x, support_y,
                          self.inner_lr, inner_steps, inner_batch, moments, step)

    def _adapted_outputs(self, support_x, support_y, query_x):
        """A test task: ``test_inner_steps`` steps on the whole support set, from the inner Adam's
        state without changing it (SGD: MAML's test-time adaptation)."""
        if self.inner_optimizer == "sgd":
            return super()._adapted_outputs(support_x, support_y, query_x)
        moments = {name: v.read_value() for name, v in self.adam_moments.items()}
        adapted, _, _ = self.adapt_task(self.model.params(), support_x, support_y, self.test_inner_steps, None,
                                        moments, self.adam_step.read_value())
        return query_outputs(self.model, adapted, support_x, query_x, self.transductive)

    def _step(self, meta_batch: Episode):
        support_x, support_y, query_x, query_y = (tf.convert_to_tensor(part) for part in meta_batch)
        params = self.model.params()
        tasks = tf.shape(support_x)[0]
        adapted_total = {name: tf.zeros_like(p) for name, p in params.items()}  # Σ_t θ'_t
        loss_total = tf.zeros([], support_x.dtype)
        metric_total = tf.zeros([], support_x.dtype)
        moments = {name: v.read_value() for name, v in self.adam_moments.items()}
        step = self.adam_step.read_value()
        for t in tf.range(tasks):  # one task at a time; a tf.while_loop inside tf.function
            # Each task starts from θ; the inner Adam's state goes on from the previous task.
            adapted, moments, step = self.adapt_task(params, support_x[t], support_y[t], self.inner_steps,
                                                     self.inner_batch, moments, step)
            adapted_total = {name: adapted_total[name] + adapted[name] for name in params}
            outputs = query_outputs(self.model, adapted, support_x[t], query_x[t], self.transductive)
            loss_total += self.model.loss(outputs, query_y[t])
            metric_total += tf.cast(self.model.metric(outputs, query_y[t]), metric_total.dtype)
        tasks = tf.cast(tasks, loss_total.dtype)
        # The outer update as a gradient step: g = θ − mean_t θ'_t, and SGD does θ ← θ − ε g.
        differences = [p - adapted_total[name] / tasks for name, p in params.items()]
        self.optimizer.apply_gradients(zip(differences, params.values()))
        for name, v in moments.items():
            self.adam_moments[name].assign(v)
        self.adam_step.assign(step)
        return loss_total / tasks, metric_total / tasks

    def meta_step(self, meta_batch: Episode) -> dict:
        """One Reptile update on a meta-batch of tasks; the mean query loss and metric at θ'_t."""
        value, metric = self._meta_step(self._inputs(meta_batch))
        return {"loss": float(value), self.model.metric_name: float(metric)}

    def state(self) -> dict:
        """:meth:`InnerLoopLearner.state`, and the inner Adam's state (``inner_adam.<name>``, in
        this framework's layout, and ``inner_adam.step``)."""
        arrays = super().state()
        arrays.update({f"inner_adam.{name}": v.numpy() for name, v in self.adam_moments.items()})
        arrays["inner_adam.step"] = np.array(int(self.adam_step.numpy()))
        return arrays

    def load_state(self, arrays: dict) -> None:
        super().load_state(arrays)
        for name, v in self.adam_moments.items():
            v.assign(arrays[f"inner_adam.{name}"])
        self.adam_step.assign(float(arrays["inner_adam.step"]))
