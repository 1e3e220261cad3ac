"""Statistical agreement for SNAIL: the same short training in PyTorch, TensorFlow and Keras, from
the same canonical weights on the same episodes, reaches the same accuracy on the same fixed episodes.

test_snail.py proves that one step agrees exactly (float64); over many float32 steps rounding
differences make the trajectories drift apart slowly, so here the claim is statistical, as in
test_metric_agreement.py. SNAIL has no comparison rule built in and learns slowly at first (at
5-way 1-shot it is near 30% after a thousand episodes), so the short run is 2-way 1-shot, T = 3,
where it must learn to read the label of the support image the query resembles: 74-84% after 300
episodes with seed 0, from 50% at chance.

Two checks (``tests/agreement_helpers.py``), with tolerances from the same training with the
sampler's and the initial weights' seeds 0-3 (results/model_based/NOTES.md, "The SNAIL agreement
test's tolerance, from seeds"):

* PyTorch's trained SNAIL, loaded into TensorFlow and Keras, gives the same labels to the 800 fixed
  queries: measured 0 flips with every seed (a flip needs two logits within ~1e-6). Tolerance 1.
  This sees a framework that evaluates otherwise, whatever the trajectories did: Keras predicting
  with the episode's batch statistics (``python -m tools.mutations``) flipped 50.
* the three accuracies are within 18 points. From the same start the float32 trajectories part
  within a few steps, so these are three models trained alike, each with its own 95% CI of about 3
  points: correct runs spread 10.5 / 9.9 / 11.9 / 2.9 points with seeds 0 / 1 / 2 / 3, so the
  tolerance is 1.5 times the largest. It sees a framework that stays near chance or falls far
  behind (a wrong mask, a missing gate), not a wrong schedule: the last five steps' sizes, which the
  metric test compares (``test_metric_agreement.py``), were 0.38-1.93 times PyTorch's here, too
  spread to tell the 2 times of a missed halving. The schedule is the shared episodic learners'
  one, which ``test_metric_exact.py`` checks exactly across two decay boundaries.
"""

import pytest

from chapters.model_based.snail import ShuffledSupport, build_learner
from common.episodes import EpisodeSampler, FixedEpisodes, evaluation_episodes
from tests.agreement_helpers import FRAMEWORKS, train_and_compare

WAY, SHOT, QUERY = 2, 1, 5
EPISODES, DECAY_EVERY = 300, 150
EVALUATION_EPISODES = 80  # 2-way, 5 queries per class: 800 predictions, a 95% CI of about 3 points
TOLERANCE_POINTS = 18.0  # accuracy spread of the three frameworks: 1.5x the largest over seeds 0-3
SAME_MODEL_FLIPS = 1  # of the 800 labels of PyTorch's trained SNAIL, loaded into TensorFlow or Keras


def test_short_training_reaches_the_same_accuracy_in_every_framework(omniglot_splits):
    sampler = ShuffledSupport(EpisodeSampler(omniglot_splits["train"], WAY, SHOT, QUERY, seed=0))
    episodes = FixedEpisodes(ShuffledSupport(evaluation_episodes(omniglot_splits["val"], WAY, SHOT, 5).source),
                           EVALUATION_EPISODES)
    learners = {framework: build_learner(framework, 1, WAY, SHOT, sampler.episode(0), 1e-3, DECAY_EVERY, 0)
                for framework in FRAMEWORKS}
    run = train_and_compare(learners, sampler, episodes, EPISODES)
    print(run)  # pytest -s shows what was measured
    chance = 100 / WAY
    assert min(run.accuracy.values()) > chance + 10, f"SNAIL did not learn: {run.accuracy}"
    run.check("SNAIL", update_ratio=None, flips=SAME_MODEL_FLIPS, spread=TOLERANCE_POINTS,
              why_flips="another evaluation mode?")
