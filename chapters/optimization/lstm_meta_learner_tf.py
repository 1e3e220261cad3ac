"""The LSTM meta-learner (Ravi & Larochelle, ICLR 2017) in TensorFlow.

The update of the learner's parameters θ is the cell-state update of an LSTM whose cell state *is*
θ, one coordinate at a time (Sec. 3, Eq. 2):

    i_t = σ( W_I · [h_t, θ_{t−1}, i_{t−1}] + b_I )       a learned rate, per coordinate and step
    f_t = σ( W_F · [h_t, θ_{t−1}, f_{t−1}] + b_F )       a learned shrinking of θ
    θ_t = c_t = f_t ⊙ c_{t−1} − i_t ⊙ ∇_t                c_0 = θ_0, a meta-learned parameter

h_t is the output of a first, ordinary LSTM (20 units, shared by all coordinates) reading the
coordinate's gradient and the learner's loss, preprocessed as Andrychowicz et al. (2016) do
(Sec. 3.3; :func:`preprocess`). The gradients ∇_t and losses L_t are constants for the
meta-gradient, as Ravi & Larochelle "ignore the second derivatives" (Sec. 3.2): each is computed
by an inner ``tf.GradientTape`` on ``tf.stop_gradient(θ_{t−1})`` and wrapped in
``tf.stop_gradient``. The outer tape still differentiates the cell-state recursion: through i_t,
f_t (and h_t) to the meta-learner's weights, and through f_t ⊙ c_{t−1} to c_0.

See ``lstm_meta_learner_torch.py`` for the full commentary; the names and structure here are the
same. The meta-learner's weights are ``tf.Variable``\\ s in ``tf.Module``\\ s under the canonical
names and layouts of ``common.weights`` (``lstm.kernel`` (4, 4H), ...), drawn with
``np.random.default_rng(seed)`` in the same order as in PyTorch and Keras. Tasks are looped over
with ``for t in tf.range(B)`` inside ``tf.function``, as in ``maml_tf.py``.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from chapters.optimization.lstm_meta_learner import HIDDEN, PREPROCESS_P, check_steps, updates
from common.episodes import Episode, astype_floats
from common.episodic_tf import Adam
from common.learners import Checkpointed
from common.tf_layers import lstm_cell


def preprocess(x, p: float = PREPROCESS_P):
    """(log|x| / p, sign(x)) if |x| ≥ e^−p, else (−1, e^p · x): shape (...) -> (..., 2)
    (Andrychowicz et al. 2016; Ravi & Larochelle Sec. 3.3). ``log`` reads |x| clipped at e^−p."""
    threshold = math.exp(-p)
    magnitude = tf.abs(x)
    large = magnitude >= threshold
    log_part = tf.where(large, tf.math.log(tf.maximum(magnitude, threshold)) / p, -tf.ones_like(x))
    sign_part = tf.where(large, tf.sign(x), math.exp(p) * x)
    return tf.stack([log_part, sign_part], axis=-1)


class LSTM(tf.Module):
    """The first LSTM's weights: ``kernel`` (in, 4H), ``recurrent_kernel`` (H, 4H), ``bias`` (4H,);
    the arithmetic is ``common.tf_layers.lstm_cell``."""

    def __init__(self, input_size: int, units: int, rng: np.random.Generator, dtype):
        super().__init__()
        bound = 1 / math.sqrt(units)  # PyTorch's nn.LSTMCell default
        self.kernel = tf.Variable(tf.constant(rng.uniform(-bound, bound, (input_size, 4 * units)), dtype),
                                  name="kernel")
        self.recurrent_kernel = tf.Variable(tf.constant(rng.uniform(-bound, bound, (units, 4 * units)), dtype),
                                            name="recurrent_kernel")
        self.bias = tf.Variable(tf.constant(rng.uniform(-bound, bound, (4 * units,)), dtype), name="bias")


class MetaLSTMCell(tf.Module):
    """The special cell of Eq. (2): ``input_kernel`` W_I, ``forget_kernel`` W_F (H + 2, 1),
    ``input_bias`` b_I, ``forget_bias`` b_F (1,), ``initial_params`` c_0 = θ_0 (P,)."""

    def __init__(self, units: int, initial_params: np.ndarray, rng: np.random.Generator, dtype):
        super().__init__()

        def variable(values, name):
            return tf.Variable(tf.constant(values, dtype), name=name)

        self.input_kernel = variable(rng.uniform(-0.01, 0.01, (units + 2, 1)), "input_kernel")
        self.input_bias = variable(rng.uniform(-5, -4, (1,)), "input_bias")  # i ≈ 0.01: a small step
        self.forget_kernel = variable(rng.uniform(-0.01, 0.01, (units + 2, 1)), "forget_kernel")
        self.forget_bias = variable(rng.uniform(4, 6, (1,)), "forget_bias")  # f ≈ 1: no forgetting
        self.initial_params = variable(initial_params, "initial_params")


class MetaLearnerLSTM(tf.Module):
    """The coordinate-wise meta-learner of Ravi & Larochelle Sec. 3: ``lstm`` and ``cell``.

    Built from the learner network (its parameters give θ's names, shapes and order, and c_0's
    starting value); the network itself is not kept.
    """

    def __init__(self, learner_model, hidden: int = HIDDEN, seed: int = 0):
        super().__init__()
        learner_params = learner_model.params()
        dtype = next(iter(learner_params.values())).dtype
        self.names = tuple(learner_params)
        self.shapes = tuple(tuple(p.shape) for p in learner_params.values())
        initial = np.concatenate([np.asarray(p).reshape(-1) for p in learner_params.values()])
        rng = np.random.default_rng(seed)
        self.lstm = LSTM(4, hidden, rng, dtype)
        self.cell = MetaLSTMCell(hidden, initial.astype(np.float64), rng, dtype)
        self.hidden = hidden

    def params(self) -> dict[str, tf.Variable]:
        """The meta-learner's parameters under canonical names (``lstm.kernel``, ...,
        ``cell.initial_params``), in the order of PyTorch's ``named_parameters``."""
        return {**{f"lstm.{name}": getattr(self.lstm, name) for name in ("kernel", "recurrent_kernel", "bias")},
                **{f"cell.{name}": getattr(self.cell, name) for name in
                   ("input_kernel", "input_bias", "forget_kernel", "forget_bias", "initial_params")}}

    def unflatten(self, theta) -> dict:
        """A flat θ (P,) as the learner's parameter dict."""
        sizes = [math.prod(shape) for shape in self.shapes]
        return {name: tf.reshape(part, shape) for name, part, shape in
                zip(self.names, tf.split(theta, sizes), self.shapes)}

    def initial_state(self, theta):
        """(h_0, c_0 of the first LSTM, f_0, i_0): zeros, one row per coordinate of θ."""
        rows = tf.shape(theta)[0]
        zeros = tf.zeros([rows, self.hidden], theta.dtype)
        gates = tf.zeros([rows, 1], theta.dtype)
        return zeros, zeros, gates, gates

    def step(self, gradient, loss, theta, state):
        """One update θ_{t−1} -> θ_t of Eq. (2) for all coordinates: ``gradient`` ∇_t (P,), ``loss``
        L_t (scalar), both constants; ``theta`` θ_{t−1} (P,). Returns (θ_t, the new state)."""
        h, c, forget, input_gate = state
        rows = tf.shape(gradient)[0]
        x = tf.concat([preprocess(gradient), tf.broadcast_to(preprocess(loss), [rows, 2])], 1)  # (P, 4)
        h, c = lstm_cell(x, (h, c), self.lstm.kernel, self.lstm.recurrent_kernel, self.lstm.bias)
        previous = theta[:, None]  # (P, 1): the cell state c_{t−1} = θ_{t−1}
        forget = tf.sigmoid(tf.concat([h, previous, forget], 1) @ self.cell.forget_kernel + self.cell.forget_bias)
        input_gate = tf.sigmoid(tf.concat([h, previous, input_gate], 1) @ self.cell.input_kernel
                                + self.cell.input_bias)
        theta = (forget * previous - input_gate * gradient[:, None])[:, 0]  # c_t = f_t c_{t−1} − i_t ∇_t
        return theta, (h, c, forget, input_gate)


