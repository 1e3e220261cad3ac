"""The LSTM meta-learner (Ravi & Larochelle, ICLR 2017) in Keras 3.

The update of the learner's parameters θ is the cell-state update of an LSTM whose cell state *is*
θ, one coordinate at a time (Sec. 3, Eq. 2, written out in ``lstm_meta_learner_torch.py``):
θ_t = c_t = f_t ⊙ c_{t−1} − i_t ⊙ ∇_t, with c_0 = θ_0 meta-learned, a learned rate i_t and a
learned shrinking f_t per coordinate and step, each gate reading [h_t, θ_{t−1}, its own last value].
h_t is the output of a first, ordinary LSTM (20 units, shared by all coordinates) reading the
coordinate's gradient and the learner's loss, preprocessed as Andrychowicz et al. (2016) do
(Sec. 3.3; :func:`preprocess`). The gradients ∇_t and losses L_t are constants for the
meta-gradient (Sec. 3.2, "we ignore the second derivatives"): TensorFlow's ``loss_and_gradient``
computes them, an inner ``tf.GradientTape`` (the backend's) on a stopped copy of θ_{t−1}, its
results stopped too. The meta-gradient goes through the cell-state recursion only: i_t, f_t, h_t
and c_0.

The arithmetic is ``keras.ops``. The meta-learner is a ``keras.layers.Layer`` whose weights
(``add_weight``) have the canonical names and layouts of ``common.weights`` and are drawn with
``np.random.default_rng(seed)`` in the same order as in PyTorch and TensorFlow. The trainer,
:class:`LSTMMetaLearner`, is a ``keras.Model`` whose ``train_step`` unrolls every task of a
meta-batch and takes the Adam step; it is trained with ``fit`` on
``common.adapters.keras_episodes(tasks, count, meta_batch_size=B)`` (``shuffle=False``) or with
``train_on_batch`` (:meth:`LSTMMetaLearner.meta_step`), as ``maml_keras.MAML`` is. Tasks are
looped over with ``ops.fori_loop``.

See ``lstm_meta_learner_torch.py`` for the full commentary; the names and structure here are the same.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from chapters.optimization.lstm_meta_learner import HIDDEN, PREPROCESS_P, check_steps, updates
from chapters.optimization.lstm_meta_learner_tf import loss_and_gradient  # the backend's inner tape
from common.episodes import Episode, astype_floats
from common.learners import Checkpointed


def preprocess(x, p: float = PREPROCESS_P):
    """(log|x| / p, sign(x)) if |x| ≥ e^−p, else (−1, e^p · x): shape (...) -> (..., 2)
    (Andrychowicz et al. 2016; Ravi & Larochelle Sec. 3.3). ``log`` reads |x| clipped at e^−p."""
    threshold = math.exp(-p)
    magnitude = ops.abs(x)
    large = magnitude >= threshold
    log_part = ops.where(large, ops.log(ops.maximum(magnitude, threshold)) / p, -ops.ones_like(x))
    sign_part = ops.where(large, ops.sign(x), math.exp(p) * x)
    return ops.stack([log_part, sign_part], axis=-1)


def lstm_cell(x, state, kernel, recurrent_kernel, bias):
    """One step of an ordinary LSTM, ``(x, (h, c)) -> (h', c')``, gates in the canonical order
    input, forget, candidate, output (as ``keras.layers.LSTMCell`` and ``common.tf_layers``)."""
    h, c = state
    i, f, g, o = ops.split(ops.matmul(x, kernel) + ops.matmul(h, recurrent_kernel) + bias, 4, axis=-1)
    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    return ops.sigmoid(o) * ops.tanh(c), c


def weight(layer: keras.layers.Layer, name: str, values: np.ndarray) -> keras.Variable:
    """A weight of ``layer`` named ``name``, holding ``values`` (in the layer's dtype)."""
    variable = layer.add_weight(shape=values.shape, initializer="zeros", name=name)
    variable.assign(values)
    return variable


class LSTM(keras.layers.Layer):
    """The first LSTM's weights: ``kernel`` (in, 4H), ``recurrent_kernel`` (H, 4H), ``bias`` (4H,)."""

    def __init__(self, input_size: int, units: int, rng: np.random.Generator, **kwargs):
        super().__init__(**kwargs)
        bound = 1 / math.sqrt(units)  # PyTorch's nn.LSTMCell default
        self.kernel = weight(self, "kernel", rng.uniform(-bound, bound, (input_size, 4 * units)))
        self.recurrent_kernel = weight(self, "recurrent_kernel", rng.uniform(-bound, bound, (units, 4 * units)))
        self.bias = weight(self, "bias", rng.uniform(-bound, bound, (4 * units,)))
        self.built = True


class MetaLSTMCell(keras.layers.Layer):
    """The special cell of Eq. (2): ``input_kernel`` W_I, ``forget_kernel`` W_F (H + 2, 1),
    ``input_bias`` b_I, ``forget_bias`` b_F (1,), ``initial_params`` c_0 = θ_0 (P,)."""

    def __init__(self, units: int, initial_params: np.ndarray, rng: np.random.Generator, **kwargs):
        super().__init__(**kwargs)
        self.input_kernel = weight(self, "input_kernel", rng.uniform(-0.01, 0.01, (units + 2, 1)))
        self.input_bias = weight(self, "input_bias", rng.uniform(-5, -4, (1,)))  # i ≈ 0.01: a small step
        self.forget_kernel = weight(self, "forget_kernel", rng.uniform(-0.01, 0.01, (units + 2, 1)))
        self.forget_bias = weight(self, "forget_bias", rng.uniform(4, 6, (1,)))  # f ≈ 1: no forgetting
        self.initial_params = weight(self, "initial_params", initial_params)
        self.built = True


class MetaLearnerLSTM(keras.layers.Layer):
    """The coordinate-wise meta-learner of Ravi & Larochelle Sec. 3: ``lstm`` and ``cell``.

    Built from the learner network (its parameters give θ's names, shapes and order, and c_0's
    starting value); the network itself is not kept.
    """

    def __init__(self, learner_model, hidden: int = HIDDEN, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        learner_params = learner_model.params()
        self.names = tuple(learner_params)
        self.shapes = tuple(tuple(p.shape) for p in learner_params.values())
        initial = np.concatenate([ops.convert_to_numpy(p).reshape(-1) for p in learner_params.values()])
        rng = np.random.default_rng(seed)
        self.lstm = LSTM(4, hidden, rng)
        self.cell = MetaLSTMCell(hidden, initial.astype(np.float64), rng)
        self.hidden = hidden
        self.built = True

    def params(self) -> dict:
        """The meta-learner's parameters under canonical names (``lstm.kernel``, ...,
        ``cell.initial_params``), in the order of PyTorch's ``named_parameters``."""
        return {**{f"lstm.{name}": getattr(self.lstm, name) for name in ("kernel", "recurrent_kernel", "bias")},
                **{f"cell.{name}": getattr(self.cell, name) for name in
                   ("input_kernel", "input_bias", "forget_kernel", "forget_bias", "initial_params")}}

    def unflatten(self, theta) -> dict:
        """A flat θ (P,) as the learner's parameter dict."""
        ends = np.cumsum([math.prod(shape) for shape in self.shapes])[:-1].tolist()
        return {name: ops.reshape(part, shape) for name, part, shape in
                zip(self.names, ops.split(theta, ends), self.shapes)}

    def initial_state(self, theta):
        """(h_0, c_0 of the first LSTM, f_0, i_0): zeros, one row per coordinate of θ."""
        rows = ops.shape(theta)[0]
        zeros = ops.zeros((rows, self.hidden), theta.dtype)
        gates = ops.zeros((rows, 1), theta.dtype)
        return zeros, zeros, gates, gates

    def step(self, gradient, loss, theta, state):
        """One update θ_{t−1} -> θ_t of Eq. (2) for all coordinates: ``gradient`` ∇_t (P,), ``loss``
        L_t (scalar), both constants; ``theta`` θ_{t−1} (P,). Returns (θ_t, the new state)."""
        h, c, forget, input_gate = state
        rows = ops.shape(gradient)[0]
        x = ops.concatenate([preprocess(gradient), ops.broadcast_to(preprocess(loss), (rows, 2))], axis=1)
        h, c = lstm_cell(x, (h, c), self.lstm.kernel, self.lstm.recurrent_kernel, self.lstm.bias)
        previous = theta[:, None]  # (P, 1): the cell state c_{t−1} = θ_{t−1}
        forget = ops.sigmoid(ops.matmul(ops.concatenate([h, previous, forget], axis=1), self.cell.forget_kernel)
                             + self.cell.forget_bias)
        input_gate = ops.sigmoid(ops.matmul(ops.concatenate([h, previous, input_gate], axis=1),
                                            self.cell.input_kernel) + self.cell.input_bias)
        theta = (forget * previous - input_gate * gradient[:, None])[:, 0]  # c_t = f_t c_{t−1} − i_t ∇_t
        return theta, (h, c, forget, input_gate)


def trajectory(meta_learner: MetaLearnerLSTM, model, support_x, support_y, steps: int) -> list:
    """[θ_0 = c_0, θ_1, ..., θ_steps], flat: the meta-learner's updates on the full support set."""
    # A tape watches tensors: read the Keras variable into its value (the outer tape, which
    # watches the variables, still traces this read back to it).
    theta = tf.convert_to_tensor(meta_learner.cell.initial_params)
    return updates(meta_learner, model, theta, support_x, support_y, steps, loss_and_gradient)


def unroll(meta_learner: MetaLearnerLSTM, model, support_x, support_y, steps: int) -> dict:
    """The learner's parameters θ_T after T = ``steps`` updates on the support set, as a dict of
    the learner's canonical names (under a tape: differentiable in the meta-learner's variables)."""
    return meta_learner.unflatten(trajectory(meta_learner, model, support_x, support_y, steps)[-1])


def meta_loss(meta_learner: MetaLearnerLSTM, model, meta_batch: Episode, steps: int):
    """The means over the meta-batch's tasks of the query loss and of the metric at θ_T."""
    support_x, support_y, query_x, query_y = (ops.convert_to_tensor(part) for part in meta_batch)

    def add_task(t, totals):
        loss_total, metric_total = totals
        adapted = unroll(meta_learner, model, support_x[t], support_y[t], steps)
        outputs = model.forward(adapted, query_x[t])
        return (loss_total + model.loss(outputs, query_y[t]),
                metric_total + model.metric(outputs, query_y[t]))

    tasks = ops.shape(support_x)[0]  # a tensor while fit traces train_step: B is not known then
    zero = ops.zeros([], support_x.dtype)
    loss_total, metric_total = ops.fori_loop(0, tasks, add_task, (zero, zero))  # one task at a time
    return loss_total / ops.cast(tasks, zero.dtype), metric_total / ops.cast(tasks, zero.dtype)


def adaptation_curve(meta_learner: MetaLearnerLSTM, model, episode: Episode, steps: int):
    """Query loss of one task at θ_0 = c_0, θ_1, ..., θ_steps."""
    support_x, support_y, query_x, query_y = episode
    thetas = trajectory(meta_learner, model, support_x, support_y, steps)
    return ops.stack([model.loss(model.forward(meta_learner.unflatten(theta), query_x), query_y)
                      for theta in thetas])


class LSTMMetaLearner(Checkpointed, keras.Model):
    """Meta-training of a :class:`MetaLearnerLSTM` for a network of ``networks_keras`` with ``fit``:

        learner = LSTMMetaLearner(SinusoidMLP(), steps=5)
        learner.compile(optimizer=common.episodic_tf.Adam(1e-3, epsilon=1e-8))   # PyTorch's Adam
        learner.fit(keras_episodes(tasks, iterations, meta_batch_size=25), shuffle=False)

    Each ``fit`` item is ``((support_x, support_y, query_x), query_y)`` of B tasks. The learner
    network's own weights are a template only (θ's names and shapes, c_0's start): they are
    frozen, and the trainable variables are the meta-learner's.
    """

    # The checkpoint: the meta-learner (``meta_learner.<canonical name>``), the optimizer's state and
    # the meta-update counter.
    framework, trained, counters = "keras", "meta_learner", ("meta_steps",)

    def __init__(self, model, steps: int = 5, hidden: int = HIDDEN, seed: int = 0, **kwargs):
        check_steps(steps)
        super().__init__(**kwargs)
        model.trainable = False  # θ lives in the meta-learner's c_0, not in the network's weights
        self.model, self.steps = model, steps
        self.meta_learner = MetaLearnerLSTM(model, hidden, seed)
        self.meta_steps = 0  # meta-updates taken by meta_step (fit keeps its own count)
        self.built = True
        self._curve = tf.function(lambda episode, steps: adaptation_curve(
            self.meta_learner, self.model, episode, steps), reduce_retracing=True)

    def compile(self, optimizer, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        # The moments exist from now on, in the order of trainable_variables, as fit would build them.
        self.optimizer.build(self.trainable_variables)

    def train_step(self, data):
        (support_x, support_y, query_x), query_y, _ = keras.utils.unpack_x_y_sample_weight(data)
        dtype = self.meta_learner.compute_dtype
        meta_batch = Episode(*(ops.cast(part, dtype) if keras.backend.is_float_dtype(part.dtype) else part
                               for part in (support_x, support_y, query_x, query_y)))
        variables = self.trainable_variables  # the meta-learner's: lstm, cell (c_0 included)
        with tf.GradientTape() as tape:  # the outer tape: the cell-state updates, not ∇_t
            value, metric = meta_loss(self.meta_learner, self.model, meta_batch, self.steps)
        gradients = tape.gradient(value, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return {"loss": value, self.model.metric_name: metric}

    def _inputs(self, episode: Episode) -> Episode:
        """The episode's floating parts in the meta-learner's dtype."""
        return astype_floats(episode, self.meta_learner.compute_dtype)

    def meta_step(self, meta_batch: Episode) -> dict:
        """One meta-update on a meta-batch of tasks (``train_on_batch``); returns the meta-loss and
        the metric before the update: ``{"loss": ..., model.metric_name: ...}``."""
        support_x, support_y, query_x, query_y = self._inputs(meta_batch)
        logs = self.train_on_batch((support_x, support_y, query_x), query_y, return_dict=True)
        self.meta_steps += 1
        return {name: float(value) for name, value in logs.items()}

    def adaptation_curve(self, episode: Episode, steps: int | None = None) -> np.ndarray:
        """Query loss of one task after 0..``steps`` updates (default: the ``steps`` of training)."""
        return ops.convert_to_numpy(self._curve(self._inputs(episode), self.steps if steps is None else steps))
