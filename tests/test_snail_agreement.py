"""Statistical agreement for SNAIL: the same short training in PyTorch, TensorFlow and Keras, from
the same canonical weights on the same episodes, reaches the same accuracy on the same fixed episodes.

test_snail.py proves that one step agrees exactly (float64); over many float32 steps rounding
differences make the trajectories drift apart slowly, so here the claim is statistical, as in
test_metric_agreement.py. SNAIL has no comparison rule built in and learns slowly at first (at
5-way 1-shot it is near 30% after a thousand episodes), so the short run is 2-way 1-shot, T = 3,
where it must learn to read the label of the support image the query resembles: measured in
PyTorch, 72% after 200 episodes and 80% after 600, from 50% at chance.
"""

import pytest

from chapters.model_based.snail import ShuffledSupport, build_learner
from common.episodes import EpisodeSampler, FixedEpisodes, evaluation_episodes
from common.evaluation import evaluate
from common.weights import from_canonical, to_canonical

WAY, SHOT, QUERY = 2, 1, 5
EPISODES, DECAY_EVERY = 500, 250
EVALUATION_EPISODES = 80  # 2-way, 5 queries per class: 800 predictions, a 95% CI of about 3 points
# Measured: 69.4 (PyTorch), 75.8 (TensorFlow), 71.5 (Keras), 70 s of one core for the three. From the
# same start the float32 trajectories part after a few hundred steps, so these are three models
# trained alike, each also carrying its own 95% CI of about 3 points: a spread of 10 points allows
# for that, while a framework that trained differently (a wrong mask, a missing gate) stays near
# chance or falls far behind the other two.
TOLERANCE_POINTS = 10.0


def test_short_training_reaches_the_same_accuracy_in_every_framework(omniglot_splits):
    sampler = ShuffledSupport(EpisodeSampler(omniglot_splits["train"], WAY, SHOT, QUERY, seed=0))
    episodes = FixedEpisodes(ShuffledSupport(evaluation_episodes(omniglot_splits["val"], WAY, SHOT, 5).source),
                           EVALUATION_EPISODES)
    learners = {framework: build_learner(framework, 1, WAY, SHOT, sampler.episode(0), 1e-3, DECAY_EVERY, 0)
                for framework in ("torch", "tf", "keras")}
    weights = to_canonical(learners["torch"].model, "torch")
    for framework in ("tf", "keras"):
        from_canonical(weights, learners[framework].model, framework)

    accuracy = {}
    for framework, learner in learners.items():
        for index in range(EPISODES):
            learner.train_step(sampler.episode(index))
        accuracy[framework] = evaluate(learner.predict, episodes)["accuracy"]
    chance = 100 / WAY
    assert min(accuracy.values()) > chance + 15, f"SNAIL did not learn: {accuracy}"
    spread = max(accuracy.values()) - min(accuracy.values())
    assert spread <= TOLERANCE_POINTS, f"accuracies {accuracy} differ by {spread:.1f} points"
