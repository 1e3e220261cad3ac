"""Statistical agreement: the same short training of a MANN in PyTorch, TensorFlow and Keras, from
the same canonical weights on the same batches of online episodes, reaches the same accuracy on
the same fixed test episodes.

The exact tests (test_mann.py) prove the step agrees in float64; here the three train in float32
for 60 updates (a small MANN: 3 classes x 5 presentations, 32 LSTM units, a 16 x 8 memory, 2
heads; RMSProp 1e-3, batches of 8) on real Omniglot sequences. After 60 updates the networks have
learned the first thing there is to learn, that a character shown for the first time takes a
label not used yet (first-presentation accuracy ~53% against 33% for a blind guess), and their
accuracy over all steps is ~40% (chance 33.3%). Measured: the three frameworks gave the same
accuracy to the last digit (40.0%), and losses equal to 1e-7 at every quarter of the run.
Tolerance: 3 points, for CPUs whose float32 kernels round otherwise (a 95% CI of one estimate on
40 episodes is ~2 points, and the three share every episode).
"""

import pytest

from chapters.model_based import mann
from common.episodes import EVALUATION_SEED, FixedEpisodes, MetaBatches
from common.weights import from_canonical, to_canonical

TOLERANCE_POINTS = 3.0
SETTINGS = dict(way=3, image_size=20, controller=32, memory_rows=16, memory_width=8, read_heads=2, gamma=0.95)


@pytest.fixture(scope="module")
def omniglot_20px():
    """The paper's split at the paper's 20x20: 1,200 training characters, the other 423 for testing."""
    from common.data import load_dataset
    from tests.conftest import require_data

    require_data("omniglot/images_background.zip")
    return {split: load_dataset("omniglot", split, image_size=20, scheme="vinyals") for split in ("trainval", "test")}


def test_short_training_reaches_the_same_accuracy_in_every_framework(omniglot_20px):
    batches = MetaBatches(mann.SequenceSampler(omniglot_20px["trainval"], 3, 5, seed=0), 8)
    episodes = FixedEpisodes(mann.SequenceSampler(omniglot_20px["test"], 3, 5, EVALUATION_SEED), 40)
    learners = {framework: mann.build_learner(framework, "mann", SETTINGS, seed=0, lr=1e-3)
                for framework in ("torch", "tf", "keras")}
    weights = to_canonical(learners["torch"].network, "torch")
    for framework in ("tf", "keras"):
        from_canonical(weights, learners[framework].network, framework)

    scores = {}
    for framework, learner in learners.items():
        for index in range(60):
            learner.train_step(batches.episode(index))
        scores[framework] = mann.presentation_accuracy(learner.predict, episodes, (1,))
    accuracy = {framework: score["accuracy"] for framework, score in scores.items()}
    chance = 100 / 3
    assert min(accuracy.values()) > chance + 3, f"the MANN did not learn: {accuracy}"
    first = {framework: score["presentations"]["1"][0] for framework, score in scores.items()}
    assert min(first.values()) > chance + 10, f"no label exclusion at the first presentation: {first}"
    spread = max(accuracy.values()) - min(accuracy.values())
    assert spread <= TOLERANCE_POINTS, f"accuracies {accuracy} differ by {spread:.1f} points"
