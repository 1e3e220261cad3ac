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
algorithm is written once for any network of ``networks_tf.py``: a ``model`` with ``params()``
(θ, a dict of canonical names and layouts), ``forward(params, x, reference=None)`` (the network
run on any such dict, the variables or adapted tensors), ``loss`` and ``metric``. The sinusoid
MLP of Sec. 5.1 (mean squared error) and the Omniglot Conv-4 classifier of Sec. 5.2
(cross-entropy, accuracy) go through the same code.

The inner learning rate α is a number (MAML) or a dict of tensors shaped like θ (Meta-SGD, see
``metasgd_tf.py``: θ' = θ − α ∘ ∇L_S(θ), elementwise).

BatchNorm (Conv-4) uses the statistics of the batch it is given, never running ones. The support
set is always normalised with its own statistics; the query set either with its own
(``transductive=True``, Finn et al.'s code and the numbers of their paper: a query's prediction
depends on the other queries) or with the support set's (``transductive=False``: each query is
classified on its own). See ``networks_tf.py``.

Tasks are looped over with ``for t in tf.range(B)``, which AutoGraph turns into one
``tf.while_loop`` inside ``tf.function``: exact second-order gradients, and traced in seconds,
where a Python loop unrolled over 25 tasks takes ~20 s to trace on a CPU.

