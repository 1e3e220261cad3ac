"""Memory-augmented neural network with least-recently-used access (Santoro et al., ICML 2016) in TensorFlow.

Cosine similarity K, read weights softmax_i K(k_t, M_t(i)), read vector r_t = sum_i w^r_t(i) M_t(i),
LRUA write weights w^w_t = σ(α) w^r_{t-1} + (1 - σ(α)) w^lu_{t-1}, the write
M_t(i) = M_{t-1}(i) + w^w_t(i) k_t after zeroing the least-used row, usage
w^u_t = γ w^u_{t-1} + w^r_t + w^w_t. See ``mann_torch.py`` for the full commentary; the names and
structure here are the same. The time loop is a ``tf.scan`` (a compiled while loop) inside the
``tf.function`` of the training step.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from chapters.model_based.mann import check_sequence, write_weights
from common.learners import Checkpointed
from common.tf_layers import Dense, LSTMCell

MEMORY_INIT = 1e-6  # every memory cell starts at this small constant: a cosine needs a nonzero row
NORM_EPS = 1e-8     # inside the square roots of the norms: a zeroed row has a finite gradient


def least_used(usage, n):
    """w^lu, 1 on the ``n`` rows of smallest usage (B, N); and the one row of smallest usage.
    Ties go to the lower row index (pairwise ranks, not a top-k: see ``mann_torch.least_used``)."""
    rows = tf.shape(usage)[1]
    smaller = usage[:, None, :] < usage[:, :, None]                  # [b, i, j]: u_j < u_i
    lower = tf.linalg.band_part(tf.ones((rows, rows), tf.bool), -1, 0) & ~tf.eye(rows, dtype=tf.bool)  # j < i
    tied_before = tf.equal(usage[:, None, :], usage[:, :, None]) & lower
    rank = tf.reduce_sum(tf.cast(smaller | tied_before, tf.int32), -1)
    return tf.cast(rank < n, usage.dtype), tf.cast(rank == 0, usage.dtype)


def cosine_similarity(keys, memory):
    """K(k_r, M(i)) for every head r and row i; (B, R, W), (B, N, W) -> (B, R, N)."""
    key_norms = tf.sqrt(tf.reduce_sum(tf.square(keys), -1) + NORM_EPS)
    row_norms = tf.sqrt(tf.reduce_sum(tf.square(memory), -1) + NORM_EPS)
    return tf.matmul(keys, memory, transpose_b=True) / (key_norms[:, :, None] * row_norms[:, None, :])


def run_sequence(network, images, labels, trace=False):
    """Logits (B, T, way) of every step, the time loop as a ``tf.scan``; with ``trace``, also every
    step's state (B, T, ...). Shared by ``MANN`` and ``LSTMBaseline``."""
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    x = tf.reshape(images, (shape[0], shape[1], -1))
    y_previous = tf.concat([tf.zeros_like(tf.one_hot(labels[:, :1], network.way, dtype=x.dtype)),
                            tf.one_hot(labels[:, :-1], network.way, dtype=x.dtype)], 1)
    time_major = (tf.transpose(x, (1, 0, 2)), tf.transpose(y_previous, (1, 0, 2)))
    initial = network.initial_state(shape[0], x.dtype)
    logits0 = tf.zeros((shape[0], network.way), x.dtype)

    def step(carried, inputs):
        _, state = carried
        return network.step(inputs[0], inputs[1], state)

    logits, states = tf.scan(step, time_major, initializer=(logits0, network.traced(initial)))
    batch_major = lambda t: tf.transpose(t, tf.concat([[1, 0], tf.range(2, tf.rank(t))], 0))  # noqa: E731
    if not trace:
        return batch_major(logits)
    return batch_major(logits), {name: batch_major(value) for name, value in states.items()}


