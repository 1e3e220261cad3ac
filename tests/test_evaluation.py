"""Mean accuracy with a 95% confidence interval, as the papers report it."""

import math

import numpy as np
import pytest

from common.episodes import EpisodeSampler, evaluation_episodes
from common.evaluation import episode_accuracy, evaluate, mean_ci95
from tests.test_sampler import labelled_dataset


def test_ci95_formula_on_known_values():
    mean, ci = mean_ci95([0.0, 1.0])
    assert mean == 0.5
    assert ci == pytest.approx(1.96 * math.sqrt(0.5) / math.sqrt(2))  # sample std of (0, 1) is sqrt(1/2)
    mean, ci = mean_ci95([0.9] * 600)
    assert (mean, ci) == (pytest.approx(0.9), pytest.approx(0.0))


def test_ci95_shrinks_with_the_square_root_of_the_number_of_episodes():
    rng = np.random.default_rng(0)
    values = rng.random(40_000)
    _, small = mean_ci95(values[:400])
    _, large = mean_ci95(values[:40_000])
    assert small / large == pytest.approx(10, rel=0.1)


def test_ci95_edge_cases():
    assert mean_ci95([0.25]) == (0.25, 0.0)
    with pytest.raises(ValueError):
        mean_ci95([])


def test_evaluate_reports_percent_over_the_fixed_episodes():
    episodes = evaluation_episodes(labelled_dataset(), 5, 1, 3, count=50)
    perfect = evaluate(lambda episode: episode.query_y, episodes)
    assert perfect["accuracy"] == 100.0 and perfect["ci95"] == 0.0 and perfect["episodes"] == 50
    always_zero = evaluate(lambda episode: np.zeros_like(episode.query_y), episodes)
    assert always_zero["accuracy"] == pytest.approx(20.0)
    assert episode_accuracy([0, 1, 1], [0, 1, 2]) == pytest.approx(2 / 3)


def test_a_nearest_neighbour_baseline_beats_chance_on_pixel_identities():
    # Images of labelled_dataset carry their class id in a pixel: 1-NN must be perfect.
    def nearest_neighbour(episode):
        distances = ((episode.query_x[:, None] - episode.support_x[None]) ** 2).sum(axis=(2, 3, 4))
        return episode.support_y[distances.argmin(axis=1)]

    result = evaluate(nearest_neighbour, EpisodeSampler(labelled_dataset(), 5, 1, 3).episodes(0, 20))
    assert result["accuracy"] > 60
