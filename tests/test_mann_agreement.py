"""Statistical agreement for MANN and its LSTM baseline: the same short float32 training in PyTorch,
TensorFlow and Keras, from the same canonical weights on the same batches of online episodes, ends in
the same model; and a trained network moves between the frameworks.

The exact tests (test_mann.py) prove that a step agrees in float64 on a tiny network. Here each
framework trains a small network (3 classes x 5 presentations, 32 LSTM units; the MANN with a
16 x 8 memory and 2 heads) for 60 RMSProp updates (rate 1e-3, batches of 8) on real 20x20 Omniglot
sequences, and is scored on 40 fixed test episodes (600 predictions). After 60 updates the networks
have learned the first thing there is to learn, that a character shown for the first time takes a
label not used yet (first presentation 43-53% against 33% for a blind guess), and score 35-41%
over all steps (chance 33.3%).

Unlike the metric chapter's Conv-4 (``tests/agreement_helpers.py``), these networks have no ReLU or
max-pool to route a rounding difference elsewhere: the float32 trajectories do not part. Measured
with seeds 0-3 of the sampler and the initial weights (results/model_based/NOTES.md, "The MANN/LSTM
agreement test's tolerances"): the three trained models gave the same label to all 600 queries and
their last five updates had the same size to 1e-5; a TensorFlow run started 1e-6 (relative) away
from PyTorch's weights, standing in for a CPU that rounds otherwise, labelled at most 1 query
otherwise. So the tolerances are small, each with a stated margin, and each check sees bugs of a
stated size:

* labels of each framework's own trained model unlike PyTorch's: at most 6 of the 600 (1%, six times
  the largest measured). TensorFlow trained without RMSProp's momentum (Keras' default) changed
  256-312 labels, with twice the rate 228-250, while its accuracy moved by as little as 0.2 points;
  the accuracies must also agree within 1 point (6 labels; measured 0.0);
* the last five updates' size in TensorFlow and Keras over PyTorch's: within 1.05 (measured 1 to
  1e-5). TensorFlow without momentum took updates 0.49-0.64 times PyTorch's, with twice the rate
  1.03-1.44 (RMSProp normalises its steps: the labels see the rest);
* PyTorch's trained network loaded into TensorFlow and Keras: in float32 at most 1 of the 600 labels
  differs (measured 0), in float64 none, and the float64 logits agree to 1e-12 (measured ~5e-16).
  This sees a converter or an evaluation path that is wrong only for a trained network (LSTM gate order, the
  memory's read of a learned key), whatever the trajectories did.

What it cannot see: a bug the 60 updates of a small network do not reach (the paper's 128 x 40
memory and 4 heads: ``test_mann.py`` checks those code paths exactly on a tiny network), or one in
the shared sequence sampler (``test_mann.py``, ``test_shared_properties.py``).
"""

import numpy as np
import pytest

from chapters.model_based import mann
from common.episodes import EVALUATION_SEED, FixedEpisodes, MetaBatches
from common.weights import to_canonical
from tests.agreement_helpers import FRAMEWORKS, moved_model_flips, train_and_compare

UPDATES = 60
TOLERANCE_POINTS = 1.0  # accuracy spread of the three frameworks (6 of 600 labels; measured 0.0)
UNLIKE_LABELS = 6  # labels of TF's or Keras' own trained model that differ from PyTorch's (measured 0-1)
UPDATE_RATIO = 1.05  # the last updates' size in TensorFlow or Keras over PyTorch's (measured 1 to 1e-5)
SAME_MODEL_FLIPS = 1  # float32 labels of PyTorch's trained network, loaded into TensorFlow or Keras (measured 0)
LOGITS_FLOAT64 = 1e-12  # the moved network's float64 logits (measured ~5e-16)
SETTINGS = dict(way=3, image_size=20, controller=32, memory_rows=16, memory_width=8, read_heads=2, gamma=0.95)
MODEL_SETTINGS = {"mann": SETTINGS, "lstm": {name: SETTINGS[name] for name in ("way", "image_size", "controller")}}


@pytest.fixture(scope="module")
def omniglot_20px():
    """The paper's split at the paper's 20x20: 1,200 training characters, the other 423 for testing."""
    from common.data import load_dataset
    from tests.conftest import require_data

    require_data("omniglot/images_background.zip")
    return {split: load_dataset("omniglot", split, image_size=20, scheme="vinyals") for split in ("trainval", "test")}


@pytest.mark.parametrize("model", ["mann", "lstm"])
def test_short_training_ends_in_the_same_model_in_every_framework(model, omniglot_20px):
    settings = MODEL_SETTINGS[model]
    batches = MetaBatches(mann.SequenceSampler(omniglot_20px["trainval"], 3, 5, seed=0), 8)
    episodes = list(FixedEpisodes(mann.SequenceSampler(omniglot_20px["test"], 3, 5, EVALUATION_SEED), 40))
    learners = {framework: mann.build_learner(framework, model, settings, seed=0, lr=1e-3) for framework in FRAMEWORKS}
    run = train_and_compare(learners, batches, episodes, UPDATES)
    print(run)  # pytest -s shows what was measured

    chance = 100 / 3
    assert min(run.accuracy.values()) > chance, f"the {model} did not learn: {run.accuracy}"
    def first_presentation(labels, episode):
        return (labels == episode.query_y)[mann.presentation_numbers(episode.query_y) == 1].mean()

    first = {framework: 100 * np.mean([first_presentation(labels, episode)
                                       for labels, episode in zip(run.labels[framework], episodes)])
             for framework in FRAMEWORKS}
    assert min(first.values()) > chance + 5, f"{model}: no label exclusion at the first presentation: {first}"
    run.check(model, update_ratio=UPDATE_RATIO, flips=SAME_MODEL_FLIPS, spread=TOLERANCE_POINTS,
              unlike=UNLIKE_LABELS, why_unlike="another rate, optimizer or loss?",
              why_steps="another learning rate or momentum?")

    # The trained network in float64: the same labels, and logits equal to rounding, in every framework.
    trained = to_canonical(learners["torch"].model, "torch")
    moved = {framework: mann.build_learner(framework, model, settings, seed=1, dtype="float64")
             for framework in FRAMEWORKS}
    assert moved_model_flips(trained, moved, episodes) == {"tf": 0, "keras": 0}
    logits = {framework: np.stack([learner.trace(episode)["logits"] for episode in episodes[:10]])
              for framework, learner in moved.items()}
    for framework in ("tf", "keras"):
        difference = float(np.abs(logits[framework] - logits["torch"]).max())
        assert difference <= LOGITS_FLOAT64, \
            f"{model}: float64 logits of the moved network differ by {difference:.1e} in {framework}"
