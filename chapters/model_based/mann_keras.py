"""Memory-augmented neural network with least-recently-used access (Santoro et al., ICML 2016) in Keras 3.

Cosine similarity K, read weights softmax_i K(k_t, M_t(i)), read vector r_t = sum_i w^r_t(i) M_t(i),
LRUA write weights w^w_t = σ(α) w^r_{t-1} + (1 - σ(α)) w^lu_{t-1}, the write
M_t(i) = M_{t-1}(i) + w^w_t(i) k_t after zeroing the least-used row, usage
w^u_t = γ w^u_{t-1} + w^r_t + w^w_t. See ``mann_torch.py`` for the full commentary; the names and
structure here are the same. The time loop is ``keras.ops.scan`` (a compiled while loop); the model
trains through ``fit`` with its own ``train_step``, one RMSProp step per batch of episodes.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from chapters.model_based.mann import check_sequence, write_weights
from chapters.model_based.mann_tf import rmsprop
from common.episodic_keras import fit_episodes
from common.learners import Checkpointed

MEMORY_INIT = 1e-6  # every memory cell starts at this small constant: a cosine needs a nonzero row
NORM_EPS = 1e-8     # inside the square roots of the norms: a zeroed row has a finite gradient


def least_used(usage, n):
    """w^lu, 1 on the ``n`` rows of smallest usage (B, N); and the one row of smallest usage.
    Ties go to the lower row index (pairwise ranks, not a top-k: see ``mann_torch.least_used``)."""
    rows = ops.shape(usage)[1]
    smaller = usage[:, None, :] < usage[:, :, None]                  # [b, i, j]: u_j < u_i
    lower = ops.tril(ops.ones((rows, rows), "int32"), -1) > 0        # j < i
    tied_before = ops.logical_and(ops.equal(usage[:, None, :], usage[:, :, None]), lower)
    rank = ops.sum(ops.cast(ops.logical_or(smaller, tied_before), "int32"), -1)
    return ops.cast(rank < n, usage.dtype), ops.cast(rank == 0, usage.dtype)


def cosine_similarity(keys, memory):
    """K(k_r, M(i)) for every head r and row i; (B, R, W), (B, N, W) -> (B, R, N)."""
    key_norms = ops.sqrt(ops.sum(ops.square(keys), -1) + NORM_EPS)
    row_norms = ops.sqrt(ops.sum(ops.square(memory), -1) + NORM_EPS)
    return ops.matmul(keys, ops.transpose(memory, (0, 2, 1))) / (key_norms[:, :, None] * row_norms[:, None, :])


class SequenceModel(keras.Model):
    """What ``MANN`` and ``LSTMBaseline`` share: the time loop, the loss and the training step.
    Subclasses define ``initial_state(batch, dtype)`` and ``step(x, y_previous, state)``."""

    def call(self, inputs, training=False):
        """Logits of every step, (B, T, way), from ``(images (B, T, H, W, C), labels (B, T), ...)``."""
        return self.run_sequence(inputs[0], inputs[1])[0]

    def run_sequence(self, images, labels):
        """(logits (B, T, way), every step's state (B, T, ...)), the time loop as ``keras.ops.scan``."""
        images = ops.convert_to_tensor(images, self.compute_dtype)
        batch, steps = ops.shape(images)[0], ops.shape(images)[1]
        x = ops.reshape(images, (batch, steps, -1))
        labels = ops.cast(labels, "int32")
        y_previous = ops.concatenate([ops.zeros_like(ops.one_hot(labels[:, :1], self.way, dtype=x.dtype)),
                                      ops.one_hot(labels[:, :-1], self.way, dtype=x.dtype)], 1)

        def step(carried, inputs):
            # Keras' TensorFlow scan stacks outputs shaped as the carry: carry the logits too.
            carried = self.step(inputs[0], inputs[1], carried[1])
            return carried, carried

        time_major = (ops.transpose(x, (1, 0, 2)), ops.transpose(y_previous, (1, 0, 2)))
        initial = (ops.zeros((batch, self.way), x.dtype), self.initial_state(batch, x.dtype))
        _, (logits, states) = ops.scan(step, initial, time_major)
        batch_major = lambda t: ops.moveaxis(t, 0, 1)  # noqa: E731
        return batch_major(logits), {name: batch_major(value) for name, value in states.items()}

    def train_step(self, data):
        (images, labels, _), targets, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            logits = self((images, labels), training=True)
            loss = ops.mean(keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True))
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        predicted = ops.argmax(logits, axis=-1)
        accuracy = ops.mean(ops.cast(predicted == ops.cast(targets, predicted.dtype), "float32"))
        return {"loss": loss, "accuracy": accuracy}