class MANN(tf.Module):
    def __init__(self, way: int = 5, image_size: int = 20, controller: int = 200, memory_rows: int = 128,
                 memory_width: int = 40, read_heads: int = 4, gamma: float = 0.95, add_vector: bool = False,
                 dtype=tf.float32, seed=None):
        super().__init__()
        rng = tf.random.Generator.from_seed(seed) if seed is not None else None
        self.way, self.rows, self.width, self.heads, self.gamma = way, memory_rows, memory_width, read_heads, gamma
        self.units, self.add_vector = controller, add_vector
        self.controller = LSTMCell(image_size ** 2 + way + read_heads * memory_width, controller, dtype=dtype, seed=rng)
        self.key = Dense(controller, read_heads * memory_width, dtype=dtype, seed=rng)   # k_t of every head
        self.gate = Dense(controller, read_heads, dtype=dtype, seed=rng)                 # α of every head
        self.readout = Dense(controller + read_heads * memory_width, way, dtype=dtype, seed=rng)
        if add_vector:  # a_t of every head, from a generator of its own: the rest starts as the paper's MANN
            add_rng = tf.random.Generator.from_seed(seed + 1) if seed is not None else None
            self.add = Dense(controller, read_heads * memory_width, dtype=dtype, seed=add_rng)

    def initial_state(self, batch, dtype) -> dict:
        return {"h": tf.zeros((batch, self.units), dtype), "c": tf.zeros((batch, self.units), dtype),
                "memory": tf.fill((batch, self.rows, self.width), tf.constant(MEMORY_INIT, dtype)),
                "read_weights": tf.zeros((batch, self.heads, self.rows), dtype),
                "usage": tf.zeros((batch, self.rows), dtype), "reads": tf.zeros((batch, self.heads, self.width), dtype)}

    def traced(self, state: dict) -> dict:
        """The state plus what a step computes only for the trace (the write weights)."""
        return {**state, "write_weights": tf.zeros_like(state["read_weights"])}

    def step(self, x, y_previous, state):
        """One time step: (B, H*W) pixels, (B, way) one-hot previous label -> (B, way) logits, new state."""
        batch = tf.shape(x)[0]
        h, c = self.controller(tf.concat([x, y_previous, tf.reshape(state["reads"], (batch, -1))], 1),
                               (state["h"], state["c"]))
        keys = tf.reshape(tf.tanh(self.key(h)), (batch, self.heads, self.width))
        contents = tf.reshape(tf.tanh(self.add(h)), (batch, self.heads, self.width)) if self.add_vector else keys
        gate = tf.sigmoid(self.gate(h))
        least, least_one = least_used(state["usage"], self.heads)              # from w^u_{t-1}
        writes = write_weights(state["read_weights"], least, gate)
        memory = state["memory"] * (1 - least_one[:, :, None]) + tf.matmul(writes, contents, transpose_a=True)  # the write
        read_weights = tf.nn.softmax(cosine_similarity(keys, memory), -1)      # read weights
        reads = tf.matmul(read_weights, memory)                                # read vectors
        usage = self.gamma * state["usage"] + tf.reduce_sum(read_weights, 1) + tf.reduce_sum(writes, 1)  # usage
        logits = self.readout(tf.concat([h, tf.reshape(reads, (batch, -1))], 1))
        return logits, {"h": h, "c": c, "memory": memory, "read_weights": read_weights, "usage": usage,
                        "reads": reads, "write_weights": writes}

    def __call__(self, images, labels, trace=False):
        """Logits of every step, (B, T, way), from images (B, T, H, W, C) and their labels (B, T)."""
        return run_sequence(self, images, labels, trace)


class LSTMBaseline(tf.Module):
    """The controller alone: an LSTM reading (x_t, y_{t-1}), its output through a softmax layer."""

    def __init__(self, way: int = 5, image_size: int = 20, controller: int = 200, dtype=tf.float32, seed=None):
        super().__init__()
        rng = tf.random.Generator.from_seed(seed) if seed is not None else None
        self.way, self.units = way, controller
        self.controller = LSTMCell(image_size ** 2 + way, controller, dtype=dtype, seed=rng)
        self.readout = Dense(controller, way, dtype=dtype, seed=rng)

    def initial_state(self, batch, dtype) -> dict:
        return {"h": tf.zeros((batch, self.units), dtype), "c": tf.zeros((batch, self.units), dtype)}

    def traced(self, state: dict) -> dict:
        return state

    def step(self, x, y_previous, state):
        h, c = self.controller(tf.concat([x, y_previous], 1), (state["h"], state["c"]))
        return self.readout(h), {"h": h, "c": c}

    def __call__(self, images, labels, trace=False):
        return run_sequence(self, images, labels, trace)