def loss_and_gradient(meta_learner: MetaLearnerLSTM, model, theta, x, y):
    """L_t and ∇_t = ∇_θ L(θ) of the learner on (x, y) at θ, both constants for the meta-gradient
    (Ravi & Larochelle Sec. 3.2): an inner tape on a stopped copy of θ, results stopped too."""
    theta = tf.stop_gradient(theta)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(theta)
        loss = model.loss(model.forward(meta_learner.unflatten(theta), x), y)
    gradient = tape.gradient(loss, theta)
    return tf.stop_gradient(loss), tf.stop_gradient(gradient)


def trajectory(meta_learner: MetaLearnerLSTM, model, support_x, support_y, steps: int) -> list:
    """[θ_0 = c_0, θ_1, ..., θ_steps], flat: the meta-learner's updates on the full support set."""
    theta = tf.convert_to_tensor(meta_learner.cell.initial_params)  # read under the outer tape
    return updates(meta_learner, model, theta, support_x, support_y, steps, loss_and_gradient)


def unroll(meta_learner: MetaLearnerLSTM, model, support_x, support_y, steps: int) -> dict:
    """The learner's parameters θ_T after T = ``steps`` updates on the support set, as a dict of
    the learner's canonical names (under a tape: differentiable in the meta-learner's variables)."""
    return meta_learner.unflatten(trajectory(meta_learner, model, support_x, support_y, steps)[-1])


