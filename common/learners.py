"""The learner factory: where a chapter's model becomes a learner of ``common.training``, the one
place that says what differs between the frameworks when a model is created and wrapped.

Three things differ, and nothing else:

* how a model's initial weights are drawn from a seed: PyTorch and Keras draw them from a global
  generator (``torch.manual_seed``, ``keras.utils.set_random_seed``), a TensorFlow module from the
  ``seed`` argument it is given (:func:`seeded_model`);
* what the episodic learner of ``common.episodic_<framework>`` needs besides the model: PyTorch a
  device, Keras an example episode to build the model's weights on (:func:`episodic_learner`);
* how an optimizer's state is read and written: a learner's checkpoint holds its network's weights
  in the canonical format that every framework reads, beside its optimizer's state in that
  framework's own layout (every learner class gets ``state`` and ``load_state`` from
  :class:`Checkpointed`).

A chapter names its model class; the first two functions do the rest, so a new algorithm plugs in
its model and nothing else.
"""

from __future__ import annotations

import importlib

import numpy as np

from common.weights import from_canonical, model_state, model_weights, to_canonical


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


def _optimizers(framework: str):
    """The module that reads and writes ``framework``'s optimizers (``optimizer_arrays``): PyTorch's,
    or TensorFlow's for the Keras optimizers that TensorFlow and Keras share."""
    return importlib.import_module("common.episodic_torch" if framework == "torch" else "common.episodic_tf")


class Checkpointed:
    """The checkpoint of a learner: the network it trains, in the attribute named by ``trained``
    (``model``, or an LSTM meta-learner's ``meta_learner``), whose canonical weights every framework
    reads, and its outer optimizer in ``self.optimizer``, whose state is in its framework's own
    layout. A framework's learner class names its framework in ``framework`` and the integer
    counters it keeps itself in ``counters`` (a PyTorch learner counts its steps: a torch optimizer
    counts them per parameter, a Keras optimizer in its own variables)."""

    framework: str
    counters: tuple[str, ...] = ()
    trained: str = "model"

    def state(self) -> dict:
        """Everything a checkpoint needs: the trained network's weights as ``<trained>.<canonical
        name>``, the optimizer's state (slots such as Adam's moments) as ``optimizer.…``, and the
        counters under their names."""
        weights = model_state(to_canonical(getattr(self, self.trained), self.framework), f"{self.trained}.")
        return {**weights, **_optimizers(self.framework).optimizer_arrays(self.optimizer),
                **{name: np.array(getattr(self, name)) for name in self.counters}}

    def load_model(self, arrays: dict) -> None:
        """The trained network (and a Meta-SGD learner's α) from a checkpoint's arrays, written by any
        framework: what evaluating a trained model needs. The optimizer's slots are each framework's own."""
        from_canonical(model_weights(arrays, f"{self.trained}."), getattr(self, self.trained), self.framework)

    def load_state(self, arrays: dict) -> None:
        """The inverse of :meth:`state`: the next training step is the one the saved run would have taken."""
        self.load_model(arrays)
        _optimizers(self.framework).load_optimizer_arrays(self.optimizer, arrays)
        for name in self.counters:
            setattr(self, name, int(arrays[name]))
