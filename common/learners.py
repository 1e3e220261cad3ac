"""The learner factory: where a chapter's model becomes a learner of ``common.training``, the one
place that says what differs between the frameworks when a model is created and wrapped.

Two things differ, and nothing else:

* how a model's initial weights are drawn from a seed: PyTorch and Keras draw them from a global
  generator (``torch.manual_seed``, ``keras.utils.set_random_seed``), a TensorFlow module from the
  ``seed`` argument it is given (:func:`seeded_model`);
* what the episodic learner of ``common.episodic_<framework>`` needs besides the model: PyTorch a
  device, Keras an example episode to build the model's weights on (:func:`episodic_learner`).

A chapter names its model class; these two functions do the rest, so a new algorithm plugs in
its model and nothing else.
"""

from __future__ import annotations

import importlib


def seeded_model(framework: str, model_class, *args, seed: int, **kwargs):
    """``model_class(*args, **kwargs)`` with initial weights drawn from ``seed`` (on the CPU, so that a
    PyTorch model starts from the same θ on every device)."""
    if framework == "torch":
        import torch
        torch.manual_seed(seed)
        return model_class(*args, **kwargs)
    if framework == "tf":
        return model_class(*args, seed=seed, **kwargs)
    import keras
    keras.utils.set_random_seed(seed)
    return model_class(*args, **kwargs)


def episodic_learner(framework: str, model, example, learning_rate: float, decay_every: int | None = None,
                     device: str = "cpu"):
    """``common.episodic_<framework>.EpisodicLearner`` around ``model``: one Adam step of rate
    ``learning_rate`` per episode (halved every ``decay_every`` episodes, if given). ``device``
    matters to PyTorch only (TensorFlow places ops itself; see ``common.devices``); ``example``
    (an episode) to Keras only, which creates a model's weights on its first call."""
    learners = importlib.import_module(f"common.episodic_{framework}")
    if framework == "torch":
        from common.devices import torch_device
        return learners.EpisodicLearner(model, learning_rate, decay_every, device=torch_device(device))
    if framework == "tf":
        return learners.EpisodicLearner(model, learning_rate, decay_every)
    return learners.EpisodicLearner(model, example, learning_rate, decay_every)