def build_network(model: str, settings: dict, seed: int = 0, dtype: str = "float32") -> tf.Module:
    """``MANN(**settings)`` or ``LSTMBaseline(**settings)``, drawn from ``seed``."""
    network_class = MANN if model == "mann" else LSTMBaseline
    return network_class(**settings, dtype=tf.as_dtype(dtype), seed=seed)


def sequence_loss(network, images, labels):
    """(mean cross-entropy over every step of every episode, logits)."""
    logits = network(images, labels)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)), logits


class RMSprop(keras.optimizers.RMSprop):
    """RMSProp with momentum exactly as PyTorch computes it, so the frameworks take the same steps:

        v = ρ v + (1 - ρ) g²;   b = μ b + g / (sqrt(v) + ε);   w -= lr b

    Keras puts ε inside the square root, sqrt(v + ε), and folds lr into the momentum buffer; with a
    constant rate the second difference vanishes, the first does not.
    """

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        velocity = self._velocities[self._get_variable_index(variable)]
        momentum = self._momentums[self._get_variable_index(variable)]
        self.assign(velocity, self.rho * velocity + (1 - self.rho) * ops.square(gradient))
        self.assign(momentum, self.momentum * momentum + gradient / (ops.sqrt(velocity) + self.epsilon))
        self.assign_sub(variable, lr * momentum)


def rmsprop(lr: float) -> RMSprop:
    """The paper's optimizer: RMSProp, decay 0.95, momentum 0.9 (ε 1e-8, PyTorch's)."""
    return RMSprop(lr, rho=0.95, momentum=0.9, epsilon=1e-8)


class SequenceLearner(Checkpointed):
    """The interface of ``common.training``: one RMSProp step per batch of episodes (a ``tf.function``),
    prediction of every step of an episode, and checkpoint state."""

    framework = "tf"

    def __init__(self, model: tf.Module, lr: float = 1e-4, jit_compile: bool = False):
        self.model = model
        self.dtype = model.trainable_variables[0].dtype
        self.optimizer = rmsprop(lr)
        self.optimizer.build(model.trainable_variables)
        # jit_compile: XLA; see chapters/model_based/benchmark.py for what it gains on a CPU.
        self._train_step = tf.function(self._step, reduce_retracing=True, jit_compile=jit_compile)
        self._logits = tf.function(lambda images, labels: self.model(images, labels), reduce_retracing=True)

    def _step(self, images, labels):
        with tf.GradientTape() as tape:
            loss, logits = sequence_loss(self.model, images, labels)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        accuracy = tf.reduce_mean(tf.cast(tf.argmax(logits, -1) == labels, tf.float32))
        return loss, accuracy

    def tensors(self, episode):
        check_sequence(episode.support_y, self.model.way)
        return (tf.cast(np.asarray(episode.support_x), self.dtype),
                tf.convert_to_tensor(np.asarray(episode.support_y, np.int64)))

    def train_step(self, batch) -> dict:
        loss, accuracy = self._train_step(*self.tensors(batch))
        return {"loss": float(loss), "accuracy": float(accuracy)}

    def predict(self, episode) -> np.ndarray:
        """The predicted label of every step of one episode, (T,)."""
        images, labels = self.tensors(episode)
        return tf.argmax(self._logits(images[None], labels[None])[0], -1).numpy()

    def trace(self, episode) -> dict:
        """Every step's state on one episode, as NumPy arrays (T, ...), with the logits."""
        images, labels = self.tensors(episode)
        logits, states = self.model(images[None], labels[None], trace=True)
        return {"logits": logits[0].numpy(), **{k: v[0].numpy() for k, v in states.items()}}
