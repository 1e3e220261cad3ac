"""Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017) in Keras 3.

Inner update, Eq. (1):      θ' = θ − α ∇_θ L_S(θ)          (k steps: repeated from θ_0 = θ)
Meta-objective, Eq. (2):    min_θ E_T [ L_Q(θ'(θ)) ]       (bi-level: θ' is gradient descent on L_S)
Meta-update, Eq. (3):       θ ← θ − β ∇_θ Σ_T L_Q(θ')      (Adam with rate β: the compiled optimizer)

The meta-gradient goes through the inner update:

    ∇_θ L_Q(θ') = (I − α ∇²L_S(θ)) ∇_θ' L_Q(θ')      (k steps: one factor I − α ∇²L_S(θ_j) per step)

The arithmetic is ``keras.ops``; the derivatives come from the backend, TensorFlow, whose nested
``GradientTape``\\ s give the Hessian-vector products (second-order MAML): the inner loop is
``maml_tf.adapt`` itself. First-order MAML (Sec. 5.2) stops the gradient of the inner gradients:
∂θ'/∂θ = I, the meta-gradient is ∇_θ' L_Q(θ'), the Hessian term is dropped.

Every function takes the network first (``networks_keras.SinusoidMLP`` or ``Conv4Classifier``):
it supplies ``forward(params, x, reference)``, ``loss`` and ``metric``, and θ is the ``dict`` of
canonical names and layouts it returns from ``params()``, the same dict as in PyTorch and
TensorFlow. With BatchNorm (Conv-4), how the *query* set is normalised is a choice:
``transductive=True`` (Finn et al.'s code) uses the query set's own batch statistics,
``transductive=False`` the support set's (see ``networks_keras.py``). The support set is always
normalised with its own statistics.

The Keras way to train is ``fit``: :class:`MAML` is a ``keras.Model`` whose ``train_step`` runs
the inner loop of every task of a meta-batch and the outer update, and it is fitted on
``common.adapters.keras_episodes(tasks, count, meta_batch_size=B)`` with ``shuffle=False``
(meta-batch i is then the same B tasks as in PyTorch and TensorFlow). ``fit`` traces
``train_step`` for a task axis of unknown length (and without AutoGraph), so the tasks are
looped over with ``ops.fori_loop``, a ``tf.while_loop`` on this backend, as in ``maml_tf.py``.

See ``maml_torch.py`` for the full commentary; the names and structure here are the same.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from chapters.optimization import maml_tf
from chapters.optimization.maml import inner_loop_steps
from common.episodes import Episode, astype_floats
from common.learners import Checkpointed


def adapt(model, params: dict, support_x, support_y, inner_lr, inner_steps: int,
          first_order: bool = False) -> dict:
    """θ' after ``inner_steps`` gradient steps θ ← θ − α ∇_θ L_S(θ) (Eq. 1), as a new dict.

    ``inner_lr`` is α: a float (MAML), or a dict name -> tensor shaped like ``params[name]``
    (Meta-SGD's learned rates, applied elementwise: θ ← θ − α ∘ ∇L_S(θ)). The support set is
    normalised with its own statistics (``reference=None``).

    The inner gradient is the backend's: the book's Keras runs on TensorFlow, so the loop is
    ``maml_tf.adapt``'s, on the same tape (second order under an outer tape; first order with the
    inner gradients stopped).
    """
    # A tape watches tensors: read Keras variables into their values (the outer tape, which
    # watches the variables, still traces these reads back to them).
    params = {name: tf.convert_to_tensor(p) for name, p in params.items()}
    return maml_tf.adapt(model, params, support_x, support_y, inner_lr, inner_steps, first_order)


def query_outputs(model, params: dict, support_x, query_x, transductive: bool = False):
    """f_θ'(query_x): with the query set's own BatchNorm statistics (transductive) or the support
    set's (each query then depends on the support set and itself only)."""
    if transductive:
        return model.forward(params, query_x)
    return model.forward(params, query_x, reference=support_x)