Second derivatives are less forgiving than first ones: a ``stop_gradient`` inside any op of the
network, harmless for ordinary training, silently removes part of the Hessian term. The networks
here have none; that is why their BatchNorm does not use ``tf.nn.moments``, which has one (see
``common.tf_layers.moments``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from chapters.optimization.maml import check_inner_steps, inner_loop_steps
from common.episodes import Episode, astype_floats
from common.episodic_tf import Adam
from common.learners import Checkpointed


def adapt(model, params: dict, support_x, support_y, inner_lr, inner_steps: int,
          first_order: bool = False) -> dict:
    """θ' after ``inner_steps`` gradient steps θ ← θ − α ∇_θ L_S(θ) (Eq. 1), as a new dict.

    ``inner_lr`` is α: a number, or a dict name -> tensor shaped like ``params[name]`` (Meta-SGD's
    θ − α ∘ ∇L_S(θ)). The support set is normalised with its own statistics (``reference=None``).

    Second order (default): called under an outer tape, which records this inner gradient
    computation and later differentiates through it. First order: ``tf.stop_gradient`` makes
    the inner gradients constants for the outer tape.
    """
    check_inner_steps(inner_steps)
    for _ in range(inner_steps):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(list(params.values()))
            support_loss = model.loss(model.forward(params, support_x), support_y)
        gradients = tape.gradient(support_loss, list(params.values()))
        if first_order:
            gradients = [tf.stop_gradient(g) for g in gradients]
        params = {name: p - (inner_lr[name] if isinstance(inner_lr, Mapping) else inner_lr) * g
                  for (name, p), g in zip(params.items(), gradients)}
    return params


def query_outputs(model, params: dict, support_x, query_x, transductive: bool = False):
    """f_θ'(query_x); BatchNorm statistics from the query set itself (transductive) or from the
    support set (each query on its own)."""
    if transductive:
        return model.forward(params, query_x)
    return model.forward(params, query_x, reference=support_x)


def meta_loss(model, params: dict, meta_batch: Episode, inner_lr, inner_steps: int,
              first_order: bool = False, transductive: bool = False):
    """Eq. (2)/(3): the mean over the meta-batch's tasks of L_Q at each task's adapted θ',
    and the mean of the model's metric (MSE, accuracy) there: ``(loss, metric)``.

    ``meta_batch`` holds B tasks along a leading axis: support_x (B, K, ...), ..., query_y (B, Q, ...).
    The gradient of the loss with respect to ``params`` (under a tape) is the meta-gradient.
    """
    support_x, support_y, query_x, query_y = (tf.convert_to_tensor(part) for part in meta_batch)
    tasks = tf.shape(support_x)[0]
    dtype = next(iter(params.values())).dtype  # θ's: the inputs may be integers (token ids)
    loss_total = tf.zeros([], dtype)
    metric_total = tf.zeros([], dtype)
    for t in tf.range(tasks):  # one task at a time; a tf.while_loop inside tf.function
        adapted = adapt(model, params, support_x[t], support_y[t], inner_lr, inner_steps, first_order)
        outputs = query_outputs(model, adapted, support_x[t], query_x[t], transductive)
        loss_total += model.loss(outputs, query_y[t])
        metric_total += tf.cast(model.metric(outputs, query_y[t]), metric_total.dtype)
    tasks = tf.cast(tasks, loss_total.dtype)
    return loss_total / tasks, metric_total / tasks


def adaptation_curve(model, params: dict, episode: Episode, inner_lr, steps: int,
                     transductive: bool = False):
    """Query loss of one task after 0, 1, ..., ``steps`` gradient steps on its support set.

    Entry 0 is f_θ without adaptation; entry k is what the paper reports "after k steps"
    (Finn et al. Fig. 3). No meta-gradient is needed, so the steps are first-order.
    """
    support_x, support_y, query_x, query_y = episode
    curve = [model.loss(query_outputs(model, params, support_x, query_x, transductive), query_y)]
    for _ in range(steps):
        params = adapt(model, params, support_x, support_y, inner_lr, 1, first_order=True)
        curve.append(model.loss(query_outputs(model, params, support_x, query_x, transductive), query_y))
    return tf.stack(curve)


class InnerLoopLearner(Checkpointed):
    """What every learner of this chapter shares (MAML, Meta-SGD, Reptile): the settings of the
    inner loop, adapting to a test task (:meth:`predict`, :meth:`adaptation_curve`) and the state
    of a checkpoint. The learners differ in their outer optimizer and in ``meta_step``.

    ``test_inner_steps`` are the inner steps :meth:`predict` takes on a test task (default:
    ``inner_steps``); Finn et al. take 1 in training and 3 at test on 5-way Omniglot. Settings are
    read when :meth:`predict` is first traced: build a new learner to change them.
    """

    framework = "tf"

    def __init__(self, model, inner_lr, inner_steps: int, transductive: bool, test_inner_steps: int | None):
        inner_steps, test_inner_steps = inner_loop_steps(inner_steps, test_inner_steps)
        self.model, self.inner_lr, self.inner_steps = model, inner_lr, inner_steps
        self.transductive, self.test_inner_steps = transductive, test_inner_steps
        self.optimizer = None  # the outer optimizer: each learner sets (and builds) its own
        # Compiled: 3-5x faster than eager on a CPU; reduce_retracing lets one trace serve
        # meta-batches, support and query sets of any size.
        self._predict = tf.function(self._adapted_outputs, reduce_retracing=True)
        self._curve = tf.function(lambda episode, steps: adaptation_curve(
            self.model, self.model.params(), episode, self.inner_lr, steps, self.transductive),
            reduce_retracing=True)

    def _inputs(self, episode: Episode) -> Episode:
        """NumPy episode parts, the floating ones (images, regression targets) in the model's dtype."""
        return astype_floats(episode, next(iter(self.model.params().values())).dtype.as_numpy_dtype)

    def _adapted_outputs(self, support_x, support_y, query_x):
        adapted = adapt(self.model, self.model.params(), support_x, support_y, self.inner_lr,
                        self.test_inner_steps, first_order=True)
        return query_outputs(self.model, adapted, support_x, query_x, self.transductive)

    def predict(self, episode: Episode) -> np.ndarray:
        """Query outputs (logits, or regression values) after ``test_inner_steps`` steps on the
        episode's support set. θ itself is not changed."""
        support_x, support_y, query_x, _ = self._inputs(episode)
        return self._predict(support_x, support_y, query_x).numpy()

    def adaptation_curve(self, episode: Episode, steps: int = 10) -> np.ndarray:
        """Query loss of one task after 0..``steps`` inner steps (see :func:`adaptation_curve`)."""
        return self._curve(self._inputs(episode), steps).numpy()


class MAML(InnerLoopLearner):
    """Meta-training of any network of ``networks_tf.py``: Adam (rate β) on the meta-loss, Eq. (3)."""

    def __init__(self, model, inner_lr: float = 0.01, inner_steps: int = 1, first_order: bool = False,
                 meta_lr: float = 1e-3, transductive: bool = False, test_inner_steps: int | None = None):
        super().__init__(model, inner_lr, inner_steps, transductive, test_inner_steps)
        self.first_order = first_order
        # PyTorch's Adam formula and epsilon. The rate is given as a function returning it in θ's
        # dtype: a plain float Keras keeps in float32 (1e-3 is then 5e-8 off), which in a float64
        # model moves θ differently from PyTorch's Adam by ~1e-9 after a few steps.
        dtype = next(iter(model.params().values())).dtype
        self.optimizer = Adam(lambda: tf.constant(meta_lr, dtype), epsilon=1e-8)
        self.optimizer.build(self._meta_parameters())
        self._meta_step = tf.function(self._step, reduce_retracing=True)

    def _meta_parameters(self) -> list[tf.Variable]:
        """What the outer loop learns: θ (Meta-SGD adds α)."""
        return list(self.model.params().values())

    def _step(self, meta_batch: Episode):
        # The meta-gradient of the mean over tasks is the mean of the tasks' meta-gradients: each
        # task gets its own outer tape, freed before the next task's inner loop is recorded, so
        # memory does not grow with the meta-batch (as in maml_torch.py).
        variables = self._meta_parameters()
        meta_batch = Episode(*(tf.convert_to_tensor(part) for part in meta_batch))
        tasks = tf.shape(meta_batch.support_x)[0]
        gradients = [tf.zeros_like(v) for v in variables]
        total_loss = total_metric = tf.zeros([], variables[0].dtype)  # θ's (inputs may be token ids)
        for t in tf.range(tasks):
            one_task = Episode(*(part[t:t + 1] for part in meta_batch))
            with tf.GradientTape() as tape:  # the outer tape: records the inner gradients too
                value, metric = meta_loss(self.model, self.model.params(), one_task, self.inner_lr,
                                          self.inner_steps, self.first_order, self.transductive)
            gradients = [g + d for g, d in zip(gradients, tape.gradient(value, variables))]
            total_loss, total_metric = total_loss + value, total_metric + tf.cast(metric, total_loss.dtype)
        count = tf.cast(tasks, total_loss.dtype)
        self.optimizer.apply_gradients(zip([g / count for g in gradients], variables))
        return total_loss / count, total_metric / count

    def meta_step(self, meta_batch: Episode) -> dict:
        """One meta-update on a meta-batch of tasks; the meta-loss and metric before the update."""
        value, metric = self._meta_step(self._inputs(meta_batch))
        return {"loss": float(value), self.model.metric_name: float(metric)}
