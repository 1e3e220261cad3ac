"""Episodic training in Keras 3: a ``keras.Model`` with its own ``train_step``, trained by ``fit``.

An :class:`EpisodicModel` maps ``(support_x, support_y, query_x)`` to query logits; its
``train_step`` is one Adam step on the query cross-entropy, written out with a ``GradientTape``
(the TensorFlow backend). A model trained on another loss (a Siamese network's pair loss) defines
``episode_loss(support_x, support_y, query_x, query_y, training) -> (loss, logits)``; see
:func:`episode_loss`. Every Keras model of the book trains through :func:`fit_episodes` (episodic models, the
optimization-based learners, MANN, the sinusoid scripts): ``fit`` reads episodes from
``common.adapters.keras_episodes``; after every batch (one episode) a callback hands loss and accuracy
to the same bookkeeping as the PyTorch and TensorFlow loops (``common.training``), which validates,
checkpoints and draws the curve every ``eval_every`` episodes.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from common.adapters import keras_episodes
from common.episodic_tf import Adam, lr_schedule
from common.learners import Checkpointed


def episode_loss(model, support_x, support_y, query_x, query_y):
    """(loss, query logits) of one episode in training mode: the model's own ``episode_loss`` if
    it defines one, else the cross-entropy of its query logits. Accuracy always comes from the logits."""
    if hasattr(model, "episode_loss"):
        return model.episode_loss(support_x, support_y, query_x, query_y, training=True)
    logits = model((support_x, support_y, query_x), training=True)
    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(query_y, logits, from_logits=True)), logits


class EpisodicModel(keras.Model):
    """Subclasses define ``call((support_x, support_y, query_x), training)`` -> query logits
    (and, optionally, ``episode_loss``: see :func:`episode_loss`)."""

    def train_step(self, data):
        (support_x, support_y, query_x), query_y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            loss, logits = episode_loss(self, support_x, support_y, query_x, query_y)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        predicted = keras.ops.argmax(logits, axis=1)
        accuracy = keras.ops.mean(keras.ops.cast(predicted == keras.ops.cast(query_y, predicted.dtype), "float32"))
        return {"loss": loss, "accuracy": accuracy}


class EpisodicLearner(Checkpointed):
    """The learner interface of ``common.training`` around an :class:`EpisodicModel`."""

    framework = "keras"

    def __init__(self, model: EpisodicModel, example, learning_rate: float = 1e-3,
                 decay_every: int | None = None, decay: float = 0.5):
        self.model = model
        model.compile(optimizer=Adam(lr_schedule(learning_rate, decay_every, decay), epsilon=1e-8))
        model((example.support_x, example.support_y, example.query_x))  # build: Keras creates weights on first call
        model.optimizer.build(model.trainable_variables)
        self.optimizer = model.optimizer  # the one compile gave the model: what a checkpoint saves

    def train_step(self, episode) -> dict:
        logs = self.model.train_on_batch((episode.support_x, episode.support_y, episode.query_x),
                                         episode.query_y, return_dict=True)
        return {"loss": float(logs["loss"]), "accuracy": float(logs["accuracy"])}

    def predict(self, episode) -> np.ndarray:
        logits = self.model.predict_on_batch((episode.support_x, episode.support_y, episode.query_x))
        return np.argmax(logits, axis=1)

    def fit(self, sampler, start: int, log, progress: bool = True) -> None:
        fit_episodes(self.model, sampler, start, log, progress)


def fit_episodes(model: keras.Model, sampler, start: int, log, progress: bool = True) -> None:
    """Train ``model`` on episodes ``start .. log.run.episodes - 1`` of ``sampler`` with one ``fit`` call.

    One Keras epoch covers the whole run; ``log`` (``common.training.Log``) validates and
    checkpoints every ``eval_every`` episodes from the callback, exactly as the hand-written loops do.
    """
    # shuffle=False: by default fit shuffles the items of a PyDataset, which would train on the
    # episodes in another order than PyTorch and TensorFlow (and than a resumed run).
    model.fit(keras_episodes(sampler, log.run.episodes - start, start=start), epochs=1,
              shuffle=False, callbacks=[LogCallback(log, start)], verbose=1 if progress else 0)


class LogCallback(keras.callbacks.Callback):
    """Hands each episode's loss and accuracy (or a regression learner's loss and MSE) to
    ``common.training.Log`` (which checkpoints)."""

    def __init__(self, log, start: int):
        super().__init__()
        self.log, self.start = log, start

    def on_train_batch_end(self, batch, logs=None):
        self.log.step(self.start + batch, {name: float(value) for name, value in logs.items()})