def meta_loss(model, params: dict, meta_batch: Episode, inner_lr, inner_steps: int,
              first_order: bool = False, transductive: bool = False):
    """Eq. (2)/(3): the means over the meta-batch's tasks of L_Q and of the metric at each task's θ'.

    ``meta_batch`` holds B tasks along a leading axis: support_x (B, K, ...), ..., query_y (B, Q, ...).
    The gradient of the loss with respect to ``params`` (under a tape) is the meta-gradient.
    """
    support_x, support_y, query_x, query_y = (ops.convert_to_tensor(part) for part in meta_batch)

    def add_task(t, totals):
        loss_total, metric_total = totals
        adapted = adapt(model, params, support_x[t], support_y[t], inner_lr, inner_steps, first_order)
        outputs = query_outputs(model, adapted, support_x[t], query_x[t], transductive)
        return (loss_total + model.loss(outputs, query_y[t]),
                metric_total + model.metric(outputs, query_y[t]))

    tasks = ops.shape(support_x)[0]  # a tensor while fit traces train_step: B is not known then
    zero = ops.zeros([], model.compute_dtype)  # the network's: the inputs may be integers (token ids)
    loss_total, metric_total = ops.fori_loop(0, tasks, add_task, (zero, zero))  # one task at a time
    return loss_total / ops.cast(tasks, zero.dtype), metric_total / ops.cast(tasks, zero.dtype)


def adaptation_curve(model, params: dict, episode: Episode, inner_lr, steps: int, transductive: bool = False):
    """Query loss of one task after 0, 1, ..., ``steps`` gradient steps on its support set.

    Entry 0 is f_θ without adaptation; entry k is what the paper reports "after k steps"
    (Finn et al. Fig. 3). No meta-gradient is needed, so the steps are first-order.
    """
    support_x, support_y, query_x, query_y = episode
    curve = [model.loss(query_outputs(model, params, support_x, query_x, transductive), query_y)]
    for _ in range(steps):
        params = adapt(model, params, support_x, support_y, inner_lr, 1, first_order=True)
        curve.append(model.loss(query_outputs(model, params, support_x, query_x, transductive), query_y))
    return ops.stack(curve)


def cast_floats(episode: Episode, dtype) -> Episode:
    """The floating parts (images, regression inputs and targets) in ``dtype``; labels stay int64."""
    return Episode(*(ops.cast(part, dtype) if keras.backend.is_float_dtype(part.dtype) else part
                     for part in episode))


class InnerLoopLearner(Checkpointed, keras.Model):
    """What every learner of this chapter shares (MAML, Meta-SGD, Reptile): the settings of the
    inner loop, adapting to a test task (``call``, :meth:`predict`, :meth:`adaptation_curve`), one
    meta-step through ``train_on_batch``, and the state of a checkpoint. The learners differ in
    their outer optimizer and in ``train_step``.

    ``call`` and :meth:`predict` adapt with ``test_inner_steps`` first-order steps (Finn et al.,
    Omniglot 5-way: 1 step in training, 3 at test). Note that :meth:`predict` takes an episode: it
    replaces ``keras.Model.predict``. Settings are read when ``call`` is first traced: build a new
    learner to change them.
    """

    framework = "keras"

    def __init__(self, model, inner_lr, inner_steps: int, transductive: bool, test_inner_steps: int | None,
                 **kwargs):
        inner_steps, test_inner_steps = inner_loop_steps(inner_steps, test_inner_steps)
        super().__init__(**kwargs)
        self.model, self.inner_lr, self.inner_steps = model, inner_lr, inner_steps
        self.transductive, self.test_inner_steps = transductive, test_inner_steps
        self.built = True  # the network's weights exist: nothing for fit to build on a first batch
        self._curve = tf.function(lambda episode, steps: adaptation_curve(
            self.model, self.model.params(), episode, self.inner_lr, steps, self.transductive),
            reduce_retracing=True)

    def call(self, inputs, training=False):
        """Query outputs after ``test_inner_steps`` first-order steps on the support set; θ unchanged."""
        support_x, support_y, query_x = inputs
        adapted = adapt(self.model, self.model.params(), support_x, support_y, self.inner_lr,
                        self.test_inner_steps, first_order=True)
        return query_outputs(self.model, adapted, support_x, query_x, self.transductive)

    def _inputs(self, episode: Episode) -> Episode:
        """The episode's floating parts (images, regression values) in the network's dtype."""
        return astype_floats(episode, self.model.compute_dtype)

    def meta_step(self, meta_batch: Episode) -> dict:
        """One meta-update on a meta-batch of tasks (``train_on_batch``); returns the loss and the
        metric of the step: ``{"loss": ..., model.metric_name: ...}``."""
        support_x, support_y, query_x, query_y = self._inputs(meta_batch)
        logs = self.train_on_batch((support_x, support_y, query_x), query_y, return_dict=True)
        return {name: float(value) for name, value in logs.items()}

    def predict(self, episode: Episode) -> np.ndarray:
        """Query outputs (logits or regression values) of one episode after ``test_inner_steps``
        first-order steps on its support set, as :meth:`call` computes them; θ is not updated."""
        support_x, support_y, query_x, _ = self._inputs(episode)
        return np.asarray(self.predict_on_batch((support_x, support_y, query_x)))

    def adaptation_curve(self, episode: Episode, steps: int = 10) -> np.ndarray:
        """Query loss of one task after 0..``steps`` inner steps (see :func:`adaptation_curve`)."""
        return ops.convert_to_numpy(self._curve(self._inputs(episode), steps))


