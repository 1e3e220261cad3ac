"""Episodic training in Keras 3: a ``keras.Model`` with its own ``train_step``, trained by ``fit``.

An :class:`EpisodicModel` maps ``(support_x, support_y, query_x)`` to query logits; its
``train_step`` is one Adam step on the query cross-entropy, written out with a ``GradientTape``
(the TensorFlow backend). ``fit`` reads episodes from ``common.adapters.keras_episodes``; one Keras
"epoch" is ``eval_every`` episodes, after which a callback evaluates, checkpoints and draws the curve
through the same code as the PyTorch and TensorFlow loops (``common.training``).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from common.adapters import keras_episodes
from common.episodic_tf import lr_schedule
from common.weights import canonical_to_keras, keras_to_canonical


class EpisodicModel(keras.Model):
    """Subclasses define ``call((support_x, support_y, query_x), training)`` -> query logits."""

    def train_step(self, data):
        (support_x, support_y, query_x), query_y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            logits = self((support_x, support_y, query_x), training=True)
            loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(query_y, logits, from_logits=True))
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        predicted = keras.ops.argmax(logits, axis=1)
        accuracy = keras.ops.mean(keras.ops.cast(predicted == keras.ops.cast(query_y, predicted.dtype), "float32"))
        return {"loss": loss, "accuracy": accuracy}


class EpisodicLearner:
    """The learner interface of ``common.training`` around an :class:`EpisodicModel`."""

    def __init__(self, model: EpisodicModel, example, learning_rate: float = 1e-3,
                 decay_every: int | None = None, decay: float = 0.5):
        self.model = model
        model.compile(optimizer=keras.optimizers.Adam(lr_schedule(learning_rate, decay_every, decay), epsilon=1e-8))
        model((example.support_x, example.support_y, example.query_x))  # build: Keras creates weights on first call
        model.optimizer.build(model.trainable_variables)

    def train_step(self, episode) -> dict:
        logs = self.model.train_on_batch((episode.support_x, episode.support_y, episode.query_x),
                                         episode.query_y, return_dict=True)
        return {"loss": float(logs["loss"]), "accuracy": float(logs["accuracy"])}

    def predict(self, episode) -> np.ndarray:
        logits = self.model.predict_on_batch((episode.support_x, episode.support_y, episode.query_x))
        return np.argmax(logits, axis=1)

    def state(self) -> dict:
        arrays = {f"model.{k}": v for k, v in keras_to_canonical(self.model).items()}
        arrays.update({f"optimizer.{i}": np.asarray(v) for i, v in enumerate(self.model.optimizer.variables)})
        return arrays

    def load_state(self, arrays: dict) -> None:
        canonical_to_keras({k[6:]: v for k, v in arrays.items() if k.startswith("model.")}, self.model)
        for i, variable in enumerate(self.model.optimizer.variables):
            variable.assign(arrays[f"optimizer.{i}"])

    def fit(self, sampler, start: int, log, progress: bool = True) -> None:
        """Train episodes ``start .. log.run.episodes - 1`` with ``model.fit``; ``log`` records them."""
        every = log.run.eval_every
        self.model.fit(keras_episodes(sampler, every, start=start), epochs=log.run.episodes // every,
                       initial_epoch=start // every, callbacks=[LogCallback(log, every)],
                       verbose=1 if progress else 0)


class LogCallback(keras.callbacks.Callback):
    """Hands each episode's loss and accuracy to ``common.training.Log`` (which checkpoints)."""

    def __init__(self, log, episodes_per_epoch: int):
        super().__init__()
        self.log, self.episodes_per_epoch, self.epoch = log, episodes_per_epoch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.log.step(self.epoch * self.episodes_per_epoch + batch,
                      {"loss": float(logs["loss"]), "accuracy": float(logs["accuracy"])})