class MANN(SequenceModel):
    def __init__(self, way: int = 5, image_size: int = 20, controller: int = 200, memory_rows: int = 128,
                 memory_width: int = 40, read_heads: int = 4, gamma: float = 0.95, add_vector: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.way, self.rows, self.width, self.heads, self.gamma = way, memory_rows, memory_width, read_heads, gamma
        self.units, self.add_vector = controller, add_vector
        self.controller = keras.layers.LSTMCell(controller, dtype=self.dtype_policy)
        self.key = keras.layers.Dense(read_heads * memory_width, dtype=self.dtype_policy)  # k_t of every head
        self.gate = keras.layers.Dense(read_heads, dtype=self.dtype_policy)                # α of every head
        self.readout = keras.layers.Dense(way, dtype=self.dtype_policy)
        if add_vector:  # a_t of every head
            self.add = keras.layers.Dense(read_heads * memory_width, dtype=self.dtype_policy)

    def initial_state(self, batch, dtype) -> dict:
        return {"h": ops.zeros((batch, self.units), dtype), "c": ops.zeros((batch, self.units), dtype),
                "memory": ops.full((batch, self.rows, self.width), MEMORY_INIT, dtype),
                "read_weights": ops.zeros((batch, self.heads, self.rows), dtype),
                "usage": ops.zeros((batch, self.rows), dtype), "reads": ops.zeros((batch, self.heads, self.width), dtype),
                "write_weights": ops.zeros((batch, self.heads, self.rows), dtype)}

    def step(self, x, y_previous, state):
        """One time step: (B, H*W) pixels, (B, way) one-hot previous label -> (B, way) logits, new state."""
        batch = ops.shape(x)[0]
        h, (_, c) = self.controller(ops.concatenate([x, y_previous, ops.reshape(state["reads"], (batch, -1))], 1),
                                    [state["h"], state["c"]])
        keys = ops.reshape(ops.tanh(self.key(h)), (batch, self.heads, self.width))
        contents = ops.reshape(ops.tanh(self.add(h)), (batch, self.heads, self.width)) if self.add_vector else keys
        gate = ops.sigmoid(self.gate(h))
        least, least_one = least_used(state["usage"], self.heads)              # from w^u_{t-1}
        writes = write_weights(state["read_weights"], least, gate)
        memory = state["memory"] * (1 - least_one[:, :, None]) + ops.matmul(ops.transpose(writes, (0, 2, 1)), contents)
        read_weights = ops.softmax(cosine_similarity(keys, memory), -1)        # read weights
        reads = ops.matmul(read_weights, memory)                               # read vectors
        usage = self.gamma * state["usage"] + ops.sum(read_weights, 1) + ops.sum(writes, 1)  # usage
        logits = self.readout(ops.concatenate([h, ops.reshape(reads, (batch, -1))], 1))
        return logits, {"h": h, "c": c, "memory": memory, "read_weights": read_weights, "usage": usage,
                        "reads": reads, "write_weights": writes}


class LSTMBaseline(SequenceModel):
    """The controller alone: an LSTM reading (x_t, y_{t-1}), its output through a softmax layer."""

    def __init__(self, way: int = 5, image_size: int = 20, controller: int = 200, **kwargs):
        super().__init__(**kwargs)
        self.way, self.units = way, controller
        self.controller = keras.layers.LSTMCell(controller, dtype=self.dtype_policy)
        self.readout = keras.layers.Dense(way, dtype=self.dtype_policy)

    def initial_state(self, batch, dtype) -> dict:
        return {"h": ops.zeros((batch, self.units), dtype), "c": ops.zeros((batch, self.units), dtype)}

    def step(self, x, y_previous, state):
        h, (_, c) = self.controller(ops.concatenate([x, y_previous], 1), [state["h"], state["c"]])
        return self.readout(h), {"h": h, "c": c}


def build_network(model: str, settings: dict, seed: int = 0, dtype: str = "float32") -> SequenceModel:
    """``MANN(**settings)`` or ``LSTMBaseline(**settings)``, drawn from ``seed`` and built (Keras
    creates weights on the first call: one step of one blank image)."""
    keras.utils.set_random_seed(seed)
    network = (MANN if model == "mann" else LSTMBaseline)(**settings, dtype=dtype)
    size = settings.get("image_size", 20)
    network((np.zeros((1, 1, size, size, 1), dtype), np.zeros((1, 1), np.int64)))
    return network


class SequenceLearner(Checkpointed):
    """The interface of ``common.training`` around a ``SequenceModel``: ``fit`` for training (one
    RMSProp step per batch of episodes), prediction of every step of an episode, checkpoint state."""

    framework = "keras"

    def __init__(self, model: SequenceModel, lr: float = 1e-4, jit_compile: bool = False):
        self.model = model
        model.compile(optimizer=rmsprop(lr), jit_compile=jit_compile)
        self.optimizer = model.optimizer
        self.optimizer.build(model.trainable_variables)

    def tensors(self, episode):
        check_sequence(episode.support_y, self.model.way)
        return np.asarray(episode.support_x, self.model.compute_dtype), np.asarray(episode.support_y)

    def train_step(self, batch) -> dict:
        images, labels = self.tensors(batch)
        logs = self.model.train_on_batch((images, labels, batch.query_x), batch.query_y, return_dict=True)
        return {"loss": float(logs["loss"]), "accuracy": float(logs["accuracy"])}

    def predict(self, episode) -> np.ndarray:
        """The predicted label of every step of one episode, (T,)."""
        images, labels = self.tensors(episode)
        return np.argmax(self.model.predict_on_batch((images[None], labels[None]))[0], -1)

    def trace(self, episode) -> dict:
        """Every step's state on one episode, as NumPy arrays (T, ...), with the logits."""
        images, labels = self.tensors(episode)
        logits, states = self.model.run_sequence(images[None], labels[None])
        return {"logits": ops.convert_to_numpy(logits)[0], **{k: ops.convert_to_numpy(v)[0] for k, v in states.items()}}

    def fit(self, sampler, start: int, log, progress: bool = True) -> None:
        """Train batches ``start .. log.run.episodes - 1`` with one ``model.fit`` call (item i is batch
        start + i, as in the loops of PyTorch and TensorFlow)."""
        check_sequence(sampler.episode(start).support_y, self.model.way)
        fit_episodes(self.model, sampler, start, log, progress)