class MAML(InnerLoopLearner):
    """Meta-training of a network of ``networks_keras`` with ``fit``: compile it with the meta-optimizer,

        maml = MAML(Conv4Classifier(way=5), inner_lr=0.4, inner_steps=1, test_inner_steps=3)
        maml.compile(optimizer=common.episodic_tf.Adam(1e-3, epsilon=1e-8))   # β, PyTorch's Adam
        maml.fit(keras_episodes(tasks, iterations, meta_batch_size=32), shuffle=False)

    Each ``fit`` item is ``((support_x, support_y, query_x), query_y)`` of B tasks.
    """

    def __init__(self, model, inner_lr=0.01, inner_steps: int = 1, first_order: bool = False,
                 transductive: bool = False, test_inner_steps: int | None = None, **kwargs):
        super().__init__(model, inner_lr, inner_steps, transductive, test_inner_steps, **kwargs)
        self.first_order = first_order

    def compile(self, optimizer, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        # The optimizer's moments exist from now on, in the order of trainable_variables (as fit
        # would build them): state() and load_state() work before the first meta-step.
        self.optimizer.build(self.trainable_variables)

    def train_step(self, data):
        (support_x, support_y, query_x), query_y, _ = keras.utils.unpack_x_y_sample_weight(data)
        meta_batch = cast_floats(Episode(support_x, support_y, query_x, query_y), self.model.compute_dtype)
        variables = self.trainable_variables  # θ (and, in Meta-SGD, the learned rates α)

        # The meta-gradient of the mean over tasks is the mean of the tasks' meta-gradients: each
        # task gets its own outer tape, freed before the next task's inner loop is recorded, so
        # memory does not grow with the meta-batch (as in maml_torch.py).
        def add_task(t, totals):
            gradients, total_loss, total_metric = totals
            one_task = Episode(*(part[t:t + 1] for part in meta_batch))
            with tf.GradientTape() as tape:  # the outer tape: records the inner gradients too
                value, metric = meta_loss(self.model, self.model.params(), one_task, self.inner_lr,
                                          self.inner_steps, self.first_order, self.transductive)
            gradients = [g + d for g, d in zip(gradients, tape.gradient(value, variables))]
            return gradients, total_loss + value, total_metric + ops.cast(metric, total_loss.dtype)

        tasks = ops.shape(meta_batch.support_x)[0]  # a tensor while fit traces train_step
        zero = ops.zeros([], self.model.compute_dtype)
        gradients, total_loss, total_metric = ops.fori_loop(
            0, tasks, add_task, ([ops.zeros_like(v) for v in variables], zero, zero))
        count = ops.cast(tasks, zero.dtype)
        self.optimizer.apply_gradients(zip([g / count for g in gradients], variables))
        return {"loss": total_loss / count, self.model.metric_name: total_metric / count}
