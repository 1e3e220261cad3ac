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
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from chapters.optimization.maml_tf import adaptation_curve, adapt, check_inner_steps, query_outputs
from common.episodes import Episode
from common.errors import ConfigError
from common.weights import canonical_to_tf, tf_to_canonical


class Reptile:
    """Reptile on any network of ``networks_tf.py``: SGD of rate ε on the difference θ − mean θ'_t."""

    def __init__(self, model, inner_lr: float = 1e-3, inner_steps: int = 5, meta_lr: float = 1.0,
                 anneal_steps: int | None = None, transductive: bool = True,
                 test_inner_steps: int | None = None):
        check_inner_steps(inner_steps)
        test_inner_steps = inner_steps if test_inner_steps is None else test_inner_steps
        check_inner_steps(test_inner_steps)
        if anneal_steps is not None and anneal_steps < 1:
            raise ConfigError(f"anneal_steps must be at least 1 (or None: no annealing), got {anneal_steps!r}")
        self.model, self.inner_lr, self.inner_steps = model, inner_lr, inner_steps
        self.meta_lr, self.anneal_steps = meta_lr, anneal_steps
        self.transductive, self.test_inner_steps = transductive, test_inner_steps
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)  # i, for the annealing of ε
        self._meta_step = tf.function(self._step, reduce_retracing=True)
        self._predict = tf.function(self._adapted_outputs, reduce_retracing=True)
        self._curve = tf.function(lambda episode, steps: adaptation_curve(
            self.model, self.model.params(), episode, self.inner_lr, steps, self.transductive),
            reduce_retracing=True)

    def _tensors(self, episode: Episode) -> Episode:
        """NumPy episode parts, the floating ones (images, regression targets) in the model's dtype."""
        dtype = next(iter(self.model.params().values())).dtype.as_numpy_dtype
        parts = (np.asarray(part) for part in episode)
        return Episode(*(part.astype(dtype) if np.issubdtype(part.dtype, np.floating) else part
                         for part in parts))

    def _epsilon(self, dtype):
        """ε_i = meta_lr (1 − i / anneal_steps), held at 0 after ``anneal_steps`` meta-steps."""
        if self.anneal_steps is None:
            return tf.constant(self.meta_lr, dtype)
        progress = tf.cast(self.steps, dtype) / self.anneal_steps
        return self.meta_lr * tf.maximum(1 - progress, 0)

    def _step(self, meta_batch: Episode):
        support_x, support_y, query_x, query_y = (tf.convert_to_tensor(part) for part in meta_batch)
        params = self.model.params()
        tasks = tf.shape(support_x)[0]
        adapted_total = {name: tf.zeros_like(p) for name, p in params.items()}  # Σ_t θ'_t
        loss_total = tf.zeros([], support_x.dtype)
        metric_total = tf.zeros([], support_x.dtype)
        for t in tf.range(tasks):  # one task at a time; a tf.while_loop inside tf.function
            adapted = adapt(self.model, params, support_x[t], support_y[t], self.inner_lr,
                            self.inner_steps, first_order=True)
            adapted_total = {name: adapted_total[name] + adapted[name] for name in params}
            outputs = query_outputs(self.model, adapted, support_x[t], query_x[t], self.transductive)
            loss_total += self.model.loss(outputs, query_y[t])
            metric_total += tf.cast(self.model.metric(outputs, query_y[t]), metric_total.dtype)
        tasks = tf.cast(tasks, loss_total.dtype)
        epsilon = self._epsilon(loss_total.dtype)
        for name, p in params.items():
            gradient = p - adapted_total[name] / tasks  # the Reptile difference, θ − mean_t θ'_t
            p.assign_sub(epsilon * gradient)            # plain SGD of rate ε
        self.steps.assign_add(1)
        return loss_total / tasks, metric_total / tasks

    def meta_step(self, meta_batch: Episode) -> dict:
        """One Reptile update on a meta-batch of tasks; the mean query loss and metric at θ'_t."""
        value, metric = self._meta_step(self._tensors(meta_batch))
        return {"loss": float(value), self.model.metric_name: float(metric)}

    def _adapted_outputs(self, support_x, support_y, query_x):
        adapted = adapt(self.model, self.model.params(), support_x, support_y, self.inner_lr,
                        self.test_inner_steps, first_order=True)
        return query_outputs(self.model, adapted, support_x, query_x, self.transductive)

    def predict(self, episode: Episode) -> np.ndarray:
        """Query outputs after ``test_inner_steps`` SGD steps on the episode's support set; θ is unchanged."""
        support_x, support_y, query_x, _ = self._tensors(episode)
        return self._predict(support_x, support_y, query_x).numpy()

    def adaptation_curve(self, episode: Episode, steps: int = 10) -> np.ndarray:
        """Query loss of one task after 0..``steps`` inner steps (see ``maml_tf.adaptation_curve``)."""
        return self._curve(self._tensors(episode), steps).numpy()

    def state(self) -> dict[str, np.ndarray]:
        """θ under ``model.<canonical name>`` and the meta-step counter i (ε's annealing) under ``steps``."""
        arrays = {f"model.{k}": v for k, v in tf_to_canonical(self.model).items()}
        arrays["steps"] = np.asarray(self.steps.numpy())
        return arrays

    def load_state(self, arrays: dict) -> None:
        """The inverse of :meth:`state`: the next meta_step is the one the saved run would have taken."""
        canonical_to_tf({k[6:]: v for k, v in arrays.items() if k.startswith("model.")}, self.model)
        self.steps.assign(int(arrays["steps"]))
