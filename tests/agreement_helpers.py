"""What the statistical agreement tests measure after the same short float32 training in PyTorch,
TensorFlow and Keras (``test_metric_agreement.py``, ``test_snail_agreement.py``,
``test_mann_agreement.py``, the FewRel test of ``test_applications.py``).

Float32 rounding parts the three trajectories within a few steps: oneDNN and PyTorch sum in other
orders, a max-pool or a ReLU then routes a gradient otherwise, and Adam turns rounding-level
gradients into steps of full size. After a run the three are three models trained alike, not one
model three times: in the metric chapter's test they disagree on 8-30% of the fixed queries,
while their accuracies are within 3 points. Accuracy alone therefore sees only bugs that move accuracy
by more than the spread of correct runs. Two paired measurements see more, each against a baseline
that float32 rounding does not blur:

* **the size of the last steps**, ``||θ_after - θ_before||`` over the trainable weights, averaged
  over the last ``LAST_STEPS`` training episodes. Adam's steps have the size of the learning rate
  whatever the trajectory: in the metric chapter's runs the three frameworks took steps of the same
  size to within 10% (one step alone: 16%), while a framework on another schedule takes steps of
  another size (one halving missed: twice the size). In SNAIL's longer runs they differed by 32%,
  too much to test a schedule with;
* **the same trained model in every framework**. PyTorch's weights and running statistics after
  the run, loaded into the TensorFlow and Keras models, predict the same labels on the fixed
  episodes (their float32 logits differ by ~1e-6). A framework that evaluates otherwise (batch
  statistics instead of the running ones) changes a few percent of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from common.evaluation import episode_accuracy
from common.weights import from_canonical, to_canonical

FRAMEWORKS = ("torch", "tf", "keras")
LAST_STEPS = 5  # the step sizes compared: those of the last five training episodes (one rate)


@dataclass
class Agreement:
    accuracy: dict[str, float]  # framework -> accuracy (%) of its own trained model on the fixed episodes
    last_update: dict[str, float]  # framework -> mean norm of its last LAST_STEPS changes of the weights
    flips: dict[str, int]  # "tf", "keras" -> labels of PyTorch's trained model, loaded there, that differ
    predictions: int  # query predictions per framework
    labels: dict[str, list] = field(default_factory=dict, repr=False)  # framework -> its own model's labels

    @property
    def spread(self) -> float:
        return max(self.accuracy.values()) - min(self.accuracy.values())

    def update_ratio(self, framework: str) -> float:
        return self.last_update[framework] / self.last_update["torch"]

    def unlike_labels(self, framework: str) -> int:
        """Queries that ``framework``'s own trained model labels otherwise than PyTorch's."""
        return sum(int((a != b).sum()) for a, b in zip(self.labels[framework], self.labels["torch"]))

    def check(self, what: str, *, update_ratio: float | None, flips: int, spread: float, unlike: int | None = None,
              why_unlike: str = "another rate, schedule or loss?", why_steps: str = "another learning rate?",
              why_flips: str = "another evaluation path?") -> None:
        """The checks every statistical agreement test makes, with its tolerances: TensorFlow's and
        Keras' last steps within ``update_ratio`` times PyTorch's size (None: a model whose correct
        runs' steps differ too much to compare, as SNAIL's), PyTorch's trained model moved there
        flipping at most ``flips`` labels, the accuracies within ``spread`` points, and (where given)
        at most ``unlike`` of their own trained models' labels unlike PyTorch's."""
        for framework in FRAMEWORKS[1:]:
            if unlike is not None:
                assert self.unlike_labels(framework) <= unlike, \
                    f"{what}: {framework}'s trained model labels {self.unlike_labels(framework)} of " \
                    f"{self.predictions} queries unlike PyTorch's: {why_unlike} ({self.accuracy})"
            assert update_ratio is None or 1 / update_ratio <= self.update_ratio(framework) <= update_ratio, \
                f"{what}: the last steps' size in {framework} is {self.update_ratio(framework):.3f}x " \
                f"PyTorch's: {why_steps} ({self.last_update})"
            assert self.flips[framework] <= flips, \
                f"{what}: PyTorch's trained model predicts {self.flips[framework]} of {self.predictions} " \
                f"labels otherwise in {framework}: {why_flips}"
        assert self.spread <= spread, f"{what}: accuracies {self.accuracy} differ by {self.spread:.2f} points"


def trainable(weights: dict) -> dict:
    return {name: value for name, value in weights.items() if "moving_" not in name}


def model_of(learner):
    """The network a learner trains: ``model`` (the episodic learners), ``network`` (MANN and its
    LSTM), ``algorithm.model`` (the optimization chapter's ``Learner``)."""
    for name in ("model", "network"):
        if hasattr(learner, name):
            return getattr(learner, name)
    return learner.algorithm.model


def moved_model_flips(weights: dict, learners: dict, episodes, reference: list | None = None) -> dict[str, int]:
    """Load the canonical ``weights`` into TensorFlow's and Keras' learners (cast to each model's own
    precision) and count the labels they give on ``episodes`` that differ from ``reference``
    (default: PyTorch's learner, given the same weights). In float64 a correct path gives 0."""
    episodes = list(episodes)

    def load(framework):
        model = model_of(learners[framework])
        own = to_canonical(model, framework)
        from_canonical({name: np.asarray(value, own[name].dtype) for name, value in weights.items()}, model, framework)

    if reference is None:
        load("torch")
        reference = [learners["torch"].predict(episode) for episode in episodes]
    flips = {}
    for framework in FRAMEWORKS[1:]:
        load(framework)
        flips[framework] = sum(int((np.asarray(learners[framework].predict(episode)) != labels).sum())
                               for episode, labels in zip(episodes, reference))
    return flips


def train_and_compare(learners: dict, sampler, episodes, steps: int) -> Agreement:
    """Start every learner from PyTorch's initial weights, train each on episodes ``0 .. steps - 1``
    of ``sampler``, and measure what :class:`Agreement` holds on the fixed ``episodes``."""
    start = to_canonical(model_of(learners["torch"]), "torch")
    for framework in FRAMEWORKS[1:]:
        from_canonical(start, model_of(learners[framework]), framework)
    episodes = list(episodes)
    accuracy, last_update, predicted = {}, {}, {}
    for framework, learner in learners.items():
        sizes = []
        for index in range(steps):
            if index >= steps - LAST_STEPS:
                before = trainable(to_canonical(model_of(learner), framework))
            learner.train_step(sampler.episode(index))
            if index >= steps - LAST_STEPS:
                after = trainable(to_canonical(model_of(learner), framework))
                sizes.append(np.sqrt(sum(np.sum((after[k] - before[k]) ** 2) for k in after)))
        last_update[framework] = float(np.mean(sizes))
        predicted[framework] = [learner.predict(episode) for episode in episodes]
        accuracy[framework] = 100 * float(np.mean([episode_accuracy(labels, episode.query_y)
                                                   for labels, episode in zip(predicted[framework], episodes)]))
    flips = moved_model_flips(to_canonical(model_of(learners["torch"]), "torch"), learners, episodes,
                              predicted["torch"])
    return Agreement(accuracy, last_update, flips, sum(len(episode.query_y) for episode in episodes), predicted)
