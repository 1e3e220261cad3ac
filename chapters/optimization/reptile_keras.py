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
from keras import ops

from chapters.optimization.maml_keras import InnerLoopLearner, adapt, cast_floats, query_outputs
from chapters.optimization.minibatches import adapt_on_minibatches, check_inner_batch
from common.episodes import Episode


class Reptile(InnerLoopLearner):
    """Reptile on a network of ``networks_keras``, trained with ``fit``:

        reptile = Reptile(Conv4Classifier(way=5), inner_lr=1e-3, inner_steps=5, meta_lr=1.0,
                          anneal_steps=iterations)
        reptile.fit(keras_episodes(tasks, iterations, meta_batch_size=5), shuffle=False)

    Nichol et al. use Adam for the inner steps; here they are plain SGD (``maml_keras.adapt``), so
    that the inner loop is the same function as MAML's.
    """

    def __init__(self, model, inner_lr: float = 1e-3, inner_steps: int = 5, meta_lr: float = 1.0,
                 anneal_steps: int | None = None, transductive: bool = False,
                 test_inner_steps: int | None = None, inner_batch: int | None = None, **kwargs):
        super().__init__(model, inner_lr, inner_steps, transductive, test_inner_steps, **kwargs)
        check_inner_batch(inner_batch)
        self.inner_batch = inner_batch
        epsilon = meta_lr if anneal_steps is None else keras.optimizers.schedules.PolynomialDecay(
            meta_lr, anneal_steps, end_learning_rate=0.0, power=1.0)  # ε_i = meta_lr (1 − i / anneal_steps)
        self.compile(optimizer=keras.optimizers.SGD(epsilon))
        self.optimizer.build(self.trainable_variables)  # its step counter exists: state() works at once

    def train_step(self, data):
        (support_x, support_y, query_x), query_y, _ = keras.utils.unpack_x_y_sample_weight(data)
        support_x, support_y, query_x, query_y = cast_floats(Episode(support_x, support_y, query_x, query_y),
                                                             self.model.compute_dtype)
        model, params = self.model, self.model.params()

        def add_task(t, totals):
            adapted_total, loss_total, metric_total = totals
            adapted = adapt_on_minibatches(adapt, model, params, support_x[t], support_y[t], self.inner_lr,
                                           self.inner_steps, self.inner_batch)  # θ'_t: k SGD steps, no meta-gradient
            outputs = query_outputs(model, adapted, support_x[t], query_x[t], self.transductive)
            return ([total + a for total, a in zip(adapted_total, adapted.values())],
                    loss_total + model.loss(outputs, query_y[t]),
                    metric_total + model.metric(outputs, query_y[t]))

        tasks = ops.shape(support_x)[0]
        zero = ops.zeros([], support_x.dtype)
        initial = ([ops.zeros_like(p) for p in params.values()], zero, zero)
        adapted_total, loss_total, metric_total = ops.fori_loop(0, tasks, add_task, initial)
        count = ops.cast(tasks, zero.dtype)
        # The outer update as a gradient step: g = θ − mean_t θ'_t, and SGD does θ ← θ − ε g.
        differences = [p - total / count for p, total in zip(params.values(), adapted_total)]
        self.optimizer.apply_gradients(zip(differences, params.values()))
        return {"loss": loss_total / count, model.metric_name: metric_total / count}
