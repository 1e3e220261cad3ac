"""Episodic training in TensorFlow: one Adam step per episode on the query cross-entropy.

The model is any ``tf.Module`` whose ``__call__(support_x, support_y, query_x, training)``
returns query logits. The step runs inside ``tf.function`` (3-5x faster than eager on a CPU);
``reduce_retracing`` lets one traced function serve 60-way training and 5-way evaluation.
A model trained on another loss (a Siamese network's pair loss) defines
``episode_loss(support_x, support_y, query_x, query_y, training) -> (loss, logits)``; see
:func:`episode_loss`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops
import tensorflow as tf

from common.learners import Checkpointed


def lr_schedule(base: float, decay_every: int | None, decay: float = 0.5):
    """The step decay of ``episodic_torch.lr_schedule`` as a Keras schedule, which the optimizer
    calls with its step count."""
    if not decay_every:
        return base
    return keras.optimizers.schedules.ExponentialDecay(base, decay_every, decay, staircase=True)


def episode_loss(model, support_x, support_y, query_x, query_y):
    """(loss, query logits) of one episode in training mode: the model's own ``episode_loss`` if
    it defines one, else the cross-entropy of its query logits. Accuracy always comes from the logits."""
    if hasattr(model, "episode_loss"):
        return model.episode_loss(support_x, support_y, query_x, query_y, training=True)
    logits = model(support_x, support_y, query_x, training=True)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(query_y, logits)), logits


class Adam(keras.optimizers.Adam):
    """Adam exactly as PyTorch (and Algorithm 1 of Kingma & Ba, 2015) computes it.

    Keras folds both bias corrections into the step size and adds epsilon to the *uncorrected*
    sqrt(v):   w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps).
    PyTorch adds epsilon to the *corrected* one:   w -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps),
    which is Keras's formula with eps * sqrt(1 - b2^t) in place of eps. At the first step that is a
    30x smaller epsilon; weights with small gradients then move differently in the two frameworks.
    Using this update, the three frameworks take the same steps.
    """

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        # Keras's own ``ops.cast(self.beta_2, dtype)`` goes through a float32 constant, so in float64
        # 1 - beta_2**t is off by 1e-5; convert the Python floats straight to the variable's dtype.
        beta_1_power = ops.power(ops.convert_to_tensor(self.beta_1, variable.dtype), step)
        beta_2_power = ops.power(ops.convert_to_tensor(self.beta_2, variable.dtype), step)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, (gradient - m) * (1 - self.beta_1))
        self.assign_add(v, (ops.square(gradient) - v) * (1 - self.beta_2))
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        epsilon = self.epsilon * ops.sqrt(1 - beta_2_power)
        self.assign_sub(variable, m * alpha / (ops.sqrt(v) + epsilon))


class EpisodicLearner(Checkpointed):
    framework = "tf"

    def __init__(self, model: tf.Module, learning_rate: float = 1e-3,
                 decay_every: int | None = None, decay: float = 0.5):
        self.model = model
        self.optimizer = Adam(lr_schedule(learning_rate, decay_every, decay), epsilon=1e-8)  # PyTorch's epsilon
        self.optimizer.build(model.trainable_variables)
        self._train_step = tf.function(self._step, reduce_retracing=True)
        self._logits = tf.function(lambda s, y, q: self.model(s, y, q, training=False), reduce_retracing=True)

    def _step(self, support_x, support_y, query_x, query_y):
        with tf.GradientTape() as tape:
            loss, logits = episode_loss(self.model, support_x, support_y, query_x, query_y)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        accuracy = tf.reduce_mean(tf.cast(tf.argmax(logits, 1) == query_y, tf.float32))
        return loss, accuracy

    def train_step(self, episode) -> dict:
        loss, accuracy = self._train_step(*episode)
        return {"loss": float(loss), "accuracy": float(accuracy)}

    def predict(self, episode) -> np.ndarray:
        return tf.argmax(self._logits(episode.support_x, episode.support_y, episode.query_x), 1).numpy()


def optimizer_arrays(optimizer) -> dict:
    """A (built) Keras optimizer's variables, its step count and slots (Adam's moments, ...), as
    NumPy arrays named ``optimizer.<i>``: the optimizer's part of a checkpoint (TensorFlow and Keras)."""
    return {f"optimizer.{i}": np.asarray(variable) for i, variable in enumerate(optimizer.variables)}


def load_optimizer_arrays(optimizer, arrays: dict) -> None:
    """The inverse of :func:`optimizer_arrays` (other keys of ``arrays`` are ignored)."""
    for i, variable in enumerate(optimizer.variables):
        variable.assign(arrays[f"optimizer.{i}"])