def meta_loss(meta_learner: MetaLearnerLSTM, model, meta_batch: Episode, steps: int):
    """The mean over the meta-batch's tasks of the query loss at θ_T, and the mean of the model's
    metric there: ``(loss, metric)``. Under a tape, the loss's gradient is the meta-gradient."""
    support_x, support_y, query_x, query_y = (tf.convert_to_tensor(part) for part in meta_batch)
    tasks = tf.shape(support_x)[0]
    loss_total = tf.zeros([], support_x.dtype)
    metric_total = tf.zeros([], support_x.dtype)
    for t in tf.range(tasks):  # one task at a time; a tf.while_loop inside tf.function
        adapted = unroll(meta_learner, model, support_x[t], support_y[t], steps)
        outputs = model.forward(adapted, query_x[t])
        loss_total += model.loss(outputs, query_y[t])
        metric_total += tf.cast(model.metric(outputs, query_y[t]), metric_total.dtype)
    tasks = tf.cast(tasks, loss_total.dtype)
    return loss_total / tasks, metric_total / tasks


def adaptation_curve(meta_learner: MetaLearnerLSTM, model, episode: Episode, steps: int):
    """Query loss of one task at θ_0 = c_0, θ_1, ..., θ_steps."""
    support_x, support_y, query_x, query_y = episode
    thetas = trajectory(meta_learner, model, support_x, support_y, steps)
    return tf.stack([model.loss(model.forward(meta_learner.unflatten(theta), query_x), query_y)
                     for theta in thetas])


class LSTMMetaLearner(Checkpointed):
    """Meta-training of a :class:`MetaLearnerLSTM` for a network of ``networks_tf.py``: Adam (rate
    ``meta_lr``, PyTorch's formula) on the query loss after ``steps`` updates."""

    # The checkpoint: the meta-learner (``meta_learner.<canonical name>``), the optimizer's state and
    # the meta-update counter.
    framework, trained, counters = "tf", "meta_learner", ("meta_steps",)

    def __init__(self, model, steps: int = 5, hidden: int = HIDDEN, meta_lr: float = 1e-3, seed: int = 0):
        check_steps(steps)
        self.model, self.steps = model, steps
        self.meta_learner = MetaLearnerLSTM(model, hidden, seed)
        dtype = self.meta_learner.cell.initial_params.dtype
        # The rate as a function returning it in the variables' dtype (see maml_tf.MAML).
        self.optimizer = Adam(lambda: tf.constant(meta_lr, dtype), epsilon=1e-8)
        self.optimizer.build(list(self.meta_learner.params().values()))
        self.meta_steps = 0  # meta-updates taken
        self._meta_step = tf.function(self._step, reduce_retracing=True)
        self._curve = tf.function(lambda episode, steps: adaptation_curve(
            self.meta_learner, self.model, episode, steps), reduce_retracing=True)

    def _inputs(self, episode: Episode) -> Episode:
        """NumPy episode parts, the floating ones in the meta-learner's dtype."""
        return astype_floats(episode, self.meta_learner.cell.initial_params.dtype.as_numpy_dtype)

    def _step(self, meta_batch: Episode):
        variables = list(self.meta_learner.params().values())
        with tf.GradientTape() as tape:  # the outer tape: the cell-state updates, not ∇_t
            value, metric = meta_loss(self.meta_learner, self.model, meta_batch, self.steps)
        gradients = tape.gradient(value, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return value, metric

    def meta_step(self, meta_batch: Episode) -> dict:
        """One meta-update on a meta-batch of tasks; the meta-loss and metric before the update."""
        value, metric = self._meta_step(self._inputs(meta_batch))
        self.meta_steps += 1
        return {"loss": float(value), self.model.metric_name: float(metric)}

    def adaptation_curve(self, episode: Episode, steps: int | None = None) -> np.ndarray:
        """Query loss of one task after 0..``steps`` updates (default: the ``steps`` of training)."""
        return self._curve(self._inputs(episode), self.steps if steps is None else steps).numpy()
